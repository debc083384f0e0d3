"""``secreason data ...``: each pipeline step as a command, and ``run`` for a whole recipe."""

from __future__ import annotations

import json
from pathlib import Path

import typer

data_app = typer.Typer(
    no_args_is_help=True, help="Build SFT and RL data: synthesize, teach, clean, mix."
)


_SET_HELP = "Override a recipe field: section.field=value. Repeatable."


def _recipe(
    recipe: Path | None, overrides: list[str] | None, set_: list[str] | None = None
):  # -> DataRecipe
    from secreason.cli._errors import fail
    from secreason.data.recipe import DataRecipeError, load_data_recipe

    if overrides:
        typer.echo("warning: positional key=value overrides are deprecated; use --set", err=True)
    if recipe is not None and recipe.is_file() and not recipe.read_bytes().strip():
        fail(f"{recipe}: the recipe is empty; start from one in recipes/data/")
    try:
        return load_data_recipe(recipe, [*(overrides or []), *(set_ or [])])
    except DataRecipeError as err:
        fail(str(err))


def _checked(items: Path) -> Path:
    """``items`` after a line-by-line look (each line a JSON object), so that a bad
    line is reported as ``FILE:LINE`` rather than as an error deep in a step."""
    from secreason.cli._errors import fail, jsonl_problem

    problem = jsonl_problem(items)
    if problem:
        fail(problem)
    return items


@data_app.command("run")
def run(
    recipe: Path = typer.Argument(..., help="Data recipe YAML (see recipes/data/)."),
    overrides: list[str] = typer.Argument(None, help="Deprecated: use --set."),
    set_: list[str] = typer.Option(None, "--set", help=_SET_HELP),
) -> None:
    """Run the whole pipeline of a recipe (resumable: rerun continues after a kill)."""
    from secreason.data.audit import ShortcutError
    from secreason.data.pipeline import run_pipeline

    try:
        summary = run_pipeline(_recipe(recipe, overrides, set_))
    except ShortcutError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"outputs": summary["outputs"], "timings_s": summary["timings_s"]}))
    # The JSON is for scripts; a person is told where to look and what the audit said.
    out_dir = Path(summary["recipe"]["out_dir"])
    audit = "passed" if (summary.get("audit") or {}).get("passed") else "see the card"
    typer.echo(f"data card: {out_dir / 'card.md'} (shortcut audit: {audit})", err=True)


@data_app.command("audit")
def audit_cmd(
    run_dir: Path = typer.Argument(..., help="out_dir of a data run (sft/, rl/, heldout/)."),
    margin: float = typer.Option(0.05, "--margin", help="Allowed excess over chance (0.05)."),
    enforce: list[str] = typer.Option(
        ["heldout"], "--enforce", help="Splits whose ceiling must hold (repeatable)."
    ),
    min_items: int = typer.Option(20, "--min-items", help="Smaller splits are not enforced."),
    report: Path = typer.Option(None, "--report", help="Write the audit as JSON here."),
) -> None:
    """Shortcut audit: a no-model baseline answering from the prompt alone, per task and
    split, against the task's chance level; exits 1 naming the items when a ceiling fails."""
    from secreason.cli._errors import fail
    from secreason.data.audit import AuditConfig, audit, failure_message, load_splits

    try:
        splits = load_splits(run_dir)
    except FileNotFoundError as err:
        fail(str(err))
    result = audit(splits, AuditConfig(margin=margin, enforce=list(enforce), min_items=min_items))
    if report:
        report.write_text(json.dumps(result, indent=2) + "\n")
    for r in result["rows"]:
        flag = "ok" if r["passed"] else "FAIL"
        typer.echo(
            f"{r['task']:5} {r['split']:8} n={r['n']:<6} baseline {100 * r['baseline']:5.1f}  "
            f"chance {100 * r['chance']:5.1f}  solved {r['solved']:<5} "
            f"{flag if r['enforced'] else 'not enforced'}"
        )
    if not result["passed"]:
        typer.echo(failure_message(result), err=True)
        raise typer.Exit(1)


@data_app.command("synthesize")
def synthesize(
    recipe: Path = typer.Argument(None, help="Data recipe YAML (defaults if omitted)."),
    overrides: list[str] = typer.Argument(None, help="Deprecated: use --set."),
    set_: list[str] = typer.Option(None, "--set", help=_SET_HELP),
    out: Path = typer.Option(Path("items.jsonl"), "--out", help="Items JSONL (appended)."),
    nvd: list[Path] = typer.Option(
        None, "--nvd", help="NVD CVE JSON file or folder (2.0 API/feeds, 1.1 feeds); repeatable."
    ),
) -> None:
    """Synthesize verifiable items from the knowledge bases (or the demo world), plus
    CVE -> CWE and description -> CVSS items from NVD files when given."""
    from secreason.data.pipeline import make_items
    from secreason.data.store import JsonlStore, sample_to_dict

    cfg = _recipe(recipe, overrides, set_)
    cfg.synthesis.nvd = [*cfg.synthesis.nvd, *(str(p) for p in nvd or [])]
    try:
        made = list(make_items(cfg))
    except (FileNotFoundError, ValueError) as err:
        raise typer.BadParameter(str(err)) from None
    with JsonlStore(out, key_field="id") as store:
        new = store.extend(sample_to_dict(s) for s in made)
        typer.echo(json.dumps({"new": new, "total": len(store), "out": str(out)}))


