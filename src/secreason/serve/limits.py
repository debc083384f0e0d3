"""Protection in front of the model: API keys, body size and time, concurrency, rates.

Written as one plain ASGI middleware rather than framework dependencies because it
has to see the whole life of a request (a streamed response ends long after the
handler returns) and because it runs on every request: it also measures the server's
own overhead, the time of a request not spent waiting on the model.

* keys: ``Authorization: Bearer <key>``; with no keys configured the server is open
  (the CLI warns about it) and limits apply per client address (an IPv6 client's /64).
  ``/health`` and ``/ready`` never need a key. A key is known
  by its id (a configured name, or ``sha256:`` and 12 hex digits), never by itself.
* body size: a declared ``Content-Length`` over the limit is refused before reading;
  :func:`read_body` enforces the same bound on bodies sent without one, and a time
  bound on the whole body (a client sending half a body does not keep its slot); a body
  the connection ends before (a client that left, a chunk size the HTTP layer refused
  with its own 400) is a 499 in the audit, not a crash.
* concurrency: requests beyond ``max_concurrent`` in flight, or beyond a key's share,
  get 429 at once (with ``Retry-After``) instead of queueing without bound; so does a
  key over its request rate (a token bucket per key).
* writes: each write of a completion's answer must be taken by the client within
  ``send_timeout_s``, else the connection is closed and the slot freed (a client with a
  zero TCP window would otherwise hold both, outside any model deadline).
* monitoring (``/metrics``): authenticated, and limited per key in buckets of its own
  (a small in-flight share and its own rate), so a key hammering it gets 429 with
  ``Retry-After`` while polling never spends a key's completion budget nor takes a
  completion slot from anyone.
* evidence: a request that ends without the handler having written its audit record
  (401, 413, 429, a crash, an unknown path) is handed to ``on_unrecorded``, so every
  request leaves one.
* errors: any exception is logged with its traceback under a request id and the
  client gets a JSON 500 naming only that id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect, Request

from secreason.serve.awaiting import SendWatch
from secreason.serve.errors import RequestError
from secreason.serve.metrics import ServerStats
from secreason.serve.protocol import error_body

log = logging.getLogger("secreason.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = ("/health", "/ready")
PRUNE_AT = 4096  # rate buckets kept before the refilled ones are forgotten
__all__ = ["GuardrailsMiddleware", "KeyLimits", "key_id", "read_body"]
OnUnrecorded = Callable[[Scope, int, str], Awaitable[None]]


def key_id(key: str, names: dict[str, str] | None = None) -> str:
    """How the audit and the limits know a key: its configured name, else a digest."""
    for name, value in (names or {}).items():
        if hmac.compare_digest(value.encode(), key.encode()):
            return name
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]


async def read_body(request: Request, max_bytes: int, timeout_s: float | None = None) -> bytes:
    """The body, at most ``max_bytes`` (413), all of it within ``timeout_s`` (408)."""
    chunks: list[bytes] = []
    size = 0

    async def read() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise RequestError(413, f"request body exceeds {max_bytes} bytes")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), timeout_s)
    except ClientDisconnect:  # the client left, or uvicorn refused the framing (its own 400)
        raise RequestError(
            499,
            f"request body not received: the connection ended after {size} bytes",
            code="client_closed",
        ) from None
    except asyncio.TimeoutError:
        raise RequestError(
            408,
            f"request body not received within {timeout_s:g} s ({size} bytes arrived)",
            code="request_timeout",
        ) from None
    return b"".join(chunks)


def client_network(address: str) -> str:
    """Who an open server limits: an IPv4 address, or an IPv6 address's /64 (a host is
    handed a whole /64: limited per address, it could take a fresh one per request)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # a unix socket path, a test client's name
        return address
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


class ClientTooSlow(Exception):
    """A write of the answer was not taken by the client within ``send_timeout_s``."""


