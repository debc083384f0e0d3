"""``activation_checkpointing: auto``: decided by a memory estimate, said on stderr.

Table-driven over the situations the 8B recipes meet (one H200, one 80 GB card, eight
GPUs under ZeRO-3, LoRA, GRPO with a reference and a static rollout cache, vLLM's
colocated share), plus the fallbacks (no CUDA, an unreadable model config) and the
recipe field itself. No GPU is needed: device memory and the model shape are given.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from secreason.train import accel, memory_plan
from secreason.train.memory_plan import Shape

LLAMA_8B = Shape(
    hidden=4096, intermediate=14336, layers=32, heads=32, kv_heads=8, vocab=128256, tied=False
)


def recipe(**values: Any) -> SimpleNamespace:
    base = {
        "stage": "sft",
        "activation_checkpointing": "auto",
        "activation_checkpointing_kwargs": {"use_reentrant": False},
        "model_name_or_path": "nowhere",
        "per_device_train_batch_size": 1,
        "max_length": 8192,
        "use_liger_kernel": True,
        "use_peft": False,
        "model_init_kwargs": {"dtype": "bfloat16"},
        "bf16": True,
    }
    return SimpleNamespace(**{**base, **values})


def rl_recipe(**values: Any) -> SimpleNamespace:
    base = {
        "stage": "rl",
        "per_device_train_batch_size": 10,
        "gradient_accumulation_steps": 4,
        "max_completion_length": 1024,
        "use_liger_kernel": False,
        "beta": 0.02,
        "cache_implementation": "static",
        "use_vllm": False,
        "activation_checkpointing_kwargs": None,
    }
    return recipe(**{**base, **values})


def test_the_8b_shape_counts_8b_parameters() -> None:
    assert LLAMA_8B.params() == 8_030_261_248 - 4096 * 32 * 2 - 4096  # norms left out


BIG = {"max_length": 16384, "per_device_train_batch_size": 2}  # the recipe's micro-batch
ZERO3 = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}
FSDP = {"ACCELERATE_USE_FSDP": "true"}


@pytest.mark.parametrize(
    ("values", "device_gib", "world", "env", "on", "every", "says"),
    [
        ({}, 141, 1, {}, False, 0, "off: estimated peak 100 of 141"),
        ({}, 80, 1, {}, True, 1, "on (every layer)"),
        ({"use_liger_kernel": False}, 141, 1, {}, False, 0, "off"),
        (BIG, 141, 1, {}, True, 1, "on"),
        (
            {"max_length": 16384, "per_device_train_batch_size": 2},
            141,
            8,
            ZERO3,
            True,
            3,
            "1 layer in 3",
        ),
        (
            {"max_length": 16384, "per_device_train_batch_size": 2},
            141,
            8,
            FSDP,
            True,
            3,
            "1 layer in 3",
        ),
        (BIG, 80, 8, ZERO3, True, 1, "on"),
        ({"max_length": 4096}, 80, 1, {}, True, 2, "1 layer in 2"),
        ({"use_peft": True}, 80, 1, {}, False, 0, "off"),
        ({"max_length": 2048, "model_init_kwargs": {}, "bf16": False}, 141, 1, {}, True, 1, "on"),
    ],
    ids=[
        "h200-8k",
        "80gb-8k",
        "h200-no-liger",
        "h200-32k",
        "8xh200-zero3-32k",
        "8xh200-fsdp-32k",
        "8x80gb-zero3-32k",
        "80gb-4k",
        "lora-80gb",
        "float32-weights",
    ],
)
def test_sft_decision(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    values: dict[str, Any],
    device_gib: float,
    world: int,
    env: dict[str, str],
    on: bool,
    every: int,
    says: str,
) -> None:
    for key in (*ZERO3, *FSDP):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    r = recipe(**values)
    plan = accel.resolve_checkpointing(
        r, cuda=True, device_gib=device_gib, shape=LLAMA_8B, world=world
    )
    assert plan is not None and plan.checkpoint is on
    assert r.activation_checkpointing is on and r.gradient_checkpointing is on
    kwargs = r.activation_checkpointing_kwargs
    assert kwargs.get("every_n_layers") == (every if every > 1 else None)
    assert kwargs["use_reentrant"] is False  # the recipe's own kwargs are kept
    if every > 1:  # TRL reads the old name
        assert r.gradient_checkpointing_kwargs == kwargs
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "activation checkpointing" in err and says in err
    # The chosen plan fits the usable memory; a sparser one would not have.
    assert plan.static_gib + plan.activation_gib <= device_gib * memory_plan.HEADROOM


@pytest.mark.parametrize(
    ("values", "device_gib", "on"),
    [
        ({}, 141, True),  # 82 GiB resident: no room for 15k tokens of activations
        ({"max_completion_length": 256, "per_device_train_batch_size": 2}, 141, False),
        (
            {"cache_implementation": None, "beta": 0.0, "max_completion_length": 512}
            | {"per_device_train_batch_size": 4},
            141,
            False,
        ),
        # colocated vLLM keeps 35 % of the card: the same shape no longer fits
        (
            {"max_completion_length": 512, "use_vllm": True, "vllm_mode": "colocate"}
            | {"vllm_gpu_memory_utilization": 0.35, "cache_implementation": None}
            | {"per_device_train_batch_size": 4},
            141,
            True,
        ),
        (
            {"max_completion_length": 512, "use_vllm": True, "vllm_mode": "server"}
            | {"vllm_gpu_memory_utilization": 0.35, "cache_implementation": None, "beta": 0.0}
            | {"per_device_train_batch_size": 4},
            141,
            False,
        ),
    ],
    ids=["bench-shape", "short", "no-ref-no-cache", "vllm-colocate", "vllm-server"],
)
def test_rl_decides_all_or_nothing(
    capsys: pytest.CaptureFixture[str], values: dict[str, Any], device_gib: float, on: bool
) -> None:
    r = rl_recipe(**values)
    plan = accel.resolve_checkpointing(r, cuda=True, device_gib=device_gib, shape=LLAMA_8B, world=1)
    assert plan is not None and r.activation_checkpointing is on
    assert plan.every_n_layers in (0, 1)  # TRL's re-enable after a rollout drops every_n_layers
    assert not (r.activation_checkpointing_kwargs or {}).get("every_n_layers")
    err = capsys.readouterr().err
    assert "activation checkpointing" in err
    # The line names what stays resident beside the policy's own state.
    assert ("reference" in err) is (values.get("beta", 0.02) != 0.0)
    assert ("rollout cache" in err) is (values.get("cache_implementation", "static") == "static")


def test_the_reference_and_the_cache_count() -> None:
    base = {"param_bytes": 2, "full_ft": True, "shards": 1, "zero_stage": 0}
    plain = memory_plan.static_bytes(LLAMA_8B, reference=False, **base)
    with_ref = memory_plan.static_bytes(LLAMA_8B, reference=True, **base)
    assert with_ref - plain == LLAMA_8B.params() * 2
    cache = memory_plan.rollout_cache_bytes(rl_recipe(), LLAMA_8B, 2)
    # 40 rows x (1024 + 512) tokens x 32 layers x (K and V) x 1024 x 2 bytes
    assert cache == 40 * 1536 * 32 * 2 * 1024 * 2
    assert memory_plan.rollout_cache_bytes(recipe(), LLAMA_8B, 2) == 0.0


@pytest.mark.parametrize(
    ("cuda", "shape", "on", "says"),
    [
        (False, LLAMA_8B, False, "off: no CUDA device"),
        (True, None, True, "could not be read"),
    ],
    ids=["no-cuda", "unreadable-config"],
)
def test_fallbacks(
    capsys: pytest.CaptureFixture[str], cuda: bool, shape: Shape | None, on: bool, says: str
) -> None:
    r = recipe(model_name_or_path="/nonexistent/model")
    assert accel.resolve_checkpointing(r, cuda=cuda, device_gib=141, shape=shape) is None
    assert r.activation_checkpointing is on and r.gradient_checkpointing is on
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


@pytest.mark.parametrize("named", [True, False, None])
def test_a_named_value_is_left_alone(
    capsys: pytest.CaptureFixture[str], named: bool | None
) -> None:
    r = recipe(activation_checkpointing=named)
    assert accel.resolve_checkpointing(r, cuda=True, device_gib=80, shape=LLAMA_8B) is None
    assert r.activation_checkpointing is named
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("layers", "count", "every"), [(32, 16, 2), (32, 11, 3), (32, 1, 32), (3, 2, 2)]
)
def test_every_n_layers_checkpoints_that_many(layers: int, count: int, every: int) -> None:
    assert memory_plan._every(layers, count) == every
    assert len(range(0, layers, every)) == count  # transformers: layer_index % n == 0


def test_the_tiny_config_is_read(tiny_model_dir: Any) -> None:
    shape = memory_plan.shape_of(str(tiny_model_dir))
    assert shape is not None and shape.layers >= 1 and shape.params() > 0
    assert memory_plan.shape_of("/nonexistent/model") is None


@pytest.mark.parametrize(
    ("value", "ok"),
    [("auto", True), (True, True), (False, True), ("maybe", False), ("full", False)],
)
def test_the_recipe_field(value: Any, ok: bool) -> None:
    from secreason.train.config import RecipeError, SFTRecipe, load_recipe

    sft = Path(__file__).resolve().parents[2] / "recipes/foundation-sec-8b-reasoning/sft.yaml"
    overrides = ["bf16=false", "use_cpu=true", f"activation_checkpointing={value}"]
    if not ok:
        with pytest.raises(RecipeError, match="activation_checkpointing"):
            load_recipe(sft, SFTRecipe, overrides)
        return
    loaded = load_recipe(sft, SFTRecipe, overrides)
    assert loaded.activation_checkpointing == value
    assert load_recipe(sft, SFTRecipe, overrides[:2]).activation_checkpointing == "auto"


def test_switching_checkpointing_does_not_block_a_resume(tmp_path: Path) -> None:
    """Recomputing activations changes no result: an output_dir trained with
    checkpointing on continues under `auto` (or off) instead of being refused."""
    from secreason.train.config import SFTRecipe, load_recipe
    from secreason.train.continuation import plan
    from secreason.train.stage import prepare_output

    sft = Path(__file__).resolve().parents[2] / "recipes/foundation-sec-8b-reasoning/sft.yaml"
    common = ["bf16=false", "use_cpu=true", f"output_dir={tmp_path}"]
    before = load_recipe(sft, SFTRecipe, [*common, "activation_checkpointing=true"])
    prepare_output(before)
    for value in ("auto", "false"):
        after = load_recipe(sft, SFTRecipe, [*common, f"activation_checkpointing={value}"])
        assert plan(after).same
    changed = load_recipe(sft, SFTRecipe, [*common, "learning_rate=1e-4"])
    assert [c.name for c in plan(changed).changes] == ["learning_rate"]
