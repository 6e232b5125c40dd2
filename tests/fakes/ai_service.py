"""A stand-in for the AI service (FastAPI in production) on a test host.

Reads the env file's settings from its environment as the real service would,
and answers GET /health with 200 when every model in MODELS is in MODEL_DIR and
readable by it, 503 otherwise. Standard library only: it runs with the host's
/usr/bin/python3 as the service user.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODELS = [m for m in os.environ.get("MODELS", "").split(",") if m]
MODEL_DIR = os.environ["MODEL_DIR"]


class Health(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path != "/health":
            self.send_error(404)
            return
        missing = [m for m in MODELS if not os.access(os.path.join(MODEL_DIR, m), os.R_OK)]
        body = json.dumps(
            {
                "status": "ok" if not missing else "missing models",
                "models": MODELS,
                "missing": missing,
                "database": os.environ["DATABASE_URL"].split("@")[-1],
            }
        ).encode()
        self.send_response(503 if missing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer((os.environ.get("HOST", "0.0.0.0"), int(os.environ["PORT"])), Health).serve_forever()
