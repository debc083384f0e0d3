"""Does one long stream still hold the model? ``model.engine`` batch vs continuous.

The leftover of issue 13: with the default engine one ``generate`` call runs at a time,
so requests that arrive while a long stream decodes wait for all of it. This drives
both engines in process (no HTTP: the engine is what differs) on the project's tiny
model built from nothing (random weights: it rambles until ``max_tokens``), on CPU:

* head-of-line: a stream of ``--long`` tokens starts; once its first delta is out,
  ``--short-requests`` requests of ``--short`` tokens arrive together. Reported: their
  latency (p50, max) and the long stream's own duration.
* throughput: ``--burst`` requests of ``--short`` tokens at once, then the total time.

    .venv/bin/python benchmarks/serve_continuous.py [--long 600] [--short 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from secreason.backends.base import SamplingParams
from secreason.backends.transformers import TransformersBackend
from secreason.serve.continuous import ContinuousEngine
from secreason.serve.engine import LocalEngine, StreamInfo
from secreason.train.tiny import build_tiny_model


def _user(index: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Which weakness is described in report {index}?"}]


async def _head_of_line(engine: Any, args: argparse.Namespace) -> dict[str, float]:
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def long() -> float:
        begin = loop.time()
        async for _ in engine.stream(_user(0), SamplingParams(max_tokens=args.long), StreamInfo()):
            started.set()
        return loop.time() - begin

    async def short(index: int) -> float:
        begin = loop.time()
        await engine.complete(_user(index), SamplingParams(max_tokens=args.short))
        return loop.time() - begin

    task = asyncio.create_task(long())
    await started.wait()
    latencies = await asyncio.gather(*(short(i + 1) for i in range(args.short_requests)))
    return {
        "short_p50_s": statistics.median(latencies),
        "short_max_s": max(latencies),
        "long_s": await task,
    }


async def _burst(engine: Any, args: argparse.Namespace) -> float:
    begin = time.perf_counter()
    params = SamplingParams(max_tokens=args.short)
    await asyncio.gather(*(engine.complete(_user(i), params) for i in range(args.burst)))
    return time.perf_counter() - begin


async def _measure(engine: Any, args: argparse.Namespace) -> dict[str, float]:
    await engine.complete(_user(99), SamplingParams(max_tokens=4))  # warm up
    row = await _head_of_line(engine, args)
    row["burst_s"] = await _burst(engine, args)
    await engine.aclose()
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--long", type=int, default=600)
    parser.add_argument("--short", type=int, default=16)
    parser.add_argument("--short-requests", type=int, default=8)
    parser.add_argument("--burst", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_tiny_model(Path(tmp) / "tiny"))
        engines = {
            "batch": lambda: LocalEngine(TransformersBackend(model, device="cpu")),
            "continuous": lambda: ContinuousEngine(TransformersBackend(model, device="cpu")),
        }
        print(f"long stream {args.long} tokens; {args.short_requests} x {args.short} tokens")
        print("| engine | short p50 s | short max s | long stream s | burst of", args.burst, "s |")
        print("|---|---|---|---|---|")
        for name, make in engines.items():
            row = asyncio.run(_measure(make(), args))
            print(
                f"| {name} | {row['short_p50_s']:.3f} | {row['short_max_s']:.3f} "
                f"| {row['long_s']:.2f} | {row['burst_s']:.2f} |"
            )


if __name__ == "__main__":
    main()
