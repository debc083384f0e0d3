"""Activation checkpointing decided by a memory estimate (``activation_checkpointing: auto``).

Checkpointing trades compute for memory: every checkpointed layer runs its forward twice,
so with all layers checkpointed a step does ~8N FLOPs per token instead of 6N, a third
more work that MFU (which counts 6N) never sees. On one H200 the 8B SFT step spent 60 GiB
on weights, gradients and AdamW states and had ~80 GiB left, enough to keep a whole
8192-token micro-batch's activations; checkpointing there only slowed it down. On an
80 GB card, or with 32k-token micro-batches, it is what makes the step fit at all.

So ``auto`` estimates the peak of one optimiser step on this GPU (static state, sharded
when ZeRO-3/FSDP shards it, plus activations per token) and keeps checkpointing off
when that fits, checkpoints only every n-th layer when that is enough (SFT; transformers'
``every_n_layers``), and checkpoints every layer otherwise. The estimate is deliberately
pessimistic: an unneeded recompute costs a third of the speed, an OOM the whole run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any

AUTO = "auto"
GIB = 2**30
# Usable share of the card: the CUDA context, NCCL buffers and allocator fragmentation.
HEADROOM = 0.9
# Bytes of saved activations per token, per layer, per hidden unit (bf16), without
# checkpointing. With Liger's fused RMSNorm/SwiGLU: 40; the one measured run (packed rows
# of <= 8192 tokens, flex_attention, Liger, no checkpointing, one H200) peaked at 82.5 GiB
# where this model says 100. Plain layers keep fp32 norm intermediates and both SwiGLU
# inputs, hence more. TRL 1.16's fused LM head never holds the full logits in either case.
ACTIVATION_FACTOR = {True: 40, False: 56}
# A checkpointed layer keeps only its input (2 bytes per hidden unit).
CHECKPOINTED_FACTOR = 2
# RL prompts are not bounded by the recipe; this allowance is added to the completion.
RL_PROMPT_ALLOWANCE = 512


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of a decoder-only model."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool = False

    def params(self) -> int:
        kv = self.hidden * self.kv_heads // self.heads
        layer = 2 * self.hidden**2 + 2 * self.hidden * kv + 3 * self.hidden * self.intermediate
        head = 0 if self.tied else self.vocab * self.hidden
        return self.layers * layer + self.vocab * self.hidden + head


def shape_of(model_name_or_path: str) -> Shape | None:
    """The model's shape from its config (a folder or a cached hub id); None if unreadable."""
    try:
        from transformers import AutoConfig

        c = AutoConfig.from_pretrained(model_name_or_path).get_text_config()
        heads = int(c.num_attention_heads)
        return Shape(
            hidden=int(c.hidden_size),
            intermediate=int(c.intermediate_size),
            layers=int(c.num_hidden_layers),
            heads=heads,
            kv_heads=int(getattr(c, "num_key_value_heads", None) or heads),
            vocab=int(c.vocab_size),
            tied=bool(getattr(c, "tie_word_embeddings", False)),
        )
    except Exception:
        return None


@dataclass(frozen=True)
class Plan:
    """The decision and the figures behind it (GiB)."""

    checkpoint: bool
    every_n_layers: int
    static_gib: float
    activation_gib: float
    device_gib: float
    tokens: int
    unchecked_gib: float  # activations with no layer checkpointed
    resident: str = "weights, gradients, optimiser"

    def line(self) -> str:
        peak = self.static_gib + self.activation_gib
        figures = (
            f"estimated peak {peak:.0f} of {self.device_gib:.0f} GiB = "
            f"{self.static_gib:.0f} {self.resident} "
            f"+ {self.activation_gib:.0f} activations of {self.tokens} tokens per micro-batch"
        )
        if not self.checkpoint:
            return f"activation checkpointing off: {figures}; recomputing would cost ~1/3 more"
        without = f"without it {self.static_gib + self.unchecked_gib:.0f} GiB would not fit"
        if self.every_n_layers > 1:
            return (
                f"activation checkpointing on 1 layer in {self.every_n_layers}: "
                f"{figures} ({without})"
            )
        return f"activation checkpointing on (every layer): {figures} ({without})"


