"""Padding-free packed SFT without the flash-attn package (CPU, and GPUs without it).

TRL's best-fit packing flattens a whole batch into one row and marks where each
sequence starts (``position_ids`` restart at 0, ``cu_seq_lens_q`` holds the
boundaries). Flash attention reads the boundaries and attends inside each sequence.
Plain SDPA cannot: transformers then builds a block-diagonal mask over the whole
flattened row, so attention costs (rows x length) squared and packing ends up slower
than padding. This module registers one more attention implementation with
transformers, ``sdpa_varlen``: it cuts the flattened row at the boundaries the collator
already computed and runs ordinary causal SDPA on each sequence, so the cost is the
sum of the sequences' own squares and no token attends across a boundary.

SFT uses it when a recipe packs and names no kernel (or names it: ``model_init_kwargs:
{attn_implementation: sdpa_varlen}``); without boundaries (evaluation, generation,
unpacked batches) it is exactly transformers' SDPA. It only changes how attention is
computed, never what a model is, so the exported model folder does not mention it.

On a GPU a second one, ``torch_varlen``, hands the whole packed row to PyTorch's own
variable-length attention (``torch.nn.attention.varlen``, a flash kernel inside torch)
in one call per layer, with no Python loop over sequences. ``accel.py`` measures the
candidates on the device and picks one.
"""

from __future__ import annotations

from typing import Any

NAME = "sdpa_varlen"
TORCH_VARLEN = "torch_varlen"


def _packed_row(query: Any, key: Any, cu_seq_lens_q: Any) -> bool:
    """One packed training row: sequence boundaries given, a batch of one, and no KV
    cache in the way (as many keys as queries)."""
    return cu_seq_lens_q is not None and query.shape[0] == 1 and query.shape[2] == key.shape[2]


def varlen_sdpa_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: Any = None,
    cu_seq_lens_k: Any = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Causal SDPA per packed sequence; transformers' SDPA when nothing is packed."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    # A packed row comes with the block-diagonal mask transformers derives from the
    # restarting position ids; the per-sequence causal attention below is that mask.
    if not _packed_row(query, key, cu_seq_lens_q):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    bounds = [int(b) for b in cu_seq_lens_q.tolist()]
    if cu_seq_lens_k is not None and [int(b) for b in cu_seq_lens_k.tolist()] != bounds:
        raise ValueError("sdpa_varlen: query and key boundaries differ (not self-attention)")
    if bounds[0] != 0 or bounds[-1] != query.shape[2]:
        raise ValueError(
            f"sdpa_varlen: sequence boundaries {bounds[0]}..{bounds[-1]} do not cover "
            f"the packed row of {query.shape[2]} tokens"
        )
    pieces = [
        sdpa_attention_forward(
            module,
            query[:, :, start:end],
            key[:, :, start:end],
            value[:, :, start:end],
            None,
            dropout=dropout,
            scaling=scaling,
            is_causal=True,
        )[0]
        for start, end in zip(bounds[:-1], bounds[1:], strict=False)
        if end > start
    ]
    # sdpa_attention_forward returns (batch, length, heads, head_dim); join along length.
    return torch.cat(pieces, dim=1), None


def torch_varlen_available() -> bool:
    """PyTorch ships ``varlen_attn`` (2.9+); it runs on CUDA only."""
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return True


def varlen_call(
    query: Any, key: Any, value: Any, bounds: Any, longest: int, scaling: float | None = None
) -> Any:
    """Causal ``varlen_attn`` on (tokens, heads, dim) tensors, across torch versions.

    Its causality switch moved between releases (``is_causal=True`` in 2.9, a
    ``window_size=(-1, 0)`` from 2.10 on) and grouped-query attention arrived later;
    older releases get the key/value heads repeated.
    """
    import inspect

    import torch
    from torch.nn.attention.varlen import varlen_attn

    accepted = inspect.signature(varlen_attn).parameters
    options: dict[str, Any] = {}
    if "is_causal" in accepted:
        options["is_causal"] = True
    elif "window_size" in accepted:
        options["window_size"] = (-1, 0)
    else:
        raise RuntimeError("torch.nn.attention.varlen.varlen_attn has no causal option")
    if scaling is not None and abs(scaling - query.shape[-1] ** -0.5) > 1e-9:
        if "scale" not in accepted:
            raise ValueError(f"{TORCH_VARLEN}: this torch's varlen_attn takes no scale")
        options["scale"] = scaling
    if key.shape[1] != query.shape[1]:
        if "enable_gqa" in accepted:
            options["enable_gqa"] = True
        else:
            groups = query.shape[1] // key.shape[1]
            key = key.repeat_interleave(groups, dim=1)
            value = value.repeat_interleave(groups, dim=1)
    bounds = bounds.to(device=query.device, dtype=torch.int32)
    return varlen_attn(query, key, value, bounds, bounds, longest, longest, **options)


def torch_varlen_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: Any = None,
    cu_seq_lens_k: Any = None,
    max_length_q: Any = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """One varlen kernel call for a packed row; ``sdpa_varlen`` for everything else."""
    packed = _packed_row(query, key, cu_seq_lens_q) and query.is_cuda and dropout == 0.0
    if not packed:
        return varlen_sdpa_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            cu_seq_lens_q=cu_seq_lens_q,
            cu_seq_lens_k=cu_seq_lens_k,
            **kwargs,
        )
    longest = int(max_length_q) if max_length_q is not None else int(cu_seq_lens_q.diff().max())
    # transformers hands (batch, heads, tokens, dim); varlen_attn takes (tokens, heads, dim).
    out = varlen_call(
        query[0].transpose(0, 1),
        key[0].transpose(0, 1),
        value[0].transpose(0, 1),
        cu_seq_lens_q,
        longest,
        scaling,
    )
    return out[None], None


def register() -> str:
    """Make ``sdpa_varlen`` and ``torch_varlen`` loadable by name (idempotent); returns
    ``sdpa_varlen``.

    Their masks are SDPA's, so padded batches (evaluation, generation) stay correct.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, varlen_sdpa_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    AttentionInterface.register(TORCH_VARLEN, torch_varlen_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(TORCH_VARLEN, sdpa_mask)
    return NAME
