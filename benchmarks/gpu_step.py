"""One-GPU check of the 8B paths: SFT MFU, rollout decode speed, eval samples/s, a GRPO step.

A Llama-3.1-8B-shaped model with random weights (nothing is downloaded), driven through
the project's own code (``secreason.train.accel`` decisions, the recipes in
``recipes/foundation-sec-8b-reasoning``, ``build_rl_trainer``, ``TransformersBackend``),
so what is measured is what a user runs. Each arm runs in its own subprocess (memory
freed, Liger's patches not leaking into the next arm, one failure not ending the run);
an arm writes its figures as it goes, so one stopped at the budget still reports.

* ``sft-{dense|packed}[-liger][-ac|-noac|-auto][-mbN][-gaN]``: full fine-tuning, bf16
  weights and AdamW states, ``--sft-tokens`` per row; Liger on or off; activation
  checkpointing on (``-ac``, the default), off, or ``auto`` (the recipe's memory
  estimate decides; stderr says what it chose); N rows per micro-batch; N micro-batches
  per optimiser step. Packed rows are documents of 300..3000 tokens, attention chosen
  by ``accel``. Reports tokens/s, peak memory and MFU three ways: 6 x matmul params +
  causal attention (6 x layers x hidden x seq, the causal half) against ``--peak-tflops``
  (790, the dense bf16 matmul rate measured on the H200; the convention of every figure
  so far); the same against the datasheet (``--datasheet-tflops``, 989); and PaLM's
  convention (attention 12 x layers x hidden x seq, not halved) against the measured
  peak. Recomputation is never counted. One more step runs under ``torch.profiler``
  after the timed ones: the top GPU ops and how busy the GPU was (``--no-profile``).
* ``decode``: one batch of ``--decode-batch`` prompts, ``--decode-tokens`` new tokens,
  in ms per decode step (minus the prefill) beside the memory-bound floor (weights plus
  KV cache read once per step at ``--hbm-tbps``): bare ``generate`` with the default
  (dynamic) cache; with a static cache and compiled decoding as the eval backend asks
  (greedy, the benchmark's ``suppress_tokens``), again with no logits processor at all,
  and sampled as GRPO samples (temperature 1, top-k 0, top-p 1); the compiled forward
  alone (replayed with the exact inputs ``generate`` gave it, without and with a host
  sync per step: what is left of the full step is ``generate``'s own per-step work); and
  transformers' continuous batching (``generate_batch``, as TRL's
  ``use_transformers_continuous_batching`` calls it, a fresh manager per call). The
  same batch through the eval harness's ``TransformersBackend`` (static, then dynamic)
  gives its samples/s against bare ``generate``.
* ``grpo`` / ``grpo-cb``: two GRPO steps of the 8B RL recipe as shipped (vLLM falls back
  when it is not installed, static compiled rollouts, Liger off under them, checkpointing
  ``auto``), 8 prompts x 5 generations, ``--grpo-completion-length`` tokens; ``-cb``
  generates with transformers' continuous batching instead. The second step is timed
  (the first compiles). Random weights rarely emit EOS, so most completions run to the
  limit; ``mask_truncated_completions`` is off so that the update is real.

Per-arm time on one H200 (last runs plus estimates for the new parts): a dense SFT arm
~45 s (start-up, model init, 7 steps), a packed one ~75 s (the attention candidates
are timed and flex_attention compiles), ``decode`` ~170 s (saving the 16 GB model,
one 55 s compile, ~10 s of continuous batching), ``grpo`` ~150 s. The default order
below fits the default ``--budget-s`` of 470 s (the whole run under 8 minutes); arms
that would start after it are skipped and named, and no arm may run past twice its
expected time (``ARM_CAP_S``), keeping what it measured until then.
``--arms sft-dense-liger-ac,...`` runs others (a second run: ``grpo-cb`` and the SFT
variants the first one skipped).

Without CUDA it refuses (exit 2) unless ``--shape tiny``, which runs every arm on CPU
with a tiny model to check the script.

Usage: ``python benchmarks/gpu_step.py [--arms sft-dense-liger-auto,decode,...] [--json out.json]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "foundation-sec-8b-reasoning"
SFT_ARM = re.compile(r"^sft-(dense|packed)(-liger)?(-ac|-noac|-auto)?(?:-mb(\d+))?(?:-ga(\d+))?$")
OTHER_ARMS = ("decode", "grpo", "grpo-cb")
# Most seconds one arm may take (about twice its expected time), so one that hangs or
# compiles for ever cannot eat the arms after it; what it measured before is kept.
ARM_CAP_S = {"decode": 260.0, "grpo": 240.0, "grpo-cb": 240.0}
SFT_CAP_S = 150.0
# Run order: the likeliest winner first, then the rollouts, then what explains the rest.
DEFAULT_ORDER = (
    "sft-dense-liger-auto",
    "decode",
    "grpo",
    "sft-packed-liger-auto",
    "sft-dense-auto",
    "sft-dense-liger-ac",
    "sft-dense-liger-auto-ga4",
)


def sft_options(arm: str) -> dict[str, Any] | None:
    """What an SFT arm's name asks for; None if it is not one."""
    match = SFT_ARM.match(arm)
    if match is None:
        return None
    checkpointing = {None: "true", "-ac": "true", "-noac": "false", "-auto": "auto"}[match[3]]
    return {
        "packed": match[1] == "packed",
        "liger": bool(match[2]),
        "checkpointing": checkpointing,
        "rows": int(match[4] or 1),
        "accumulation": int(match[5] or 1),
    }


