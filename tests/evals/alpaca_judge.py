"""A toy AlpacaEval judge: a real OpenAI-compatible server on loopback (uvicorn in a
thread) whose verdicts follow a visible rule, with log-probabilities like GPT-4-turbo's.
Shared by the alpaca-eval glue tests and the ``secreason eval --alpaca-eval`` tests."""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any


def judge_verdict(prompt: str) -> str:
    """The toy judge: an output holding GOOD wins, else the one holding REFERENCE."""
    outputs = dict(
        re.findall(r'"model_identifier": "(m|M)",\s*"output": """(.*?)"""', prompt, re.S)
    )
    for word in ("GOOD", "REFERENCE"):
        for letter in ("m", "M"):
            if word in outputs.get(letter, ""):
                return letter
    return "m"


class JudgeServer:
    """An OpenAI-compatible judge on loopback (uvicorn in a thread), with log-probs."""

    def __init__(self) -> None:
        import fastapi
        import uvicorn

        self.requests: list[dict[str, Any]] = []
        app = fastapi.FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(body: dict[str, Any]) -> dict[str, Any]:
            self.requests.append(body)
            letter = judge_verdict("\n".join(m["content"] for m in body["messages"]))
            other = "M" if letter == "m" else "m"
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": letter},
                "finish_reason": "length",
                "logprobs": None,
            }
            if body.get("logprobs"):
                top = [{"token": letter, "logprob": 0.0}, {"token": other, "logprob": -40.0}]
                choice["logprobs"] = {
                    "content": [{"token": letter, "logprob": 0.0, "top_logprobs": top}]
                }
            return {
                "id": f"judge-{len(self.requests)}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [choice],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
            }

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> JudgeServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "judge server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
