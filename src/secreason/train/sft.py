"""Stage 1: supervised fine-tuning on reasoning traces, with TRL's SFTTrainer.

The data is conversational (a ``messages`` column whose last turn is the assistant's
``<think>...</think>`` reasoning and answer). Loss is on assistant tokens only (the
chat template's ``{% generation %}`` markers), sequences are packed (best-fit
decreasing, padding-free) when the recipe says so, and LoRA is optional. Packing needs
attention that respects sequence boundaries: flash attention where installed, else the
fastest measured of PyTorch's varlen kernel, flex attention and ``sdpa_varlen`` on a
GPU, ``sdpa_varlen`` on a CPU (``accel.py``). Nothing here reimplements training: this
module only wires a recipe to TRL and adds resume, the done marker and a plain
exported model folder.

Run it as ``secreason sft RECIPE.yaml [key=value ...]`` or, on several GPUs,
``accelerate launch --config_file ... -m secreason.train.sft RECIPE.yaml``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secreason.train import accel, packed_attention
from secreason.train.config import SFTRecipe
from secreason.train.length_check import check_sft
from secreason.train.stage import (
    load_rows,
    lora_config,
    require_columns,
    run_stage,
    stage_main,
)


def build_sft_trainer(recipe: SFTRecipe, callbacks: Sequence[Any] = ()) -> Any:
    """The SFTTrainer for a recipe (model, data, tokenizer, LoRA), not yet trained."""
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    packed_attention.register()
    accel.prepare_sft(recipe)  # Liger, packed attention, checkpointing warnings (stderr)
    data = load_rows(recipe.dataset_path, recipe.max_train_samples)
    require_columns(data, ["messages"], recipe.dataset_path)
    eval_data = load_rows(recipe.eval_dataset_path) if recipe.eval_dataset_path else None
    tokenizer = AutoTokenizer.from_pretrained(recipe.model_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    check_sft(recipe, data, tokenizer)
    return SFTTrainer(
        model=recipe.model_name_or_path,
        args=recipe,
        train_dataset=data,
        eval_dataset=eval_data,
        processing_class=tokenizer,
        peft_config=lora_config(recipe),
        callbacks=list(callbacks),
    )


def run_sft(recipe: SFTRecipe, callbacks: Sequence[Any] = ()) -> Path:
    """Train (or resume, or skip when finished) and return the exported model folder."""
    return run_stage("sft", recipe, lambda: build_sft_trainer(recipe, callbacks))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m secreason.train.sft RECIPE.yaml [key=value ...]`` (for accelerate)."""
    stage_main("secreason.train.sft", SFTRecipe, run_sft, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