def known_arm(arm: str) -> bool:
    options = sft_options(arm)
    return arm in OTHER_ARMS or (
        options is not None and options["rows"] >= 1 and options["accumulation"] >= 1
    )


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


def flops_per_token(shape: dict[str, Any], seq: float, causal_half: bool = True) -> float:
    """Training FLOPs per token: 6 x matmul parameters (the LM head included, the
    embedding lookup not) + attention scores and values, 12 x layers x hidden x seq,
    halved for causal attention (the work a causal kernel does) unless ``causal_half``
    is False (PaLM's and Megatron's convention)."""
    h, f, n = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    kv = h * shape["num_key_value_heads"] // shape["num_attention_heads"]
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * f  # q, o, k, v, gate/up/down
    matmul = n * per_layer + h * shape["vocab_size"]  # plus the LM head
    attention = 12 * n * h * seq / (2 if causal_half else 1)
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
    """Times optimiser steps ``warmup + 1`` to ``warmup + steps`` (CUDA synchronised);
    with ``profile``, the step after them runs under ``torch.profiler``."""

    def __init__(self, warmup: int, device: str, steps: int = 10**9, profile: bool = False) -> None:
        from transformers import TrainerCallback

        clock = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if state.global_step == warmup:
                    clock.sync()
                    clock.start = time.perf_counter()
                    clock.reset_peak()
                if profile and state.global_step == warmup + steps:
                    clock.start_profile()

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                clock.sync()
                if state.global_step <= warmup + steps:
                    clock.end = time.perf_counter()
                elif clock.profiler is not None:
                    clock.stop_profile()

        self.device = device
        self.start = self.end = 0.0
        self.callback = _Callback()
        self.profiler: Any = None
        self.profile_start = 0.0
        self.profile: dict[str, Any] = {}

    def sync(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def start_profile(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        activities: list[Any] = [ProfilerActivity.CPU]
        if self.device == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self.profiler = profile(activities=activities)
        self.profiler.__enter__()
        self.profile_start = time.perf_counter()

    def stop_profile(self) -> None:
        wall_ms = (time.perf_counter() - self.profile_start) * 1e3
        self.profiler.__exit__(None, None, None)
        self.profile = profile_summary(self.profiler, wall_ms, self.device)
        self.profiler = None


def profile_summary(profiler: Any, wall_ms: float, device: str, top: int = 8) -> dict[str, Any]:
    """The ops that took the most device time (CPU time without CUDA) in one step, and
    how busy the device was: kernel time over the step's wall time."""

    def own(event: Any) -> float:  # microseconds of the op's own kernels
        names: tuple[str, ...] = ("self_device_time_total", "self_cuda_time_total")
        if device != "cuda":
            names = ("self_cpu_time_total",)
        return float(next((getattr(event, n) for n in names if hasattr(event, n)), 0.0))

    events = list(profiler.key_averages())
    busy_ms = sum(own(e) for e in events) / 1e3
    ranked = sorted(events, key=own, reverse=True)[:top]
    return {
        "wall_ms": wall_ms,
        "busy_ms": busy_ms,
        "busy_share": busy_ms / wall_ms if wall_ms else float("nan"),
        "top": [{"op": e.key[:60], "ms": own(e) / 1e3, "calls": int(e.count)} for e in ranked],
    }


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

    options = sft_options(arm)
    assert options is not None
    shape, tokenizer = SHAPES[args.shape], tokenizer_for_bench()
    packed, tokens = options["packed"], args.sft_tokens
    per_step = options["rows"] * options["accumulation"]
    gen = torch.Generator().manual_seed(0)
    rows: list[dict[str, Any]] = []
    lengths: list[int] = []
    budget = (args.sft_warmup + args.sft_steps + 3) * tokens * per_step * 2
    while sum(lengths) < budget:
        hi = min(3000, tokens)
        n = tokens if not packed else int(torch.randint(min(300, hi - 1), hi, (1,), generator=gen))
        lengths.append(n)
        rows.append(
            {"input_ids": torch.randint(10, len(tokenizer) - 1, (n,), generator=gen).tolist()}
        )
    out = Path(tempfile.mkdtemp(prefix="gpu-sft-"))
    profile = not args.no_profile
    recipe = load_recipe(
        RECIPES / "sft.yaml",
        SFTRecipe,
        [
            *common_overrides(device, out),
            "model_name_or_path=random-llama",
            f"max_steps={args.sft_warmup + args.sft_steps + int(profile)}",
            f"max_length={tokens}",
            f"per_device_train_batch_size={options['rows']}",
            f"gradient_accumulation_steps={options['accumulation']}",
            f"packing={'true' if packed else 'false'}",
            f"use_liger_kernel={'true' if options['liger'] else 'false'}",
            f"activation_checkpointing={options['checkpointing']}",
            "assistant_only_loss=false",
            "eos_token=null",
        ],
    )
    # The decisions `secreason sft` makes (stderr says them); `auto` needs the model's
    # shape, which a random model has no folder to read from, so it is written out.
    shape_file = out / "shape"
    config = {**shape, "model_type": "llama", "architectures": ["LlamaForCausalLM"]}
    shape_file.mkdir()
    (shape_file / "config.json").write_text(json.dumps(config))
    recipe.model_name_or_path = str(shape_file)
    accel.prepare_sft(recipe)
    attn = (recipe.model_init_kwargs or {}).get("attn_implementation") or "sdpa"
    model = build_model(shape, tokenizer, device, attn)
    clock = StepClock(args.sft_warmup, device, args.sft_steps, profile)
    trainer = SFTTrainer(
        model=model,
        args=recipe,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[clock.callback],
    )
    trainer.train()
    seen = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    last = args.sft_warmup + args.sft_steps - 1
    trained = seen[last] - seen[args.sft_warmup - 1] if args.sft_warmup else seen[last]
    seconds = clock.end - clock.start
    # Attention cost per token follows each document's own length when rows are packed.
    seq = sum(n * n for n in lengths) / sum(lengths) if packed else tokens
    throughput = trained / seconds
    achieved = throughput * flops_per_token(shape, seq)
    palm = throughput * flops_per_token(shape, seq, causal_half=False)
    kwargs = trainer.args.activation_checkpointing_kwargs
    every = kwargs.get("every_n_layers", 1) if isinstance(kwargs, dict) else 1
    return {
        "arm": arm,
        "attention": attn,
        "liger": bool(trainer.args.use_liger_kernel),
        "checkpointing": bool(trainer.args.activation_checkpointing),
        "every_n_layers": int(every) if trainer.args.activation_checkpointing else 0,
        "rows": options["rows"],
        "accumulation": options["accumulation"],
        "tokens_per_step": trained / args.sft_steps,
        "tokens_per_s": throughput,
        "step_s": seconds / args.sft_steps,
        "tflops": achieved / 1e12,
        "mfu": achieved / (args.peak_tflops * 1e12),
        "mfu_datasheet": achieved / (args.datasheet_tflops * 1e12),
        "mfu_palm": palm / (args.peak_tflops * 1e12),
        "peak_gib": peak_gib(device),
        "profile": clock.profile,
    }


def decode_arm(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Where a decode step's time goes: bare ``generate`` (dynamic; static + compiled
    with and without logits processors, greedy and sampled), the compiled forward alone,
    continuous batching, and the eval backend. Figures are written as they come."""
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
    result["floor_ms"] = decode_floor_ms(
        shape, args.decode_batch, width + args.decode_tokens / 2, args.hbm_tbps
    )

    def keep() -> None:  # partial figures survive a stop at the budget
        Path(args.result).write_text(json.dumps(result, indent=2))

    greedy = backend._generate_kwargs(params)  # what the eval backend asks for
    static = {**greedy, "cache_implementation": "static"}  # compiled on a GPU, not on CPU
    with torch.inference_mode():
        _, prefill = timed(device, lambda: model(**batch, use_cache=False))
        _, prefill = timed(device, lambda: model(**batch, use_cache=False))
        result["prefill_ms"] = prefill * 1e3

        def run(kwargs: dict[str, Any]) -> tuple[int, float]:
            out, seconds = timed(device, lambda: model.generate(**batch, **kwargs))
            return int(out.shape[1]) - width, seconds

        def record(name: str, steps: int, seconds: float) -> None:
            result[name] = {
                "steps": steps,
                "seconds": seconds,
                "ms_per_step": (seconds - prefill) * 1e3 / max(1, steps - 1),
                "samples_per_s": args.decode_batch / seconds,
            }
            keep()

        # A short untimed call pays the one-off CUDA set-up (161 ms/step cold on an H200).
        result["first_dynamic_s"] = run({**greedy, "max_new_tokens": 8})[1]
        record("dynamic", *run(greedy))
        captured = capture_decode_call(model, device)
        result["compile_s"] = run(static)[1]  # the first static call compiles (same shapes)
        captured.restore()
        record("static_compiled", *run(static))
        result["compile_counters"] = compile_counters()
        # The same without any logits processor (the benchmark's suppress_tokens masks the
        # 127k ids past its small tokenizer), then sampled as GRPO samples.
        record("static_plain", *run({**static, "suppress_tokens": None}))
        sampled = {**static, "do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
        record("static_sampled", *run(sampled))
        for name, sync in (("forward_async", False), ("forward_synced", True)):
            result[name] = captured.replay(device, steps=args.decode_tokens // 2, sync=sync)
            keep()
    for name, on in (("backend_static", True), ("backend_dynamic", False)):
        backend.static_cache = on
        generations, seconds = timed(device, lambda: backend.generate(conversations, params))
        result[name] = {
            "samples_per_s": len(generations) / seconds,
            "completion_tokens": sum(g.completion_tokens for g in generations),
        }
        keep()
    # Last: the least known (its first call captures CUDA graphs); the arm's time cap
    # stops it without losing the figures above.
    result["continuous_batching"] = continuous_batching(model, encoded, args, device)
    return result


class DecodeCall:
    """The callable ``generate`` runs each decode step and the inputs of its first
    decode step, recorded once, then replayed alone."""

    def __init__(self, model: Any, device: str) -> None:
        self.model = model
        self.call: Any = None
        self.inputs: dict[str, Any] | None = None
        self.saved = {n: model.__dict__.get(n) for n in ("get_compiled_call", "forward")}
        if device == "cuda":  # generate compiles `__call__` through get_compiled_call
            original = model.get_compiled_call

            def spy(config: Any) -> Any:
                call = original(config)

                def recording(**inputs: Any) -> Any:
                    if self.inputs is None:
                        self.call, self.inputs = call, frozen(inputs)
                    return call(**inputs)

                return recording

            model.get_compiled_call = spy
        else:  # nothing is compiled on a CPU: record the plain forward's first 1-token step
            original_forward = model.forward

            def forward(*args: Any, **inputs: Any) -> Any:
                ids = inputs.get("input_ids")
                if self.inputs is None and not args and ids is not None and ids.shape[-1] == 1:
                    self.call, self.inputs = model, frozen(inputs)
                return original_forward(*args, **inputs)

            model.forward = forward

    def restore(self) -> None:
        for name, value in self.saved.items():
            if value is None:
                self.model.__dict__.pop(name, None)
            else:
                self.model.__dict__[name] = value

    def replay(self, device: str, steps: int, sync: bool) -> dict[str, Any] | str:
        """ms per step of the recorded call alone, ``steps`` times (warm), with a host
        sync after each (as ``generate`` does on CUDA) or only at the end."""
        import torch

        call, inputs = self.call, self.inputs
        if call is None or inputs is None:
            return "not recorded (generate did not call a decode step)"
        mark = getattr(torch.compiler, "cudagraph_mark_step_begin", None)

        def once() -> None:
            if mark is not None and device == "cuda":
                mark()
            out = call(**inputs)
            del out
            if sync and device == "cuda":
                torch.cuda.synchronize()

        # The KV cache advances in place each call (transformers 5.x keeps its length in
        # the cache): start from empty so the replay stays inside it.
        for value in inputs.values():
            if hasattr(value, "reset") and hasattr(value, "get_seq_length"):
                value.reset()
        for _ in range(3):
            once()

        def loop() -> None:
            for _ in range(steps):
                once()

        _, seconds = timed(device, loop)
        return {"steps": steps, "ms_per_step": seconds * 1e3 / steps}


def frozen(inputs: dict[str, Any]) -> dict[str, Any]:
    """Copies of the step's tensors (generate advances some in place); the cache itself
    is kept, as the compiled graph holds its buffers at fixed addresses."""
    import torch

    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def capture_decode_call(model: Any, device: str) -> DecodeCall:
    return DecodeCall(model, device)


def continuous_batching(
    model: Any, encoded: list[list[int]], args: argparse.Namespace, device: str
) -> dict[str, Any] | str:
    """``generate_batch`` as TRL's ``use_transformers_continuous_batching`` calls it (a new
    manager each call, half the free memory for the paged cache): first and second call."""
    import copy

    try:
        from transformers.generation import ContinuousBatchingConfig

        config = copy.deepcopy(model.generation_config)
        config.max_new_tokens, config.do_sample = args.decode_tokens, False
        cb = ContinuousBatchingConfig(max_memory_percent=0.5)
        figures: dict[str, Any] = {}
        for name in ("first_s", "seconds"):
            outputs, seconds = timed(
                device,
                lambda: model.generate_batch(
                    encoded, generation_config=config, continuous_batching_config=cb
                ),
            )
            figures[name] = seconds
        tokens = sum(len(o.generated_tokens) for o in outputs.values())
        figures["new_tokens"] = tokens
        figures["ms_per_step"] = figures["seconds"] * 1e3 / args.decode_tokens
        figures["samples_per_s"] = len(encoded) / figures["seconds"]
        return figures
    except Exception as error:  # reported in the table, not fatal
        return f"failed: {type(error).__name__}: {str(error)[:120]}"


def grpo_arm(args: argparse.Namespace, arm: str, device: str) -> dict[str, Any]:
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
    if arm == "grpo-cb":  # Liger off too, so only the rollout engine differs from `grpo`
        overrides += ["use_transformers_continuous_batching=true", "use_liger_kernel=false"]
    recipe = load_recipe(RECIPES / "rl.yaml", RLRecipe, overrides)
    recipe.model_init_kwargs = {"dtype": torch.bfloat16 if device == "cuda" else torch.float32}
    vocab = len(tokenizer_for_bench())
    recipe.generation_kwargs = {"suppress_tokens": list(range(vocab, shape["vocab_size"]))}
    clock = StepClock(1, device)
    trainer = build_rl_trainer(recipe, callbacks=[clock.callback])
    calls = time_rollouts(trainer.model, device)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    completions = recipe.per_device_train_batch_size * recipe.gradient_accumulation_steps
    seconds = clock.end - clock.start
    mean_length = float(logs[-1]["completions/mean_length"]) if logs else float("nan")
    rollout_s = sum(b - a for a, b in calls if a >= clock.start and b <= clock.end)
    if trainer.args.use_vllm:
        engine = "vllm"
    elif trainer.args.use_transformers_continuous_batching:
        engine = "continuous batching"
    else:
        engine = f"generate ({recipe.cache_implementation})"
    return {
        "arm": arm,
        "completions": completions,
        "generations": recipe.num_generations,
        "max_tokens": args.grpo_completion_length,
        "mean_length": mean_length,
        "seconds": seconds,
        "rollout_s": rollout_s,
        "rollouts": engine,
        "liger": bool(trainer.args.use_liger_kernel),
        "checkpointing": bool(trainer.args.activation_checkpointing),
        "completion_tokens_per_s": completions * mean_length / seconds,
        "peak_gib": peak_gib(device),
        "compile_counters": compile_counters(),
    }


def compile_counters() -> dict[str, Any]:
    """What torch.compile did so far in this process: graphs, breaks (with reasons),
    and compiled graphs that fell back from CUDA graphs."""
    from torch._dynamo.utils import counters

    breaks = counters["graph_break"]
    return {
        "unique_graphs": int(counters["stats"]["unique_graphs"]),
        "graph_breaks": int(sum(breaks.values())),
        "break_reasons": [str(r)[:120] for r in list(breaks)[:5]],
        "cudagraph_skips": int(counters["inductor"]["cudagraph_skips"]),
    }


def time_rollouts(model: Any, device: str) -> list[tuple[float, float]]:
    """(start, end) of every ``generate`` / ``generate_batch`` call TRL makes on the model."""
    calls: list[tuple[float, float]] = []

    def timing(original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out, seconds = timed(device, lambda: original(*args, **kwargs))
            calls.append((start, time.perf_counter()))
            return out

        return call

    for name in ("generate", "generate_batch"):
        if hasattr(model, name):
            setattr(model, name, timing(getattr(model, name)))
    return calls


def run_arm(args: argparse.Namespace) -> None:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.arm.startswith("sft"):
        result = sft_arm(args, args.arm, device)
    elif args.arm == "decode":
        result = decode_arm(args, device)
    else:
        result = grpo_arm(args, args.arm, device)
    Path(args.result).write_text(json.dumps(result, indent=2))


# ------------------------------------------------------------------------- the table


def fmt(value: Any, spec: str = ".1f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def table(results: dict[str, Any], args: argparse.Namespace) -> list[str]:
    lines = ["| path | measured | floor / target | memory |", "|---|---|---|---|"]
    for arm in [a for a in results if sft_options(a) is not None]:
        lines += sft_rows(arm, results[arm])
    d = results.get("decode")
    if isinstance(d, dict):
        lines += decode_rows(d, args)
        if d.get("stopped"):
            stop = d["stopped"]
            lines.append(f"| decode arm | {stop}; the rows above are what it measured | | |")
    else:
        lines.append(f"| decode / eval backend | {d or 'not run'} | <= 15 ms/step | |")
    for arm in ("grpo", "grpo-cb"):
        g = results.get(arm)
        if arm not in results:
            continue
        if not isinstance(g, dict) or "seconds" not in g:
            lines.append(f"| GRPO step ({arm}) | {g or 'not run'} | <= 25 s | |")
            continue
        lines.append(
            f"| GRPO step, {g['completions']} completions ({g['generations']} per prompt) x "
            f"<= {g['max_tokens']} tokens, rollouts {g['rollouts']}, Liger "
            f"{'on' if g['liger'] else 'off'}, checkpointing "
            f"{'on' if g.get('checkpointing') else 'off'} | **{g['seconds']:.1f} s** "
            f"(rollouts {fmt(g.get('rollout_s'))} s; mean completion {g['mean_length']:.0f} "
            f"tokens, {g['completion_tokens_per_s']:.0f} tok/s) | <= 25 s | "
            f"{fmt(g['peak_gib'])} GiB |"
        )
        if isinstance(g.get("compile_counters"), dict):
            text = counters_text(g["compile_counters"])
            lines.append(f"| torch.compile, {arm} | {text} | | |")
    return lines


def counters_text(c: dict[str, Any]) -> str:
    reasons = "; ".join(c.get("break_reasons") or [])
    return (
        f"{c['unique_graphs']} graphs, {c['graph_breaks']} graph breaks"
        f"{f' ({reasons})' if reasons else ''}, {c['cudagraph_skips']} CUDA-graph skips"
    )


def sft_rows(arm: str, r: Any) -> list[str]:
    if not isinstance(r, dict) or "mfu" not in r:
        return [f"| SFT {arm} | {r or 'not run'} | MFU >= 60 % | |"]
    every = r.get("every_n_layers", 1)
    ac = "off" if not r["checkpointing"] else ("on" if every <= 1 else f"1 layer in {every}")
    rows = [
        f"| SFT {arm}: {'packed' if 'packed' in arm else 'dense'} rows, {r['attention']}, "
        f"Liger {'on' if r['liger'] else 'off'}, checkpointing {ac}, {r.get('rows', 1)} x "
        f"{r.get('accumulation', 1)} micro-batches, {r['tokens_per_step']:.0f} tokens/step | "
        f"{r['tokens_per_s']:.0f} tokens/s, {r['tflops']:.0f} TFLOP/s, "
        f"**MFU {100 * r['mfu']:.1f} %** (datasheet {100 * r.get('mfu_datasheet', 0):.1f} %, "
        f"PaLM {100 * r.get('mfu_palm', 0):.1f} %) | MFU >= 60 % | {fmt(r['peak_gib'])} GiB |"
    ]
    profile = r.get("profile") or {}
    if profile.get("top"):
        top = ", ".join(f"{t['op']} {t['ms']:.0f} ms" for t in profile["top"][:5])
        rows.append(
            f"| ... one profiled step | {profile['wall_ms']:.0f} ms wall, device busy "
            f"{100 * profile['busy_share']:.0f} %: {top} | | |"
        )
    return rows


def decode_rows(d: dict[str, Any], args: argparse.Namespace) -> list[str]:
    b, rows = d["batch"], []
    target = f"floor {d['floor_ms']:.1f} ms; target <= 15 ms"
    labels = (
        ("dynamic", "bare generate, default cache"),
        ("static_compiled", "static + compiled (eval backend's options)"),
        ("static_plain", "static + compiled, no logits processor"),
        ("static_sampled", "static + compiled, sampled as GRPO (T 1, top-k 0, top-p 1)"),
        ("forward_async", "compiled forward alone, no host sync"),
        ("forward_synced", "compiled forward alone, host sync each step"),
    )
    for name, label in labels:
        r = d.get(name)
        value = f"**{r['ms_per_step']:.1f} ms/step**" if isinstance(r, dict) else (r or "not run")
        rows.append(f"| decode step, batch {b}, {label} | {value} | {target} | |")
    if "compile_s" in d:
        rows.append(f"| compile of the static decode (first call) | {d['compile_s']:.1f} s | | |")
    if isinstance(d.get("compile_counters"), dict):
        rows.append(f"| torch.compile, decode | {counters_text(d['compile_counters'])} | | |")
    cb = d.get("continuous_batching")
    if isinstance(cb, dict):
        value = (
            f"**{cb['ms_per_step']:.1f} ms/step** ({cb['samples_per_s']:.1f} samples/s; first "
            f"call {cb['first_s']:.1f} s)"
        )
    else:
        value = cb or "not run"
    rows.append(f"| continuous batching (generate_batch), batch {b} | {value} | {target} | |")
    dynamic = d.get("dynamic", {}).get("samples_per_s", float("nan"))
    for name, label in (("backend_static", "static (GPU default)"), ("backend_dynamic", "dynamic")):
        r = d.get(name)
        value = f"**{r['samples_per_s']:.1f} samples/s**" if isinstance(r, dict) else "not run"
        rows.append(
            f"| eval TransformersBackend, {label}, {b} samples x {args.decode_tokens} tokens | "
            f"{value} | bare generate (default) {dynamic:.1f} samples/s | |"
        )
    return rows


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
    parser.add_argument(
        "--datasheet-tflops", type=float, default=989.4, help="bf16 dense (H100/H200 SXM)"
    )
    parser.add_argument("--no-profile", action="store_true", help="no profiled SFT step")
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
    unknown = [a for a in arms if not known_arm(a)]
    if unknown:
        parser.error(
            f"unknown arm(s) {unknown}; choose from {', '.join(OTHER_ARMS)} or "
            "sft-{dense|packed}[-liger][-ac|-noac|-auto][-mbN][-gaN]"
        )
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
                cap = min(left, ARM_CAP_S.get(arm, SFT_CAP_S))
                done = subprocess.run(child, env=env, timeout=cap, check=False)
                outcome = "" if done.returncode == 0 else f"failed (exit {done.returncode})"
            except subprocess.TimeoutExpired:
                outcome = f"stopped after {cap:.0f} s (budget or the arm's cap)"
            partial = json.loads(result_file.read_text()) if result_file.is_file() else None
            if isinstance(partial, dict):  # an arm that stopped early keeps what it measured
                results[arm] = {**partial, "stopped": outcome} if outcome else partial
            else:
                results[arm] = outcome or "failed (no result)"
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