def static_bytes(
    shape: Shape,
    *,
    param_bytes: int,
    full_ft: bool,
    shards: int,
    zero_stage: int,
    reference: bool,
    cache_bytes: float = 0.0,
) -> float:
    """Weights, gradients and AdamW states (in the parameters' dtype, as transformers'
    fused AdamW keeps them), sharded as ZeRO/FSDP does, plus a KL reference and a
    rollout KV cache that stay resident."""
    n = shape.params()
    weights = float(n * param_bytes)
    grads = weights if full_ft else 0.0
    optimiser = 2 * weights if full_ft else 0.0
    if zero_stage >= 3:
        weights, grads, optimiser = weights / shards, grads / shards, optimiser / shards
    elif zero_stage == 2:
        grads, optimiser = grads / shards, optimiser / shards
    elif zero_stage == 1:
        optimiser /= shards
    ref = n * param_bytes / (shards if zero_stage >= 3 else 1) if reference else 0.0
    return weights + grads + optimiser + ref + cache_bytes


def activation_bytes(
    shape: Shape, tokens: int, liger: bool, checkpointed_layers: int, scale: float = 1.0
) -> float:
    """Saved activations of one micro-batch with ``checkpointed_layers`` layers checkpointed
    (one of them is recomputed, so holds its full activations, during the backward);
    ``scale`` 2 for float32 activations."""
    full = ACTIVATION_FACTOR[liger]
    kept = shape.layers - checkpointed_layers
    per_token = kept * full + checkpointed_layers * CHECKPOINTED_FACTOR
    if checkpointed_layers:
        per_token += full
    return float(tokens) * shape.hidden * per_token * scale


def decide(
    shape: Shape,
    tokens: int,
    *,
    device_gib: float,
    static: float,
    liger: bool,
    partial: bool,
    scale: float = 1.0,
) -> Plan:
    """Off if it fits; else the sparsest ``every_n_layers`` that fits (when ``partial``);
    else every layer."""
    budget = device_gib * GIB * HEADROOM - static
    unchecked = activation_bytes(shape, tokens, liger, 0, scale) / GIB
    candidates = [0]  # no layer checkpointed
    if partial:
        # every_n_layers = n checkpoints layers 0, n, 2n, ...: ceil(L / n) of them.
        candidates += sorted({math.ceil(shape.layers / n) for n in range(2, shape.layers + 1)})
    for count in candidates:
        need = activation_bytes(shape, tokens, liger, count, scale)
        if need <= budget:
            every = 0 if count == 0 else _every(shape.layers, count)
            return Plan(count > 0, every, static / GIB, need / GIB, device_gib, tokens, unchecked)
    need = activation_bytes(shape, tokens, liger, shape.layers, scale)
    return Plan(True, 1, static / GIB, need / GIB, device_gib, tokens, unchecked)


def _every(layers: int, count: int) -> int:
    """The largest n whose ceil(layers / n) is ``count``."""
    return max(n for n in range(1, layers + 1) if math.ceil(layers / n) == count)


def sharding(world: int | None = None) -> tuple[int, int]:
    """(processes, ZeRO stage) as ``accelerate launch`` announces them; FSDP counts as 3."""
    from secreason.train.accel import world_size

    world = world_size() if world is None else world
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return world, 3
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        try:
            return world, int(os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "0"))
        except ValueError:
            return world, 0
    return world, 0


def micro_batch_tokens(recipe: Any) -> int:
    """Tokens one optimiser micro-batch can hold (an upper bound)."""
    rows = int(getattr(recipe, "per_device_train_batch_size", 1) or 1)
    if getattr(recipe, "stage", "") == "rl":
        return rows * (int(recipe.max_completion_length or 256) + RL_PROMPT_ALLOWANCE)
    return rows * int(getattr(recipe, "max_length", None) or 1024)


