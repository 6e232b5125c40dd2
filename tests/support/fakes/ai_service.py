"""A stand-in for the AI service (FastAPI in production) on a test host.

Reads the env file's settings from its environment as the real service would, listens
on HOST (127.0.0.1 unless the env file says otherwise, never all addresses by default),
over TLS when TLS_CERT_FILE and TLS_KEY_FILE are set, and answers GET /health with 200
when every model in MODELS is in MODEL_DIR and readable by it, 503 otherwise; the body
also shows its arguments, exactly as it got them. With `--crash` it prints its
DATABASE_URL and password, as a service failing at start-up might, and exits 1.
Standard library only: it runs with the host's /usr/bin/python3 as the service user.
"""

import json
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

MODELS = [m for m in os.environ.get("MODELS", "").split(",") if m]
MODEL_DIR = os.environ["MODEL_DIR"]

if "--crash" in sys.argv:
    url = os.environ["DATABASE_URL"]
    print(f"connecting to {url}", flush=True)
    print(f"FATAL: password authentication failed (password {unquote(urlsplit(url).password or '')})", flush=True)
    sys.exit(1)


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
                "argv": sys.argv[1:],
            }
        ).encode()
        self.send_response(503 if missing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])), Health)
if os.environ.get("TLS_CERT_FILE"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["TLS_CERT_FILE"], os.environ["TLS_KEY_FILE"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