class KeyLimits:
    """Per-key share of the concurrency and a token-bucket request rate."""

    def __init__(
        self,
        max_in_flight: int,
        per_minute: float = 0.0,
        burst: int | None = None,
        what: str = "requests",
    ):
        self.max_in_flight = max_in_flight
        self.what = what  # named in the 429 messages
        self.rate = per_minute / 60.0  # tokens per second
        self.burst = float(burst if burst is not None else max(1, math.ceil(self.rate * 10)))
        self.in_flight: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # identity -> (tokens, when)
        self._prune_at = PRUNE_AT

    def _prune(self, now: float) -> None:
        """Forget the buckets that have refilled (on an open server identities are
        client addresses: without this, every address ever seen would stay)."""
        full = [
            identity
            for identity, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * self.rate >= self.burst
        ]
        for identity in full:
            del self._buckets[identity]
        self._prune_at = max(PRUNE_AT, 2 * len(self._buckets))  # amortised: O(1) a call

    def take(self, identity: str, now: float) -> tuple[str, int] | None:
        """None when the request may start (counted in); else (message, retry-after s)."""
        if self.in_flight.get(identity, 0) >= self.max_in_flight:
            return f"this key has {self.max_in_flight} {self.what} in flight, retry shortly", 1
        if self.rate > 0:
            if len(self._buckets) >= self._prune_at:
                self._prune(now)
            tokens, then = self._buckets.get(identity, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens < 1:
                self._buckets[identity] = (tokens, now)
                wait = math.ceil((1 - tokens) / self.rate)
                return f"rate limit of {60 * self.rate:g} {self.what} per minute for this key", wait
            self._buckets[identity] = (tokens - 1, now)
        self.in_flight[identity] = self.in_flight.get(identity, 0) + 1
        return None

    def release(self, identity: str) -> None:
        left = self.in_flight.get(identity, 1) - 1
        if left > 0:
            self.in_flight[identity] = left
        else:
            self.in_flight.pop(identity, None)


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
        key_names: dict[str, str] | None = None,
        key_limits: KeyLimits | None = None,
        metered_paths: tuple[str, ...] = (),
        metered_limits: KeyLimits | None = None,
        on_unrecorded: OnUnrecorded | None = None,
        send_timeout_s: float | None = None,
    ) -> None:
        self.app = app
        # (key, id) pairs: every key is compared in constant time, the id is what is kept
        self.api_keys = [(k.encode(), key_id(k, key_names)) for k in sorted(api_keys)]
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        self.stats = stats
        self.limited_paths = limited_paths
        self.key_limits = key_limits or KeyLimits(max_concurrent)
        # Paths limited per key in their own buckets (not the completions' slots).
        self.metered_paths = metered_paths
        self.metered_limits = metered_limits or KeyLimits(2, 120.0, what="/metrics calls")
        self.on_unrecorded = on_unrecorded
        self.send_timeout_s = send_timeout_s
        self.send_watch = SendWatch(send_timeout_s) if send_timeout_s is not None else None

    def _identify(self, scope: Scope) -> str | None:
        """The key's id ("" on an open server), or None when the key is missing or wrong,
        or when ``Authorization`` comes more than once (which one a proxy in front
        checked is unknowable: neither is trusted)."""
        if not self.api_keys:
            return ""
        offered = [v for k, v in scope.get("headers", ()) if k == b"authorization"]
        if len(offered) != 1 or offered[0][:7].lower() != b"bearer ":
            return None
        found = None
        for key, ident in self.api_keys:
            if hmac.compare_digest(offered[0][7:].strip(), key):
                found = ident
        return found

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
        if scope["type"] == "websocket":
            # No route serves one, and nothing may pass the door without a key and a
            # record: uvicorn upgrades whenever a websocket library is installed.
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        client = scope.get("client")
        state.update(
            request_id=request_id,
            model_s=0.0,
            started=start,
            client=f"{client[0]}:{client[1]}" if client else None,
            recorded=False,
        )
        path = scope["path"]
        status = 0
        problem = ""

        async def send_tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            if not limited or self.send_watch is None:
                await send(message)
                return
            try:  # a client that stops taking bytes must not hold its slot for ever
                await self.send_watch.send(send, message)
            except TimeoutError:
                why = f"the client took no bytes for {self.send_timeout_s:g} s: connection closed"
                state["gone"] = why
                raise ClientTooSlow(why) from None

        async def refuse(code: int, message: str, headers: list[Any] | None = None) -> None:
            nonlocal problem
            problem = message
            await self._reject(send_tracked, code, message, headers)

        limited = path in self.limited_paths
        identity = self._identify(scope) if path not in OPEN_PATHS else ""
        state["key_id"] = identity or None
        # Limits apply per key; on an open server, per client address.
        holder = identity or f"client:{client_network(client[0]) if client else '?'}"
        counted = False
        metered = False
        try:
            if identity is None:
                await refuse(401, "missing or invalid API key (Authorization: Bearer)")
                return
            declared = next(
                (v for k, v in scope.get("headers", ()) if k == b"content-length"), None
            )
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await refuse(413, f"request body exceeds {self.max_body_bytes} bytes")
                return
            if limited and self.stats.in_flight >= self.max_concurrent:
                busy = f"server busy: {self.max_concurrent} requests in flight, retry shortly"
                await refuse(429, busy, [(b"retry-after", b"1")])
                return
            if limited:
                refused = self.key_limits.take(holder, time.monotonic())
                if refused is not None:
                    message, wait = refused
                    await refuse(429, message, [(b"retry-after", str(wait).encode())])
                    return
                self.stats.in_flight += 1
                counted = True
            elif path in self.metered_paths:
                refused = self.metered_limits.take(holder, time.monotonic())
                if refused is not None:
                    message, wait = refused
                    await refuse(429, message, [(b"retry-after", str(wait).encode())])
                    return
                metered = True
            await self.app(scope, receive, send_tracked)
        except ClientTooSlow as error:  # uvicorn closes a response the app left unfinished
            problem = str(error)
            log.warning("request %s: %s", request_id, problem)
        except asyncio.CancelledError:  # the drain deadline passed (or the loop stopped)
            problem = "cancelled: the server shut down before the answer was ready"
            status = status or 503
            raise
        except Exception:
            log.exception("request %s failed", request_id)
            problem = problem or "internal error"
            if status == 0:
                await self._reject(send_tracked, 500, f"internal error (request id {request_id})")
        finally:
            if metered:
                self.metered_limits.release(holder)
            if counted:
                self.stats.in_flight -= 1
                self.key_limits.release(holder)
                total = time.perf_counter() - start
                model_s = state.get("model_s", 0.0)
                self.stats.observe(1000 * max(0.0, total - model_s), 1000 * model_s)
            self._count(status)
            # Every model request, and any other request that was not served as asked
            # (an unknown path, a redirect, a refusal): /health or a plain 200 is not.
            audited = limited or (path not in OPEN_PATHS and not 200 <= status < 300)
            if audited and not state.get("recorded") and self.on_unrecorded:
                try:
                    await self.on_unrecorded(scope, status, problem)
                except Exception:  # the response is gone; keep the server up
                    log.exception("audit of request %s failed", request_id)

    def _count(self, status: int) -> None:
        self.stats.requests += 1
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
