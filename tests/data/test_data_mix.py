"""Mixing honours ratios, reports shortfalls, and keeps RL and SFT disjoint."""

from __future__ import annotations

import pytest

from secreason.data.mix import PAPER_SFT_MIX, MixConfig, mix


def _rows(domain: str, n: int, difficulty: str = "always", trace: bool = True) -> list[dict]:
    return [
        {
            "id": f"{domain}{i}",
            "domain": domain,
            "difficulty": difficulty,
            "trace": "t" if trace else None,
        }
        for i in range(n)
    ]


def test_paper_mix_defaults() -> None:
    assert PAPER_SFT_MIX["cyber"] == pytest.approx(0.268)
    assert PAPER_SFT_MIX["math"] + PAPER_SFT_MIX["code"] == pytest.approx(1 / 3, abs=0.01)
    assert sum(PAPER_SFT_MIX.values()) == pytest.approx(1.0)


def test_largest_mix_that_fits_the_ratios() -> None:
    rows = _rows("cyber", 300) + _rows("math", 1000) + _rows("chat", 1000)
    cfg = MixConfig(sft_ratios={"cyber": 0.25, "math": 0.5, "chat": 0.25}, rl_total=0)
    sft, rl, report, _ = mix(rows, cfg)
    assert rl == []
    assert report.counts == {"cyber": 300, "math": 600, "chat": 300}
    assert report.actual() == pytest.approx({"cyber": 0.25, "math": 0.5, "chat": 0.25})
    assert len({r["id"] for r in sft}) == len(sft)


def test_shortfall_is_reported_not_padded() -> None:
    rows = _rows("cyber", 10) + _rows("math", 100)
    cfg = MixConfig(sft_ratios={"cyber": 0.5, "math": 0.5}, sft_total=100, rl_total=0)
    _, _, report, _ = mix(rows, cfg)
    assert report.counts == {"cyber": 10, "math": 50}
    assert report.shortfall == {"cyber": 40, "math": 0}


def test_missing_domain_renormalises_or_fails() -> None:
    rows = _rows("cyber", 10)
    _, _, report, _ = mix(rows, MixConfig(rl_total=0))
    assert report.counts == {"cyber": 10} and "math" in report.missing_domains
    with pytest.raises(ValueError, match="no data for domain"):
        mix(rows, MixConfig(renormalise_missing=False, rl_total=0))


def test_rl_prefers_mixed_difficulty_and_is_disjoint_from_sft() -> None:
    rows = (
        _rows("cyber", 50, "always")
        + [dict(r, id="m" + r["id"]) for r in _rows("cyber", 10, "mixed")]
        + [dict(r, id="n" + r["id"]) for r in _rows("cyber", 20, "never", trace=False)]
    )
    cfg = MixConfig(sft_ratios={"cyber": 1.0}, rl_ratios={"cyber": 1.0}, rl_total=15)
    sft, rl, sft_report, rl_report = mix(rows, cfg)
    assert len(rl) == 15
    assert sum(r["difficulty"] == "mixed" for r in rl) == 10  # all mixed ones first
    assert not {r["id"] for r in sft} & {r["id"] for r in rl}
    assert all(r["trace"] for r in sft)  # untraced rows can only be RL prompts
    assert rl_report.counts == {"cyber": 15}
