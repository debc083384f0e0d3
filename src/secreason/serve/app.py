"""The ASGI app: routes, error pages and the protection middleware around them.

The app factory is kept apart from request handling so that what is exposed, and
under which protection, can be checked in one short file: every route, which paths
need no key (``/health``, ``/ready``), that ``/metrics`` is metered per key in its own
bucket, and that any error (a crash, an unknown path or method) is a JSON body naming
only a request id. Handlers are plain routes (no dependency injection or response
models): they parse and validate by hand, and this is the hot path.

The request path itself is in :mod:`.handler` (plain answers) and :mod:`.streaming`
(SSE); the served model and its policies in :mod:`.deployment`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from secreason.serve.deployment import Deployment
from secreason.serve.handler import error_response
from secreason.serve.limits import GuardrailsMiddleware, KeyLimits
from secreason.serve.metrics import engine_metrics

__all__ = ["create_app"]


class SharedCheck:
    """``/ready`` needs no key, and each check calls every upstream replica and the
    guard: callers at the same time share one check, and a result serves for ``fresh_s``
    (a flood of unauthenticated probes reaches the upstreams at most once a second,
    never filling the connection pool that completions use)."""

    def __init__(
        self, check: Callable[[], Awaitable[dict[str, Any]]], fresh_s: float = 1.0
    ) -> None:
        self.check = check
        self.fresh_s = fresh_s
        self._running: asyncio.Task[dict[str, Any]] | None = None
        self._result: tuple[float, dict[str, Any]] | None = None

    async def __call__(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._result is not None and now - self._result[0] < self.fresh_s:
            return self._result[1]
        if self._running is None:
            self._running = asyncio.ensure_future(self.check())
            self._running.add_done_callback(self._done)
        return await asyncio.shield(self._running)

    def _done(self, task: asyncio.Task[dict[str, Any]]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is None:
            self._result = (time.monotonic(), task.result())


def create_app(deployment: Deployment) -> GuardrailsMiddleware:
    """The ASGI app, with the protection middleware outermost."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await deployment.aclose()

    app = FastAPI(
        title="secreason", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )

    async def health(request: Request) -> Response:
        """Liveness: the process answers. Whether it can serve is ``/ready``."""
        return JSONResponse({"status": "ok", "model": deployment.served_name})

    readiness = SharedCheck(deployment.readiness)

    async def ready(request: Request) -> Response:
        """Readiness: the model AND (when configured) the guard can be reached now."""
        checks = await readiness()
        ok = all(check["ready"] for check in checks.values())
        body = {"status": "ready" if ok else "not ready", "checks": checks}
        return JSONResponse(body, 200 if ok else 503)

    async def models(request: Request) -> Response:
        return JSONResponse(deployment.models())

    async def metrics(request: Request) -> Response:
        """Bounded summaries (see :mod:`.metrics`), limited per key by the middleware."""
        body = {**deployment.stats.snapshot(), **engine_metrics(deployment.engine)}
        body["audit_failures"] = deployment.trail.failures  # e.g. a full disk: alert on it
        body["audit_overflow"] = deployment.trail.overflow.total  # counted, not one line each
        return JSONResponse(body)

    # Plain routes (no dependency injection or response models): the handlers parse and
    # validate by hand, and this is the hot path.
    app.add_route("/health", health, methods=["GET"])
    app.add_route("/ready", ready, methods=["GET"])
    app.add_route("/v1/models", models, methods=["GET"])
    app.add_route("/metrics", metrics, methods=["GET"])
    app.add_route("/v1/chat/completions", deployment.chat, methods=["POST"])

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> Response:
        request_id = request.scope.get("state", {}).get("request_id", "?")
        return error_response(500, f"internal error (request id {request_id})")

    @app.exception_handler(404)
    async def not_found(request: Request, error: Exception) -> Response:
        return error_response(404, f"no route {request.method} {request.url.path}")

    @app.exception_handler(405)
    async def not_allowed(request: Request, error: Exception) -> Response:
        return error_response(405, f"method {request.method} not allowed on {request.url.path}")

    limits = deployment.config.limits
    keys = deployment.config.api_keys()
    per_key = limits.max_concurrent_per_key or (
        max(1, limits.max_concurrent // 2) if len(keys) > 1 else limits.max_concurrent
    )
    return GuardrailsMiddleware(
        app,
        api_keys=keys,
        max_body_bytes=limits.max_body_bytes,
        max_concurrent=limits.max_concurrent,
        stats=deployment.stats,
        key_names=limits.named_api_keys,
        key_limits=KeyLimits(per_key, limits.requests_per_minute_per_key, limits.rate_burst),
        metered_paths=("/metrics",),
        metered_limits=KeyLimits(
            limits.metrics_concurrent_per_key,
            limits.metrics_per_minute_per_key,
            limits.metrics_burst,
            what="/metrics calls",
        ),
        on_unrecorded=deployment.trail.record_unanswered,
        send_timeout_s=limits.send_timeout_s,
    )
