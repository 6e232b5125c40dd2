"""A fault-injecting HTTPS proxy for the local moto endpoint, on loopback, seeded.

It terminates TLS with the local certificate and speaks TLS to the endpoint, so
the runner sees the same certificate through it.

Each request is forwarded unchanged, unless the seeded draw picks a fault: a 503
Service Unavailable, a 503 SlowDown (S3's throttling answer), a connection reset,
or a 2 s stall before forwarding. Counts what it did, so a test can check that the
runner met the faults and retried them.
"""

from __future__ import annotations

import http.client
import http.server
import random
import socket
import struct
import threading
import time
from collections import Counter

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FaultProxy:
    def __init__(
        self,
        upstream_port: int,
        seed: int,
        tls_dir,
        fault_rate: float = 0.15,
        stall_rate: float = 0.2,
        stall_seconds: float = 2.0,
    ):
        import ssl

        self.upstream_port = upstream_port
        client_tls = ssl.create_default_context(cafile=str(tls_dir / "server.crt"))
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(str(tls_dir / "server.crt"), str(tls_dir / "server.key"))
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.fault_rate, self.stall_rate, self.stall_seconds = fault_rate, stall_rate, stall_seconds
        self.counts: Counter = Counter()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                body = self._body()
                with proxy.lock:
                    draw, stall = proxy.rng.random(), proxy.rng.random()
                if self.path.startswith("/moto-api"):  # moto's own liveness page, not an AWS API
                    draw, stall = 1.0, 1.0
                proxy.counts["requests"] += 1
                if draw < proxy.fault_rate / 3:
                    proxy.counts["503"] += 1
                    return self._reply(503, b"Service Unavailable")
                if draw < 2 * proxy.fault_rate / 3:
                    proxy.counts["slowdown"] += 1
                    return self._reply(503, SLOW_DOWN, "application/xml")
                if draw < proxy.fault_rate:
                    proxy.counts["reset"] += 1
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if stall < proxy.stall_rate:
                    proxy.counts["stall"] += 1
                    time.sleep(proxy.stall_seconds)
                upstream = http.client.HTTPSConnection("127.0.0.1", proxy.upstream_port, timeout=30, context=client_tls)
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive", "expect")
                }
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length", "keep-alive"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            def _body(self) -> bytes:
                """The request body as sent: by its length, or chunked (botocore streams a PUT's
                body with trailing checksums), its chunk framing kept to be forwarded as it is."""
                if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                raw = b""
                while True:
                    line = self.rfile.readline()
                    raw += line
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while True:  # trailers, then the blank line
                            trailer = self.rfile.readline()
                            raw += trailer
                            if trailer in (b"\r\n", b"\n", b""):
                                return raw
                    raw += self.rfile.read(size + 2)

            def _reply(self, status, body, content_type="text/plain"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = server_tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
