"""Stage 2: RL from verifiable rewards with TRL's GRPOTrainer and a format penalty.

Departures from TRL's defaults, each for a reason from the paper (arXiv 2601.21051):

* ``loss_type: grpo`` (per-sample aggregation). TRL's default ``dapo`` token-mean
  made multi-task training degenerate into long gibberish on weak tasks;
  ``dr_grpo`` is the documented alternative that also stays stable.
* ``beta: 0.02``, a KL anchor to the SFT model. TRL builds the reference model from
  the policy's saved path, so RL always starts from a saved model folder (the SFT
  stage's ``final``), never from an in-memory model.
* a format penalty (see :mod:`secreason.train.rewards`), because the verifier only
  reads answers and GRPO otherwise learns to drop its reasoning.
* ``mask_truncated_completions: true``: a completion cut by the length limit has no
  answer; it should not be scored as wrong, just not learned from.

Rollouts come from vLLM where the recipe's ``use_vllm`` asks and it is installed
(``vllm_mode``: colocate or server), else from ``model.generate``, on a GPU with a
static KV cache and compiled decoding (``accel.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secreason.train import accel
from secreason.train.config import RecipeError, RLRecipe
from secreason.train.length_check import check_rl
from secreason.train.rewards import (
    RewardMetricsCallback,
    RewardSuite,
    check_reward_coverage,
)
from secreason.train.stage import (
    load_rows,
    lora_config,
    require_columns,
    run_stage,
    stage_main,
)


def template_prefills(tokenizer: Any, open_tag: str = "<think>") -> bool:
    """True when the chat template's generation prompt already opens the reasoning."""
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
    )
    return str(rendered).rstrip().endswith(open_tag)


def _as_prompt_rows(data: Any) -> Any:
    """Accept SFT-style rows too: the prompt is the conversation before the last reply."""
    if "prompt" in data.column_names or "messages" not in data.column_names:
        return data

    def strip_reply(row: dict[str, Any]) -> dict[str, Any]:
        turns = list(row["messages"])
        if turns and turns[-1].get("role") == "assistant":
            turns = turns[:-1]
        return {"prompt": turns}

    return data.map(strip_reply, remove_columns=["messages"])


def build_reward_suite(recipe: RLRecipe, data: Any, tokenizer: Any) -> RewardSuite:
    """Rewards for the tasks present in the data; refuses rows with no reward."""
    from secreason.tasks import task_names

    allowed = recipe.reward_tasks or task_names()
    check_reward_coverage(data, allowed, recipe.task_options)
    present = sorted(set(data["task"]))
    prefilled = template_prefills(tokenizer) if recipe.prefilled is None else recipe.prefilled
    eos = tokenizer.eos_token_id
    return RewardSuite.from_names(
        present,
        recipe.task_options,
        format_config=recipe.format_config(),
        format_penalty=recipe.format_penalty,
        prefilled=prefilled,
        eos_token_ids=(eos,) if eos is not None else (),
    )


def build_rl_trainer(recipe: RLRecipe, callbacks: Sequence[Any] = ()) -> Any:
    """The GRPOTrainer for a recipe, with its reward suite and metrics callback."""
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    data = _as_prompt_rows(load_rows(recipe.dataset_path, recipe.max_train_samples))
    require_columns(data, ["prompt", "task", "reference"], recipe.dataset_path)
    tokenizer = AutoTokenizer.from_pretrained(recipe.model_name_or_path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    check_rl(recipe, data, tokenizer)
    suite = build_reward_suite(recipe, data, tokenizer)
    weights = suite.weights()
    if recipe.reward_weights is not None and len(recipe.reward_weights) != len(weights):
        raise RecipeError(
            f"reward_weights has {len(recipe.reward_weights)} values but there are "
            f"{len(weights)} rewards ({', '.join(suite.tasks)}, format); leave it unset so "
            "tasks weigh 1 and the format penalty weighs format_penalty"
        )
    if recipe.reward_weights is None:
        recipe.reward_weights = weights
    accel.prepare_rl(recipe)  # Liger, rollout engine, checkpointing warnings (stderr)
    metrics = RewardMetricsCallback(suite, Path(str(recipe.output_dir)) / recipe.metrics_file)
    trainer = GRPOTrainer(
        model=recipe.model_name_or_path,
        reward_funcs=list[Any](suite.functions()),
        args=recipe,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=lora_config(recipe),
        callbacks=[metrics, *callbacks],
    )
    accel.compile_rollouts(trainer)
    trainer.secreason_rewards = suite  # type: ignore[attr-defined]
    return trainer


def run_rl(recipe: RLRecipe, callbacks: Sequence[Any] = ()) -> Path:
    """Train (or resume, or skip when finished) and return the exported model folder."""
    return run_stage("rl", recipe, lambda: build_rl_trainer(recipe, callbacks))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m secreason.train.rl RECIPE.yaml [key=value ...]`` (for accelerate)."""
    stage_main("secreason.train.rl", RLRecipe, run_rl, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
