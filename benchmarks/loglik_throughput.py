"""Log-likelihood multiple choice: items/s against generation and against lm-eval's ``hf``.

Why: ``--mc-mode loglik`` is only worth having if it is much cheaper than generating
(one forward pass per item instead of ``--max-tokens`` decoding steps) and if it picks
the same letter a reference implementation picks on the same text. On MMLU
computer_security (the user's local CSV; the repo's small fixture when none is given),
with the tiny model, in one run:

* ``generate``: ``TransformersBackend`` at batch 16, greedy, ``--max-tokens`` each.
* ``loglik``: ``evals.loglik.loglik_results`` over the same items (batch 16).
* ``lm-eval hf``: lm-evaluation-harness's own ``simple_evaluate`` with its ``hf`` model
  (the same in-memory model, batch 16) on a local task whose context is exactly the
  string secreason scores (chat template, ``Answer:``) and whose choices are `` A``..
  `` D``, so any disagreement is an implementation difference, not a prompt one. Its
  time includes building the task from the local JSONL (it is part of using it).

Printed: items/s per arm, loglik / generate, loglik / lm-eval, and the share of items
where lm-eval's chosen letter equals secreason's. Runs offline (the tiny model is built
in code; lm-eval reads a local file). The machine may be shared: each arm is timed
``--repeats`` times, interleaved, and its best round kept; the load average is printed.

    .venv/bin/python benchmarks/eval_throughput.py --loglik [--data DIR] [--max-tokens 32]
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "benchmarks" / "mmlu_computer_security"


def lm_eval_choices(model: Any, tokenizer: Any, prompts: list[str], workdir: Path) -> list[str]:
    """lm-eval's chosen letter per prompt, through its own task machinery and hf model."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    data = workdir / "items.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "gold": 0}) + "\n" for p in prompts))
    (workdir / "task.yaml").write_text(
        "task: secreason_same_context\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{prompt}}"\n'
        'doc_to_choice: ["A", "B", "C", "D"]\n'
        "doc_to_target: gold\n"
        'target_delimiter: " "\n'
        "metric_list:\n  - metric: acc\n"
    )
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=16)
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=["secreason_same_context"],
        task_manager=TaskManager(include_path=str(workdir)),
        log_samples=True,
        verbosity="ERROR",
    )
    assert out is not None
    chosen = {}
    for doc in out["samples"]["secreason_same_context"]:
        scores = [float(r[0]) for r in doc["filtered_resps"]]
        chosen[int(doc["doc_id"])] = "ABCD"[scores.index(max(scores))]
    return [chosen[i] for i in range(len(prompts))]


def run(data: Path | None, max_tokens: int, repeats: int) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from secreason.backends.base import SamplingParams
    from secreason.backends.transformers import TransformersBackend
    from secreason.evals.loglik import answer_prompt, loglik_results
    from secreason.evals.mmlu import MMLUSecurity
    from secreason.train.tiny import build_tiny_model

    load_before = os.getloadavg()[0]
    bench = MMLUSecurity()
    source = data or FIXTURE
    samples = bench.load(source)
    with tempfile.TemporaryDirectory() as tmp:
        backend = TransformersBackend(str(build_tiny_model(Path(tmp) / "tiny", seed=0)))
        backend.batch_size = 16
        convs = [bench.messages(s, "official") for s in samples]
        params = SamplingParams(max_tokens=max_tokens)
        picked: dict[str, list[str]] = {}

        def generate() -> None:
            backend.generate(convs, params)

        def loglik() -> None:
            results = loglik_results(bench, samples, backend, "official", 16)
            picked["secreason"] = [
                max(r.extra["logprobs"], key=r.extra["logprobs"].get) for r in results
            ]

        prompts = [answer_prompt(backend, c) for c in convs]

        def lm_eval_arm() -> None:
            with tempfile.TemporaryDirectory() as work:
                picked["lm-eval"] = lm_eval_choices(
                    backend.model, backend.tokenizer, prompts, Path(work)
                )

        arms = {"generate": generate, "loglik": loglik, "lm-eval hf": lm_eval_arm}
        best = {name: float("inf") for name in arms}
        loglik()  # warm-up
        for _ in range(repeats):
            for name, fn in arms.items():
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
        backend.close()

    n = len(samples)
    rate = {name: n / seconds for name, seconds in best.items()}
    agree = sum(a == b for a, b in zip(picked["secreason"], picked["lm-eval"], strict=True))
    print(
        f"\nloglik throughput, tiny model, {n} MMLU computer_security items from {source}, "
        f"generate: {max_tokens} new tokens greedy; best of {repeats}; {os.cpu_count()} CPUs, "
        f"load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end\n"
    )
    print(f"{'arm':<14} {'items/s':>10}")
    print("-" * 25)
    for name, value in rate.items():
        print(f"{name:<14} {value:>10.1f}")
    print()
    print(f"loglik / generate:    {rate['loglik'] / rate['generate']:6.1f}x   expect > 5x")
    print(f"loglik / lm-eval hf:  {rate['loglik'] / rate['lm-eval hf']:6.1f}x")
    print(f"same letter as lm-eval: {agree}/{n} ({agree / n:.0%})")
