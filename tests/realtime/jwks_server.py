"""A real HTTP server on 127.0.0.1 that plays Supabase's JWKS endpoint in tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from realtime.jwks import JWKS_PATH


class JWKSServer:
    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.status = 200
        self.body: bytes | None = None  # raw body override (e.g. not JSON)
        self.delay = 0.0  # seconds to stall before answering (timeout tests)
        self.hits = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        # A short poll interval keeps shutdown() (once per test) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._running = False

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def set_keys(self, *jwks: dict[str, Any]) -> None:
        with self._lock:
            self.jwks = {"keys": list(jwks)}

    def start(self) -> "JWKSServer":
        self._thread.start()
        self._running = True
        return self

    def stop(self) -> None:
        """Stop and close the socket: later connections are refused."""
        if self._running:
            self._httpd.shutdown()
            self._running = False
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path != JWKS_PATH:
                    self.send_error(404)
                    return
                with server._lock:
                    server.hits += 1
                    status = server.status
                    body = server.body if server.body is not None else json.dumps(server.jwks).encode()
                    delay = server.delay
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler
