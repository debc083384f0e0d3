"""Assemble a deployment from its config and run it under uvicorn.

Engines are chosen here and nowhere else: an ``http(s)://`` address means an upstream
OpenAI-compatible server, anything else a local model folder or hub id loaded through
the project's transformers backend (imported lazily, so a proxy-only deployment never
loads torch).

Time bounds that need the server itself live here too: a connection has
``limits.header_timeout_s`` to send each request's headers (uvicorn has no such bound, a
slow client could hold a connection forever), and SIGTERM drains: in-flight requests get
``limits.drain_timeout_s`` to finish, then their generations are cancelled and the
process exits (a model thread that ignores cancellation does not keep it alive).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from secreason.serve.config import GuardConfig, ServeConfig
from secreason.serve.engine import Engine, LocalEngine, UpstreamEngine
from secreason.serve.guard import Guard, GuardPolicy
from secreason.serve.upstream_fit import local_counter

log = logging.getLogger("secreason.serve")


def is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def load_local_backend(path: str, **options: Any) -> Any:
    """The project's transformers backend for a local folder or hub id (torch loads here)."""
    from secreason.backends.transformers import TransformersBackend

    return TransformersBackend(path, **{k: v for k, v in options.items() if v is not None})


def build_model_engine(config: ServeConfig) -> Engine:
    model = config.model
    if model.upstream:
        return UpstreamEngine(
            model.upstream,
            model.path or model.served_name or "default",
            api_key=os.environ.get(model.upstream_api_key_env),
            timeout_s=config.limits.request_timeout_s,
            prefilled=bool(model.prefilled),
            extra_body=model.upstream_extra_body,
            context_length=model.upstream_context,
            counter=local_counter(model.upstream_tokenizer, model.path),
        )
    if model.backend == "fixed-text":
        from secreason.serve.fixed_backend import FixedTextBackend

        backend: Any = FixedTextBackend(delay_s=model.fixed_text_delay_s)
    else:
        think_ids = tuple(model.think_token_ids) if model.think_token_ids else None
        backend = load_local_backend(
            model.path,
            device=model.device,
            dtype=model.dtype,
            think_ids=think_ids,
            static_cache=model.static_cache,
        )
    if model.prefilled is not None:
        backend.prefilled = model.prefilled
    if model.engine == "continuous":
        from secreason.serve.continuous import ContinuousEngine

        return ContinuousEngine(
            backend,
            max_batch_size=model.max_batch_size,
            cache_tokens=model.continuous_cache_tokens,
        )
    return LocalEngine(
        backend,
        max_batch_size=model.max_batch_size,
        batch_wait_ms=model.batch_wait_ms,
        refill_wait=model.batch_refill_wait,
        arrival_wait_ms=model.batch_arrival_wait_ms,
        burst_gap_ms=model.batch_burst_gap_ms,
    )


def build_guard(config: GuardConfig) -> tuple[Guard, Engine] | None:
    if not config.model or not (config.input or config.output):
        return None
    engine: Engine
    if is_url(config.model):
        engine = UpstreamEngine(
            config.model,
            config.served_name or "meta-llama/Llama-Guard-3-8B",
            api_key=os.environ.get(config.api_key_env),
            timeout_s=config.timeout_s,
        )
    else:
        engine = LocalEngine(load_local_backend(config.model, static_cache=False))
    policy = GuardPolicy(frozenset(config.allow_categories), config.on_error)
    guard = Guard(engine.complete, policy, max_tokens=config.max_tokens, timeout_s=config.timeout_s)
    return guard, engine


#: Told of a request refused before the app saw it: (client "ip:port", status, why).
OnRefused = Callable[[str | None, int, str], None]


HEADER_END = b"\r\n\r\n"
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
    b"content-length: 31\r\nconnection: close\r\n\r\nrequest header fields too large"
)


