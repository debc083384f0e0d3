"""SFT throughput with and without packing, on the demo's data, side by side in one run.

Throughput is *real* (non-padding) tokens trained per second, measured over the same
number of optimiser steps after a warm-up, same model, same data, same machine, one
configuration after the other:

* ``padded``: no packing; each batch is padded to its longest row.
* ``bfd``: TRL's best-fit-decreasing packing, which is padding-free (all rows of a batch
  flattened into one with restarting position ids). Made for varlen flash attention on
  GPU; with plain SDPA the attention runs over the whole flattened row with a block mask.
* ``bfd_varlen``: the same packing with ``sdpa_varlen`` (``secreason.train.packed_attention``),
  which runs causal SDPA on each packed sequence separately: what the CPU recipe uses.
* ``wrapped``: rows cut into fixed ``max_length`` blocks (no padding at all; attention
  can cross document boundaries inside a block).
* ``grouped``: no packing, but batches drawn from rows of similar length
  (``train_sampling_strategy: group_by_length``), what the CPU demo recipe uses.

Usage: ``python benchmarks/sft_packing.py [--steps 30] [--threads 2]``. Target (issue 4):
packed >= 1.5x padded on the demo data.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def demo_sft_rows(n_per_task: int, seed: int) -> tuple[list[dict[str, Any]], list[str]]:
    from secreason.data.demo import demo_corpus, make_demo_items
    from secreason.data.template_teacher import sft_messages

    train, _ = make_demo_items(n_per_task, seed)
    rows = [{"messages": sft_messages(s)} for s in train]
    return rows, demo_corpus(train)


def measure(
    model_dir: Path, data: Path, mode: str, steps: int, warmup: int, batch: int, max_length: int
) -> dict[str, float]:
    from transformers import TrainerCallback

    from secreason.train.config import SFTRecipe, build_recipe
    from secreason.train.sft import build_sft_trainer

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.start = 0.0
            self.tokens_at_start = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == warmup:
                self.start = time.perf_counter()

    clock = Clock()
    packing = mode in ("bfd", "bfd_varlen", "wrapped")
    values: dict[str, Any] = {
        "model_name_or_path": str(model_dir),
        "dataset_path": str(data),
        "output_dir": tempfile.mkdtemp(prefix=f"pack-{mode}-"),
        "max_steps": warmup + steps,
        "per_device_train_batch_size": batch,
        "max_length": max_length,
        "packing": packing,
        "assistant_only_loss": True,
        "learning_rate": 1e-3,
        "bf16": False,
        "use_cpu": True,
        "activation_checkpointing": False,
        "save_strategy": "no",
        "logging_steps": 1,
        "report_to": [],
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
    if packing:
        values["packing_strategy"] = "bfd" if mode == "bfd_varlen" else mode
    if packing:  # named, so the plain-SDPA arm is not switched to sdpa_varlen
        attention = "sdpa_varlen" if mode == "bfd_varlen" else "sdpa"
        values["model_init_kwargs"] = {"attn_implementation": attention}
    if mode == "grouped":
        values["train_sampling_strategy"] = "group_by_length"
    recipe = build_recipe(SFTRecipe, values, source=f"benchmark:{mode}")
    trainer = build_sft_trainer(recipe, callbacks=[clock])
    trainer.train()
    seconds = time.perf_counter() - clock.start
    logs = [h for h in trainer.state.log_history if "num_tokens" in h and "loss" in h]
    tokens = (
        logs[-1]["num_tokens"] - logs[warmup - 1]["num_tokens"]
        if warmup
        else logs[-1]["num_tokens"]
    )
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--n-per-task", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from secreason.train.tiny import build_tiny_model

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="sft-packing-"))
    rows, corpus = demo_sft_rows(args.n_per_task, args.seed)
    data = work / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model_dir = build_tiny_model(work / "model", seed=args.seed, corpus=corpus)

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    lengths = [
        len(tok.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"])
        for r in rows
    ]
    mean_len = sum(lengths) / len(lengths)
    batch = 16
    # Packed rows hold about as many real tokens per step as a padded batch of 16 rows.
    max_length = 512
    packed_batch = max(1, round(batch * mean_len / max_length))
    print(
        f"demo SFT rows: {len(rows)}, tokens per row: mean {mean_len:.0f}, "
        f"min {min(lengths)}, max {max(lengths)}; {args.steps} timed steps after "
        f"{args.warmup} warm-up, {args.threads} threads"
    )
    results = {
        "padded": measure(model_dir, data, "padded", args.steps, args.warmup, batch, max_length),
        "bfd": measure(model_dir, data, "bfd", args.steps, args.warmup, packed_batch, max_length),
        "bfd_varlen": measure(
            model_dir, data, "bfd_varlen", args.steps, args.warmup, packed_batch, max_length
        ),
        "wrapped": measure(
            model_dir, data, "wrapped", args.steps, args.warmup, packed_batch, max_length
        ),
        "grouped": measure(model_dir, data, "grouped", args.steps, args.warmup, batch, max_length),
    }
    base = results["padded"]["tokens_per_s"]
    print()
    print("| mode | rows/step | real tokens | seconds | tokens/s | vs padded |")
    print("|---|---|---|---|---|---|")
    for mode, r in results.items():
        rows_per_step = packed_batch if mode in ("bfd", "bfd_varlen", "wrapped") else batch
        print(
            f"| {mode} | {rows_per_step} | {r['tokens']:.0f} | {r['seconds']:.2f} | "
            f"{r['tokens_per_s']:.0f} | {r['tokens_per_s'] / base:.2f}x |"
        )
    best = max(("bfd", "bfd_varlen", "wrapped"), key=lambda m: results[m]["tokens_per_s"])
    ratio = results[best]["tokens_per_s"] / base
    print(
        f"\nbest packing: {best}, {ratio:.2f}x padded (target >= 1.5x): "
        f"{'met' if ratio >= 1.5 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
