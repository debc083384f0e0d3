"""Loopback fakes of an OpenAI-compatible upstream (or guard) for the serving tests.

Each test file decides what its fake answers; the plumbing is shared: a request
handler that is quiet, closes every connection (HTTP/1.0) and reads and writes JSON,
and a threaded server started on a free port.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

S = TypeVar("S", bound=ThreadingHTTPServer)


class JSONHandler(BaseHTTPRequestHandler):
    """A quiet HTTP/1.0 handler with JSON helpers; subclasses write ``do_GET``/``do_POST``."""

    protocol_version = "HTTP/1.0"

    def log_message(self, *args: Any) -> None:
        pass

    def read_json(self) -> Any:
        """The request body, parsed."""
        return json.loads(self.rfile.read(int(self.headers["content-length"])))

    def send_json(self, status: int, payload: Any) -> None:
        """Answer ``payload`` as JSON (a ``str`` is sent as it is: already JSON)."""
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start_fake(handler: type[BaseHTTPRequestHandler], server_class: type[S]) -> S:
    """``server_class`` with ``handler`` on a free loopback port, serving on a thread."""
    server = server_class(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def v1_url(server: ThreadingHTTPServer) -> str:
    """The server's OpenAI base URL."""
    return f"http://127.0.0.1:{server.server_address[1]}/v1"
