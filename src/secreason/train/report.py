"""The demo's report folder: a markdown summary, PNG plots and the trained model.

The report states the measured outcomes with their n and paired bootstrap intervals
and says in words whether each target was met. It never picks a decoding or a subset
after the fact: both decodings are shown for every model and task.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from secreason.train.heldout import Decoding, Judged, paired_bootstrap, per_item
from secreason.train.rewards import read_metrics

MODELS = ("base", "sft", "rl")
FORMAT_TARGET = 0.95
#: Fewer RL steps than this cannot be judged by the gain target (the demo runs 200).
SHORT_RL_STEPS = 50


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def summarize(rows: Sequence[Judged], decoding: str, task: str | None = None) -> dict[str, float]:
    picked = [r for r in rows if r.decoding == decoding and (task is None or r.task == task)]
    return {
        "n": len({r.item for r in picked}),
        "completions": len(picked),
        "score": _mean([r.score for r in picked]),
        "format_valid": _mean([float(r.format_ok) for r in picked]),
        "reasoning_words": _mean([float(r.reasoning_words) for r in picked]),
    }


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over up to ``window`` points (the first points average fewer)."""
    import numpy as np

    if not values:
        return []
    data = np.asarray(values, dtype=float)
    sums = np.cumsum(np.insert(data, 0, 0.0))
    ends = np.arange(1, len(data) + 1)
    starts = np.maximum(0, ends - max(1, window))
    return list((sums[ends] - sums[starts]) / (ends - starts))


