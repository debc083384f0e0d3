"""The bad-input table: every command, each user mistake, run as a real subprocess.

Each row asserts what a newcomer needs: a non-zero exit, no traceback, one or two
lines on stderr naming the file (and line) or the name at fault and what to do. One
row reruns with ``--debug`` to show the traceback is still there for developers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from cli_fixtures import ENV, FIXTURES, secreason

LATIN1 = "Rückmeldung: Café ☕".encode("latin-1", "replace")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of bad (and a few good) inputs; commands run from inside it."""
    root = tmp_path_factory.mktemp("bad-inputs")
    (root / "empty.jsonl").write_text("")
    (root / "blank.jsonl").write_text("\n\n")
    (root / "latin1.jsonl").write_bytes(
        b'{"completion": "Answer: CWE-79", "reference": "CWE-79"}\n'
        b'{"completion": "' + LATIN1 + b'", "reference": "CWE-79"}\n'
    )
    (root / "preds-latin1.jsonl").write_bytes(
        b'{"index": 0, "completion": "A"}\n{"index": 1, "completion": "' + LATIN1 + b'"}\n'
    )
    mcq = (FIXTURES / "ctibench" / "cti-mcq.tsv").read_bytes().splitlines(keepends=True)
    (root / "cti-mcq.tsv").write_bytes(b"".join(mcq[:3]) + LATIN1 + b"\t" + mcq[3])
    secbench = (FIXTURES / "secbench" / "MCQs_2730.jsonl").read_text().splitlines()
    (root / "secbench").mkdir()
    (root / "secbench" / "MCQs_2730.jsonl").write_text("\n".join([*secbench[:2], "{broken"]) + "\n")
    (root / "broken.yaml").write_text("model_name_or_path: tiny\nmax_steps: [1\n")
    (root / "latin1.yaml").write_bytes(b"model_name_or_path: tiny\n# " + LATIN1 + b"\n")
    (root / "unknown-key.yaml").write_text("mix:\n  seed: 1\nbogus_section: 2\n")
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "missing-model.yaml").write_text(
        "model_name_or_path: runs/none/final\ndataset_path: empty.jsonl\n"
        "output_dir: out\nuse_cpu: true\nbf16: false\n"
    )
    (root / "runs").mkdir()
    (root / "model").mkdir()  # passes the folder check; the dataset fails first
    (root / "model" / "config.json").write_text("{}")
    (root / "dataset-latin1.yaml").write_text(
        "model_name_or_path: model\ndataset_path: latin1.jsonl\n"
        "output_dir: out\nuse_cpu: true\nbf16: false\nmax_steps: 1\n"
    )
    return root


MCQ = str(FIXTURES / "ctibench")
CYBERMETRIC_80 = str(FIXTURES / "cybermetric" / "CyberMetric-80-v1.json")
PREDS = ("--predictions", "empty.jsonl")

