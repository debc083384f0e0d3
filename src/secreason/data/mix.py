"""Mixing: hit the recipe's domain ratios, and set aside an RL split.

Foundation-Sec-8B-Reasoning's SFT set was 26.8 % cybersecurity, about a third math and
code, and the rest instruction following, chat, science and safety; its RL set mixed
instruction following, cyber and math. The paper gives only those shares, so the
split of the remainder in :data:`PAPER_SFT_MIX`, and the RL ratios of
:data:`PAPER_RL_MIX`, are this project's choice.

The mix is the largest set that honours every ratio with the data at hand (no item is
repeated unless ``upsample`` is set); a domain that falls short is reported, never
silently padded. RL items are chosen first, preferring prompts the teacher solved only
sometimes (``difficulty == "mixed"``: a gradient signal for GRPO), and are removed from
the SFT pool so that the two stages never see the same item: not the same sample id,
and not the same prompt under another id (normalised as exact dedup does). A row
listed twice counts once; a held-out row is refused (mixing is for training data);
a ratio that is negative, not finite, or a stage whose ratios are all zero is an error.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PAPER_SFT_MIX: dict[str, float] = {
    "cyber": 0.268,
    "math": 0.17,
    "code": 0.16,
    "instruction_following": 0.12,
    "chat": 0.12,
    "science": 0.10,
    "safety": 0.062,
}
PAPER_RL_MIX: dict[str, float] = {"instruction_following": 0.3, "cyber": 0.4, "math": 0.3}
DIFFICULTY_PREFERENCE = ("mixed", "unknown", "never", "always")


@dataclass
class MixConfig:
    sft_ratios: dict[str, float] = field(default_factory=lambda: dict(PAPER_SFT_MIX))
    rl_ratios: dict[str, float] = field(default_factory=lambda: dict(PAPER_RL_MIX))
    sft_total: int | None = None
    rl_total: int | None = 0
    #: renormalise the ratios over the domains that have data (else a missing one is fatal)
    renormalise_missing: bool = True
    upsample: bool = False
    seed: int = 0


@dataclass
class MixReport:
    target: dict[str, float]
    counts: dict[str, int]
    available: dict[str, int]
    shortfall: dict[str, int]
    missing_domains: list[str]

    def actual(self) -> dict[str, float]:
        total = sum(self.counts.values()) or 1
        return {d: c / total for d, c in self.counts.items()}


def _check_ratios(name: str, ratios: Mapping[str, float]) -> None:
    for domain, r in ratios.items():
        if not isinstance(r, (int, float)) or not math.isfinite(r) or r < 0:
            raise ValueError(
                f"mix.{name}: the ratio of {domain!r} must be a number >= 0, got {r!r}"
            )
    if not any(r > 0 for r in ratios.values()):
        raise ValueError(f"mix.{name}: no domain has a ratio above 0 ({dict(ratios)})")


def _key(row: Mapping[str, Any]) -> str:
    sample = row.get("sample")
    return str(sample.id) if sample is not None else str(row.get("id", id(row)))


def _prompt_key(row: Mapping[str, Any]) -> str:
    """The row's prompt, normalised as exact dedup does (its id when it has no sample)."""
    sample = row.get("sample")
    if sample is None:
        return "id:" + _key(row)
    from secreason.data.dedup import exact_key

    return exact_key("\n".join(m["content"] for m in sample.messages if m["role"] != "assistant"))


def _unique_training_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for row in rows:
        sample = row.get("sample")
        if sample is not None and sample.meta.get("split") == "heldout":
            raise ValueError(f"mix: row {sample.id} is a held-out item; only training rows mix")
        key = _key(row)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _quotas(
    available: Mapping[str, int], ratios: Mapping[str, float], total: int | None, cfg: MixConfig
) -> tuple[dict[str, int], dict[str, float], list[str]]:
    missing = [d for d, r in ratios.items() if r > 0 and available.get(d, 0) == 0]
    if missing and not cfg.renormalise_missing:
        raise ValueError(
            f"no data for domain(s) {missing}; add a source for them or set "
            "mix.renormalise_missing: true"
        )
    usable = {d: r for d, r in ratios.items() if r > 0 and available.get(d, 0) > 0}
    norm = sum(usable.values())
    if not usable:
        return {}, {}, missing
    target = {d: r / norm for d, r in usable.items()}
    if total is None:
        # The largest total for which no domain runs out.
        total = min(math.floor(available[d] / t) for d, t in target.items())
    quotas = {d: round(total * t) for d, t in target.items()}
    return quotas, target, missing


