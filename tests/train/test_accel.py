"""GPU options fall back cleanly: no Liger, no flash-attn, no vLLM, no CUDA.

Each fallback changes the recipe, says so in one stderr line, and never raises. The
real trainers are built on CPU with the 8B recipes (tiny model substituted), so the
hooks are exercised as a user runs them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from secreason.train import accel, packed_attention

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "foundation-sec-8b-reasoning"


def sft_like(**values: Any) -> SimpleNamespace:
    base = {
        "use_liger_kernel": True,
        "use_cpu": False,
        "packing": True,
        "packing_strategy": "bfd",
        "model_init_kwargs": {"dtype": "bfloat16", "attn_implementation": "auto"},
        "model_name_or_path": "nowhere",
        "max_length": 1024,
        "per_device_train_batch_size": 1,
    }
    return SimpleNamespace(**{**base, **values})


@pytest.mark.parametrize(
    ("cuda", "present", "kept", "says"),
    [
        (False, True, False, "no CUDA device"),
        (False, False, False, "no CUDA device"),
        (True, False, False, "liger-kernel is not installed"),
        (True, True, True, None),
    ],
)
def test_liger_is_kept_only_where_it_runs(
    capsys: pytest.CaptureFixture[str], cuda: bool, present: bool, kept: bool, says: str | None
) -> None:
    recipe = sft_like()
    assert accel.resolve_liger(recipe, cuda=cuda, present=present) is kept
    assert recipe.use_liger_kernel is kept
    err = capsys.readouterr().err
    if says is None:
        assert err == ""
    else:
        assert says in err and err.count("\n") == 1


def test_liger_off_in_the_recipe_is_left_alone(capsys: pytest.CaptureFixture[str]) -> None:
    recipe = sft_like(use_liger_kernel=False)
    assert not accel.resolve_liger(recipe, cuda=True, present=True)
    assert capsys.readouterr().err == ""


def _never(names: Any) -> dict[str, float | str]:
    raise AssertionError("nothing should be timed here")


@pytest.mark.parametrize(
    ("named", "packing", "cuda", "flash", "expected", "says"),
    [
        ("auto", True, False, False, packed_attention.NAME, "no CUDA device"),
        (None, True, False, False, packed_attention.NAME, "no CUDA device"),
        ("flash_attention_2", True, False, False, packed_attention.NAME, "not installed"),
        ("flash_attention_2", True, True, True, "flash_attention_2", None),
        ("auto", True, True, True, "flash_attention_2", "flash-attn is installed"),
        ("eager", True, True, False, "eager", None),
        (packed_attention.NAME, True, True, False, packed_attention.NAME, None),
        ("auto", False, True, False, "sdpa", "not packed"),
        ("flash_attention_2", False, True, False, "sdpa", "not installed"),
        (None, False, True, False, None, None),
    ],
)
def test_attention_choice(
    capsys: pytest.CaptureFixture[str],
    named: str | None,
    packing: bool,
    cuda: bool,
    flash: bool,
    expected: str | None,
    says: str | None,
) -> None:
    init = {"dtype": "bfloat16"} | ({"attn_implementation": named} if named else {})
    recipe = sft_like(packing=packing, model_init_kwargs=init)
    choice = accel.choose_packed_attention(recipe, cuda=cuda, flash=flash, measure=_never)
    assert choice == expected
    if expected is not None:
        assert recipe.model_init_kwargs["attn_implementation"] == expected
        assert recipe.model_init_kwargs["dtype"] == "bfloat16"
    err = capsys.readouterr().err
    assert (says in err) if says else err == ""


@pytest.mark.parametrize(
    ("timings", "expected"),
    [
        ({"torch_varlen": 1.5, "flex_attention": 2.0, "sdpa_varlen": 3.0}, "torch_varlen"),
        ({"torch_varlen": "RuntimeError: no kernel", "flex_attention": 2.0}, "flex_attention"),
        ({"torch_varlen": "boom", "flex_attention": "boom", "sdpa_varlen": "boom"}, "sdpa_varlen"),
        ({"sdpa_varlen": 0.5, "flex_attention": 0.9}, "sdpa_varlen"),
    ],
)
def test_on_gpu_the_fastest_measured_wins(
    capsys: pytest.CaptureFixture[str], timings: dict[str, float | str], expected: str
) -> None:
    recipe = sft_like()
    asked: list[list[str]] = []

    def measure(names: Any) -> dict[str, float | str]:
        asked.append(list(names))
        return timings

    assert accel.choose_packed_attention(recipe, cuda=True, flash=False, measure=measure) == (
        expected
    )
    assert asked and packed_attention.NAME in asked[0]
    err = capsys.readouterr().err
    assert f"attend with {expected}" in err and "measured fwd+bwd" in err
    assert "failed" in err or all(isinstance(v, float) for v in timings.values())


@pytest.mark.parametrize(
    ("env", "timed"),
    [({"WORLD_SIZE": "8"}, False), ({"WORLD_SIZE": "1"}, True), ({"WORLD_SIZE": "x"}, True)],
    ids=["8-processes-agree", "one-process-times", "garbage-means-one"],
)
def test_several_processes_do_not_time_their_own(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    timed: bool,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    asked: list[str] = []

    def timer(names: Any) -> dict[str, float | str]:
        asked.extend(names)
        return {"sdpa_varlen": 1.0}

    monkeypatch.setattr(accel, "measure_packed_attention", lambda recipe: timer)
    choice = accel.choose_packed_attention(sft_like(), cuda=True, flash=False)
    assert bool(asked) is timed
    assert choice == ("sdpa_varlen" if timed else accel.packed_candidates(True)[0])
    assert ("processes" in capsys.readouterr().err) is not timed


@pytest.mark.parametrize(
    ("cuda", "flex", "varlen", "expected"),
    [
        (False, True, True, ["sdpa_varlen"]),
        (True, True, True, ["flex_attention", "sdpa_varlen", "torch_varlen"]),
        (True, False, True, ["sdpa_varlen", "torch_varlen"]),
        (True, True, False, ["flex_attention", "sdpa_varlen"]),
    ],
)
def test_candidates(cuda: bool, flex: bool, varlen: bool, expected: list[str]) -> None:
    assert accel.packed_candidates(cuda, flex=flex, varlen=varlen) == expected


def test_the_timer_reports_instead_of_crashing_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    names = ["torch_varlen", "sdpa_varlen"]
    assert accel.time_packed_attention(names, 256, 4, 2, 16) == dict.fromkeys(
        names, "no CUDA device"
    )


@pytest.mark.parametrize("tokens", [64, 100, 1024, 16384])
def test_document_lengths_fill_the_row(tokens: int) -> None:
    lengths = accel._document_lengths(tokens)
    assert sum(lengths) == tokens and all(n > 0 for n in lengths) and len(lengths) >= 1


DYNAMIC = {"use_vllm": False, "cache_implementation": "dynamic"}


def rl_like(**values: Any) -> SimpleNamespace:
    base = {
        "use_vllm": True,
        "vllm_mode": "colocate",
        "use_cpu": False,
        "cache_implementation": None,
        "pad_to_multiple_of": None,
    }
    return SimpleNamespace(**{**base, **values})


@pytest.mark.parametrize(
    ("values", "cuda", "vllm", "engine", "cache", "says"),
    [
        ({}, True, True, "vllm (colocate)", None, None),
        ({}, True, False, "generate (static cache, compiled)", "static", "vllm is not installed"),
        ({}, False, True, "generate", None, "no CUDA device"),
        ({}, False, False, "generate", None, "vllm is not installed"),
        ({"use_vllm": False}, True, False, "generate (static cache, compiled)", "static", "static"),
        (
            {"use_vllm": False, "cache_implementation": "dynamic"},
            True,
            False,
            "dynamic",
            "dynamic",
            None,
        ),
        ({"use_vllm": False}, False, False, "generate", None, None),
    ],
)
def test_rollout_engine(
    capsys: pytest.CaptureFixture[str],
    values: dict[str, Any],
    cuda: bool,
    vllm: bool,
    engine: str,
    cache: str | None,
    says: str | None,
) -> None:
    recipe = rl_like(**values)
    assert engine in accel.resolve_rollouts(recipe, cuda=cuda, vllm=vllm)
    assert recipe.cache_implementation == cache
    assert recipe.use_vllm == engine.startswith("vllm")
    if cache == "static":
        assert recipe.pad_to_multiple_of == 64
    err = capsys.readouterr().err
    assert (says in err) if says else err == ""


@pytest.mark.parametrize(
    ("values", "cuda", "vllm", "liger"),
    [
        ({}, True, True, True),  # vLLM rollouts: Liger only trains, it stays
        ({}, True, False, False),  # compiled generate: Liger would break the decode graph
        (DYNAMIC, True, False, True),  # nothing compiled: Liger stays
    ],
    ids=["vllm", "compiled-generate", "dynamic-generate"],
)
def test_liger_is_dropped_only_for_compiled_rollouts(
    capsys: pytest.CaptureFixture[str], values: dict[str, Any], cuda: bool, vllm: bool, liger: bool
) -> None:
    recipe = rl_like(use_liger_kernel=True, **values)
    accel.resolve_rollouts(recipe, cuda=cuda, vllm=vllm)
    assert recipe.use_liger_kernel is liger
    assert ("use_liger_kernel off for RL" in capsys.readouterr().err) is not liger


def test_legacy_checkpointing_aliases_are_quiet(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        accel.quiet_legacy_checkpointing()
        model.gradient_checkpointing_enable()
        assert model.is_gradient_checkpointing
        model.gradient_checkpointing_disable()
        warnings.warn(
            "`use_liger_kernel=True` is deprecated and will be removed in v2.0.0. Use the Hub "
            "kernels instead",
            FutureWarning,
            stacklevel=1,
        )
        warnings.warn("an unrelated FutureWarning", FutureWarning, stacklevel=1)
    messages = [str(w.message) for w in seen]
    assert not any("gradient_checkpointing" in m for m in messages), messages
    assert not any("use_liger_kernel" in m for m in messages), messages
    assert "an unrelated FutureWarning" in messages


def test_8b_recipes_train_on_cpu_with_every_gpu_option_falling_back(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 8B recipes as shipped (Liger on, attention auto, vLLM on) build on a CPU box
    without liger-kernel, flash-attn or vLLM: each option is switched off, with a line."""
    from secreason.train.config import RLRecipe, SFTRecipe, load_recipe
    from secreason.train.rl import build_rl_trainer
    from secreason.train.sft import build_sft_trainer

    reply = {"role": "assistant", "content": "<think>\nclue words here\n</think>\nAnswer: A"}
    user = {"role": "user", "content": "Which? A) x B) y"}
    (tmp_path / "sft.jsonl").write_text(json.dumps({"messages": [user, reply]}) + "\n")
    rl_rows = [{"prompt": [user], "task": "mcq", "reference": "A"}] * 5
    (tmp_path / "rl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rl_rows))
    common = [f"model_name_or_path={tiny_model_dir}", "bf16=false", "use_cpu=true"]
    sft = load_recipe(
        RECIPES / "sft.yaml",
        SFTRecipe,
        [*common, f"dataset_path={tmp_path / 'sft.jsonl'}", f"output_dir={tmp_path / 's'}"]
        + ["eos_token=<|end|>", "max_length=128", "model_init_kwargs={attn_implementation: auto}"],
    )
    assert sft.use_liger_kernel
    trainer = build_sft_trainer(sft)
    assert trainer.model.config._attn_implementation == packed_attention.NAME
    assert not trainer.args.use_liger_kernel
    rl = load_recipe(
        RECIPES / "rl.yaml",
        RLRecipe,
        [*common, f"dataset_path={tmp_path / 'rl.jsonl'}", f"output_dir={tmp_path / 'r'}"]
        + ["max_completion_length=8", "model_init_kwargs={attn_implementation: auto}"],
    )
    assert rl.use_vllm and rl.use_liger_kernel
    trainer = build_rl_trainer(rl)
    assert not trainer.args.use_vllm and not trainer.args.use_liger_kernel
    assert trainer.args.cache_implementation is None  # no static cache on a CPU
    assert trainer.generation_config.disable_compile
    err = capsys.readouterr().err
    assert err.count("use_liger_kernel off: no CUDA device") == 2
    # `activation_checkpointing: auto` sizes against GPU memory; none here, so off, said.
    assert err.count("activation checkpointing off: no CUDA device") == 2
    assert trainer.args.activation_checkpointing is False
    assert "packed rows attend with sdpa_varlen" in err
    assert "use_vllm off" in err


def test_torch_varlen_on_cpu_is_sdpa_varlen(tiny_model_dir: Path) -> None:
    """Off CUDA the ``torch_varlen`` name still loads and packs exactly (per sequence)."""
    import torch
    from transformers import AutoModelForCausalLM

    packed_attention.register()
    lengths = (5, 9, 2)
    ids = torch.arange(5, 5 + sum(lengths))[None]
    bounds = torch.tensor([0, 5, 14, 16], dtype=torch.int32)
    row = {
        "input_ids": ids,
        "position_ids": torch.cat([torch.arange(n) for n in lengths])[None],
        "cu_seq_lens_q": bounds,
        "cu_seq_lens_k": bounds,
        "max_length_q": 9,
        "use_cache": False,
    }
    logits = {}
    for name in (packed_attention.TORCH_VARLEN, packed_attention.NAME):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=name)
        with torch.no_grad():
            logits[name] = model.eval()(**row).logits
    assert torch.equal(logits[packed_attention.TORCH_VARLEN], logits[packed_attention.NAME])


@pytest.mark.parametrize(("cuda", "says"), [(True, "continuous batching"), (False, None)])
def test_continuous_batching_rollouts_keep_no_static_cache(
    capsys: pytest.CaptureFixture[str], cuda: bool, says: str | None
) -> None:
    """TRL's `use_transformers_continuous_batching` pages its own cache: no static cache
    (nothing for compile_rollouts to switch on), and Liger is left as the recipe says."""
    recipe = rl_like(use_transformers_continuous_batching=True, use_liger_kernel=True)
    engine = accel.resolve_rollouts(recipe, cuda=cuda, vllm=False)
    assert engine == ("generate_batch (continuous batching)" if cuda else "generate")
    assert recipe.cache_implementation is None and recipe.pad_to_multiple_of is None
    assert recipe.use_liger_kernel and not recipe.use_vllm
    err = capsys.readouterr().err
    assert "use_vllm off" in err and ((says in err) if says else "continuous" not in err)