def rollout_cache_bytes(recipe: Any, shape: Shape, param_bytes: int) -> float:
    """A static KV cache transformers keeps on the model between rollouts."""
    if getattr(recipe, "stage", "") != "rl" or getattr(recipe, "cache_implementation", None) != (
        "static"
    ):
        return 0.0
    rows = int(recipe.per_device_train_batch_size) * int(recipe.gradient_accumulation_steps or 1)
    length = int(recipe.max_completion_length or 256) + RL_PROMPT_ALLOWANCE
    kv = shape.hidden * shape.kv_heads // shape.heads
    return float(rows * length * shape.layers * 2 * kv * param_bytes)


def resolve(
    recipe: Any,
    cuda: bool | None = None,
    device_gib: float | None = None,
    shape: Shape | None = None,
    world: int | None = None,
) -> Plan | None:
    """Settle ``activation_checkpointing: auto`` to a boolean (and, for SFT, an
    ``every_n_layers``) from a memory estimate; a value the recipe names is kept.

    RL decides only on or off: TRL re-enables checkpointing after every rollout with
    the recipe's kwargs through the old API, which ignores ``every_n_layers``.
    """
    from secreason.train.accel import cuda_run, note

    if getattr(recipe, "activation_checkpointing", None) != AUTO:
        return None
    cuda = cuda_run(recipe) if cuda is None else cuda
    plan = None
    if not cuda:
        why = "off: no CUDA device (auto sizes it against GPU memory)"
    elif (shape := shape or shape_of(recipe.model_name_or_path)) is None:
        why = f"on: the config of {recipe.model_name_or_path} could not be read to size it"
    else:
        if device_gib is None:
            import torch

            total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
            device_gib = total / GIB
        if getattr(recipe, "use_vllm", False) and getattr(recipe, "vllm_mode", "") == "colocate":
            device_gib *= 1.0 - float(recipe.vllm_gpu_memory_utilization)  # vLLM's share
        shards, zero = sharding(world)
        param_bytes = 4 if _float32(recipe) else 2
        full_ft = not getattr(recipe, "use_peft", False)
        rl = getattr(recipe, "stage", "") == "rl"
        reference = rl and full_ft and float(getattr(recipe, "beta", 0.0)) != 0.0
        cache = rollout_cache_bytes(recipe, shape, param_bytes)
        static = static_bytes(
            shape,
            param_bytes=param_bytes,
            full_ft=full_ft,
            shards=shards,
            zero_stage=zero,
            reference=reference,
            cache_bytes=cache,
        )
        plan = decide(
            shape,
            micro_batch_tokens(recipe),
            device_gib=device_gib,
            static=static,
            liger=bool(getattr(recipe, "use_liger_kernel", False)),
            partial=not rl,
            scale=param_bytes / 2,
        )
        extra = [n for n, on in (("reference", reference), ("rollout cache", cache)) if on]
        plan = replace(plan, resident=", ".join([plan.resident, *extra]))
    on = plan.checkpoint if plan is not None else cuda
    recipe.activation_checkpointing = recipe.gradient_checkpointing = on
    if plan is not None and plan.every_n_layers > 1:
        kwargs = dict(getattr(recipe, "activation_checkpointing_kwargs", None) or {})
        kwargs["every_n_layers"] = plan.every_n_layers
        recipe.activation_checkpointing_kwargs = recipe.gradient_checkpointing_kwargs = kwargs
    note(plan.line() if plan is not None else f"activation checkpointing {why}")
    return plan


def _float32(recipe: Any) -> bool:
    init = getattr(recipe, "model_init_kwargs", None) or {}
    dtype = str(init.get("dtype", init.get("torch_dtype", "")) if isinstance(init, dict) else "")
    if dtype.replace("torch.", "") in ("float32", "float"):
        return True
    return not (getattr(recipe, "bf16", False) or getattr(recipe, "fp16", False) or dtype)
