"""A real OpenAI-compatible HTTP server for backend tests, run as a subprocess.

Not a model: it answers deterministically from the request, so tests can check what
the client sent (seed, temperature, max_tokens) and how it coped with failures.

Modes: ``echo`` (content repeats the decoding settings and the last user message),
``reasoning`` (the reasoning comes back split off in ``reasoning_content``, as vLLM's
reasoning parsers do), ``flaky`` (each distinct prompt first fails ``--fail-times``
times with 500 then 429, then echoes). ``--delay`` simulates model latency, and
``GET /stats`` reports requests, failures and the most requests ever in flight at once.

    python openai_fixture_server.py --port 8123 --mode echo --delay 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(mode: str = "echo", delay: float = 0.0, fail_times: int = 0) -> Iterator[str]:
    """Start the server in a subprocess; yield its base URL; stop it."""
    script = str(Path(__file__).resolve())
    options = ["--mode", mode, "--delay", str(delay), "--fail-times", str(fail_times)]
    with script_server(script, options, probe="/stats", name="fixture server") as base:
        yield base


@contextmanager
def script_server(script: str, options: list[str], *, probe: str, name: str) -> Iterator[str]:
    """Run ``script --port P *options`` as a loopback server; wait until ``GET probe``
    answers 200; yield its ``/v1`` base URL; stop it (terminate, then kill)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, script, "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"

    def stderr() -> str:  # a running process's pipe would block: read it once it ended
        if process.poll() is None:
            return "(still running)"
        return process.stderr.read().decode()  # type: ignore[union-attr]

    try:
        wait_ready(process, f"{base}{probe}", name=name, output=stderr)
        yield f"{base}/v1"
    finally:
        end_process(process)


def wait_ready(
    process: subprocess.Popen[bytes],
    url: str,
    *,
    name: str,
    output: Callable[[], str],
    timeout_s: float = 60.0,
) -> None:
    """Poll ``GET url`` until it answers 200. A process that exits first, or one not
    ready within ``timeout_s``, raises naming ``name`` and adding ``output()``."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{output()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not ready in {timeout_s:g} s:\n{output()}")
        time.sleep(0.1)


def end_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process``; kill it if it has not exited 10 s later."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stats(base_url: str) -> dict[str, Any]:
    import httpx

    return dict(httpx.get(base_url.removesuffix("/v1") + "/stats", timeout=5).json())


def build_app(mode: str, delay: float, fail_times: int) -> Any:
    app = FastAPI()
    state: dict[str, Any] = {"requests": 0, "failures": 0, "in_flight": 0, "max_in_flight": 0}
    failed: Counter[str] = Counter()

    @app.get("/stats")
    async def get_stats() -> dict[str, Any]:
        return state

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        state["requests"] += 1
        state["in_flight"] += 1
        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        try:
            if delay:
                await asyncio.sleep(delay)
            user = next(
                (m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), ""
            )
            if mode == "flaky" and failed[user] < fail_times:
                failed[user] += 1
                state["failures"] += 1
                if failed[user] % 2:
                    return JSONResponse({"error": {"message": "boom"}}, status_code=500)
                return JSONResponse(
                    {"error": {"message": "slow down"}},
                    status_code=429,
                    headers={"retry-after": "0"},
                )
            settings = (
                f"seed={body.get('seed')} temperature={body.get('temperature')} "
                f"top_p={body.get('top_p')} max_tokens={body.get('max_tokens')}"
            )
            if mode == "reasoning":
                reasoning, content = f"Thinking about: {user}", "Answer: B"
            else:
                reasoning, content = None, f"<think>{settings}</think>\n{user}"
            if body.get("stream"):
                return StreamingResponse(
                    _sse(body["model"], reasoning, content), media_type="text/event-stream"
                )
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if reasoning is not None:
                message["reasoning_content"] = reasoning
            return {
                "id": f"chatcmpl-{state['requests']}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": len(user.split()),
                    "completion_tokens": len(content.split()),
                    "total_tokens": len(user.split()) + len(content.split()),
                },
            }
        finally:
            state["in_flight"] -= 1

    return app


def _sse(model: str, reasoning: str | None, content: str) -> Iterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        payload = {
            "id": "chatcmpl-stream",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    if reasoning:
        for word in reasoning.split(" "):
            yield chunk({"reasoning_content": word + " "})
    for word in content.split(" "):
        yield chunk({"content": word + " "})
    yield chunk({}, "stop")
    yield "data: [DONE]\n\n"


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("echo", "reasoning", "flaky"), default="echo")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--fail-times", type=int, default=0)
    args = parser.parse_args()
    app = build_app(args.mode, args.delay, args.fail_times)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
