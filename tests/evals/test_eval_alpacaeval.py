"""AlpacaEval 2.0 glue, offline: records, instruction files, and alpaca-eval itself
against a toy judge on loopback (a real OpenAI-compatible HTTP server)."""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from secreason.evals import alpacaeval

sys.path.insert(0, str(Path(__file__).parent))
from alpaca_judge import JudgeServer  # noqa: E402

needs_alpaca_eval = pytest.mark.skipif(
    importlib.util.find_spec("alpaca_eval") is None,
    reason="alpaca-eval is not installed (pip install 'secreason[general]')",
)


def test_alpaca_outputs_hold_answers_only() -> None:
    records = alpacaeval.alpaca_outputs(
        ["Say hi", "Say bye"], ["<think>greet</think>Hi!", "<think>cut"], "tiny"
    )
    assert records == [
        {"instruction": "Say hi", "output": "Hi!", "generator": "tiny"},
        {"instruction": "Say bye", "output": "", "generator": "tiny"},
    ]


def alpaca_rows(n: int, wins: set[int], hidden: set[int]) -> tuple[list[dict], list[dict]]:
    """Model outputs (GOOD where it should win, GOOD inside reasoning only where the
    judge must not see it) and reference outputs of varied lengths."""
    instructions = [f"Toy instruction {i}: explain control number {i}." for i in range(n)]
    completions = []
    for i in range(n):
        body = "detail " * (1 + (i * 7) % 11)
        if i in wins:
            completions.append(f"<think>plan</think>GOOD answer {body}")
        elif i in hidden:
            completions.append(f"<think>GOOD idea</think>plain answer {body}")
        else:
            completions.append(f"<think>plan</think>plain answer {body}")
    outputs = alpacaeval.alpaca_outputs(instructions, completions, "toy-model")
    references = [
        {
            "instruction": text,
            "output": "REFERENCE " + "word " * (1 + (i * 5) % 9),
            "generator": "toy-reference",
        }
        for i, text in enumerate(instructions)
    ]
    return outputs, references


@needs_alpaca_eval
@pytest.mark.parametrize("weighted", [True, False], ids=["logprob-official", "text-verdict"])
def test_alpaca_eval_follows_the_judge(tmp_path: Path, weighted: bool) -> None:
    n, wins, hidden = 20, {0, 2, 3, 5, 8, 9, 11, 13, 16, 17, 19}, {1, 4, 6}
    outputs, references = alpaca_rows(n, wins, hidden)
    with JudgeServer() as judge:
        config = alpacaeval.judge_annotator_config(
            tmp_path / "toy_judge", "toy-judge-instruct", judge.base_url, weighted=weighted
        )
        scores = alpacaeval.run_alpaca_eval(
            outputs,
            reference_outputs=references,
            annotators_config=config,
            output_path=tmp_path / "results",
            length_controlled=False,
        )
        assert len(judge.requests) == n
        assert all(r["model"] == "toy-judge-instruct" for r in judge.requests)
        assert all(bool(r.get("logprobs")) is weighted for r in judge.requests)
        assert not any("GOOD idea" in str(r["messages"]) for r in judge.requests)
    assert scores["win_rate"] == pytest.approx(100 * len(wins) / n, abs=1e-6)
    assert scores["n_total"] == n and scores["n_wins"] == len(wins)
    assert "length_controlled_winrate" not in scores  # needs the hub's df_gamed.csv
    assert (tmp_path / "results" / "annotations.json").is_file()


@needs_alpaca_eval
def test_alpaca_eval_official_length_control_offline(tmp_path: Path) -> None:
    # The length control fits against annotations fetched from the hub: offline it must
    # say so; the judge's annotations are cached, so the next run asks the judge nothing.
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("the hub is enabled: the offline path cannot be exercised")
    outputs, references = alpaca_rows(10, {1, 2, 7}, set())
    with JudgeServer() as judge:
        config = alpacaeval.judge_annotator_config(tmp_path / "judge", "toy", judge.base_url)
        run = functools.partial(
            alpacaeval.run_alpaca_eval,
            outputs,
            reference_outputs=references,
            annotators_config=config,
        )
        with pytest.raises(RuntimeError, match="df_gamed.csv.*length_controlled=False"):
            run()
        asked = len(judge.requests)
        scores = run(length_controlled=False)
        assert len(judge.requests) == asked == 10
    assert scores["win_rate"] == pytest.approx(30.0, abs=1e-6)
    with pytest.raises(ValueError, match="generator"):
        alpacaeval.run_alpaca_eval([{**outputs[0], "generator": ""}])


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("ok.json", '[{"instruction": "a", "output": "x"}, {"instruction": "b"}]', None),
        ("ok.jsonl", '{"instruction": "a"}\n\n{"instruction": "b", "dataset": "d"}\n', None),
        (
            "broken.jsonl",
            '{"instruction": "a"}\n{"instruction": \n',
            "broken.jsonl:2: not valid JSON",
        ),
        ("object.json", '{"instruction": "a"}', "expected a JSON list of rows"),
        ("scalar.json", '["just text"]', "record 1: 'instruction' is missing"),
        ("blank.jsonl", '{"instruction": "a"}\n{"instruction": "  "}\n', "record 2: 'instruction'"),
        ("number.jsonl", '{"instruction": 7}\n', "record 1: 'instruction' is missing"),
        ("empty.json", "[]", "no instructions"),
        ("rows.csv", "instruction\na\n", "expected a .json list or a .jsonl file"),
    ],
)
def test_load_instructions(tmp_path: Path, name: str, text: str, error: str | None) -> None:
    path = tmp_path / name
    path.write_text(text)
    if error is None:
        rows = alpacaeval.load_instructions(path)
        assert [r["instruction"] for r in rows] == ["a", "b"]
        assert rows[-1].get("dataset", "d") == "d"  # other fields are kept
    else:
        with pytest.raises(ValueError, match=re.escape(error)):
            alpacaeval.load_instructions(path)


@needs_alpaca_eval
@pytest.mark.parametrize(
    ("given", "env", "written"),
    [("sk-given", None, "sk-given"), (None, "sk-env", None), (None, None, "EMPTY")],
    ids=["explicit-key", "env-key-not-written", "local-placeholder"],
)
def test_judge_key_stays_off_disk_unless_given(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    given: str | None,
    env: str | None,
    written: str | None,
) -> None:
    import yaml

    if env is None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", env)
    alpacaeval.judge_annotator_config(tmp_path / "j", "judge", "http://x/v1", api_key=given)
    text = (tmp_path / "j" / "client_configs.yaml").read_text()
    (client,) = yaml.safe_load(text)["default"]
    assert client.get("api_key") == written and client["base_url"] == "http://x/v1"
    assert "sk-env" not in text
