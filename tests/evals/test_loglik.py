"""Log-likelihood multiple choice on the tiny model, checked against a direct forward pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from secreason.backends.transformers import TransformersBackend
from secreason.evals import get_benchmark
from secreason.evals.loglik import answer_prompt, choice_logprobs, evaluate_loglik, loglik_results

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "athenabench"


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> TransformersBackend:
    return TransformersBackend(str(tiny_model_dir), device="cpu", dtype="float32")


def by_hand(backend: TransformersBackend, prompt: str, choice: str) -> float:
    """log p(choice | prompt): one unpadded forward pass over prompt + choice."""
    tok = backend.tokenizer
    context = tok(prompt, add_special_tokens=False)["input_ids"]
    cont = tok(choice, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([context + cont])
    with torch.no_grad():
        logprobs = torch.log_softmax(backend.model(input_ids=ids).logits.float(), -1)[0]
    return float(sum(logprobs[len(context) - 1 + i, t] for i, t in enumerate(cont)))


def test_letters_and_long_choices_match_a_direct_forward_pass(backend) -> None:
    prompts = ["Question: which? Answer:", "A much longer question about a toy lab. Answer:", "x"]
    letters = [" A", " B", " C"]
    long = [" Execution Prevention", " Audit"]
    tok = backend.tokenizer
    assert all(len(tok(c, add_special_tokens=False)["input_ids"]) == 1 for c in letters)
    assert len(tok(long[0], add_special_tokens=False)["input_ids"]) > 1
    for choices in (letters, long):
        batched = choice_logprobs(backend.model, tok, prompts, choices, batch_size=4)
        alone = choice_logprobs(backend.model, tok, prompts, choices, batch_size=1)
        for got, one, prompt in zip(batched, alone, prompts, strict=True):
            for choice in choices:
                expected = by_hand(backend, prompt, choice)
                assert got[choice] == pytest.approx(expected, abs=1e-4)
                assert one[choice] == pytest.approx(expected, abs=1e-4)


def test_the_letter_is_read_after_closed_reasoning(backend) -> None:
    prompt = answer_prompt(backend, [{"role": "user", "content": "Q"}])
    assert backend.prefilled
    assert prompt.endswith("<think>\n</think>\nAnswer:")


def test_benchmark_scores_the_most_likely_letter(backend) -> None:
    bench = get_benchmark("athenabench-mcq")
    samples = bench.load(FIXTURES)
    results = loglik_results(bench, samples, backend, "official")
    chosen = [max(r.extra["logprobs"], key=r.extra["logprobs"].get) for r in results]
    assert all(sorted(r.extra["logprobs"]) == list("ABCDE") for r in results)
    expected = sum(c == s.reference for c, s in zip(chosen, samples, strict=True)) / 4
    metrics = evaluate_loglik(bench, backend, FIXTURES)
    for protocol in ("official", "strict"):
        assert metrics[protocol]["accuracy"] == pytest.approx(expected)
        assert metrics[protocol]["format_proper"] == 1.0  # never invalid
    with pytest.raises(ValueError, match="no options"):
        loglik_results(
            get_benchmark("athenabench-rcm"),
            get_benchmark("athenabench-rcm").load(FIXTURES),
            backend,
        )


def test_refused_without_token_probabilities() -> None:
    bench = get_benchmark("athenabench-mcq")
    with pytest.raises(TypeError, match="transformers backend"):
        loglik_results(bench, bench.load(FIXTURES), object())


def test_cli_mc_mode_loglik_writes_the_report(
    tiny_model_dir: Path, tmp_path: Path, backend
) -> None:
    import json

    from typer.testing import CliRunner

    from secreason.cli import app

    out = tmp_path / "run"
    base = ["eval", "athenabench-mcq", "--model", str(tiny_model_dir), "--data", str(FIXTURES)]
    args = [*base, "--mc-mode", "loglik", "--protocol", "official", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())["benchmarks"][0]
    bench = get_benchmark("athenabench-mcq")
    expected = evaluate_loglik(bench, backend, FIXTURES, protocols=("official",))["official"]
    assert report["protocols"]["official"]["accuracy"]["mean"] == pytest.approx(
        expected["accuracy"]
    )
    log = (out / "samples" / "athenabench-mcq" / "trial-0.official.jsonl").read_text()
    assert len(log.splitlines()) == 4 and '"logprobs"' in log
    assert not (out / "cache" / "athenabench-mcq").exists()  # nothing was generated

    for extra, message in (
        (["--mc-mode", "sample"], "choose generate, loglik or think-then-loglik"),
        (["--mc-mode", "loglik", "--rescore"], "--backend transformers"),
        (["--mc-mode", "loglik", "--backend", "vllm"], "run 'vllm serve'"),
    ):
        refused = CliRunner().invoke(app, [*base, *extra, "--out", str(tmp_path / "x")])
        assert refused.exit_code != 0 and message in refused.stderr
    rcm = ["eval", "athenabench-rcm", "--model", str(tiny_model_dir), "--data", str(FIXTURES)]
    refused = CliRunner().invoke(app, [*rcm, "--mc-mode", "loglik", "--out", str(tmp_path / "y")])
    assert refused.exit_code != 0 and "athenabench-rcm" in refused.stderr


def test_think_then_loglik_reads_the_letter_after_the_models_reasoning(backend) -> None:
    conversation = [{"role": "user", "content": "Q"}]
    prompt = answer_prompt(backend, conversation, reasoning="the loader is signed")
    assert prompt.endswith("<think>\nthe loader is signed</think>\nAnswer:")
    bench = get_benchmark("athenabench-mcq")
    samples = bench.load(FIXTURES)[:2]
    thoughts = {samples[0].id: "first thought", samples[1].id: ""}
    results = loglik_results(bench, samples, backend, "official", reasoning=thoughts)
    for sample, result in zip(samples, results, strict=True):
        text = answer_prompt(backend, bench.messages(sample, "official"), thoughts[sample.id])
        assert result.extra["logprobs"]["B"] == pytest.approx(
            by_hand(backend, text, " B"), abs=1e-4
        )


def test_cli_think_then_loglik_generates_once_then_reads_the_cache(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from secreason.cli import app

    out = tmp_path / "run"
    args = ["eval", "athenabench-mcq", "--model", str(tiny_model_dir), "--data", str(FIXTURES)]
    args += ["--mc-mode", "think-then-loglik", "--max-tokens", "6", "--protocol", "official"]
    args += ["--out", str(out)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.stderr
    report = json.loads((out / "report.json").read_text())["benchmarks"][0]
    assert report["generated"] == 4
    assert (out / "cache" / "athenabench-mcq" / "trial-0.jsonl").is_file()
    line = (out / "samples" / "athenabench-mcq" / "trial-0.official.jsonl").read_text()
    assert '"mode": "think-then-loglik"' in line and '"reasoning"' in line
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.stderr
    assert json.loads((out / "report.json").read_text())["benchmarks"][0]["generated"] == 0
