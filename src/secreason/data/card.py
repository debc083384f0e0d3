"""The data card: what a data set contains and how clean it is, in one markdown page.

Written from the pipeline's ``summary.json`` so that the card can never disagree with
the figures the run measured: counts per task and domain, teacher pass rates and
difficulty grades, trace lengths, dedup and decontamination figures, the mix against
its targets, and the recipe that made it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in rows]
    return lines


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f} %"


def render_card(summary: dict[str, Any]) -> str:
    recipe = summary.get("recipe", {})
    out: list[str] = [f"# Data card: {recipe.get('name', 'data')}", ""]
    outputs = summary.get("outputs", {})
    out += ["## Outputs", ""]
    out += _table(["set", "rows", "path"], [[k, v["rows"], v["path"]] for k, v in outputs.items()])

    stats = summary.get("stats", {})
    out += ["", "## Per task", ""]
    rows = []
    for task, e in sorted(stats.get("per_task", {}).items()):
        diff = ", ".join(f"{k} {v}" for k, v in sorted(e.get("difficulty", {}).items()))
        rows.append(
            [
                task,
                e["sft"],
                e["rl"],
                e["heldout"],
                _pct(e.get("teacher_pass_rate")),
                diff,
                e.get("trace_words_median"),
                e.get("trace_words_max"),
            ]
        )
    out += _table(
        [
            "task",
            "SFT",
            "RL",
            "held-out",
            "teacher pass rate",
            "difficulty",
            "trace words (median)",
            "max",
        ],  # noqa: E501
        rows,
    )

    teacher = summary.get("teacher", {})
    if teacher:
        counts = teacher.get("counts", {})
        out += ["", "## Teacher", ""]
        out += [
            f"Teacher `{recipe.get('teacher', {}).get('kind', '?')}`: "
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + f" of {teacher.get('total')} items "
            + f"({teacher.get('skipped_existing', 0)} reused from an earlier run)."
        ]

    mix = summary.get("mix", {})
    for stage in ("sft", "rl"):
        m = mix.get(stage)
        if not m or not m.get("target"):
            continue
        out += ["", f"## {stage.upper()} mix", ""]
        total = sum(m["counts"].values()) or 1
        out += _table(
            ["domain", "target", "actual", "rows", "available", "shortfall"],
            [
                [
                    d,
                    _pct(t),
                    _pct(m["counts"].get(d, 0) / total),
                    m["counts"].get(d, 0),
                    m["available"].get(d, 0),
                    m["shortfall"].get(d, 0),
                ]
                for d, t in m["target"].items()
            ],
        )
        if m.get("missing_domains"):
            out += ["", f"No data for: {', '.join(m['missing_domains'])} (ratios renormalised)."]

    d = summary.get("dedup", {})
    if d:
        out += ["", "## Dedup", ""]
        out += [
            f"{d['n_in']} items in, {d['n_kept']} kept: {d['exact_removed']} exact and "
            f"{d['near_removed']} near duplicates removed "
            f"(MinHash LSH, Jaccard >= {recipe.get('dedup', {}).get('threshold')}; only items "
            "with the same task and gold answer count as duplicates).",
        ]
        if d.get("conflicting_labels"):
            out += [f"Identical texts with different gold answers: {d['conflicting_labels']}."]
        if d.get("cross_split_removed"):
            out += [
                "Across splits (removed -> kept): "
                + ", ".join(f"{k} {v}" for k, v in d["cross_split_removed"].items())
            ]

    dc = summary.get("decontaminate", {})
    out += ["", "## Decontamination", ""]
    if "skipped" in dc:
        out += [f"Skipped: {dc['skipped']}."]
    elif dc:
        cfg = dc.get("config", {})
        out += [
            f"{dc['n_removed']} of {dc['n_samples']} training items removed "
            f"({cfg.get('n')}-gram overlap on prompts and answers, CVE ids; "
            f"benchmarks from `{dc.get('benchmarks_folder')}`).",
            "",
        ]
        out += _table(
            [
                "benchmark",
                "removed",
                "reasons",
                "boilerplate n-grams ignored",
                "KB n-grams ignored",
                "items too short",
            ],
            [
                [
                    b,
                    e["removed"],
                    ", ".join(f"{k} {v}" for k, v in e["reasons"].items()),
                    dc["boilerplate_ngrams_dropped"].get(b, 0),
                    dc.get("kb_ngrams_ignored", {}).get(b, 0),
                    dc["benchmark_items_too_short_to_check"].get(b, 0),
                ]
                for b, e in sorted(dc["per_benchmark"].items())
            ],
        )
        examples = [(b, x) for b, e in sorted(dc["per_benchmark"].items()) for x in e["examples"]]
        if examples:
            out += ["", "Examples (sample id, reason, benchmark item index):", ""]
            out += [
                f"- `{b}`: {x['sample_id']} ({x['reason']}, item "
                f"{x.get('benchmark_item', {}).get('item', '-')})"
                for b, x in examples[:20]
            ]

    timings = summary.get("timings_s", {})
    if timings:
        out += ["", "## Time per step (s)", ""]
        out += _table(list(timings), [list(timings.values())])
    out += ["", "## Recipe", "", "```json", json.dumps(recipe, indent=2, default=str), "```", ""]
    return "\n".join(out)


def write_card(summary: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.write_text(render_card(summary), encoding="utf-8")
    return p
