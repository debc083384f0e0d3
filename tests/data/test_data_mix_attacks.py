"""Hostile review of mixing: nothing is both an SFT row and an RL prompt, nothing held out
is trained on, and bad ratios are errors rather than an empty or lopsided mix."""

from __future__ import annotations

import math

import pytest

from secreason.data.mix import MixConfig, mix
from secreason.tasks.base import Sample


def _row(i: int, domain: str = "cyber", prompt: str | None = None, **extra) -> dict:
    text = prompt if prompt is not None else f"Question number {i} about item {i}?"
    sample = Sample(
        f"id{i}", "mcq", [{"role": "user", "content": text}], "A", extra.pop("meta", {})
    )
    return {"sample": sample, "domain": domain, "difficulty": "mixed", "trace": "t", **extra}


def _ids(rows: list[dict]) -> set[str]:
    return {r["sample"].id for r in rows}


CFG = MixConfig(sft_ratios={"cyber": 1.0}, rl_ratios={"cyber": 1.0}, rl_total=10)


def test_a_row_listed_twice_is_not_in_both_stages() -> None:
    rows = [_row(i) for i in range(20)]
    rows = rows + [dict(r) for r in rows]  # the same samples again (a caller's slip)
    sft, rl, _, _ = mix(rows, CFG)
    assert not _ids(sft) & _ids(rl)
    assert len(_ids(sft)) == len(sft)  # and no sample twice within SFT


def test_same_prompt_under_two_ids_is_not_in_both_stages() -> None:
    rows = [_row(i) for i in range(20)] + [
        _row(100 + i, prompt=f"QUESTION number {i} about item {i}") for i in range(20)
    ]  # noqa: E501
    sft, rl, _, _ = mix(rows, CFG)
    prompts = lambda rs: {r["sample"].messages[0]["content"].lower().rstrip("?") for r in rs}  # noqa: E731
    assert not prompts(sft) & prompts(rl)


def test_heldout_rows_are_refused() -> None:
    rows = [_row(i) for i in range(10)] + [_row(99, meta={"split": "heldout"})]
    with pytest.raises(ValueError, match="id99.*held-out"):
        mix(rows, CFG)


@pytest.mark.parametrize(
    "ratios",
    [{"cyber": -0.5, "math": 1.0}, {"cyber": math.nan}, {"cyber": math.inf}, {"cyber": 0.0}, {}],
    ids=["negative", "nan", "inf", "all-zero", "empty"],
)
def test_bad_ratios_are_errors(ratios: dict[str, float]) -> None:
    rows = [_row(i) for i in range(10)] + [_row(50 + i, "math") for i in range(10)]
    with pytest.raises(ValueError, match="ratio"):
        mix(rows, MixConfig(sft_ratios=ratios, rl_total=0))


def test_a_one_row_domain_stays_in_sft() -> None:
    """RL takes at most half of a domain's traced rows: SFT keeps some of every domain."""
    rows = [_row(i) for i in range(20)] + [_row(99, "safety")]
    cfg = MixConfig(
        sft_ratios={"cyber": 0.5, "safety": 0.5},
        rl_ratios={"cyber": 0.5, "safety": 0.5},
        rl_total=4,
    )
    sft, rl, _, _ = mix(rows, cfg)
    assert "id99" in _ids(sft) and "id99" not in _ids(rl)


def test_upsampling_never_repeats_an_rl_prompt_into_sft() -> None:
    rows = [_row(i) for i in range(10)]
    cfg = MixConfig(
        sft_ratios={"cyber": 1.0}, rl_ratios={"cyber": 1.0}, rl_total=4, sft_total=40, upsample=True
    )
    sft, rl, report, _ = mix(rows, cfg)
    assert len(sft) == 40 and not _ids(sft) & _ids(rl)


def test_same_input_same_mix() -> None:
    rows = [_row(i, "cyber" if i % 3 else "math") for i in range(60)]
    cfg = MixConfig(sft_ratios={"cyber": 0.6, "math": 0.4}, rl_ratios={"cyber": 1.0}, rl_total=8)
    a = mix(rows, cfg)
    b = mix([dict(r) for r in rows], cfg)
    assert [r["sample"].id for r in a[0]] == [r["sample"].id for r in b[0]]
    assert [r["sample"].id for r in a[1]] == [r["sample"].id for r in b[1]]
