"""``secreason reward-server``: the OpenRLHF reward over HTTP (remote reward mode).

OpenRLHF's remote reward client posts ``{"query": [...], "prompts": [...], "labels":
[...]}`` (a whole batch per request) and reads ``rewards`` from the JSON reply; newer
versions also read ``scores`` and ``extra_logs``. The reply is exactly
:func:`secreason.integrations.openrlhf.reward_func`'s, as lists, so a trainer gets the
same numbers in process or remote.

The server reuses ``secreason serve``'s protection (API keys, a body size bound, a cap
on requests in flight, JSON errors without stack traces); a malformed body is a 400
that names the field and the row. Scoring runs in a worker thread, so a large batch
does not stall other connections.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

REWARD_PATHS = ("/get_reward", "/")


@dataclass
class RewardServerSettings:
    host: str = "127.0.0.1"
    port: int = 5000
    api_keys: set[str] = field(default_factory=set)
    max_body_bytes: int = 64 * 1024 * 1024
    max_concurrent: int = 16
    format_penalty: float = 1.0
    default_task: str | None = None

    @classmethod
    def with_env_keys(cls, **kw: Any) -> RewardServerSettings:
        """Settings whose keys also include ``$SECREASON_API_KEYS`` (comma-separated)."""
        settings = cls(**kw)
        env = os.environ.get("SECREASON_API_KEYS", "")
        settings.api_keys = set(settings.api_keys) | {k.strip() for k in env.split(",")}
        settings.api_keys.discard("")
        return settings


def _check_body(body: Any) -> tuple[list[str], list[str], list[Any]]:
    from secreason.serve.protocol import RequestError

    if not isinstance(body, dict):
        raise RequestError(400, "body must be a JSON object with query, prompts and labels")
    fields = {}
    for name in ("query", "prompts", "labels"):
        value = body.get(name)
        if not isinstance(value, list):
            raise RequestError(400, f"'{name}' must be a list", param=name)
        fields[name] = value
    for name in ("query", "prompts"):
        bad = next((i for i, v in enumerate(fields[name]) if not isinstance(v, str)), None)
        if bad is not None:
            raise RequestError(400, f"'{name}[{bad}]' must be a string", param=name)
    return fields["query"], fields["prompts"], fields["labels"]


def create_app(settings: RewardServerSettings) -> Any:
    """The ASGI app (FastAPI behind ``secreason serve``'s guardrails middleware)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request

    from secreason.integrations.openrlhf import as_lists, score_batch
    from secreason.integrations.scoring import RewardConfig, Scorer
    from secreason.serve.limits import GuardrailsMiddleware, ServerStats, read_body
    from secreason.serve.protocol import RequestError, error_body

    scorer = Scorer(RewardConfig(format_penalty=settings.format_penalty))
    app = FastAPI(title="secreason reward server", docs_url=None, redoc_url=None)

    def error(status: int, message: str, param: str | None = None) -> JSONResponse:
        return JSONResponse(json.loads(error_body(status, message, param)), status_code=status)

    async def reward(request: Request) -> JSONResponse:
        try:
            raw = await read_body(request, settings.max_body_bytes)
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise RequestError(400, f"body is not JSON: {err}") from None
            queries, prompts, labels = _check_body(body)
            rewards = await run_in_threadpool(
                score_batch, queries, prompts, labels, scorer, settings.default_task
            )
        except RequestError as err:
            return error(err.status, err.message, err.param)
        except ValueError as err:
            return error(400, str(err))
        return JSONResponse(as_lists(rewards))

    for path in REWARD_PATHS:
        app.add_route(path, reward, methods=["POST"])  # plain Starlette: no body model

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return GuardrailsMiddleware(
        app,
        api_keys=settings.api_keys,
        max_body_bytes=settings.max_body_bytes,
        max_concurrent=settings.max_concurrent,
        stats=ServerStats(window=1000),
        limited_paths=REWARD_PATHS,
    )


def run(settings: RewardServerSettings) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
