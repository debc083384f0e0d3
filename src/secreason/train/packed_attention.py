"""Padding-free packed SFT on machines without varlen flash attention (CPU).

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
"""

from __future__ import annotations

from typing import Any

NAME = "sdpa_varlen"


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
    packed = (
        cu_seq_lens_q is not None
        and query.shape[0] == 1
        and query.shape[2] == key.shape[2]  # training: no KV cache in the way
    )
    if not packed:
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


def register() -> str:
    """Make ``sdpa_varlen`` loadable by name (idempotent); returns the name.

    Its masks are SDPA's, so padded batches (evaluation, generation) stay correct.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, varlen_sdpa_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME
