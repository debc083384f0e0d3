"""Assemble a deployment from its config and run it under uvicorn.

Engines are chosen here and nowhere else: ``model.upstream`` (for the guard, an
``http(s)://`` address) means an upstream OpenAI-compatible server, anything else a
local model folder or hub id loaded through the project's transformers backend
(imported lazily, so a proxy-only deployment never loads torch), served in batches or,
with ``model.engine: continuous``, through transformers' continuous batching.

uvicorn runs with the bounds of ``serve.http_bounds``: a connection has
``limits.header_timeout_s`` to send each request's headers, and SIGTERM drains: in-flight
requests get ``limits.drain_timeout_s`` to finish, then their generations are cancelled
and the process exits (a model thread that ignores cancellation does not keep it alive).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from secreason.serve.config import GuardConfig, ServeConfig
from secreason.serve.engine import Engine, LocalEngine, UpstreamEngine
from secreason.serve.guard import Guard, GuardPolicy
from secreason.serve.http_bounds import exit_when_stuck, header_timeout_protocol
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


def run(config: ServeConfig) -> None:
    """Load the model (and guard), then serve until interrupted."""
    import uvicorn

    from secreason.serve.app import create_app
    from secreason.serve.deployment import Deployment

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
        "upstream " + config.model.upstream
        if config.model.upstream
        else f"{config.model.backend}, engine {config.model.engine}",
        config.host,
        config.port,
        config.guard.model or "off",
        config.audit.path or "off",
        # The mode too: `replace` swaps a benchmark's own system prompt (see README).
        f"{config.system_prompt.version} ({config.system_prompt.mode})"
        if config.system_prompt.mode != "off"
        else "off",
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
        exit_when_stuck(grace_s=5.0)
