"""GPU speed options, chosen when a stage starts, each with a fallback that never crashes.

The 8B recipes ask for the fast paths measured on one H200 (README "GPU speed"): Liger's
fused kernels, padding-free packed rows, rollouts decoded with a static KV cache
under ``torch.compile`` (CUDA graphs) when vLLM is off, and activation checkpointing
only where memory needs it (``memory_plan``). A CPU run, a box without
``liger-kernel``, ``flash-attn`` or ``vllm`` must still train the same recipe, so each
option is checked here against what is really present, switched to the next best
thing when it is missing, and the switch is said in one line on stderr (never silent,
never an exception). The SFT and RL builders call these hooks; nothing here trains.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from secreason.train import memory_plan, packed_attention

FLASH = ("flash_attention_2", "flash_attention_3")
AUTO = "auto"
# Candidates for packed rows without flash-attn, fastest first as timed on one H200
# (fwd+bwd of an 8192-token packed layer: 2.5, 3.1-3.4 and 3.4-3.5 ms); this order is
# used when the processes of a multi-GPU run must agree without each timing its own.
PACKED_FALLBACKS = ("flex_attention", packed_attention.NAME, packed_attention.TORCH_VARLEN)


def note(message: str) -> None:
    """One line on stderr, prefixed so a log shows which layer decided."""
    print(f"secreason: {message}", file=sys.stderr, flush=True)


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def cuda_run(recipe: Any) -> bool:
    """Whether this run trains on a CUDA device (a recipe can force the CPU)."""
    import torch

    return bool(torch.cuda.is_available()) and not getattr(recipe, "use_cpu", False)


# ----------------------------------------------------------------------------- Liger


def resolve_liger(recipe: Any, cuda: bool | None = None, present: bool | None = None) -> bool:
    """Keep ``use_liger_kernel`` only where it can run (CUDA and the package installed)."""
    if not getattr(recipe, "use_liger_kernel", False):
        return False
    cuda = cuda_run(recipe) if cuda is None else cuda
    present = installed("liger_kernel") if present is None else present
    reason = None
    if not cuda:
        reason = "no CUDA device (its kernels are Triton, GPU only)"
    elif not present:
        reason = "liger-kernel is not installed (pip install 'secreason[gpu]')"
    if reason is None:
        return True
    recipe.use_liger_kernel = False
    note(f"use_liger_kernel off: {reason}; training goes on with the plain layers")
    return False


# ----------------------------------------------------------------- packed attention


def packed_candidates(
    cuda: bool, flex: bool | None = None, varlen: bool | None = None
) -> list[str]:
    """Boundary-respecting attentions that can run here, flash-attn aside."""
    if not cuda:
        return [packed_attention.NAME]
    if flex is None:
        flex = importlib.util.find_spec("torch.nn.attention.flex_attention") is not None
    varlen = packed_attention.torch_varlen_available() if varlen is None else varlen
    present = {packed_attention.TORCH_VARLEN: varlen, "flex_attention": flex}
    return [name for name in PACKED_FALLBACKS if present.get(name, True)]


def choose_packed_attention(
    recipe: Any,
    cuda: bool | None = None,
    flash: bool | None = None,
    measure: Callable[[Sequence[str]], dict[str, float | str]] | None = None,
) -> str | None:
    """Settle ``model_init_kwargs.attn_implementation``; returns the choice.

    For padding-free packing: flash-attn where installed; otherwise, on a GPU, the
    candidates are timed (forward + backward of one packed micro-batch) and the
    fastest is used; on a CPU it is ``sdpa_varlen``. Unpacked rows get flash-attn or
    SDPA. A kernel the recipe names is kept unless it is flash attention without the
    package; ``auto`` or nothing named lets this choose. None: nothing to settle.
    """
    init = recipe.model_init_kwargs if recipe.model_init_kwargs is not None else {}
    if not isinstance(init, dict):
        return None
    padding_free = bool(getattr(recipe, "packing", False)) and getattr(
        recipe, "packing_strategy", None
    ) in ("bfd", "bfd_split")
    named = init.get("attn_implementation")
    cuda = cuda_run(recipe) if cuda is None else cuda
    flash = (installed("flash_attn") and cuda) if flash is None else flash
    if named not in (None, AUTO, *FLASH) or (named in FLASH and flash):
        return str(named)
    if named is None and not padding_free:
        return None  # transformers' own default (SDPA)
    why = f"{named} is named but flash-attn is not installed" if named in FLASH else "auto"
    if flash:
        choice, detail = FLASH[0], "flash-attn is installed"
    elif not padding_free:
        choice, detail = "sdpa", "rows are not packed"
    elif not cuda:
        choice, detail = packed_attention.NAME, "no CUDA device"
    elif world_size() > 1 and measure is None:
        # Timings differ between processes; every rank must build the same model.
        choice = packed_candidates(True)[0]
        detail = f"{world_size()} processes: the order measured on one H200, not re-timed"
    else:
        candidates = packed_candidates(True)
        timings = (measure or measure_packed_attention(recipe))(candidates)
        timed = {k: v for k, v in timings.items() if isinstance(v, float)}
        choice = min(timed, key=lambda k: timed[k]) if timed else packed_attention.NAME
        detail = "measured fwd+bwd " + ", ".join(
            f"{k} {v:.2f} ms" if isinstance(v, float) else f"{k} failed ({v})"
            for k, v in timings.items()
        )
    recipe.model_init_kwargs = {**init, "attn_implementation": choice}
    rows = "packed rows" if padding_free else "rows"
    note(f"{rows} attend with {choice} ({why}; {detail})")
    return choice


def world_size() -> int:
    """Processes in this run, as torchrun / accelerate launch announce them."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def measure_packed_attention(recipe: Any) -> Callable[[Sequence[str]], dict[str, float | str]]:
    """A timer over the recipe's model shape and one micro-batch of packed tokens."""
    heads, kv_heads, head_dim = 32, 8, 128
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(recipe.model_name_or_path)
        heads = int(config.num_attention_heads)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    except Exception:  # a hub id offline: Llama-3.1-8B's shape is a fair stand-in
        pass
    tokens = int(recipe.max_length or 4096) * int(recipe.per_device_train_batch_size or 1)
    return lambda names: time_packed_attention(names, tokens, heads, kv_heads, head_dim)


