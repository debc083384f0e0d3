"""``secreason export`` and ``secreason card`` on the tiny model.

The Ollama TEMPLATE is rendered by a small Go-template interpreter (``gotemplate``) for
the same conversations the HF chat template renders, and the strings must be equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from gotemplate import render
from typer.testing import CliRunner

from secreason.cli import app
from secreason.export.gguf import check_tags
from secreason.export.ollama import go_template
from secreason.export.template import TemplateError, assistant_content, probe
from secreason.serve.system_prompt import DEFAULT_SYSTEM_PROMPT
from secreason.train.tiny import TinyConfig, chat_template, default_corpus, train_tokenizer

CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "system", "content": "SYS"}, {"role": "user", "content": "Which CWE?"}],
    [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": 'Q1 with\nlines and "quotes" {{ braces }}'},
        {
            "role": "assistant",
            "thinking": "It writes past the end.\n",
            "content": "Answer: CWE-787",
        },
        {"role": "user", "content": "And this one? café ≥ 9.8"},
    ],
    [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "thinking": "", "content": "Answer: B"},
        {"role": "user", "content": "Q2"},
    ],
]


@pytest.fixture(scope="module", params=[True, False], ids=["prefilled", "open"])
def tokenizer(request: pytest.FixtureRequest) -> Any:
    tok = train_tokenizer(default_corpus(), vocab_size=300)
    tok.chat_template = chat_template(TinyConfig(prefill_think=request.param))
    return tok


def hf_text(tokenizer: Any, conversation: list[dict[str, str]]) -> str:
    messages = [
        {"role": m["role"], "content": assistant_content(m["thinking"], m["content"])}
        if m["role"] == "assistant"
        else m
        for m in conversation
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith(tokenizer.bos_token)
    return text[len(tokenizer.bos_token) :]  # Ollama's runtime adds BOS itself


def ollama_text(template: str, conversation: list[dict[str, str]]) -> str:
    messages = [
        {"Role": m["role"], "Content": m["content"], "Thinking": m.get("thinking", "")}
        for m in conversation
    ]
    return render(template, {"Messages": messages})


@pytest.mark.parametrize("n", range(len(CONVERSATIONS)))
def test_ollama_template_renders_what_the_hf_template_renders(tokenizer: Any, n: int) -> None:
    parts = probe(tokenizer)
    template = go_template(parts)
    assert ollama_text(template, CONVERSATIONS[n]) == hf_text(tokenizer, CONVERSATIONS[n])
    # Ollama's thinking detection: .Thinking inside range .Messages, literal tags.
    body = template[template.index("range $i, $_ := .Messages") :]
    assert ".Thinking" in body and '"<think>\\n"' in body and '"</think>\\n"' in body
    assert parts.prefilled is (tokenizer.chat_template.count('"<think>\\n"') > 0)


def test_a_template_that_is_not_per_message_is_refused() -> None:
    tok = train_tokenizer(default_corpus(), vocab_size=300)
    # System text folded into the first user turn (Llama-2 style): no system piece.
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{% set ns = m['content'] %}"
        "{% elif m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
        "{% else %}{{ m['content'] }}{% endif %}{% endfor %}"
    )
    with pytest.raises(TemplateError):
        probe(tok)
    tok.chat_template = None
    with pytest.raises(TemplateError, match="no chat_template"):
        probe(tok)


class _Tok:
    """A tokenizer stand-in whose tags are several tokens or special ones."""

    def __init__(self, ids: dict[str, list[int]], special: tuple[str, ...] = ()) -> None:
        self.ids, self.all_special_tokens, self.added_tokens_decoder = ids, list(special), {}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.ids[text]


def test_tag_checks() -> None:
    tiny = train_tokenizer(default_corpus(), vocab_size=300)
    assert [c.problem() for c in check_tags(tiny)] == [None, None]
    split_tags = check_tags(_Tok({"<think>": [1, 2, 3], "</think>": [4]}))
    assert "3 tokens" in str(split_tags[0].problem()) and split_tags[1].problem() is None
    special = check_tags(_Tok({"<think>": [7], "</think>": [8]}, special=("<think>", "</think>")))
    assert all("control token" in str(c.problem()) for c in special)


# ---------------------------------------------------------------------- the command


def _report(path: Path) -> Path:
    stat = {"mean": 0.625, "std": 0.05, "values": [0.6, 0.65]}
    report = {
        "run": {"model": "tiny", "command": "secreason eval ctibench-mcq --trials 2"},
        "benchmarks": [
            {
                "name": "ctibench-mcq",
                "headline": "accuracy",
                "n_samples": 8,
                "trials": 2,
                "protocols": {"official": {"accuracy": stat}, "strict": {"accuracy": stat}},
            }
        ],
    }
    path.mkdir(parents=True)
    (path / "report.json").write_text(json.dumps(report))
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_export_all_targets(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no llama.cpp converter
    run = _report(tmp_path / "eval")
    out = tmp_path / "out"
    code, text = invoke(
        "export", str(tiny_model_dir), "--to", "vllm,ollama", "--to", "gguf",
        "--out", str(out), "--name", "tiny-cyber", "--eval", str(run),
    )  # fmt: skip
    assert code == 0, text
    gen = json.loads((out / "vllm" / "generation_config.json").read_text())
    assert (gen["temperature"], gen["top_p"], gen["do_sample"]) == (0.6, 0.95, True)
    assert gen["eos_token_id"] is not None  # the model's own config is kept
    launch = (out / "vllm" / "launch.sh").read_text()
    assert "--reasoning-parser secreason" in launch and "SECREASON_PREFILLED=1" in launch
    assert subprocess.run(["bash", "-n", str(out / "vllm" / "launch.sh")]).returncode == 0
    serve = yaml.safe_load((out / "vllm" / "serve.yaml").read_text())
    assert serve["model"]["prefilled"] is True
    assert Path(serve["system_prompt"]["file"]).read_text().strip() == DEFAULT_SYSTEM_PROMPT
    convert = (out / "gguf" / "convert.sh").read_text()
    assert f"convert_hf_to_gguf.py {tiny_model_dir.resolve()}" in convert
    assert subprocess.run(["bash", "-n", str(out / "gguf" / "convert.sh")]).returncode == 0
    modelfile = (out / "ollama" / "Modelfile").read_text()
    assert f"FROM {tiny_model_dir.resolve()}\n" in modelfile
    assert f'SYSTEM """{DEFAULT_SYSTEM_PROMPT}"""' in modelfile
    for line in ("PARAMETER temperature 0.6", "PARAMETER top_p 0.95", 'PARAMETER stop "<|end|>"'):
        assert line in modelfile
    card_text = (out / "README.md").read_text()
    assert "ollama create tiny-cyber" in card_text and "launch.sh" in card_text


def test_export_runs_the_converter_when_present(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "llama.cpp"
    fake.mkdir()
    (fake / "convert_hf_to_gguf.py").write_text(
        "import sys\nargs = sys.argv[1:]\n"
        "assert args[1:] == ['--outfile', args[2], '--outtype', 'f16'], args\n"
        "open(args[2], 'wb').write(b'GGUF')\n"
    )
    monkeypatch.setenv("LLAMA_CPP_DIR", str(fake))
    out = tmp_path / "out"
    code, text = invoke("export", str(tiny_model_dir), "--to", "gguf,ollama", "--out", str(out))
    assert code == 0, text
    gguf = out / "gguf" / f"{tiny_model_dir.name}-f16.gguf"
    assert gguf.read_bytes() == b"GGUF"
    assert f"FROM {gguf.resolve()}\n" in (out / "ollama" / "Modelfile").read_text()
    (fake / "convert_hf_to_gguf.py").write_text("import sys\nsys.exit('no llama arch')\n")
    code, text = invoke("export", str(tiny_model_dir), "--to", "gguf", "--out", str(out / "b"))
    assert code == 2 and "no llama arch" in text


def test_export_refuses_bad_input(tiny_model_dir: Path, tmp_path: Path) -> None:
    code, text = invoke("export", str(tiny_model_dir), "--to", "onnx", "--out", str(tmp_path))
    assert code == 2 and "expected some of vllm, ollama, gguf" in text
    code, text = invoke("export", str(tmp_path), "--to", "vllm", "--out", str(tmp_path / "o"))
    assert code == 2 and "no config.json" in text
    code, text = invoke(
        "export", str(tiny_model_dir), "--to", "vllm", "--out", str(tmp_path / "o"),
        "--eval", str(tmp_path / "missing"),
    )  # fmt: skip
    assert code == 2 and "no report.json" in text
    assert not (tmp_path / "o").exists()


def test_card_model_index_from_eval_reports(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    model = tmp_path / "final"
    model.mkdir()
    (model / "secreason_stage.json").write_text(
        json.dumps({"stage": "rl", "seconds": 331.0, "finished_at": "2026-11-29T20:00:00Z"})
    )
    (tmp_path / "secreason_recipe.yaml").write_text(
        "model_name_or_path: fdtn-ai/Foundation-Sec-8B\nlearning_rate: 1.0e-06\nbeta: 0.02\n"
    )
    run = _report(tmp_path / "eval")
    summary = tmp_path / "summary.json"
    summary.write_text(
        json.dumps(
            {
                "recipe": {"name": "offline", "teacher": {"kind": "template"}},
                "outputs": {"sft": {"rows": 10, "path": "runs/data/sft"}},
                "stats": {"per_task": {"cwe": {"sft": 3, "rl": 2, "heldout": 1}}},
            }
        )
    )
    code, text = invoke(
        "card", str(model), "--eval", str(run), "--name", "tiny-cyber",
        "--data-summary", str(summary),
    )  # fmt: skip
    assert code == 0, text
    card = ModelCard((model / "README.md").read_text())
    results = card.data.eval_results
    assert {(r.dataset_name, r.metric_value) for r in results} == {("ctibench-mcq", 0.625)}
    assert any("strict, 2 trial(s) ± 0.050" in str(r.metric_name) for r in results)
    assert card.data.base_model == "fdtn-ai/Foundation-Sec-8B"
    assert "Stage `rl`" in card.text and "learning_rate: 1.0e-06" in card.text
    assert "| sft | 10 | runs/data/sft |" in card.text and "| cwe | 3 | 2 | 1 |" in card.text
    (run / "report.json").write_text("{broken")
    code, text = invoke("card", str(model), "--eval", str(run))
    assert code == 2 and "report.json:1: not JSON" in text


def test_cli_help_lists_the_commands() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "secreason.cli", "--help"], capture_output=True, text=True, env=env
    )
    for command in ("export", "card", "reward-server"):
        assert command in done.stdout
