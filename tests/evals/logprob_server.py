"""A real OpenAI-compatible chat server that returns ``top_logprobs``, run as a subprocess.

Not a model: the next-token distribution is a pure function of the last user message,
so a test knows which letter must win. With ``n = len(user message)``, letter
``F = "ABCD"[n % 4]`` gets `` F`` at -0.5 and letter ``G = "ABCD"[(n + 1) % 4]`` gets
`` G`` and ``G`` at -0.9 each: pooled, G (-0.207) beats F. Modes: ``logprobs`` (that),
``words`` (top tokens that are no letter), ``plain`` (no ``logprobs`` at all, like a
server without the feature). ``GET /last`` returns the last request body.

    python logprob_server.py --port 8124 --mode logprobs
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends"))
from openai_fixture_server import script_server  # noqa: E402


def winner(user: str) -> str:
    """The letter the server's distribution favours for this user message."""
    return "ABCD"[(len(user) + 1) % 4]


def top_tokens(user: str, mode: str) -> list[dict[str, Any]]:
    if mode == "words":
        return [{"token": " The", "logprob": -0.1}, {"token": " answer", "logprob": -2.0}]
    first, second = "ABCD"[len(user) % 4], winner(user)
    return [
        {"token": f" {first}", "logprob": -0.5},
        {"token": f" {second}", "logprob": -0.9},
        {"token": second, "logprob": -0.9},
        {"token": " The", "logprob": -1.2},
    ]


def build_app(mode: str) -> Any:
    app = FastAPI()
    seen: dict[str, Any] = {}

    @app.get("/last")
    async def last() -> dict[str, Any]:
        return seen

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "served", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        seen.clear()
        seen.update(body)
        user = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        top = top_tokens(user, mode)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": top[0]["token"]},
            "finish_reason": "length",
        }
        if mode != "plain":
            token = {**top[0], "top_logprobs": top}
            choice["logprobs"] = {"content": [token]}
        return {"id": "x", "object": "chat.completion", "model": body["model"], "choices": [choice]}

    return app


@contextmanager
def logprob_server(mode: str = "logprobs") -> Iterator[str]:
    """Start the server in a subprocess; yield its ``/v1`` base URL; stop it."""
    script = str(Path(__file__).resolve())
    with script_server(script, ["--mode", mode], probe="/last", name="logprob server") as base:
        yield base


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("logprobs", "words", "plain"), default="logprobs")
    args = parser.parse_args()
    uvicorn.run(build_app(args.mode), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