def time_packed_attention(
    names: Sequence[str], tokens: int, heads: int, kv_heads: int, head_dim: int, repeats: int = 5
) -> dict[str, float | str]:
    """Milliseconds per forward + backward of one layer's attention (bf16, CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return {name: "no CUDA device" for name in names}
    lengths = _document_lengths(tokens)
    bounds = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], device="cuda")
    results: dict[str, float | str] = {}
    for name in names:
        try:
            attend = _attention(name, bounds, tokens, max(lengths))
            q = torch.randn(1, heads, tokens, head_dim, device="cuda", dtype=torch.bfloat16)
            k, v = (
                torch.randn(1, kv_heads, tokens, head_dim, device="cuda", dtype=torch.bfloat16)
                for _ in range(2)
            )
            q.requires_grad_(True), k.requires_grad_(True), v.requires_grad_(True)
            for _ in range(2):  # warm-up (and compilation for flex)
                attend(q, k, v).float().sum().backward()
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(repeats):
                attend(q, k, v).float().sum().backward()
            torch.cuda.synchronize()
            results[name] = (time.perf_counter() - start) * 1000 / repeats
        except Exception as error:  # a candidate that cannot run here is reported, not fatal
            results[name] = f"{type(error).__name__}: {str(error)[:80]}"
    return results


def _document_lengths(tokens: int) -> list[int]:
    """SFT traces of mixed lengths: 1/2, 1/4, 1/8 ... of the row, the rest in one."""
    lengths, left, piece = [], tokens, tokens // 2
    while left > 0 and piece >= 64:
        lengths.append(min(piece, left))
        left -= lengths[-1]
        piece //= 2
    if left > 0:
        lengths.append(left)
    return lengths


def _attention(name: str, bounds: Any, tokens: int, longest: int) -> Callable[..., Any]:
    import torch
    import torch.nn.functional as F

    if name == packed_attention.TORCH_VARLEN:
        return lambda q, k, v: packed_attention.varlen_call(
            q[0].transpose(0, 1), k[0].transpose(0, 1), v[0].transpose(0, 1), bounds, longest
        )
    if name == packed_attention.NAME:
        cuts = [int(b) for b in bounds.tolist()]

        def per_sequence(q: Any, k: Any, v: Any) -> Any:
            return torch.cat(
                [
                    F.scaled_dot_product_attention(
                        q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], is_causal=True, enable_gqa=True
                    )
                    for a, b in zip(cuts[:-1], cuts[1:], strict=False)
                ],
                dim=2,
            )

        return per_sequence
    if name == "flex_attention":
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        document = torch.repeat_interleave(
            torch.arange(len(bounds) - 1, device="cuda"), bounds.diff()
        )

        def causal_same_document(b: Any, h: Any, q_idx: Any, kv_idx: Any) -> Any:
            return (q_idx >= kv_idx) & (document[q_idx] == document[kv_idx])

        mask = create_block_mask(causal_same_document, None, None, tokens, tokens, device="cuda")
        compiled = torch.compile(flex_attention)
        return lambda q, k, v: compiled(q, k, v, block_mask=mask, enable_gqa=True)
    raise ValueError(f"unknown packed attention {name!r}")


# ------------------------------------------------------------------------- rollouts


def resolve_rollouts(recipe: Any, cuda: bool | None = None, vllm: bool | None = None) -> str:
    """Pick the GRPO rollout engine before the trainer is built; returns its name.

    vLLM where the recipe asks for it and it is installed; else ``model.generate``,
    on a GPU with a static KV cache (compiled by :func:`compile_rollouts`) unless the
    recipe names another ``cache_implementation``.
    """
    cuda = cuda_run(recipe) if cuda is None else cuda
    vllm = installed("vllm") if vllm is None else vllm
    if recipe.use_vllm and vllm and cuda:
        return f"vllm ({recipe.vllm_mode})"
    if recipe.use_vllm:
        missing = "vllm is not installed" if not vllm else "no CUDA device"
        recipe.use_vllm = False
        note(f"use_vllm off: {missing}; rollouts come from model.generate")
    if not cuda:
        return "generate"
    if getattr(recipe, "use_transformers_continuous_batching", False):
        # TRL's other path: generate_batch with a paged KV cache, a new manager per rollout.
        note("rollouts: transformers continuous batching (use_transformers_continuous_batching)")
        return "generate_batch (continuous batching)"
    if recipe.cache_implementation is None:
        recipe.cache_implementation = "static"
        # Prompt widths rounded up, so the compiled decode meets few distinct cache shapes.
        if getattr(recipe, "pad_to_multiple_of", None) in (None, AUTO):
            recipe.pad_to_multiple_of = 64
    if recipe.cache_implementation != "static":
        return f"generate ({recipe.cache_implementation} cache)"
    note(
        "rollouts: model.generate with a static KV cache and compiled decoding "
        "(cache_implementation: dynamic turns it off)"
    )
    if getattr(recipe, "use_liger_kernel", False):
        # In TRL 1.16 `use_liger_kernel` only patches the layers (RMSNorm, RoPE, SwiGLU;
        # its fused linear cross-entropy is refused) since GRPOTrainer always computes the
        # log-probabilities with its own chunked LM head, Liger or not. Those layer kernels
        # are plain Triton launches torch.compile cannot trace: the decode graph breaks at
        # every layer (one H200: GRPO step 66.1 s with them, 31.5 s without). So nothing
        # of the loss fusion is lost by dropping them here.
        recipe.use_liger_kernel = False
        note(
            "use_liger_kernel off for RL: its layer kernels break the compiled rollout decode "
            "(TRL's chunked log-prob LM head stays on)"
        )
    return "generate (static cache, compiled)"


def compile_rollouts(trainer: Any) -> bool:
    """TRL builds its generation config with compilation off; a static cache on a GPU
    only pays when the decode step is compiled, so switch it back on."""
    args = trainer.args
    config = getattr(trainer, "generation_config", None)
    if args.use_vllm or config is None or args.cache_implementation != "static":
        return False
    if not cuda_run(args):
        return False
    config.disable_compile = False
    return True


# ------------------------------------------------------------ activation checkpointing


def resolve_checkpointing(recipe: Any, **given: Any) -> memory_plan.Plan | None:
    """``activation_checkpointing: auto`` settled by a memory estimate (see
    :func:`memory_plan.resolve`)."""
    return memory_plan.resolve(recipe, **given)


def quiet_legacy_checkpointing() -> None:
    """Silence transformers' FutureWarnings for the ``gradient_checkpointing_*`` aliases.

    The recipes use ``activation_checkpointing`` (the current name); the remaining
    warnings come from TRL 1.16 itself, which toggles checkpointing around every
    rollout through the old aliases. Only those three messages are filtered, and TRL's
    notice that ``use_liger_kernel`` will give way to Hub kernels.
    """
    warnings.filterwarnings(
        "ignore",
        message=r"`(is_gradient_checkpointing|gradient_checkpointing_(en|dis)able)` is deprecated",
        category=FutureWarning,
    )
    # TRL 1.16 warns on every trainer built with `use_liger_kernel` that Hub kernels
    # (`use_kernels`) will replace it; those are downloaded from the Hub at load time,
    # which an offline box cannot do, so the recipes keep Liger (README "GPU speed").
    warnings.filterwarnings(
        "ignore",
        message=r"`use_liger_kernel=True` is deprecated",
        category=FutureWarning,
    )


# ------------------------------------------------------------------- stage hooks


def prepare_sft(recipe: Any) -> None:
    """Everything SFT settles before its trainer is built."""
    quiet_legacy_checkpointing()
    resolve_liger(recipe)
    choose_packed_attention(recipe)
    resolve_checkpointing(recipe)


def prepare_rl(recipe: Any) -> str:
    """Everything RL settles before its trainer is built; returns the rollout engine."""
    quiet_legacy_checkpointing()
    resolve_liger(recipe)
    choose_packed_attention(recipe)
    engine = resolve_rollouts(recipe)
    resolve_checkpointing(recipe)  # after the rollouts: a static KV cache stays resident
    return engine