# (id, argv, strings stderr must contain)
TABLE = [
    # eval: data
    (
        "eval-missing-data",
        ["eval", "ctibench-mcq", "--data", "nothere/", "--model", "m"],
        ["nothere"],
    ),
    (
        "eval-wrong-benchmark-file",
        ["eval", "ctibench-mcq", "--data", f"ctibench={CYBERMETRIC_80}", *PREDS],
        ["CyberMetric-80-v1.json", "cti-mcq.tsv", "cybermetric-80's file"],
    ),
    (
        "eval-benchmark-not-utf8",
        ["eval", "ctibench-mcq", "--data", "ctibench-mcq=cti-mcq.tsv", *PREDS],
        ["cti-mcq.tsv:4", "UTF-8"],
    ),
    (
        "eval-empty-predictions",
        ["eval", "ctibench-mcq", "--data", MCQ, *PREDS],
        ["empty.jsonl", "empty"],
    ),
    (
        "eval-blank-predictions",
        ["eval", "ctibench-mcq", "--data", MCQ, "--predictions", "blank.jsonl"],
        ["blank.jsonl"],
    ),
    (
        "eval-predictions-not-utf8",
        ["eval", "ctibench-mcq", "--data", MCQ, "--predictions", "preds-latin1.jsonl"],
        ["preds-latin1.jsonl:2", "UTF-8"],
    ),
    (
        "eval-missing-predictions",
        ["eval", "ctibench-mcq", "--data", MCQ, "--predictions", "no.jsonl"],
        ["no.jsonl"],
    ),
    (
        "eval-another-benchmarks-file-of-the-same-type",
        ["eval", "ctibench-mcq", "--data", f"ctibench-mcq={MCQ}/cti-rcm.tsv", *PREDS],
        ["cti-rcm.tsv is ctibench-rcm's file", "reads cti-mcq.tsv"],
    ),
    (
        "eval-another-size-of-cybermetric",
        ["eval", "cybermetric", "--data", CYBERMETRIC_80, *PREDS],
        ["cybermetric-80's file", "cybermetric-2000 reads CyberMetric-2000-v1.json"],
    ),
    (
        "eval-broken-benchmark-line",
        ["eval", "secbench", "--data", "secbench=secbench", *PREDS],
        ["MCQs_2730.jsonl:3", "not valid JSON"],
    ),
    # eval: names
    ("eval-plugin-not-importable", ["eval", "nomod.sub:Bench", "--model", "m"], ["cannot import"]),
    (
        "eval-unknown-name",
        ["eval", "ctibench-mq", "--model", "m"],
        ["ctibench-mq", "did you mean", "ctibench-mcq"],
    ),
    ("eval-no-name", ["eval", "--model", "m"], ["--list"]),
    # eval: model, backend, preflight
    (
        "eval-model-not-found",
        ["eval", "ctibench-mcq", "--data", MCQ, "--model", "runs/none/final"],
        ["runs/none/final", "no such folder"],
    ),
    (
        "eval-cwe-prediction-unbuilt-and-model-missing",
        ["eval", "ctibench-mcq", "cwe-prediction", "--data", MCQ, "--model", "./nope"],
        ["2 problem(s)", "secreason build-benchmark cwe-prediction", "./nope"],
    ),
    (
        "eval-server-down",
        [
            "eval",
            "ctibench-mcq",
            "--data",
            MCQ,
            "--backend",
            "openai",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
        ],
        ["127.0.0.1:9", "secreason serve"],
    ),
    # score
    ("score-missing-file", ["score", "cwe", "nothere.jsonl"], ["nothere.jsonl"]),
    ("score-empty", ["score", "cwe", "empty.jsonl"], ["empty.jsonl", "empty"]),
    ("score-not-utf8", ["score", "cwe", "latin1.jsonl"], ["latin1.jsonl:2", "UTF-8"]),
    ("score-unknown-task", ["score", "cwes", "empty.jsonl"], ["unknown task 'cwes'"]),
    # sft / rl
    ("sft-missing-recipe", ["sft", "nothere.yaml"], ["nothere.yaml", "not found"]),
    ("sft-broken-yaml", ["sft", "broken.yaml"], ["broken.yaml:3:1", "not valid YAML"]),
    ("sft-recipe-not-utf8", ["sft", "latin1.yaml"], ["latin1.yaml:2", "UTF-8"]),
    ("sft-bad-set", ["sft", "missing-model.yaml", "--set", "nonsense"], ["nonsense", "key=value"]),
    (
        "sft-model-not-found",
        ["sft", "missing-model.yaml"],
        ["missing-model.yaml", "runs/none/final", "no such folder"],
    ),
    (
        "rl-model-not-found-by-override",
        ["rl", "missing-model.yaml", "--set", "model_name_or_path=./gone"],
        ["./gone"],
    ),
    ("sft-dataset-not-utf8", ["sft", "dataset-latin1.yaml"], ["latin1.jsonl:2", "UTF-8"]),
    ("rl-missing-recipe", ["rl", "nothere.yaml"], ["nothere.yaml"]),
    ("rl-not-a-mapping", ["rl", "list.yaml"], ["list.yaml", "mapping"]),
    # data run
    ("data-missing-recipe", ["data", "run", "nothere.yaml"], ["nothere.yaml", "not found"]),
    ("data-broken-yaml", ["data", "run", "broken.yaml"], ["broken.yaml:3:1"]),
    (
        "data-unknown-key",
        ["data", "run", "unknown-key.yaml"],
        ["unknown-key.yaml:3", "bogus_section"],
    ),
    # serve
    ("serve-model-not-found", ["serve", "--model", "runs/none/final"], ["runs/none/final"]),
    ("serve-broken-config", ["serve", "--config", "broken.yaml"], ["broken.yaml:3:1"]),
    ("serve-unknown-setting", ["serve", "--model", "m", "--set", "bogus=1"], ["bogus"]),
    # kb
    ("kb-unknown-cwe", ["kb", "cwe", "CWE-99999999"], ["99999999"]),
    ("kb-bad-cvss", ["kb", "cvss", "CVSS:3.1/AV:Q"], ["CVSS:3.1/AV:Q"]),
]
if importlib.util.find_spec("vllm") is None:
    TABLE.append(
        (
            "eval-vllm-not-installed",
            ["eval", "ctibench-mcq", "--data", MCQ, "--backend", "vllm", "--model", "m"],
            ["secreason[vllm]"],
        )
    )


