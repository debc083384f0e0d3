"""Protection in front of the model: API keys, body size, concurrency, error hygiene.

Written as one plain ASGI middleware rather than framework dependencies because it
has to see the whole life of a request (a streamed response ends long after the
handler returns) and because it runs on every request: it also measures the server's
own overhead, the time of a request not spent waiting on the model.

* keys: ``Authorization: Bearer <key>``; with no keys configured the server is open
  (the CLI warns about it). ``/health`` never needs a key.
* body size: a declared ``Content-Length`` over the limit is refused before reading;
  :func:`read_body` enforces the same bound on bodies sent without one.
* concurrency: requests beyond ``max_concurrent`` in flight get 429 at once (with
  ``Retry-After``) instead of queueing without bound.
* errors: any exception is logged with its traceback under a request id and the
  client gets a JSON 500 naming only that id.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request

from secreason.serve.protocol import RequestError, error_body

log = logging.getLogger("secreason.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = ("/health",)


class ServerStats:
    """Counters and a window of recent per-request overheads, served at ``/metrics``."""

    def __init__(self, window: int = 100_000) -> None:
        self.in_flight = 0
        self.requests = 0
        self.by_status: dict[int, int] = {}
        self.overhead_ms: deque[float] = deque(maxlen=window)
        self.model_ms: deque[float] = deque(maxlen=window)

    def snapshot(self) -> dict[str, Any]:
        return {
            "in_flight": self.in_flight,
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "overhead_ms": list(self.overhead_ms),
            "model_ms": list(self.model_ms),
        }


async def read_body(request: Request, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestError(413, f"request body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class GuardrailsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: set[str],
        max_body_bytes: int,
        max_concurrent: int,
        stats: ServerStats,
        limited_paths: tuple[str, ...] = ("/v1/chat/completions",),
    ) -> None:
        self.app = app
        self.api_keys = [k.encode() for k in api_keys]
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        self.stats = stats
        self.limited_paths = limited_paths

    def _authorized(self, scope: Scope) -> bool:
        if not self.api_keys:
            return True
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                offered = value[7:].strip()
                return any(hmac.compare_digest(offered, key) for key in self.api_keys)
        return False

    @staticmethod
    async def _reject(
        send: Send, status: int, message: str, headers: list[Any] | None = None
    ) -> None:
        body = error_body(status, message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *(headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state.update(request_id=request_id, model_s=0.0)
        path = scope["path"]
        status = 0

        async def send_tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        if path not in OPEN_PATHS and not self._authorized(scope):
            await self._reject(
                send_tracked, 401, "missing or invalid API key (Authorization: Bearer)"
            )
            self._count(status)
            return
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._reject(
                send_tracked, 413, f"request body exceeds {self.max_body_bytes} bytes"
            )
            self._count(status)
            return
        limited = path in self.limited_paths
        if limited and self.stats.in_flight >= self.max_concurrent:
            await self._reject(
                send_tracked,
                429,
                f"server busy: {self.max_concurrent} requests in flight, retry shortly",
                [(b"retry-after", b"1")],
            )
            self._count(status)
            return
        if limited:
            self.stats.in_flight += 1
        try:
            await self.app(scope, receive, send_tracked)
        except Exception:
            log.exception("request %s failed", request_id)
            if status == 0:
                await self._reject(send_tracked, 500, f"internal error (request id {request_id})")
        finally:
            if limited:
                self.stats.in_flight -= 1
                total = time.perf_counter() - start
                model_s = state.get("model_s", 0.0)
                self.stats.overhead_ms.append(1000 * max(0.0, total - model_s))
                self.stats.model_ms.append(1000 * model_s)
            self._count(status)

    def _count(self, status: int) -> None:
        self.stats.requests += 1
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
