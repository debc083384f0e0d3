"""``secreason reward-server``: the OpenRLHF reward over HTTP (remote reward mode).

OpenRLHF's remote reward client posts ``{"query": [...], "prompts": [...], "labels":
[...]}`` (a whole batch per request) and reads ``rewards`` from the JSON reply; newer
versions also read ``scores`` and ``extra_logs``. The reply is exactly
:func:`secreason.integrations.openrlhf.reward_func`'s, as lists, so a trainer gets the
same numbers in process or remote.

The server reuses ``secreason serve``'s protection: API keys, a body size bound, a cap
on requests in flight (429 beyond it, never a queue), a time bound on the request
headers and on the body (a slow client does not keep its slot), the same strict JSON
reading (NaN, lone surrogates, duplicate keys and deep nesting are 400s naming where),
and a SIGTERM drain (requests in flight get ``drain_timeout_s``, then the process
exits). A batch has at most ``max_batch`` rows (413). A malformed body is a 400 that
names the field and the row; a label the reward cannot read fails the whole batch,
every bad row named (zero for a misread label would train silently on a wrong
signal), while any completion text scores. Scoring runs in worker threads in chunks,
and a client that hangs up stops the work on its batch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

REWARD_PATHS = ("/get_reward", "/")
FIELDS = ("query", "prompts", "labels")
CHUNK = 256  # rows scored between two checks that the client is still there


@dataclass
class RewardServerSettings:
    host: str = "127.0.0.1"
    port: int = 5000
    api_keys: set[str] = field(default_factory=set)
    max_body_bytes: int = 64 * 1024 * 1024
    max_concurrent: int = 16
    max_batch: int = 16384
    format_penalty: float = 1.0
    default_task: str | None = None
    body_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    drain_timeout_s: float = 30.0

    @classmethod
    def with_env_keys(cls, **kw: Any) -> RewardServerSettings:
        """Settings whose keys also include ``$SECREASON_API_KEYS`` (comma-separated)."""
        settings = cls(**kw)
        env = os.environ.get("SECREASON_API_KEYS", "")
        settings.api_keys = set(settings.api_keys) | {k.strip() for k in env.split(",")}
        settings.api_keys.discard("")
        return settings


def _content_type_problem(headers: Any) -> str | None:
    """A body declared as something other than JSON (a form, multipart...) is refused;
    no declared type, or ``text/plain``, is read as JSON (some clients send that)."""
    declared = headers.get("content-type")
    if not declared:
        return None
    media = declared.split(";", 1)[0].strip().lower()
    if media in ("application/json", "text/plain") or media.endswith("+json"):
        return None
    return f"content-type {media!r}: send the batch as JSON (application/json)"


def parse_body(raw: bytes) -> Any:
    """The JSON body, read as strictly as ``secreason serve`` reads a chat request."""
    from secreason.serve.errors import RequestError
    from secreason.serve.strict_json import MAX_DEPTH, check_tree, loads

    try:
        body = loads(raw)
    except RecursionError:
        raise RequestError(400, f"body is nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as err:
        raise RequestError(400, f"body is not UTF-8 text ({err.reason})") from None
    except ValueError as err:
        if "digits" in str(err):  # Python's bound on int parsing (a DoS guard)
            raise RequestError(400, f"body holds a number too long: {err}") from None
        raise RequestError(400, f"body is not JSON: {err}") from None
    check_tree(body)
    return body


def _check_body(body: Any, max_batch: int) -> tuple[list[Any], list[Any], list[Any]]:
    from secreason.integrations.openrlhf import check_lengths
    from secreason.serve.errors import RequestError

    if not isinstance(body, dict):
        raise RequestError(400, "body must be a JSON object with query, prompts and labels")
    fields = {}
    for name in FIELDS:
        value = body.get(name)
        if not isinstance(value, list):
            others = sorted(set(body) - set(FIELDS))
            hint = f" (the body has {', '.join(map(repr, others))}" if others else ""
            hint += "; OpenRLHF sends query, prompts and labels)" if others else ""
            raise RequestError(400, f"'{name}' must be a list{hint}", param=name)
        fields[name] = value
    for name in ("query", "prompts"):
        bad = next((i for i, v in enumerate(fields[name]) if not isinstance(v, str)), None)
        if bad is not None:
            raise RequestError(400, f"'{name}[{bad}]' must be a string", param=name)
    rows = len(fields["query"])
    if rows > max_batch:
        raise RequestError(
            413, f"a batch of {rows} rows exceeds this server's --max-batch {max_batch}; "
            "send smaller batches", param="query",
        )  # fmt: skip
    try:
        check_lengths(fields["query"], fields["prompts"], fields["labels"])
    except ValueError as err:
        raise RequestError(400, str(err)) from None
    return fields["query"], fields["prompts"], fields["labels"]


def create_app(settings: RewardServerSettings) -> Any:
    """The ASGI app (FastAPI behind ``secreason serve``'s guardrails middleware)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request

    from secreason.integrations.openrlhf import Reward, as_lists, batch_problem, score_rows
    from secreason.integrations.scoring import RewardConfig, Scorer
    from secreason.serve.errors import RequestError
    from secreason.serve.limits import GuardrailsMiddleware, read_body
    from secreason.serve.metrics import ServerStats
    from secreason.serve.protocol import error_body

    scorer = Scorer(RewardConfig(format_penalty=settings.format_penalty))
    app = FastAPI(title="secreason reward server", docs_url=None, redoc_url=None)

    def error(status: int, message: str, param: str | None = None) -> Response:
        # error_body escapes what JSON can hold but UTF-8 cannot (a lone surrogate)
        body = error_body(status, message, param)
        return Response(body, status_code=status, media_type="application/json")

    async def reward(request: Request) -> Response:
        try:
            problem = _content_type_problem(request.headers)
            if problem:
                raise RequestError(415, problem, param="content-type")
            raw = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
            body = await run_in_threadpool(parse_body, raw)  # a big body: off the loop
            queries, prompts, labels = _check_body(body, settings.max_batch)
            rewards: list[Reward] = []
            problems: list[str] = []
            for start in range(0, len(queries), CHUNK):
                end = start + CHUNK
                done, bad = await run_in_threadpool(
                    score_rows, queries[start:end], prompts[start:end], labels[start:end],
                    scorer, settings.default_task, start,
                )  # fmt: skip
                rewards += done
                problems += bad
                if end < len(queries) and await request.is_disconnected():
                    return Response(status_code=499)  # nobody is left to read it
            if problems:
                raise RequestError(400, batch_problem(problems, len(labels)), param="labels")
        except RequestError as err:
            return error(err.status, err.message, err.param)
        except ValueError as err:  # a check this module missed: still the client's body
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
    """Serve until SIGTERM/SIGINT; requests in flight get ``drain_timeout_s`` to finish."""
    import uvicorn

    from secreason.serve.http_bounds import exit_when_stuck, header_timeout_protocol

    try:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="info",
            http=header_timeout_protocol(settings.header_timeout_s),
            timeout_graceful_shutdown=max(1, math.ceil(settings.drain_timeout_s)),
        )
    finally:
        exit_when_stuck(grace_s=5.0)
