"""One-GPU check of the 8B recipes: SFT step throughput / MFU and one GRPO step.

A Llama-3.1-8B-shaped model with random weights (nothing is downloaded), driven by the
project's own code path (``secreason.train.sft`` / ``rl`` builders with the recipes in
``recipes/foundation-sec-8b-reasoning``) so that what is measured is what a user runs:

* SFT: tokens/s, peak memory and MFU (6 x matmul params x tokens plus causal attention,
  against ``--peak-tflops``, default 790 bf16 dense) over timed steps after a warm-up.
  Full fine-tuning, bf16 weights and AdamW states, activation checkpointing, packed
  rows. Padding-free packing needs flash attention; without ``flash_attn`` the rows are
  dense ``max_length`` blocks (same FLOPs, SDPA's flash kernel).
* GRPO: one step (generation + reward + update) at the recipe's shapes (5 generations
  per prompt, 10 completions per device, ``max_completion_length``), full fine-tuning
  when the GPU has room for policy + reference + optimizer (> 120 GB), else LoRA.
  Random weights never emit EOS, so every completion runs to the length limit; the
  benchmark turns ``mask_truncated_completions`` off so that the update is real.

Without CUDA it refuses (exit code 2) unless ``--shape tiny``, which runs the same code
on CPU with a tiny model to check the script itself.

Usage: ``python benchmarks/gpu_step.py [--sft-tokens 8192] [--grpo-completion-length 4096]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "foundation-sec-8b-reasoning"

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


def flops_per_token(shape: dict[str, Any], seq: int) -> float:
    """Training FLOPs per token: 6 x matmul parameters + causal attention scores."""
    h, f, n = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    kv = h * shape["num_key_value_heads"] // shape["num_attention_heads"]
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * f  # q, o, k, v, gate/up/down
    matmul = n * per_layer + h * shape["vocab_size"]  # plus the LM head
    attention = 6 * n * h * seq  # 12 * n * h * seq / 2 for the causal half
    return 6.0 * matmul + attention


def build_model(shape: dict[str, Any], tokenizer: Any, device: str, attn: str) -> Any:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

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
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
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


def sft_step(
    args: argparse.Namespace, shape: dict[str, Any], tokenizer: Any, device: str
) -> dict[str, Any]:
    import torch
    from datasets import Dataset

    from secreason.train.config import SFTRecipe, load_recipe

    try:
        import flash_attn  # noqa: F401

        attn, packed = "flash_attention_2", True
    except ImportError:
        attn, packed = "sdpa", False
    tokens = args.sft_tokens
    gen = torch.Generator().manual_seed(0)
    # Documents of 300..3000 tokens (packed), or whole max_length rows (dense).
    rows = []
    for _ in range((args.sft_warmup + args.sft_steps + 2) * 8):
        n = tokens if not packed else int(torch.randint(300, 3000, (1,), generator=gen))
        ids = torch.randint(10, len(tokenizer) - 1, (n,), generator=gen).tolist()
        rows.append({"input_ids": ids})
    data = Dataset.from_list(rows)
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
            "assistant_only_loss=false",
            "eos_token=null",
        ],
    )
    from trl import SFTTrainer

    model = build_model(shape, tokenizer, device, attn)
    clock = StepClock(args.sft_warmup, device)
    trainer = SFTTrainer(
        model=model,
        args=recipe,
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[clock.callback],
    )
    trainer.train()
    seconds = clock.end - clock.start
    throughput = tokens * args.sft_steps / seconds
    achieved = throughput * flops_per_token(shape, tokens if not packed else 1650)
    result = {
        "attention": attn,
        "packed": packed,
        "tokens_per_step": tokens,
        "steps": args.sft_steps,
        "seconds": seconds,
        "tokens_per_s": throughput,
        "tflops": achieved / 1e12,
        "mfu": achieved / (args.peak_tflops * 1e12),
        "peak_gib": peak_gib(device),
    }
    del trainer, model
    if device == "cuda":
        torch.cuda.empty_cache()
    return result


def grpo_step(
    args: argparse.Namespace, shape: dict[str, Any], tokenizer: Any, device: str
) -> dict[str, Any]:
    import torch

    from secreason.train.config import RLRecipe, load_recipe
    from secreason.train.rl import build_rl_trainer

    total_gib = (
        torch.cuda.get_device_properties(0).total_memory / 2**30 if device == "cuda" else 0.0
    )
    lora = args.grpo_mode == "lora" or (args.grpo_mode == "auto" and total_gib < 120)
    work = Path(tempfile.mkdtemp(prefix="gpu-grpo-"))
    model_dir = work / "model"
    model = build_model(shape, tokenizer, device, "sdpa")
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    del model
    prompt = (
        "A crafted id changes the database query of the acme web portal. Which CWE is this? "
        "Think it through, then answer on the last line as 'Answer: CWE-<number>'."
    )
    rows = [{"prompt": [{"role": "user", "content": prompt}], "task": "mcq", "reference": "A"}] * 20
    data = work / "rl.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    suppress = list(range(len(tokenizer), shape["vocab_size"]))
    overrides = [
        *common_overrides(device, work / "out"),
        f"model_name_or_path={model_dir}",
        f"dataset_path={data}",
        "max_steps=1",
        f"max_completion_length={args.grpo_completion_length}",
        "use_vllm=false",
        "log_completions=false",
        "mask_truncated_completions=false",
        f"use_peft={'true' if lora else 'false'}",
        "lora_r=64",
        "lora_alpha=128",
    ]
    recipe = load_recipe(RECIPES / "rl.yaml", RLRecipe, overrides)
    recipe.generation_kwargs = {"suppress_tokens": suppress} if suppress else None
    recipe.model_init_kwargs = {"dtype": torch.bfloat16 if device == "cuda" else torch.float32}
    clock = StepClock(0, device)
    trainer = build_rl_trainer(recipe, callbacks=[clock.callback])
    trainer.train()
    seconds = clock.end - clock.start
    completions = recipe.per_device_train_batch_size * recipe.gradient_accumulation_steps
    return {
        "mode": "LoRA r=64" if lora else "full fine-tuning",
        "generations": recipe.num_generations,
        "completions": completions,
        "completion_tokens": args.grpo_completion_length,
        "seconds": seconds,
        "completion_tokens_per_s": completions * args.grpo_completion_length / seconds,
        "peak_gib": peak_gib(device),
        "gpu_gib": total_gib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-3.1-8b")
    parser.add_argument("--sft-tokens", type=int, default=8192, help="tokens per micro-batch")
    parser.add_argument("--sft-steps", type=int, default=5)
    parser.add_argument("--sft-warmup", type=int, default=2)
    parser.add_argument("--grpo-completion-length", type=int, default=4096)
    parser.add_argument("--grpo-mode", choices=("auto", "full", "lora"), default="auto")
    parser.add_argument("--peak-tflops", type=float, default=790.0)
    parser.add_argument("--skip-grpo", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cuda" and args.shape != "tiny":
        print(
            "gpu_step.py needs a CUDA GPU for the 8B shape (none is visible here). "
            "Run it on a GPU machine, or pass --shape tiny to check the script on CPU.",
            file=sys.stderr,
        )
        raise SystemExit(2)

    from secreason.train.tiny import TinyConfig, chat_template, default_corpus, train_tokenizer

    tokenizer = train_tokenizer(default_corpus(), 1024)
    tokenizer.chat_template = chat_template(TinyConfig())
    shape = SHAPES[args.shape]
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    print(f"device: {name}; shape: {args.shape}; torch {torch.__version__}")

    results: dict[str, Any] = {"device": name, "shape": args.shape}
    sft = sft_step(args, shape, tokenizer, device)
    results["sft"] = sft
    print("\n| SFT | attention | packed | tokens/step | tokens/s | TFLOP/s | MFU | peak GiB |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| full FT | {sft['attention']} | {sft['packed']} | {sft['tokens_per_step']} | "
        f"{sft['tokens_per_s']:.0f} | {sft['tflops']:.1f} | {100 * sft['mfu']:.1f}% | "
        f"{sft['peak_gib']:.1f} |"
    )
    if not args.skip_grpo:
        grpo = grpo_step(args, shape, tokenizer, device)
        results["grpo"] = grpo
        print("\n| GRPO step | completions | tokens each | seconds | completion tok/s | peak GiB |")
        print("|---|---|---|---|---|---|")
        print(
            f"| {grpo['mode']} | {grpo['completions']} ({grpo['generations']} per prompt) | "
            f"{grpo['completion_tokens']} | {grpo['seconds']:.1f} | "
            f"{grpo['completion_tokens_per_s']:.0f} | {grpo['peak_gib']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