def _take(
    pool: list[dict[str, Any]], n: int, rng: random.Random, upsample: bool
) -> list[dict[str, Any]]:  # noqa: E501
    if n <= len(pool):
        return pool[:n]
    if not upsample:
        return list(pool)
    return pool + [rng.choice(pool) for _ in range(n - len(pool))]


def mix(
    rows: Sequence[dict[str, Any]], cfg: MixConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], MixReport, MixReport]:
    """Split rows into (sft, rl) and report both mixes.

    Each row has ``domain``, optionally ``difficulty`` (the teacher's grade) and
    ``trace`` (a kept teacher trace; rows without one can only be RL prompts). RL takes
    at most half of a domain's traced rows, so that SFT keeps some of every domain.
    """
    if cfg.sft_total != 0:
        _check_ratios("sft_ratios", cfg.sft_ratios)
    if cfg.rl_total:
        _check_ratios("rl_ratios", cfg.rl_ratios)
    rng = random.Random(cfg.seed)
    by_domain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _unique_training_rows(rows):
        by_domain[str(row["domain"])].append(row)
    for pool in by_domain.values():
        rng.shuffle(pool)
    rank = {d: i for i, d in enumerate(DIFFICULTY_PREFERENCE)}

    rl: list[dict[str, Any]] = []
    rl_counts: dict[str, int] = {}
    available = {d: len(p) for d, p in by_domain.items()}
    rl_quota, rl_target, rl_missing = _quotas(available, cfg.rl_ratios, cfg.rl_total, cfg)
    rl_prompts: set[str] = set()
    if cfg.rl_total:
        for d, q in rl_quota.items():
            pool = sorted(by_domain[d], key=lambda r: rank.get(str(r.get("difficulty")), 1))
            # Untraced rows can only be RL prompts; of the traced, RL takes at most half.
            traced_left = sum(1 for r in pool if r.get("trace")) // 2
            chosen: list[dict[str, Any]] = []
            for r in pool:
                if len(chosen) >= q:
                    break
                if _prompt_key(r) in rl_prompts or (r.get("trace") and traced_left <= 0):
                    continue
                traced_left -= bool(r.get("trace"))
                rl_prompts.add(_prompt_key(r))
                chosen.append(r)
            rl.extend(chosen)
            rl_counts[d] = len(chosen)
        # Nothing RL prompts on is trained on, under any id.
        by_domain = {
            d: [r for r in p if _prompt_key(r) not in rl_prompts] for d, p in by_domain.items()
        }
    rl_report = MixReport(
        rl_target,
        rl_counts,
        {d: available.get(d, 0) for d in rl_target},
        {d: max(0, rl_quota.get(d, 0) - rl_counts.get(d, 0)) for d in rl_target},
        rl_missing if cfg.rl_total else [],
    )

    # Only rows with a kept trace can be SFT rows.
    by_domain = {d: [r for r in p if r.get("trace")] for d, p in by_domain.items()}
    sft_available = {d: len(p) for d, p in by_domain.items()}
    quota, target, missing = _quotas(sft_available, cfg.sft_ratios, cfg.sft_total, cfg)
    sft: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for d, q in quota.items():
        taken = _take(by_domain[d], q, rng, cfg.upsample)
        sft.extend(taken)
        counts[d] = len(taken)
    rng.shuffle(sft)
    rng.shuffle(rl)
    sft_report = MixReport(
        target,
        counts,
        sft_available,
        {d: max(0, quota[d] - counts.get(d, 0)) for d in quota},
        missing,
    )
    return sft, rl, sft_report, rl_report
