"""The data card: what a data set contains and how clean it is, in one markdown page.

Written from the pipeline's ``summary.json`` so that the card can never disagree with
the figures the run measured: counts per task and split, the shortcut audit (a
no-model baseline against chance), label conflicts resolved and cross-split near
duplicates, length percentiles against the SFT/RL limits, the teacher (pass rates and
difficulty only for a model teacher: the template teacher writes the gold by
construction), dedup and decontamination figures, the mix against its targets, and the
recipe that made it (without endpoint fields a template run never used).
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
    teacher_kind = recipe.get("teacher", {}).get("kind", "?")
    model_teacher = teacher_kind != "template"
    out += ["", "## Per task", ""]
    header = ["task", "SFT", "RL", "held-out", "trace words (median)", "max"]
    if model_teacher:
        header += ["teacher pass rate", "difficulty"]
    rows = []
    for task, e in sorted(stats.get("per_task", {}).items()):
        row = [
            task,
            e["sft"],
            e["rl"],
            e["heldout"],
            e.get("trace_words_median"),
            e.get("trace_words_max"),
        ]
        if model_teacher:
            diff = ", ".join(f"{k} {v}" for k, v in sorted(e.get("difficulty", {}).items()))
            row += [_pct(e.get("teacher_pass_rate")), diff]
        rows.append(row)
    out += _table(header, rows)
    out += _audit_section(summary.get("audit"))
    out += _consistency_section(summary.get("consistency"))
    out += _lengths_section(summary.get("lengths"))

    teacher = summary.get("teacher", {})
    if teacher:
        counts = teacher.get("counts", {})
        out += ["", "## Teacher", ""]
        tally = ", ".join(f"{k} {v}" for k, v in counts.items())
        if model_teacher:
            t = recipe.get("teacher", {})
            out += [
                f"Model teacher `{t.get('model')}` at `{t.get('base_url')}` (k={t.get('k')}, "
                f"temperature {t.get('temperature')}): {tally} of {teacher.get('total')} items "
                f"({teacher.get('skipped_existing', 0)} reused from an earlier run). Pass "
                "rates and difficulty grades above are the share of its k samples the "
                "task's verifier accepted."
            ]
        else:
            out += [
                "Template teacher (offline, deterministic): each trace writes out the facts "
                "stored with its item and ends with the gold answer, so it has no pass rate "
                f"or difficulty; the verifier still checks every trace: {tally} of "
                f"{teacher.get('total')} items."
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
            f"({cfg.get('n')}-gram overlap on prompts and answers, CVE ids, short items by "
            "their lines in any order; "
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
                "short items checked by lines",
                "items too short",
            ],
            [
                [
                    b,
                    e["removed"],
                    ", ".join(f"{k} {v}" for k, v in e["reasons"].items()),
                    dc["boilerplate_ngrams_dropped"].get(b, 0),
                    dc.get("kb_ngrams_ignored", {}).get(b, 0),
                    (dc.get("short_items_matched_by_lines") or {}).get(b, 0),
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
    shown = dict(recipe)
    if not model_teacher:  # endpoint fields were not used
        shown["teacher"] = {"kind": teacher_kind}
    out += ["", "## Recipe", "", "```json", json.dumps(shown, indent=2, default=str), "```", ""]
    return "\n".join(out)


def _audit_section(report: dict[str, Any] | None) -> list[str]:
    if not report:
        return []
    cfg = report.get("config", {})
    out = [
        "",
        "## Shortcut audit",
        "",
        "A no-model baseline answers each item from its prompt alone by string matching "
        "(CWE ids and names, ATT&CK ids and names, actor names, aliases, campaigns and "
        "software, CVSS metric phrases, MCQ option overlap); chance is the best constant "
        "answer that never reads the prompt. Ceiling: chance + "
        f"{100 * cfg.get('margin', 0):.0f} points, enforced on "
        f"{', '.join(cfg.get('enforce', [])) or 'no split'}. "
        + ("**Passed.**" if report.get("passed") else "**FAILED.**"),
        "",
    ]
    rows = []
    for r in report.get("rows", []):
        status = ("ok" if r["passed"] else "FAIL") if r["enforced"] else "measured"
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items()))
        rows.append(
            [
                r["task"],
                r["split"],
                r["n"],
                _pct(r["baseline"]),
                _pct(r["chance"]),
                r["solved"],
                reasons,
                status,
            ]
        )
    out += _table(
        ["task", "split", "items", "baseline", "chance", "solved from prompt", "how", "ceiling"],
        rows,
    )
    failed = [r for r in report.get("rows", []) if not r["passed"]]
    for r in failed:
        out += ["", f"Offending {r['task']} / {r['split']} items:", ""]
        out += [f"- `{e['id']}`: {e['why']} -> {e['answer']}" for e in r["examples"]]
    return out


def _consistency_section(c: dict[str, Any] | None) -> list[str]:
    if not c:
        return []
    out = [
        "",
        "## One gold per prompt",
        "",
        f"{c['n_in']} items in, {c['n_out']} out. Prompts (normalised) with several gold "
        f"answers: {c['conflicting_prompts']} ({c['resolved_by_union']} resolved by the union "
        f"of technique sets, {c['dropped_conflicts']} items dropped); training copies of "
        f"held-out prompts dropped: {c['cross_split_dropped']}; repeats merged: "
        f"{c['repeats_merged']}.",
    ]
    near = c.get("cross_split_near_duplicates")
    if near:
        out += [
            "",
            f"Held-out items with a MinHash near duplicate in SFT or RL (any gold, Jaccard >= "
            f"{near['threshold']}): {near['heldout_with_train_near_duplicate']} of "
            f"{near['heldout']}.",
        ]
    return out


def _lengths_section(lengths: dict[str, Any] | None) -> list[str]:
    if not lengths or not lengths.get("splits"):
        return []
    out = ["", "## Lengths", "", f"Counted in {lengths['unit']}.", ""]
    out += _table(
        ["set", "rows", "p50", "p90", "p99", "max", "limit", "over limit"],
        [
            [k, v["n"], v["p50"], v["p90"], v["p99"], v["max"], v["limit"], v["over_limit"]]
            for k, v in lengths["splits"].items()
        ],
    )
    return out


def write_card(summary: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.write_text(render_card(summary), encoding="utf-8")
    return p
