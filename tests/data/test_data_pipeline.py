"""The whole offline pipeline: one command, datasets the trainers accept, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secreason.data.pipeline import run_pipeline
from secreason.data.recipe import DataRecipeError, load_data_recipe
from secreason.tasks import get_task

REPO = Path(__file__).resolve().parents[2]
TASKS = ["cwe", "cvss", "ate", "mcq"]


def _recipe(tmp_path: Path, *extra: str):
    return load_data_recipe(
        REPO / "recipes" / "data" / "tiny-demo.yaml",
        [
            f"out_dir={tmp_path / 'run'}",
            "demo.n_per_task=60",
            f"demo.tasks={json.dumps(TASKS)}",
            "mix.rl_total=40",
            "decontaminate.benchmarks=null",
            *extra,
        ],
    )


def test_offline_pipeline_end_to_end_and_rerun(tmp_path: Path) -> None:
    from datasets import load_from_disk

    summary = run_pipeline(_recipe(tmp_path))
    out = tmp_path / "run"
    teacher = summary["teacher"]
    assert sum(teacher["counts"].values()) == teacher["total"]
    assert teacher["counts"]["rejected"] > 0  # uncovered phrasings are not traced

    sft = load_from_disk(str(out / "sft" / "hf"))["train"]
    rl = load_from_disk(str(out / "rl" / "hf"))["train"]
    held = load_from_disk(str(out / "heldout" / "hf"))["train"]
    assert {"messages", "task", "reference", "id", "domain"} <= set(sft.column_names)
    assert {"prompt", "task", "reference"} <= set(rl.column_names)
    assert set(list(sft["task"])) == set(TASKS)
    for row in sft:
        assert row["messages"][-1]["role"] == "assistant"
        judged = get_task(row["task"]).judge(row["messages"][-1]["content"], row["reference"])
        assert judged.score.status == "correct" and judged.format.ok
        assert json.loads(row["meta"])["teacher_seen"] is True
    assert not set(list(sft["id"])) & set(list(rl["id"]))
    # Held-out entities never appear in training.
    train_entities = {json.loads(m)["entity"] for m in list(sft["meta"]) + list(rl["meta"])}
    assert not train_entities & {json.loads(m)["entity"] for m in list(held["meta"])}
    card = (out / "card.md").read_text()
    assert "## Per task" in card and "Decontamination" in card and "Skipped" in card

    # A rerun reuses every stored verdict and writes the same data.
    again = run_pipeline(_recipe(tmp_path))
    assert again["teacher"]["skipped_existing"] == again["teacher"]["total"]
    assert list(load_from_disk(str(out / "sft" / "hf"))["train"]["id"]) == list(sft["id"])
    assert len((out / "teacher.jsonl").read_text().splitlines()) == teacher["total"]


def test_trainers_accept_the_output(tmp_path: Path) -> None:
    from secreason.train.stage import load_rows, require_columns

    run_pipeline(_recipe(tmp_path, "demo.n_per_task=20", "mix.rl_total=10"))
    sft = load_rows(tmp_path / "run" / "sft" / "hf")
    require_columns(sft, ["messages"], "sft")
    rl = load_rows(tmp_path / "run" / "rl" / "train.jsonl")
    require_columns(rl, ["prompt", "task", "reference"], "rl")


def test_cli_run_and_card(tmp_path: Path) -> None:
    from secreason.cli import app

    args = [
        "data",
        "run",
        str(REPO / "recipes" / "data" / "tiny-demo.yaml"),
        f"out_dir={tmp_path / 'run'}",
        "demo.n_per_task=10",
        "mix.rl_total=4",
        "decontaminate.benchmarks=null",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["outputs"]["sft"]["rows"] > 0
    (tmp_path / "run" / "card.md").unlink()
    result = CliRunner().invoke(app, ["data", "card", str(tmp_path / "run" / "summary.json")])
    assert result.exit_code == 0 and (tmp_path / "run" / "card.md").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dedup.treshold=0.5", "unknown field 'treshold'; did you mean 'threshold'"),
        ("teacher.k=many", "teacher.k: expected int"),
        ("general=5", "general: expected a list"),
        ("nonsense", "must look like section.field=value"),
    ],
    ids=["typo", "wrong-type", "not-a-list", "no-equals"],
)
def test_recipe_errors_name_the_field(override: str, message: str) -> None:
    with pytest.raises(DataRecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_data_recipe(REPO / "recipes" / "data" / "tiny-demo.yaml", [override])


@pytest.mark.parametrize("name", ["offline.yaml", "tiny-demo.yaml", "foundation-sec-8b.yaml"])
def test_shipped_recipes_parse(name: str) -> None:
    recipe = load_data_recipe(REPO / "recipes" / "data" / name)
    assert recipe.teacher.kind in ("template", "endpoint")


def test_general_sources_join_the_mix(tmp_path: Path) -> None:
    """A local math file joins as RL prompts; the template teacher marks it failed."""
    path = tmp_path / "math.jsonl"
    path.write_text(
        "".join(json.dumps({"q": f"{i}+1?", "a": str(i + 1)}) + "\n" for i in range(30))
    )
    general = json.dumps(
        [{"path": str(path), "domain": "math", "prompt_field": "q", "answer_field": "a"}]
    )
    summary = run_pipeline(
        _recipe(
            tmp_path,
            f"general={general}",
            'mix.rl_ratios={"cyber": 0.5, "math": 0.5}',
            "mix.rl_total=20",
        )
    )
    assert summary["teacher"]["counts"]["failed"] == 30
    assert summary["mix"]["rl"]["counts"] == {"cyber": 10, "math": 10}
    assert summary["stats"]["sft_domains"] == {"cyber": summary["outputs"]["sft"]["rows"]}


def test_each_step_as_a_command(tmp_path: Path) -> None:
    """synthesize -> teacher -> dedup -> decontaminate, each from the command line."""
    import sys

    from secreason.cli import app

    sys.path.insert(0, str(Path(__file__).parent))
    from contamination_fixtures import write_benchmarks

    run = CliRunner().invoke
    recipe = str(REPO / "recipes" / "data" / "tiny-demo.yaml")
    items = tmp_path / "items.jsonl"
    r = run(app, ["data", "synthesize", recipe, "demo.n_per_task=15", "--out", str(items)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["total"] == 60
    r = run(
        app, ["data", "teacher", str(items), "--out", str(tmp_path / "t.jsonl"), "--recipe", recipe]
    )
    assert r.exit_code == 0, r.output
    counts = json.loads(r.stdout.strip().splitlines()[-1])
    assert counts["adds_up"] and counts["kept"] + counts["rejected"] == counts["total"]
    r = run(app, ["data", "dedup", str(items), "--out", str(tmp_path / "d.jsonl")])
    assert r.exit_code == 0, r.output
    bench = tmp_path / "bench"
    planted = write_benchmarks(bench)["fixture/mcq"][0]
    with items.open("a") as f:  # one item that pastes a benchmark question
        row = json.loads(items.read_text().splitlines()[0])
        row["id"], row["messages"] = "planted", [{"role": "user", "content": planted}]
        f.write(json.dumps(row) + "\n")
    r = run(
        app,
        [
            "data",
            "decontaminate",
            str(items),
            "--out",
            str(tmp_path / "c.jsonl"),
            "--benchmarks",
            str(bench),
            "--report",
            str(tmp_path / "r.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"in": 61, "removed": 1}
    assert "planted" not in (tmp_path / "c.jsonl").read_text()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["per_benchmark"]["fixture/mcq"]["examples"][0]["sample_id"] == "planted"