@data_app.command("teacher")
def teacher(
    items: Path = typer.Argument(..., help="Items JSONL from `secreason data synthesize`."),
    out: Path = typer.Option(Path("teacher.jsonl"), "--out", help="Verdicts JSONL (appended)."),
    recipe: Path = typer.Option(None, "--recipe", help="Recipe whose `teacher:` section to use."),
    set_: list[str] = typer.Option(None, "--set", help="teacher.field=value overrides."),
    split: str = typer.Option(
        "train", "--split", help="Which items to send ('all' for every one)."
    ),
) -> None:
    """Send item prompts to the teacher, keep only verified, well-formed traces."""
    from secreason.data.store import read_samples
    from secreason.data.teacher import run_teacher

    cfg = _recipe(recipe, None, set_).teacher
    samples = [
        s for s in read_samples(_checked(items)) if split == "all" or s.meta.get("split") == split
    ]
    report = run_teacher(samples, out, config=cfg, template=cfg.kind == "template")
    typer.echo(json.dumps({**report.counts, "total": report.total, "adds_up": report.adds_up()}))
    if not report.adds_up():
        raise typer.Exit(1)


@data_app.command("dedup")
def dedup_cmd(
    items: Path = typer.Argument(..., help="Items JSONL."),
    out: Path = typer.Option(..., "--out", help="Deduplicated items JSONL."),
    threshold: float = typer.Option(0.8, "--threshold", help="MinHash LSH Jaccard threshold."),
    report: Path = typer.Option(None, "--report", help="Write the report as JSON here."),
) -> None:
    """Remove exact and near duplicates (held-out items win over training twins)."""
    from dataclasses import asdict

    from secreason.data.dedup import DedupConfig, dedup
    from secreason.data.pipeline import dedup_content
    from secreason.data.store import read_samples, write_samples

    samples = read_samples(_checked(items))
    keep, rep = dedup(
        [s.id for s in samples],
        [dedup_content(s) for s in samples],
        [str(s.meta.get("split", "train")) for s in samples],
        DedupConfig(threshold=threshold),
        labels=[f"{s.task}\t{s.reference}" for s in samples],
    )
    write_samples(out, [s for s, k in zip(samples, keep, strict=True) if k])
    text = json.dumps(asdict(rep), indent=2)
    if report:
        report.write_text(text + "\n")
    typer.echo(json.dumps({"in": rep.n_in, "kept": rep.n_kept}))


@data_app.command("decontaminate")
def decontaminate_cmd(
    items: Path = typer.Argument(..., help="Items JSONL."),
    out: Path = typer.Option(..., "--out", help="Clean items JSONL."),
    benchmarks: Path = typer.Option(
        Path("../shared/benchmarks"), "--benchmarks", help="Folder of benchmark files."
    ),
    n: int = typer.Option(8, "--n", help="Word n-gram size."),
    harness: bool = typer.Option(
        False, "--harness", help="Read benchmarks with the evaluation harness's loaders."
    ),
    report: Path = typer.Option(None, "--report", help="Write the per-benchmark report here."),
) -> None:
    """Drop items overlapping any benchmark (n-grams on prompt and answer, CVE ids)."""
    from secreason.data.decontaminate import (
        ContaminationIndex,
        DecontamConfig,
        benchmark_texts,
        decontaminate,
        sample_texts,
    )
    from secreason.data.store import read_samples, write_samples

    samples = read_samples(_checked(items))
    from secreason.data.pipeline import kb_texts

    index = ContaminationIndex(
        benchmark_texts(benchmarks, harness=harness), DecontamConfig(n=n), allowed=kb_texts()
    )
    texts = [sample_texts(s) for s in samples]  # every turn, and the gold
    keep, rep = decontaminate(
        [s.id for s in samples],
        [p for p, _ in texts],
        [a for _, a in texts],
        index,
        extra_cves=[list(s.meta.get("cves") or []) for s in samples],
        show_progress=True,
    )
    write_samples(out, [s for s, k in zip(samples, keep, strict=True) if k])
    if report:
        report.write_text(json.dumps(rep.as_dict(), indent=2) + "\n")
    typer.echo(json.dumps({"in": rep.n_samples, "removed": rep.n_removed}))


@data_app.command("mix")
def mix_cmd(
    recipe: Path = typer.Argument(..., help="Data recipe YAML; mixes its out_dir's stores."),
    overrides: list[str] = typer.Argument(None, help="Deprecated: use --set."),
    set_: list[str] = typer.Option(None, "--set", help=_SET_HELP),
) -> None:
    """Re-mix a finished run's items and traces to the recipe's ratios (reruns dedup and
    decontamination, which are fast, and reuses the stored items and teacher verdicts)."""
    from secreason.data.audit import ShortcutError
    from secreason.data.pipeline import run_pipeline

    try:
        summary = run_pipeline(_recipe(recipe, overrides, set_))
    except ShortcutError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(summary["mix"], default=str))


@data_app.command("card")
def card_cmd(
    summary: Path = typer.Argument(..., help="summary.json of a pipeline run."),
    out: Path = typer.Option(None, "--out", help="Markdown path (default: card.md beside it)."),
) -> None:
    """Write the data card (markdown) from a run's summary."""
    from secreason.cli._errors import fail
    from secreason.cli.integrations import _json_file
    from secreason.data.card import write_card

    try:
        data = _json_file(summary)
    except ValueError as err:
        fail(str(err))
    if not isinstance(data, dict):
        fail(f"{summary}: not a run's summary.json (expected a JSON object)")
    path = write_card(data, out or summary.with_name("card.md"))
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