@pytest.mark.parametrize(
    ("argv", "expected"), [row[1:] for row in TABLE], ids=[r[0] for r in TABLE]
)
def test_bad_input_is_one_clear_message(inputs: Path, argv: list[str], expected: list[str]) -> None:
    result = secreason(*argv, cwd=inputs)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for text in expected:
        assert text in result.stderr, (text, result.stderr)
    # One or two lines, plus at most one per listed problem and deprecation warnings.
    lines = [x for x in result.stderr.splitlines() if x.strip() and not x.startswith("  - ")]
    lines = [x for x in lines if not x.startswith(("warning:", "note:"))]
    assert 1 <= len(lines) <= 2, result.stderr


def test_debug_shows_the_traceback(inputs: Path) -> None:
    plain = secreason("score", "cwe", "latin1.jsonl", cwd=inputs)
    debug = secreason("--debug", "score", "cwe", "latin1.jsonl", cwd=inputs)
    by_env = secreason(
        "score", "cwe", "latin1.jsonl", cwd=inputs, env={**ENV, "SECREASON_DEBUG": "1"}
    )
    assert "Traceback" not in plain.stderr
    assert "UnicodeDecodeError" in debug.stderr and "Traceback" in debug.stderr
    assert "UnicodeDecodeError" in by_env.stderr
    assert debug.returncode != 0


def test_version(inputs: Path) -> None:
    from secreason import __version__

    result = secreason("--version", cwd=inputs)
    assert result.returncode == 0
    assert result.stdout.strip() == f"secreason {__version__}"


def _raised(make: Any) -> BaseException:
    try:
        make()
    except Exception as error:  # the error as main() would catch it, traceback included
        return error
    raise AssertionError("nothing raised")


def _read_latin1(path: Path) -> None:
    with path.open(encoding="utf-8") as handle:
        for _line in handle:
            pass


def _missing_module() -> None:
    raise ModuleNotFoundError("No module named 'lm_eval'", name="lm_eval")


def _hub_id() -> None:
    raise ValueError(
        "Repo id must be in the form 'repo_name' or 'namespace/repo_name': 'runs/x/final'."
    )


def _bug() -> None:
    raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")


@pytest.mark.parametrize(
    ("make", "expected", "code"),
    [
        (
            lambda: Path("/nonexistent/recipe.yaml").read_text(),
            ["/nonexistent/recipe.yaml", "no such file"],
            2,
        ),
        (_missing_module, ["lm_eval", "pip install 'secreason[general]'"], 2),
        (_hub_id, ["model runs/x/final", "not a local folder"], 2),
        (
            lambda: (_ for _ in ()).throw(OSError("OfflineModeIsEnabled: hub")),
            ["HF_HUB_OFFLINE"],
            2,
        ),
        (_bug, ["unexpected TypeError", "--debug"], 1),
    ],
    ids=["missing-file", "missing-extra", "model-path", "offline", "bug"],
)
def test_explain_table(make: Any, expected: list[str], code: int) -> None:
    from secreason.cli._errors import explain

    message, exit_code = explain(_raised(make))
    assert exit_code == code
    assert 1 <= len(message.splitlines()) <= 2
    for text in expected:
        assert text in message


def test_explain_finds_the_file_and_line_of_a_decode_error(tmp_path: Path) -> None:
    from secreason.cli._errors import explain

    path = tmp_path / "data.jsonl"
    path.write_bytes(b"ok\nok\n" + LATIN1 + b"\n")
    message, code = explain(_raised(lambda: _read_latin1(path)))
    assert message.startswith(f"{path}:3: not UTF-8") and code == 2
