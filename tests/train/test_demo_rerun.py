"""Rerunning a demo that was killed part-way, or asked for differently.

Before these rows: ``demo --quick`` in the folder of a killed full demo reused the full
demo's data and trained on it (data files are only written when missing); a base model
killed while saving (``config.json`` written, weights not) was taken as built and SFT
crashed on it; an evaluation killed while appending its rows was read back as complete
(the report averaged fewer items) or crashed on the cut line; a cut line in the RL
metrics file crashed the report; a refusal's field list was cut to its first line.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from secreason.train.demo import DemoConfig
from secreason.train.demo_folder import DemoError, check_config, ensure_base_model


@pytest.mark.parametrize(
    ("first", "second", "changed"),
    [
        (DemoConfig(), DemoConfig.quick(), ["n_per_task", "sft_overrides"]),
        (DemoConfig.quick(), DemoConfig.quick(seed=1), ["seed"]),
        (DemoConfig(), DemoConfig(format_penalty=False), ["format_penalty"]),
        (DemoConfig(), DemoConfig(tasks=("cwe", "cvss")), ["tasks"]),
    ],
    ids=["quick after full", "another seed", "ablation in the same folder", "other tasks"],
)
def test_another_demo_in_the_same_folder_is_refused_with_the_fields(
    first: DemoConfig, second: DemoConfig, changed: list[str], tmp_path: Path
) -> None:
    check_config(first, tmp_path)
    check_config(replace(first, threads=1), tmp_path)  # speed only: the same demo
    with pytest.raises(DemoError) as err:
        check_config(second, tmp_path)
    text = str(err.value)
    for field in changed:
        assert f"\n  {field}: " in text
    assert f"--out {tmp_path}-2" in text


def test_a_damaged_demo_config_is_named(tmp_path: Path) -> None:
    (tmp_path / "demo_config.json").write_text('{"seed": 0, "n_')
    with pytest.raises(DemoError, match="demo_config.json: damaged"):
        check_config(DemoConfig(), tmp_path)


def test_the_cli_prints_every_line_of_a_refusal(tmp_path: Path, capsys: Any) -> None:
    from secreason.cli import main

    check_config(DemoConfig(), tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["demo", "--quick", "--out", str(tmp_path)])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "\n  n_per_task: 400 -> 150\n" in err
    assert "Traceback" not in err
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit):
        main(["demo", "--quick", "--out", str(tmp_path / "afile")])
    assert "a file, not a folder" in capsys.readouterr().err


def test_a_base_model_killed_while_building_is_never_used(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    import secreason.train.tiny as tiny

    calls: list[Path] = []

    def killed(out: Path, **kw: Any) -> Path:
        out.mkdir(parents=True)
        shutil.copy(tiny_model_dir / "config.json", out / "config.json")
        raise KeyboardInterrupt  # the kill, after config.json and before the weights

    def builds(out: Path, **kw: Any) -> Path:  # a fast stand-in: the same files
        calls.append(out)
        shutil.copytree(tiny_model_dir, out)
        return out

    base = tmp_path / "model" / "base"
    monkeypatch.setattr(tiny, "build_tiny_model", killed)
    with pytest.raises(KeyboardInterrupt):
        ensure_base_model(base, 0, lambda: [])
    assert not base.exists()  # only the folder being built, under another name

    monkeypatch.setattr(tiny, "build_tiny_model", builds)
    ensure_base_model(base, 0, lambda: [])
    assert (base / "model.safetensors").is_file() and len(calls) == 1
    ensure_base_model(base, 0, lambda: [])  # whole: kept
    assert len(calls) == 1

    weights = base / "model.safetensors"  # torn by an older version or a crash
    weights.write_bytes(weights.read_bytes()[:100])
    ensure_base_model(base, 0, lambda: [])
    assert len(calls) == 2 and "building it again" in capsys.readouterr().err


@pytest.mark.slow
def test_an_evaluation_killed_while_writing_is_run_again(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    import secreason.train.heldout as heldout
    from secreason.data.demo import make_demo_items

    _, items = make_demo_items(20, 0, tasks=("mcq",))
    items = items[:2]
    decodings = [
        heldout.Decoding("greedy", 0.0, 1.0, 1, 4, 0),
        heldout.Decoding("sampled", 0.6, 0.95, 2, 4, 0),
    ]
    cache = tmp_path / "sft.jsonl"
    full = heldout.evaluate_model(tiny_model_dir, items, decodings, cache)
    assert len(full) == 2 + 4
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])  # killed mid-decoding

    generated: list[str] = []
    real = heldout.generate

    def counted(model: Any, its: Any, decoding: Any) -> Any:
        generated.append(decoding.name)
        return real(model, its, decoding)

    monkeypatch.setattr(heldout, "generate", counted)
    again = heldout.evaluate_model(tiny_model_dir, items, decodings, cache)
    assert generated == ["sampled"]  # the whole decoding kept, the cut one redone
    assert sorted((r.decoding, r.item, r.sample) for r in again) == sorted(
        (r.decoding, r.item, r.sample) for r in full
    )
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(rows) == 6


def test_a_cut_metrics_line_is_skipped_and_the_next_record_kept(tmp_path: Path) -> None:
    from secreason.train.rewards import RewardMetricsCallback, read_metrics

    path = tmp_path / "rl_metrics.jsonl"
    path.write_text('{"step": 1, "tasks": {}}\n{"step": 2, "ta')  # killed mid-line
    suite = SimpleNamespace(drain=lambda: ({"mcq": {"reward": 0.5}}, 0.01))
    callback = RewardMetricsCallback(suite, path)  # type: ignore[arg-type]
    state = SimpleNamespace(is_world_process_zero=True, global_step=2)
    callback.on_step_begin(None, state, None)
    callback.on_step_end(None, state, None)  # the resumed run redoes step 2
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    assert read_metrics(path)[1]["tasks"] == {"mcq": {"reward": 0.5}}