def _plot_curves(records: Sequence[dict[str, Any]], path: Path) -> None:
    """Per task: raw points faint, their moving average (a tenth of the run) bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({t for r in records for t in r["tasks"]})
    window = max(1, len(records) // 10)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for n, task in enumerate(tasks):
        color = f"C{n}"
        steps = [r["step"] for r in records if task in r["tasks"]]
        for ax, key in zip(axes, ("reward", "format_valid", "reasoning_words"), strict=True):
            raw = [float(r["tasks"][task][key]) for r in records if task in r["tasks"]]
            ax.plot(steps, raw, color=color, alpha=0.25, linewidth=0.8)
            ax.plot(steps, moving_average(raw, window), color=color, linewidth=2, label=task)
    titles = ("task reward (train rollouts)", "format-valid rate", "reasoning words")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(f"{title}\nfaint: raw, bold: {window}-step mean", fontsize=9)
        ax.set_xlabel("RL step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_lengths(results: Mapping[str, Sequence[Judged]], decoding: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rows in results.items():
        words = [r.reasoning_words for r in rows if r.decoding == decoding]
        if words:
            ax.hist(words, bins=30, alpha=0.5, label=f"{name} (n={len(words)})")
    ax.set_title(f"reasoning length on held-out items ({decoding})")
    ax.set_xlabel("words inside <think>")
    ax.set_ylabel("completions")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def short_run_note(config: Mapping[str, Any]) -> str:
    """Said beside an unmet gain target when RL ran too few steps to be judged by it
    (``demo --quick``: 6 steps check the pipeline; the target is the full demo's)."""
    steps = [
        o.split("=", 1)[1] for o in config.get("rl_overrides", ()) if o.startswith("max_steps=")
    ]
    if not steps or not steps[-1].isdigit() or int(steps[-1]) >= SHORT_RL_STEPS:
        return ""
    return (
        f" (RL ran {int(steps[-1])} steps, as `--quick` does to check the pipeline; the "
        "target is for the full `secreason demo`)"
    )


def write_report(
    out: Path,
    results: Mapping[str, Sequence[Judged]],
    *,
    metrics_path: Path,
    decodings: Sequence[Decoding],
    config: Mapping[str, Any],
    times: Mapping[str, float],
    model_dirs: Mapping[str, Path],
    format_penalty: bool,
) -> Path:
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    sampled, greedy = "sampled", "greedy"
    by_decoding = {d.name: d for d in decodings}
    tasks = sorted({r.task for rows in results.values() for r in rows})
    lines: list[str] = ["# secreason demo report", ""]
    lines += [
        "Tiny from-scratch model, template-teacher SFT, then GRPO with the task rewards "
        + ("and the format penalty." if format_penalty else "and NO format penalty (ablation)."),
        "",
    ]

    # ------------------------------------------------------------------ outcomes
    lines += ["## Measured outcomes", ""]
    sft_fmt = summarize(results["sft"], sampled)
    ok_fmt = sft_fmt["format_valid"] >= FORMAT_TARGET
    lines.append(
        f"- SFT format-valid rate on held-out ({sampled}, {sft_fmt['completions']} completions "
        f"of {sft_fmt['n']} items): **{_pct(sft_fmt['format_valid'])}** "
        f"(target >= {FORMAT_TARGET:.0%}: {'met' if ok_fmt else 'NOT met'}); greedy: "
        f"{_pct(summarize(results['sft'], greedy)['format_valid'])}."
    )
    gains: dict[str, Any] = {}
    for name in (sampled, greedy):
        gains[name] = paired_bootstrap(
            per_item(results["sft"], name), per_item(results["rl"], name)
        )
    g = gains[sampled]
    d = by_decoding[sampled]
    verdict = (
        "RL is above SFT by more than the interval (target met)"
        if g.significant
        else "no gain beyond the interval: the target is NOT met" + short_run_note(config)
    )
    lines.append(
        f"- Held-out mean score, {sampled} (temperature {d.temperature}, top_p {d.top_p}, "
        f"{d.samples} samples per item), n = {g.n} items: SFT {g.mean_a:.3f} -> RL "
        f"{g.mean_b:.3f}, gain **{g.gain:+.3f}** (paired bootstrap 95% CI "
        f"[{g.low:+.3f}, {g.high:+.3f}]): {verdict}."
    )
    gg = gains[greedy]
    lines.append(
        f"- Greedy beside it, n = {gg.n}: SFT {gg.mean_a:.3f} -> RL {gg.mean_b:.3f}, gain "
        f"{gg.gain:+.3f} (95% CI [{gg.low:+.3f}, {gg.high:+.3f}])."
    )
    lines.append("")

    # ------------------------------------------------------------------- table
    lines += [
        "## Held-out results per task",
        "",
        "Score is the task's strict score (`Task.judge`, the same function as the RL reward). "
        "Format-valid and reasoning words come from the reasoning contract.",
        "",
        "| task | model | n items | score (sampled) | score (greedy) | format-valid (sampled) "
        "| reasoning words (sampled) |",
        "|---|---|---|---|---|---|---|",
    ]
    for task in [*tasks, None]:
        for name in MODELS:
            s = summarize(results[name], sampled, task)
            gr = summarize(results[name], greedy, task)
            lines.append(
                f"| {task or '**all**'} | {name} | {s['n']} | {s['score']:.3f} | "
                f"{gr['score']:.3f} | {_pct(s['format_valid'])} | {s['reasoning_words']:.1f} |"
            )
    lines.append("")
    lines += ["Per task, RL minus SFT (sampled, paired bootstrap 95% CI):", ""]
    task_of = {r.item: r.task for rows in results.values() for r in rows}
    for task in tasks:
        a = {k: v for k, v in per_item(results["sft"], sampled).items() if task_of[k] == task}
        b = per_item(results["rl"], sampled)
        pg = paired_bootstrap(a, b)
        lines.append(f"- {task}: n = {pg.n}, {pg.gain:+.3f} [{pg.low:+.3f}, {pg.high:+.3f}]")
    lines.append("")

    # --------------------------------------------------------------- RL curves
    records = read_metrics(metrics_path)
    if records:
        _plot_curves(records, report / "rl_curves.png")
        share = _mean([r["reward_time_share"] for r in records])
        lines += [
            "## RL training",
            "",
            "![rewards and format rate per task over RL steps](rl_curves.png)",
            "",
            f"Reward computation took {100 * share:.2f}% of an RL step on average (target <= 2%).",
            "",
            "Per logged step, over all tasks (train rollouts): share of completions with a valid "
            "think block (all format checks), mean reasoning words, mean task reward.",
            "",
            "| step | format-valid | reasoning words | reward | truncated |",
            "|---|---|---|---|---|",
        ]
        for r in records:
            pooled = _pool(r["tasks"])
            lines.append(
                f"| {r['step']} | {_pct(pooled['format_valid'])} | "
                f"{pooled['reasoning_words']:.1f} | {pooled['reward']:.3f} | "
                f"{_pct(pooled['truncation'])} |"
            )
        lines.append("")
    _plot_lengths(results, sampled, report / "reasoning_length.png")
    lines += [
        "## Reasoning length",
        "",
        "![reasoning length distribution](reasoning_length.png)",
        "",
        "## Run",
        "",
        "Stage times (seconds): "
        + ", ".join(f"{k} {v:.1f}" for k, v in times.items())
        + f"; total {sum(times.values()):.1f}.",
        "",
        "Models: " + ", ".join(f"{k} `{v}`" for k, v in model_dirs.items()) + ".",
        "The trained model is copied to `report/model` (load it with "
        "`AutoModelForCausalLM.from_pretrained`).",
        "",
        "Config: `" + ", ".join(f"{k}={v}" for k, v in config.items()) + "`",
        "",
    ]
    summary = {
        "sft_format_valid": sft_fmt["format_valid"],
        "sft_format_completions": sft_fmt["completions"],
        "format_target_met": ok_fmt,
        "gain": {name: vars(pg) | {"significant": pg.significant} for name, pg in gains.items()},
        "models": {
            name: {dec: summarize(results[name], dec) for dec in (sampled, greedy)}
            for name in MODELS
        },
        "times": dict(times),
    }
    (report / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    model_copy = report / "model"
    if model_copy.exists():
        shutil.rmtree(model_copy)
    shutil.copytree(model_dirs["rl"], model_copy)
    path = report / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return report


def _pool(tasks: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    n = sum(t["n"] for t in tasks.values()) or 1
    keys = ("reward", "format_valid", "reasoning_words", "truncation")
    return {k: sum(t[k] * t["n"] for t in tasks.values()) / n for k in keys}
