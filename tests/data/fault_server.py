"""A small OpenAI-compatible chat server on loopback that misbehaves on purpose.

Each request gets a fault from a fixed cycle (so a run sees all of them, deterministic
in order): a good answer, a stall past the client's timeout, HTTP 429 with
``Retry-After``, HTTP 500, a body cut short of its Content-Length, a JSON body cut in
the middle, a non-JSON body, and empty ``choices``. Prompts can also pin a behaviour:
``answers`` maps a prompt (or a marker found in it) to the completion to return, and a
prompt containing ``ALWAYS_500`` never gets anything but HTTP 500.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("ok", "timeout", "429", "ok", "500", "truncated", "ok", "cut_json", "nonjson", "empty")


class FaultServer:
    def __init__(
        self,
        answers: dict[str, str],
        faults: tuple[str, ...] = FAULTS,
        stall_s: float = 1.5,
        delay_s: float = 0.0,
    ) -> None:
        self.answers = answers
        self.faults = faults
        self.stall_s = stall_s
        self.delay_s = delay_s
        self.served: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []  # every chat request body, as sent
        self._i = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                prompt = "".join(m.get("content", "") for m in body.get("messages", []))
                with server._lock:
                    server.bodies.append(body)
                if self.path != "/v1/chat/completions":
                    with server._lock:
                        server.served["404"] += 1
                    data = b'{"error": {"message": "no such route"}}'
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    server.respond(self, prompt, body.get("model", "m"))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _next_fault(self, prompt: str) -> str:
        if "ALWAYS_500" in prompt:
            return "500"
        with self._lock:
            fault = self.faults[self._i % len(self.faults)]
            self._i += 1
            return fault

    def _completion(self, prompt: str) -> str:
        if prompt in self.answers:
            return self.answers[prompt]
        for marker, text in self.answers.items():
            if marker in prompt:
                return text
        return "<think>\nI do not know this one at all.\n</think>\nAnswer: nothing"

    def respond(self, h: BaseHTTPRequestHandler, prompt: str, model: str) -> None:
        fault = self._next_fault(prompt)
        with self._lock:
            self.served[fault] += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if fault == "timeout":
            time.sleep(self.stall_s)
            fault = "ok"  # too late: the client has gone
        payload: dict[str, Any] = {
            "id": "cmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self._completion(prompt)},
                    "finish_reason": "stop",
                }
            ],
        }
        if fault == "empty":
            payload["choices"] = []
        status, ctype = 200, "application/json"
        data = json.dumps(payload).encode()
        headers = {}
        if fault == "429":
            status, data, headers = (
                429,
                b'{"error": {"message": "slow down"}}',
                {"Retry-After": "0"},
            )
        elif fault == "500":
            status, data = 500, b'{"error": {"message": "boom"}}'
        elif fault == "nonjson":
            ctype, data = "text/html", b"<html><body>502 bad gateway</body></html>"
        elif fault == "cut_json":
            data = data[: len(data) // 2]
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        for k, v in headers.items():
            h.send_header(k, v)
        if fault == "truncated":
            h.send_header("Content-Length", str(len(data)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(data[: len(data) // 3])
            h.wfile.flush()
            h.close_connection = True
            return
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
