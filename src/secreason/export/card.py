"""The model card: a Hugging Face ``README.md`` whose numbers come from eval reports.

A card is where a model's claims travel with it, so nothing in it is typed by hand:
``model-index`` (the metadata the Hub renders as evaluation results) is filled from
``secreason eval`` reports (each benchmark's headline metric per protocol, the trial
count and mean ± std), the training section from the stage marker and recipe the
trainer left next to the weights, the data section from a data run's summary, and the
deployment section names the files ``secreason export`` wrote.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from secreason.reasoning import THINK

STAGE_FILE, RECIPE_FILE = "secreason_stage.json", "secreason_recipe.yaml"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not JSON ({err.msg})") from None


def load_reports(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """``report.json`` of each eval run folder (or the file itself)."""
    reports = []
    for run in run_dirs:
        path = run / "report.json" if run.is_dir() else run
        if not path.is_file():
            raise FileNotFoundError(f"{run}: no report.json (run `secreason eval ... --out DIR`)")
        reports.append(_read_json(path))
    return reports


def _results(reports: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """model-index results: one per benchmark, a metric per protocol (mean over trials)."""
    results = []
    for report in reports:
        for bench in report.get("benchmarks", []):
            metric, trials = bench.get("headline", "accuracy"), bench.get("trials", 1)
            metrics = []
            for protocol, stats in bench.get("protocols", {}).items():
                stat = stats.get(metric) or {}
                if stat.get("mean") is None:
                    continue
                std = f" ± {stat['std']:.3f}" if trials > 1 else ""
                metrics.append(
                    {
                        "type": metric,
                        "value": round(float(stat["mean"]), 4),
                        "name": f"{metric} ({protocol}, {trials} trial(s){std})",
                        "verified": False,
                    }
                )
            if metrics:
                results.append(
                    {
                        "task": {"type": "text-generation"},
                        "dataset": {"name": bench["name"], "type": bench["name"]},
                        "metrics": metrics,
                    }
                )
    return results


def _eval_table(reports: Sequence[dict[str, Any]]) -> list[str]:
    rows = [
        "| benchmark | protocol | metric | mean ± std | trials | samples |",
        "|---|---|---|---|---|---|",
    ]
    for report in reports:
        for bench in report.get("benchmarks", []):
            metric = bench.get("headline", "accuracy")
            for protocol, stats in bench.get("protocols", {}).items():
                stat = stats.get(metric) or {}
                if stat.get("mean") is None:
                    continue
                rows.append(
                    f"| {bench['name']} | {protocol} | {metric} | {stat['mean']:.3f} ± "
                    f"{stat.get('std') or 0:.3f} | {bench.get('trials', 1)} | "
                    f"{bench.get('n_samples', '')} |"
                )
    return rows


def _data_sections(summary: dict[str, Any]) -> list[str]:
    """The data card's own Outputs and Per task tables (``secreason.data.card``)."""
    from secreason.data.card import render_card as data_card

    keep, out = False, []
    for line in data_card(summary).splitlines():
        if line.startswith("## "):
            keep = line[3:].strip() in ("Outputs", "Per task")
            line = "#" + line if keep else line
        if keep:
            out.append(line)
    return out or ["The data summary has no outputs or per-task counts."]


def render_card(
    model_dir: Path,
    *,
    name: str | None = None,
    reports: Sequence[dict[str, Any]] = (),
    data_summary: dict[str, Any] | None = None,
    deployment: Sequence[str] = (),
    prefilled: bool | None = None,
) -> str:
    name = name or model_dir.resolve().name
    stage = _read_json(model_dir / STAGE_FILE) if (model_dir / STAGE_FILE).is_file() else {}
    recipe_path = next(
        (p for p in (model_dir / RECIPE_FILE, model_dir.parent / RECIPE_FILE) if p.is_file()),
        None,
    )
    recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8")) if recipe_path else {}
    meta: dict[str, Any] = {
        "license": "apache-2.0",
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["cybersecurity", "reasoning", "secreason"],
    }
    base = (recipe or {}).get("model_name_or_path")
    if isinstance(base, str) and base.count("/") == 1 and not Path(base).exists():
        meta["base_model"] = base  # a hub id, not a local folder
    results = _results(reports)
    if results:
        meta["model-index"] = [{"name": name, "results": results}]
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    opens = f"; its chat template opens `{THINK.open}` in the prompt." if prefilled else "."
    intro = "A cybersecurity reasoning model built with secreason. It thinks inside "
    lines += [f"# {name}", "", f"{intro}`{THINK.open}…{THINK.close}`, then answers{opens}"]
    lines += ["", "## Evaluation", ""]
    if reports:
        runs = ", ".join(str(r.get("run", {}).get("command", "?")) for r in reports)
        lines += _eval_table(reports) + [
            "",
            f"Protocols as in `secreason eval`; commands: `{runs}`.",
        ]
    else:
        lines.append("No evaluation attached (`secreason card MODEL_DIR --eval RUN_DIR`).")
    lines += ["", "## Training", ""]
    if stage:
        lines.append(
            f"Stage `{stage.get('stage', '?')}` finished {stage.get('finished_at', '?')} "
            f"in {stage.get('seconds', '?')} s."
        )
    if recipe:
        keys = ("model_name_or_path", "learning_rate", "num_train_epochs", "max_steps",
                "loss_type", "beta", "num_generations", "format_penalty", "use_peft")  # fmt: skip
        shown = {k: recipe[k] for k in keys if k in recipe}
        lines += ["", "Recipe (`secreason_recipe.yaml`):", "", "```yaml",
                  yaml.safe_dump(shown, sort_keys=False).rstrip(), "```"]  # fmt: skip
    if not stage and not recipe:
        lines.append("No training record found next to the weights.")
    lines += ["", "## Data", ""]
    if data_summary:
        lines += _data_sections(data_summary)
    else:
        lines.append("No data summary attached (`--data-summary runs/data/summary.json`).")
    lines += ["", "## Deployment", "", *deployment] if deployment else []
    return "\n".join(lines) + "\n"
