"""One-GPU check of the 8B paths: SFT MFU, rollout decode speed, eval samples/s, a GRPO step.

A Llama-3.1-8B-shaped model with random weights (nothing is downloaded), driven through
the project's own code (``secreason.train.accel`` decisions, the recipes in
``recipes/foundation-sec-8b-reasoning``, ``build_rl_trainer``, ``TransformersBackend``),
so what is measured is what a user runs. Each arm runs in its own subprocess (memory
freed, Liger's patches not leaking into the next arm, one failure not ending the run):

* ``sft-dense`` / ``sft-dense-liger`` / ``sft-packed-liger`` / ``sft-packed-liger-noac``:
  full fine-tuning, bf16 weights and AdamW states, activation checkpointing (off in
  ``noac``); tokens/s, peak memory and MFU (6 x matmul params x tokens plus causal
  attention, against ``--peak-tflops``; recomputation is not counted). Packed rows
  are documents of 300..3000 tokens, attention chosen by ``accel``.
* ``decode``: one batch of ``--decode-batch`` prompts, ``--decode-tokens`` new tokens:
  bare ``model.generate`` with the default (dynamic) cache, then with a static cache
  and compiled decoding, each after one untimed call; ms per decode step (minus the
  prefill) beside the memory-bound floor (weights
  plus KV cache read once per step at ``--hbm-tbps``). The same batch through the
  eval harness's ``TransformersBackend`` (static on GPU, then forced dynamic) gives
  its samples/s against bare ``generate``.
* ``grpo``: two GRPO steps of the 8B RL recipe as shipped (vLLM falls back when it is
  not installed, Liger on, static compiled rollouts), 8 prompts x 5 generations,
  ``--grpo-completion-length`` tokens; the second step is timed (the first compiles).
  Random weights never emit EOS, so every completion runs to the limit; the benchmark
  turns ``mask_truncated_completions`` off so that the update is real.

Without CUDA it refuses (exit 2) unless ``--shape tiny``, which runs every arm on CPU
with a tiny model to check the script. ``--budget-s`` skips arms that would start
after it (default 470 s: the whole run fits in 8 minutes on one H200).

Usage: ``python benchmarks/gpu_step.py [--arms sft-dense,decode,...] [--json out.json]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "foundation-sec-8b-reasoning"
SFT_ARMS = ("sft-dense", "sft-dense-liger", "sft-packed-liger", "sft-packed-liger-noac")
ARMS = (*SFT_ARMS, "decode", "grpo")
# Run order: the riskiest, most informative arms before the baseline the issue measured.
DEFAULT_ORDER = ("sft-dense-liger", "decode", "grpo", "sft-packed-liger", "sft-packed-liger-noac")
DEFAULT_ORDER = (*DEFAULT_ORDER, "sft-dense")

SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.1-8b": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
    },
    "tiny": {
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 4096,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": False,
    },
}


def flops_per_token(shape: dict[str, Any], seq: float) -> float:
    """Training FLOPs per token: 6 x matmul parameters + causal attention scores."""
    h, f, n = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    kv = h * shape["num_key_value_heads"] // shape["num_attention_heads"]
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * f  # q, o, k, v, gate/up/down
    matmul = n * per_layer + h * shape["vocab_size"]  # plus the LM head
    attention = 6 * n * h * seq  # 12 * n * h * seq / 2 for the causal half
    return 6.0 * matmul + attention


def decode_floor_ms(shape: dict[str, Any], batch: int, context: float, tbps: float) -> float:
    """Memory-bound time of one decode step: every weight but the embedding table, plus
    each row's KV cache, read once from HBM (bf16)."""
    h, f, n = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    kv = h * shape["num_key_value_heads"] // shape["num_attention_heads"]
    weights = n * (h * h * 2 + h * kv * 2 + 3 * h * f) + h * shape["vocab_size"]
    cache = batch * context * n * 2 * kv
    return 2.0 * (weights + cache) / (tbps * 1e12) * 1e3


