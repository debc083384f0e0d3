"""Recipes: YAML into TRL configs, overrides, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.train.config import (
    RecipeError,
    RLRecipe,
    SFTRecipe,
    load_recipe,
    parse_override,
)

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
CPU = ["bf16=false", "use_cpu=true"]  # the GPU recipes say bf16, which TRL refuses on a CPU


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_fields_go_to_trl_and_project_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "model_name_or_path: m\noutput_dir: o\nlearning_rate: 3e-4\nbf16: false\n"
        "beta: 0.02\nloss_type: grpo\nformat_min_reasoning_words: 9\n",
    )
    recipe = load_recipe(path, RLRecipe)
    assert recipe.learning_rate == pytest.approx(3e-4)  # YAML 1.1 reads 3e-4 as a string
    assert recipe.beta == 0.02 and recipe.loss_type == "grpo"
    assert recipe.format_config().min_reasoning_words == 9


def test_overrides_win_and_are_read_as_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "model_name_or_path: m\noutput_dir: o\nmax_steps: 10\nbf16: false\n")
    recipe = load_recipe(path, SFTRecipe, ["max_steps=3", "--packing=true", "learning_rate=1e-3"])
    assert (recipe.max_steps, recipe.packing, recipe.learning_rate) == (3, True, 1e-3)


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (
            "model_name_or_path: m\nlearnig_rate: 1\n",
            [],
            r"recipe.yaml:2: unknown field 'learnig_rate'.*did you mean 'learning_rate'",
        ),
        ("model_name_or_path: m\nbf16: 3\n", [], r"recipe.yaml:2: bf16: expected true or false"),
        (
            "model_name_or_path: m\nmax_steps: many\n",
            [],
            r"recipe.yaml:2: max_steps: expected an integer, got 'many'",
        ),
        (
            "model_name_or_path: m\n",
            ["num_generatons=4"],
            r"command-line override.*did you mean 'num_generations'",
        ),
        ("output_dir: o\n", [], r"'model_name_or_path' is required"),
        ("- a\n- b\n", [], r"must be a YAML mapping"),
        ("model_name_or_path: [\n", [], r"not valid YAML"),
        (
            "model_name_or_path: m\nbf16: false\nloss_type: nope\n",
            [],
            r"recipe.yaml: invalid RLRecipe",
        ),
    ],
    ids=[
        "typo",
        "bad-bool",
        "bad-int",
        "override-typo",
        "no-model",
        "not-mapping",
        "bad-yaml",
        "trl-rejects",
    ],
)
def test_errors_name_the_file_line_and_field(
    tmp_path: Path, text: str, overrides: list[str], message: str
) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, text), RLRecipe, overrides)


@pytest.mark.parametrize("bad", ["novalue", "=3", ""], ids=["no-equals", "no-key", "empty"])
def test_malformed_override(bad: str) -> None:
    with pytest.raises(RecipeError, match="key=value"):
        parse_override(bad)


def test_missing_file() -> None:
    with pytest.raises(RecipeError, match="not found"):
        load_recipe("no/such/recipe.yaml", SFTRecipe)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("tiny-cpu/sft.yaml", SFTRecipe),
        ("tiny-cpu/rl.yaml", RLRecipe),
        ("foundation-sec-8b-reasoning/sft.yaml", SFTRecipe),
        ("foundation-sec-8b-reasoning/rl.yaml", RLRecipe),
    ],
)
def test_shipped_recipes_parse(name: str, cls: type) -> None:
    recipe = load_recipe(RECIPES / name, cls, CPU)
    if isinstance(recipe, RLRecipe):
        # The paper's choices, not TRL's defaults.
        assert recipe.loss_type == "grpo" and recipe.beta == 0.02
        assert recipe.mask_truncated_completions and recipe.format_penalty > 0


def test_8b_recipes_hold_the_paper_hyperparameters() -> None:
    sft = load_recipe(RECIPES / "foundation-sec-8b-reasoning/sft.yaml", SFTRecipe, CPU)
    rl = load_recipe(RECIPES / "foundation-sec-8b-reasoning/rl.yaml", RLRecipe, CPU)
    assert (sft.num_train_epochs, sft.learning_rate, sft.lr_scheduler_type.value) == (
        3,
        2e-5,
        "cosine",
    )
    assert "bf16: true" in (RECIPES / "foundation-sec-8b-reasoning/sft.yaml").read_text()
    assert sft.packing and sft.assistant_only_loss and sft.activation_checkpointing
    assert (rl.num_generations, rl.beta, rl.learning_rate, rl.num_train_epochs) == (
        5,
        0.02,
        1e-6,
        2,
    )
    assert rl.use_vllm and rl.vllm_mode == "colocate"


def test_yaml_no_for_a_strategy_field_means_the_string(tmp_path: Path) -> None:
    path = write(tmp_path, "model_name_or_path: m\nbf16: false\nsave_strategy: no\n")
    assert load_recipe(path, SFTRecipe).save_strategy.value == "no"


def test_chat_template_path_is_found_beside_the_recipe(tmp_path: Path) -> None:
    (tmp_path / "t.jinja").write_text("{{ messages }}")
    path = write(tmp_path, "model_name_or_path: m\nbf16: false\nchat_template_path: t.jinja\n")
    assert load_recipe(path, SFTRecipe).chat_template_path == str(tmp_path / "t.jinja")