def header_timeout_protocol(
    timeout_s: float, on_refused: OnRefused | None = None, max_header_bytes: int = 64 << 10
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol, closing a connection whose request headers have not all
    arrived ``timeout_s`` after it opened or after its previous response ended, or whose
    request line and headers pass ``max_header_bytes`` (431: uvicorn's httptools parser
    has no bound of its own, a client could fill the memory within the timeout).

    ``on_refused`` hears of requests the app never sees, so they can be audited too:
    bytes that are not HTTP (uvicorn answers 400 itself), a request whose headers
    started but never finished (408; an idle kept-alive connection is not one), and
    headers over the bound (431)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol
    # httptools tells where a request's head ends; h11 bounds heads itself (16 KiB).
    counting = hasattr(base, "on_headers_complete") and hasattr(base, "on_message_complete")

    class HeaderTimeoutProtocol(base):
        _timer: asyncio.TimerHandle | None = None
        _waiting_after: Any = None  # the cycle (None: none yet) the timer was armed after
        _started = False  # bytes of a next request arrived since the timer was armed
        _in_head = True  # the bytes arriving now belong to a request line or headers
        _head_bytes = 0
        _tail = b""  # the last bytes of the head so far (its end may be split)
        _refused = False

        def _head_too_large(self, data: bytes) -> bool:
            """Count this chunk's head bytes (up to the blank line that ends them)."""
            joined = self._tail + data
            end = joined.find(HEADER_END)
            self._head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
            self._tail = joined[-3:]
            return self._head_bytes > max_header_bytes

        def _refuse_head(self) -> None:
            self._refused = True
            if on_refused is not None:
                why = f"request line and headers over {max_header_bytes} bytes"
                on_refused(self._client(), 431, why)
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(TOO_LARGE)
                self.transport.close()

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head, self._head_bytes, self._tail = True, 0, b""
            super().on_message_complete()

        def _between_requests(self) -> bool:
            return self.cycle is None or bool(self.cycle.response_complete)

        def _arm(self) -> None:
            if self._timer is not None and self._waiting_after is self.cycle:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._waiting_after = self.cycle
            self._started = False
            self._timer = self.loop.call_later(timeout_s, self._expire)

        def _client(self) -> str | None:
            client = getattr(self, "client", None)
            return f"{client[0]}:{client[1]}" if client else None

        def _expire(self) -> None:
            self._timer = None
            idle = self._waiting_after is self.cycle and self._between_requests()
            if idle and self.transport is not None and not self.transport.is_closing():
                if self._started and on_refused is not None:
                    why = f"request headers not received within {timeout_s:g} s"
                    on_refused(self._client(), 408, why)
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            if on_refused is not None:
                on_refused(self._client(), 400, f"invalid HTTP, refused by uvicorn: {msg}")
            super().send_400_response(msg)

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._between_requests():
                self._arm()
                self._started = True
            if counting and self._in_head and self._head_too_large(data):
                self._refuse_head()
                return
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def _exit_when_stuck(grace_s: float) -> None:
    """After shutdown, wait for worker threads briefly; a model thread still busy (a
    backend that ignores cancellation) must not keep the process alive."""
    deadline = time.monotonic() + grace_s
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon]
    if len(stuck) > 1:  # the main thread is always there
        log.error("threads still busy after the drain (%s): exiting anyway", ", ".join(stuck))
        logging.shutdown()
        os._exit(0)


def run(config: ServeConfig) -> None:
    """Load the model (and guard), then serve until interrupted."""
    import uvicorn

    from secreason.serve.app import Deployment, create_app

    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call is noise
    engine = build_model_engine(config)
    built = build_guard(config.guard)
    guard, guard_engine = built if built else (None, None)
    deployment = Deployment(config, engine, guard, guard_engine)
    if not config.api_keys():
        log.warning("no API key configured: the server accepts every client")
    log.info(
        "serving %s (%s) on http://%s:%d guard=%s audit=%s system_prompt=%s",
        deployment.served_name,
        "upstream " + config.model.upstream if config.model.upstream else config.model.backend,
        config.host,
        config.port,
        config.guard.model or "off",
        config.audit.path or "off",
        config.system_prompt.version if config.system_prompt.mode != "off" else "off",
    )
    limits = config.limits
    try:
        uvicorn.run(
            create_app(deployment),
            host=config.host,
            port=config.port,
            log_level=config.log_level,
            access_log=False,
            http=header_timeout_protocol(
                limits.header_timeout_s, deployment.trail.record_refused, limits.max_header_bytes
            ),
            timeout_graceful_shutdown=math.ceil(limits.drain_timeout_s),
            # uvicorn believes X-Forwarded-For from loopback by default: not here.
            proxy_headers=bool(config.trusted_proxies),
            forwarded_allow_ips=",".join(config.trusted_proxies) or None,
        )
    finally:  # uvicorn re-raises SIGTERM (the process ends) but SIGINT comes back here
        _exit_when_stuck(grace_s=5.0)