# --------------------------------------------------------------------------- helpers


def tokenizer_for_bench() -> Any:
    from secreason.train.tiny import TinyConfig, chat_template, default_corpus, train_tokenizer

    tokenizer = train_tokenizer(default_corpus(), 1024)
    tokenizer.chat_template = chat_template(TinyConfig())
    return tokenizer


def build_model(shape: dict[str, Any], tokenizer: Any, device: str, attn: str) -> Any:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from secreason.train import packed_attention

    packed_attention.register()
    config = LlamaConfig(
        **shape,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation=attn,
    )
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    # Ids past the small tokenizer are never sampled (they would not decode).
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=list(range(len(tokenizer), shape["vocab_size"])) or None,
    )
    return model


def common_overrides(device: str, out: Path) -> list[str]:
    cpu = device != "cuda"
    return [
        f"output_dir={out}",
        f"bf16={'false' if cpu else 'true'}",
        f"use_cpu={'true' if cpu else 'false'}",
        "model_init_kwargs={}",
        "save_strategy=no",
        "logging_steps=1",
        "report_to=[]",
        "disable_tqdm=true",
        "dataloader_num_workers=0",
    ]


class StepClock:
    """Times optimiser steps after a warm-up (with CUDA synchronisation)."""

    def __init__(self, warmup: int, device: str) -> None:
        from transformers import TrainerCallback

        clock = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if state.global_step == warmup:
                    clock.sync()
                    clock.start = time.perf_counter()
                    clock.reset_peak()

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                clock.sync()
                clock.end = time.perf_counter()

        self.device = device
        self.start = self.end = 0.0
        self.callback = _Callback()

    def sync(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")


def timed(device: str, fn: Any) -> tuple[Any, float]:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


# ------------------------------------------------------------------------------ arms


def sft_arm(args: argparse.Namespace, arm: str, device: str) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    from secreason.train import accel
    from secreason.train.config import SFTRecipe, load_recipe

    shape, tokenizer = SHAPES[args.shape], tokenizer_for_bench()
    packed, liger = "packed" in arm, "liger" in arm
    tokens = args.sft_tokens
    gen = torch.Generator().manual_seed(0)
    rows, lengths = [], []
    budget = (args.sft_warmup + args.sft_steps + 2) * tokens * 2
    while sum(lengths) < budget:
        hi = min(3000, tokens)
        n = tokens if not packed else int(torch.randint(min(300, hi - 1), hi, (1,), generator=gen))
        lengths.append(n)
        rows.append(
            {"input_ids": torch.randint(10, len(tokenizer) - 1, (n,), generator=gen).tolist()}
        )
    out = Path(tempfile.mkdtemp(prefix="gpu-sft-"))
    recipe = load_recipe(
        RECIPES / "sft.yaml",
        SFTRecipe,
        [
            *common_overrides(device, out),
            "model_name_or_path=random-llama",
            f"max_steps={args.sft_warmup + args.sft_steps}",
            f"max_length={tokens}",
            "per_device_train_batch_size=1",
            "gradient_accumulation_steps=1",
            f"packing={'true' if packed else 'false'}",
            f"use_liger_kernel={'true' if liger else 'false'}",
            f"activation_checkpointing={'false' if 'noac' in arm else 'true'}",
            "assistant_only_loss=false",
            "eos_token=null",
        ],
    )
    accel.prepare_sft(recipe)  # the decisions `secreason sft` makes (stderr says them)
    attn = (recipe.model_init_kwargs or {}).get("attn_implementation") or "sdpa"
    model = build_model(shape, tokenizer, device, attn)
    clock = StepClock(args.sft_warmup, device)
    trainer = SFTTrainer(
        model=model,
        args=recipe,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[clock.callback],
    )
    trainer.train()
    seen = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    trained = seen[-1] - seen[args.sft_warmup - 1] if args.sft_warmup else seen[-1]
    seconds = clock.end - clock.start
    # Attention cost per token follows each document's own length when rows are packed.
    seq = sum(n * n for n in lengths) / sum(lengths) if packed else tokens
    throughput = trained / seconds
    achieved = throughput * flops_per_token(shape, seq)
    return {
        "arm": arm,
        "attention": attn,
        "liger": bool(trainer.args.use_liger_kernel),
        "checkpointing": bool(trainer.args.activation_checkpointing),
        "tokens_per_step": trained / args.sft_steps,
        "tokens_per_s": throughput,
        "tflops": achieved / 1e12,
        "mfu": achieved / (args.peak_tflops * 1e12),
        "peak_gib": peak_gib(device),
    }


def decode_arm(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Bare generate (dynamic, then static + compiled) and the eval backend, one batch."""
    import torch

    from secreason.backends.base import SamplingParams
    from secreason.backends.transformers import TransformersBackend

    shape, tokenizer = SHAPES[args.shape], tokenizer_for_bench()
    folder = Path(args.model_dir)
    model = build_model(shape, tokenizer, device, "sdpa")
    _, save_s = timed(device, lambda: model.save_pretrained(folder))
    tokenizer.save_pretrained(folder)
    del model
    gc.collect()
    backend = TransformersBackend(str(folder), batch_size=args.decode_batch, device=device)
    topics = ("buffer overflow", "SQL injection", "path traversal", "race condition")
    conversations = [
        [{"role": "user", "content": f"Case {i:03d}: which CWE fits a {topics[i % 4]}? " * 4}]
        for i in range(args.decode_batch)
    ]
    params = SamplingParams(max_tokens=args.decode_tokens)
    # The batch exactly as the backend builds it, so bare generate meets the same shapes.
    encoded = [
        tokenizer(backend.render(c), add_special_tokens=False)["input_ids"] for c in conversations
    ]
    batch = tokenizer.pad({"input_ids": encoded}, padding=True, return_tensors="pt").to(device)
    width = int(batch["input_ids"].shape[1])
    model = backend.model
    result: dict[str, Any] = {"batch": args.decode_batch, "prompt_width": width, "save_s": save_s}
    with torch.inference_mode():
        _, prefill = timed(device, lambda: model(**batch, use_cache=False))
        _, prefill = timed(device, lambda: model(**batch, use_cache=False))

        def run(static: bool) -> tuple[int, float]:
            kwargs = backend._generate_kwargs(params)
            if static:  # what the backend asks for on a GPU (compiled there, not on CPU)
                kwargs["cache_implementation"] = "static"
            out, seconds = timed(device, lambda: model.generate(**batch, **kwargs))
            return int(out.shape[1]) - width, seconds

        for name, static in (("dynamic", False), ("static_compiled", True)):
            # One untimed call each: the first dynamic call pays one-off CUDA set-up (161
            # ms/step cold against ~37 warm on an H200), the first static call compiles.
            (_, result["compile_s" if static else "first_dynamic_s"]) = run(static)
            steps, seconds = run(static)
            result[name] = {
                "steps": steps,
                "seconds": seconds,
                "ms_per_step": (seconds - prefill) * 1e3 / max(1, steps - 1),
                "samples_per_s": args.decode_batch / seconds,
            }
    result["floor_ms"] = decode_floor_ms(
        shape, args.decode_batch, width + args.decode_tokens / 2, args.hbm_tbps
    )
    for name, static in (("backend_static", True), ("backend_dynamic", False)):
        backend.static_cache = static
        generations, seconds = timed(device, lambda: backend.generate(conversations, params))
        result[name] = {
            "samples_per_s": len(generations) / seconds,
            "completion_tokens": sum(g.completion_tokens for g in generations),
        }
    result["prefill_ms"] = prefill * 1e3
    return result


def grpo_arm(args: argparse.Namespace, device: str) -> dict[str, Any]:
    import torch

    from secreason.train.config import RLRecipe, load_recipe
    from secreason.train.rl import build_rl_trainer

    shape = SHAPES[args.shape]
    folder = Path(args.model_dir)
    if not (folder / "config.json").is_file():  # the decode arm did not run: build it here
        tokenizer = tokenizer_for_bench()
        build_model(shape, tokenizer, device, "sdpa").save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    work = Path(tempfile.mkdtemp(prefix="gpu-grpo-"))
    prompt = (
        "A crafted id changes the database query of the acme web portal. Which CWE is this? "
        "Think it through, then answer on the last line as 'Answer: CWE-<number>'."
    )
    rows = [{"prompt": [{"role": "user", "content": prompt}], "task": "mcq", "reference": "A"}]
    data = work / "rl.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows * 40))
    overrides = [
        *common_overrides(device, work / "out"),
        f"model_name_or_path={folder}",
        f"dataset_path={data}",
        "max_steps=2",
        f"max_completion_length={args.grpo_completion_length}",
        "log_completions=false",
        "mask_truncated_completions=false",
    ]
    if args.grpo_liger is not None:
        overrides.append(f"use_liger_kernel={args.grpo_liger}")
    recipe = load_recipe(RECIPES / "rl.yaml", RLRecipe, overrides)
    recipe.model_init_kwargs = {"dtype": torch.bfloat16 if device == "cuda" else torch.float32}
    vocab = len(tokenizer_for_bench())
    recipe.generation_kwargs = {"suppress_tokens": list(range(vocab, shape["vocab_size"]))}
    clock = StepClock(1, device)
    trainer = build_rl_trainer(recipe, callbacks=[clock.callback])
    trainer.train()
    logs = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    completions = recipe.per_device_train_batch_size * recipe.gradient_accumulation_steps
    seconds = clock.end - clock.start
    mean_length = float(logs[-1]["completions/mean_length"]) if logs else float("nan")
    return {
        "completions": completions,
        "generations": recipe.num_generations,
        "max_tokens": args.grpo_completion_length,
        "mean_length": mean_length,
        "seconds": seconds,
        "rollouts": "vllm"
        if trainer.args.use_vllm
        else f"generate ({recipe.cache_implementation})",
        "liger": bool(trainer.args.use_liger_kernel),
        "completion_tokens_per_s": completions * mean_length / seconds,
        "peak_gib": peak_gib(device),
    }


def run_arm(args: argparse.Namespace) -> None:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.arm.startswith("sft"):
        result = sft_arm(args, args.arm, device)
    elif args.arm == "decode":
        result = decode_arm(args, device)
    else:
        result = grpo_arm(args, device)
    Path(args.result).write_text(json.dumps(result, indent=2))


# ------------------------------------------------------------------------- the table


def fmt(value: Any, spec: str = ".1f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def table(results: dict[str, Any], args: argparse.Namespace) -> list[str]:
    lines = [
        "| path | measured | floor / target | memory |",
        "|---|---|---|---|",
    ]
    for arm in SFT_ARMS:
        r = results.get(arm)
        ac = "on" if isinstance(r, dict) and r.get("checkpointing", True) else "off"
        if not isinstance(r, dict):
            lines.append(f"| SFT {arm} | {r or 'not run'} | MFU >= 60 % | |")
            continue
        lines.append(
            f"| SFT {'packed' if 'packed' in arm else 'dense'} rows, {r['attention']}, Liger "
            f"{'on' if r['liger'] else 'off'}, checkpointing {ac}, "
            f"{r['tokens_per_step']:.0f} tokens/step | "
            f"{r['tokens_per_s']:.0f} tokens/s, {r['tflops']:.0f} TFLOP/s, "
            f"**MFU {100 * r['mfu']:.1f} %** | MFU >= 60 % | {fmt(r['peak_gib'])} GiB |"
        )
    d = results.get("decode")
    if isinstance(d, dict):
        b = d["batch"]
        for name, label in (("dynamic", "default cache"), ("static_compiled", "static + compiled")):
            lines.append(
                f"| decode step, batch {b}, bare generate, {label} | "
                f"**{d[name]['ms_per_step']:.1f} ms/step**, {d[name]['samples_per_s']:.1f} "
                f"samples/s | floor {d['floor_ms']:.1f} ms; target <= 15 ms | |"
            )
        lines.append(f"| compile of the static decode (first call) | {d['compile_s']:.1f} s | | |")
        for name, label in (
            ("backend_static", "static (GPU default)"),
            ("backend_dynamic", "dynamic"),
        ):
            lines.append(
                f"| eval TransformersBackend, {label}, {b} samples x {args.decode_tokens} tokens | "
                f"**{d[name]['samples_per_s']:.1f} samples/s** | bare generate (default) "
                f"{d['dynamic']['samples_per_s']:.1f} samples/s | |"
            )
    else:
        lines.append(f"| decode / eval backend | {d or 'not run'} | <= 15 ms/step | |")
    g = results.get("grpo")
    if isinstance(g, dict):
        lines.append(
            f"| GRPO step, {g['completions']} completions ({g['generations']} per prompt) x "
            f"<= {g['max_tokens']} tokens, rollouts {g['rollouts']}, Liger "
            f"{'on' if g['liger'] else 'off'} | **{g['seconds']:.1f} s** "
            f"(mean completion {g['mean_length']:.0f} tokens, "
            f"{g['completion_tokens_per_s']:.0f} tok/s) | <= 25 s | {fmt(g['peak_gib'])} GiB |"
        )
    else:
        lines.append(f"| GRPO step | {g or 'not run'} | <= 25 s | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-3.1-8b")
    parser.add_argument("--arms", default=",".join(DEFAULT_ORDER), help="comma-separated, in order")
    parser.add_argument("--sft-tokens", type=int, default=8192, help="tokens per micro-batch")
    parser.add_argument("--sft-steps", type=int, default=4)
    parser.add_argument("--sft-warmup", type=int, default=2)
    parser.add_argument("--decode-batch", type=int, default=64)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--grpo-completion-length", type=int, default=1024)
    parser.add_argument("--grpo-liger", choices=("true", "false"), default=None)
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="bf16 dense, measured")
    parser.add_argument("--hbm-tbps", type=float, default=4.8, help="HBM bandwidth (H200: 4.8)")
    parser.add_argument("--budget-s", type=float, default=470.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # one arm, in a child process
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        run_arm(args)
        return

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cuda" and args.shape != "tiny":
        print(
            "gpu_step.py needs a CUDA GPU for the 8B shape (none is visible here). "
            "Run it on a GPU machine, or pass --shape tiny to check the script on CPU.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    arms = [a for a in args.arms.split(",") if a]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    print(f"device: {name}; shape: {args.shape}; torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    results: dict[str, Any] = {"device": name, "shape": args.shape}
    with tempfile.TemporaryDirectory(prefix="gpu-step-") as work:
        model_dir = str(Path(work) / "model")
        for arm in arms:
            left = args.budget_s - (time.perf_counter() - started)
            if left < 20:
                results[arm] = f"skipped: {args.budget_s:.0f} s budget spent"
                continue
            result_file = Path(work) / f"{arm}.json"
            child = [sys.executable, __file__, *sys.argv[1:], "--arm", arm]
            child += ["--result", str(result_file), "--model-dir", model_dir]
            path = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
            env = {**os.environ, "PYTHONPATH": path}
            print(f"\n== {arm} ({left:.0f} s of budget left)", flush=True)
            t0 = time.perf_counter()
            try:
                done = subprocess.run(child, env=env, timeout=left, check=False)
                ok = done.returncode == 0 and result_file.is_file()
                results[arm] = (
                    json.loads(result_file.read_text())
                    if ok
                    else f"failed (exit {done.returncode})"
                )
            except subprocess.TimeoutExpired:
                results[arm] = "stopped at the budget"
            print(f"== {arm}: {time.perf_counter() - t0:.0f} s", flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2))
    results["wall_s"] = time.perf_counter() - started
    print(f"\n{name}, {args.shape}, {results['wall_s']:.0f} s end to end")
    print("\n".join(table(results, args)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
