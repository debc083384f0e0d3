"""Evaluation throughput: does the harness keep up with the engines it drives?

All on the shared tiny model (``secreason.train.tiny``), measured side by side in one
run, greedy, every completion ``--max-tokens`` long (a random model rarely stops):

* transformers: samples/s of a bare ``model.generate`` loop at batch 16 (chat template,
  left padding, decode: the least a user would write), of ``TransformersBackend`` at
  batch 16 over the same prompts in the same order, and of the backend one prompt at
  a time. Target: harness >= 90 % of bare.
* openai: samples/s of ``OpenAIBackend`` at concurrency 16 against concurrency 1,
  prompts in the order the harness dispatches them (longest first), against two real
  local servers: ``secreason serve`` with the tiny model (its engine
  batches concurrent requests) and a fixed-latency echo server that stands for a
  remote API (``--api-latency`` seconds per request). Target: >= 4x. The batch sizes
  the server formed in each round (read from its ``/metrics``) are printed beside it:
  the ratio is only as good as those batches. The client's own CPU per request is
  printed too: at concurrency 16 the model waits while the client reads 16 answers and
  sends 16 requests, on the same cores. ``secreason serve`` runs twice, the second
  time with its burst rule off (``model.batch_burst_gap_ms=0``), to show what that rule
  is worth: without it, the first batch of a burst starts before the client has sent
  all of it, and the leftover request runs alone at the end.

Timings alternate between the compared arms and keep each arm's best round, because
the machine is shared; the share of the harness's time spent outside ``model.generate``
is printed too, as a view of its overhead that the neighbours' load cannot distort.

    .venv/bin/python benchmarks/eval_throughput.py [--prompts 48] [--max-tokens 32]

``--loglik`` runs the log-likelihood multiple-choice arm instead (``loglik_throughput``:
loglik against generation and against lm-eval's ``hf`` model on MMLU security items).
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "backends"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def conversations(n: int) -> list[list[dict[str, str]]]:
    topics = ["SQL injection", "buffer overflow", "phishing", "CVSS vectors", "ATT&CK T1059"]
    out = []
    for i in range(n):
        words = " ".join(["context"] * (5 + (i * 7) % 40))
        question = f"Question {i} about {topics[i % 5]}: {words}. Which option fits best?"
        out.append([{"role": "user", "content": question}])
    return out


def compact(sizes: list[int]) -> str:
    """``[1, 16, 16, 15]`` -> ``1 16*2 15``: runs of one size, in order."""
    runs = [(size, len(list(group))) for size, group in itertools.groupby(sizes)]
    return " ".join(f"{size}*{count}" if count > 1 else str(size) for size, count in runs)


def timed(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    count = fn()
    return count / (time.perf_counter() - start)


def best_rates(arms: dict[str, Callable[[], int]], repeats: int) -> dict[str, float]:
    """Each arm's best rate over ``repeats`` interleaved rounds: on a shared machine
    the slow rounds measure the neighbours, the fastest one measures the code."""
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, fn in arms.items():
            rates[name].append(timed(fn))
    return {name: max(values) for name, values in rates.items()}


def bench_transformers(model_dir: Path, n: int, max_tokens: int, repeats: int) -> dict:
    import torch

    from secreason.backends.base import SamplingParams
    from secreason.backends.transformers import TransformersBackend

    backend = TransformersBackend(str(model_dir), batch_size=16)
    model, tokenizer = backend.model, backend.tokenizer
    params = SamplingParams(max_tokens=max_tokens)
    convs = conversations(n)
    # Same order for both arms: longest first, as the harness would batch them.
    convs.sort(key=lambda c: -len(tokenizer(backend.render(c), add_special_tokens=False).input_ids))

    def bare() -> int:
        for start in range(0, len(convs), 16):
            texts = [
                tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                for c in convs[start : start + 16]
            ]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                output = model.generate(
                    **batch,
                    max_new_tokens=max_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            tokenizer.batch_decode(
                output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
            )
        return len(convs)

    inside = {"seconds": 0.0, "total": 0.0}
    engine_generate = model.generate

    def counted_generate(*args: object, **kwargs: object) -> object:
        start = time.perf_counter()
        try:
            return engine_generate(*args, **kwargs)
        finally:
            inside["seconds"] += time.perf_counter() - start

    def harness() -> int:
        model.generate = counted_generate  # time spent in the engine, to isolate overhead
        start = time.perf_counter()
        try:
            return len(backend.generate(convs, params))
        finally:
            inside["total"] += time.perf_counter() - start
            model.generate = engine_generate

    single_set = convs[:: max(1, n // 12)]  # a dozen, across all lengths

    def one_at_a_time() -> int:
        for conv in single_set:
            backend.generate([conv], params)
        return len(single_set)

    bare()  # warm-up
    rates = best_rates({"bare": bare, "harness": harness, "one_at_a_time": one_at_a_time}, repeats)
    rates["overhead_share"] = 1 - inside["seconds"] / inside["total"]
    backend.close()
    return rates


def start_serve(
    model_dir: Path, workdir: Path, *overrides: str
) -> tuple[subprocess.Popen[bytes], str]:
    import httpx
    from openai_fixture_server import free_port

    port = free_port()
    log = (workdir / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from secreason.cli import main; main()",
            "serve",
            "--model",
            str(model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-system-prompt",
            "--max-concurrent",
            "64",
            "--set",
            "model.max_batch_size=16",
            *(arg for override in overrides for arg in ("--set", override)),
        ],
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"secreason serve died:\n{(workdir / 'serve.log').read_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, f"{base}/v1"
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("secreason serve did not start in 180 s")


@dataclass
class ServedRound:
    """One call against ``secreason serve``, as its /metrics saw it."""

    sizes: list[int]  # the batches the engine formed, in order
    requests: int
    wall_s: float
    model_s: float  # time the model spent on those batches
    client_cpu_s: float  # CPU this process (the openai client) spent meanwhile


class BatchLog:
    """What ``secreason serve`` did during each timed call (from its /metrics)."""

    def __init__(self, url: str | None) -> None:
        self.metrics = url.removesuffix("/v1") + "/metrics" if url else None
        self.calls: dict[str, list[ServedRound]] = {}

    def around(self, name: str, fn: Callable[[], int]) -> Callable[[], int]:
        if self.metrics is None:
            return fn

        def logged() -> int:
            import httpx

            before = httpx.get(self.metrics).json()
            start, cpu = time.perf_counter(), time.process_time()
            count = fn()
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            after = httpx.get(self.metrics).json()
            new = after["batches"] - before["batches"]
            self.calls.setdefault(name, []).append(
                ServedRound(
                    sizes=after["batch_sizes"][-new:] if new else [],
                    requests=count,
                    wall_s=wall,
                    model_s=after["model_busy_s"] - before["model_busy_s"],
                    client_cpu_s=cpu,
                )
            )
            return count

        return logged

    def report(self, server: str) -> None:
        print(
            f"  {server} per round: batch sizes formed (size*times), model busy / wall time, "
            "client CPU per request"
        )
        for arm, rounds in self.calls.items():
            for r in rounds:
                print(
                    f"    {arm:<15} {compact(r.sizes):<24} {r.model_s / r.wall_s:5.0%}  "
                    f"{r.client_cpu_s / r.requests * 1000:5.1f} ms  "
                    f"({r.requests / r.model_s:6.1f} samples per model-second)"
                )
        if {"concurrency 1", "concurrency 16"} <= self.calls.keys():

            def best(arm: str) -> float:
                return max(r.requests / r.model_s for r in self.calls[arm])

            ceiling = best("concurrency 16") / best("concurrency 1")
            print(
                f"    model-time ratio, concurrency 16 / 1: {ceiling:.1f}x (the ratio's ceiling "
                "if the model never waited on HTTP)"
            )


def bench_openai(
    url: str, n: int, max_tokens: int, repeats: int, batches: BatchLog | None = None
) -> dict:
    from secreason.backends.base import SamplingParams
    from secreason.backends.openai import OpenAIBackend
    from secreason.evals.runner import prompt_size

    # In the order the harness sends them (longest first), as the transformers arm does.
    convs = sorted(conversations(n), key=prompt_size, reverse=True)
    params = SamplingParams(max_tokens=max_tokens)
    serial = OpenAIBackend(url, "tiny", concurrency=1)
    parallel = OpenAIBackend(url, "tiny", concurrency=16)
    parallel.generate(convs[:16], params)  # warm-up
    log = batches or BatchLog(None)
    rates = best_rates(
        {
            "concurrency 1": log.around(
                "concurrency 1", lambda: len(serial.generate(convs, params))
            ),
            "concurrency 16": log.around(
                "concurrency 16", lambda: len(parallel.generate(convs, params))
            ),
        },
        repeats,
    )
    serial.close()
    parallel.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--serve-prompts", type=int, default=48)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--api-latency", type=float, default=0.05)
    parser.add_argument("--skip-serve", action="store_true", help="skip the secreason serve arm")
    parser.add_argument(
        "--loglik", action="store_true", help="only the log-likelihood MC arm (loglik_throughput)"
    )
    parser.add_argument("--data", type=Path, help="--loglik: an MMLU computer_security folder")
    args = parser.parse_args()
    if args.loglik:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from loglik_throughput import run

        run(args.data, args.max_tokens, min(3, args.repeats))
        return

    from openai_fixture_server import running_server

    from secreason.train.tiny import build_tiny_model

    load_before = os.getloadavg()[0]
    rows: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny", seed=0)
        tf = bench_transformers(model_dir, args.prompts, args.max_tokens, args.repeats)
        rows += [("transformers", k, v) for k, v in tf.items() if k != "overhead_share"]

        served: dict[str, dict[str, float]] = {}  # by server variant
        batches: dict[str, BatchLog] = {}
        variants = {"secreason serve": (), "serve, burst gap off": ("model.batch_burst_gap_ms=0",)}
        for variant, overrides in () if args.skip_serve else variants.items():
            process, url = start_serve(model_dir, Path(tmp), *overrides)
            batches[variant] = BatchLog(url)
            try:
                served[variant] = bench_openai(
                    url,
                    args.serve_prompts,
                    args.max_tokens,
                    min(3, args.repeats),
                    batches[variant],
                )
            finally:
                process.terminate()
                process.wait(timeout=30)
            rows += [(f"openai -> {variant}", name, r) for name, r in served[variant].items()]

        with running_server("echo", delay=args.api_latency) as url:
            echo = bench_openai(url, args.prompts, args.max_tokens, args.repeats)
        rows += [
            (f"openai -> echo server ({args.api_latency * 1000:.0f} ms)", name, rate)
            for name, rate in echo.items()
        ]

    print(
        f"\neval throughput, tiny model, {args.prompts} prompts ({args.serve_prompts} against "
        f"serve), {args.max_tokens} new tokens, greedy, best of {args.repeats} "
        f"({min(3, args.repeats)} against serve); {os.cpu_count()} CPUs, load average "
        f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end\n"
    )
    print(f"{'engine':<36} {'arm':<16} {'samples/s':>10}")
    print("-" * 64)
    for engine, arm, rate in rows:
        print(f"{engine:<36} {arm:<16} {rate:>10.2f}")
    print()
    ratio = tf["harness"] / tf["bare"]
    print(f"harness / bare model.generate (batch 16): {ratio:6.1%}   target >= 90%")
    print(
        f"harness time outside model.generate:      {tf['overhead_share']:6.1%}   "
        "(load-independent view of the same overhead)"
    )
    print(f"harness batch 16 / one at a time:         {tf['harness'] / tf['one_at_a_time']:6.1f}x")
    for variant, rates in served.items():
        gain = rates["concurrency 16"] / rates["concurrency 1"]
        label = f"openai concurrency 16 / 1 ({variant}):"
        target = "   target >= 4x" if variant == "secreason serve" else ""
        print(f"{label:<42}{gain:6.1f}x{target}")
        batches[variant].report(variant)
    gain = echo["concurrency 16"] / echo["concurrency 1"]
    print(f"openai concurrency 16 / 1 (echo API):     {gain:6.1f}x   target >= 4x")


if __name__ == "__main__":
    main()
