"""The general-capability parts of ``secreason eval``: lm-evaluation-harness tasks
(``--lm-eval``) and AlpacaEval 2.0 (``--alpaca-eval``), folded into the same report.

Both run on the run's own model and write every generation to ``OUT/cache`` first, so
a killed run resumes and ``--rescore`` scores from the cache without loading a model
(AlpacaEval's judge keeps its own annotation cache, so a rescore asks it nothing new).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from secreason.cli._errors import fail as _fail

#: Generations written to the cache at a time: what a kill can lose at most.
ALPACA_CHUNK = 64


def _trial_params(settings: Any, trial: int) -> Any:
    from secreason.backends.base import SamplingParams

    return SamplingParams(
        temperature=settings.temperature or 0.0,
        top_p=settings.top_p or 1.0,
        max_tokens=settings.max_tokens or 2048,
        seed=(settings.seed if settings.seed is not None else 0) + trial,
    )


def run_general(
    runner: Any,
    settings: Any,
    tasks: str,
    out: Path,
    include_path: Path | None = None,
    batch_size: int | None = None,
) -> Any:
    """lm-evaluation-harness tasks on the run's model, generations cached like the rest.

    Each trial is one lm-eval run with seed S+t, so ``--trials`` gives mean +- std here
    too; a rerun reads every generation back from the cache.
    """
    from secreason.evals.cache import CachedBackend
    from secreason.evals.general import run_lm_eval
    from secreason.evals.runner import BenchmarkResult

    if importlib.util.find_spec("lm_eval") is None:
        _fail("--lm-eval needs lm-evaluation-harness: pip install 'secreason[general]'")
    if include_path is not None and not include_path.is_dir():
        _fail(f"--lm-eval-include {include_path}: not a folder of lm-eval task YAML files")
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    backend = CachedBackend(
        runner.backend,  # loaded only if a generation is missing (not with --rescore)
        out / "cache" / "lm-eval" / "generations.jsonl",
        model_id=settings.model,
    )
    trials: list[dict[str, float]] = []
    for trial in range(settings.trials):
        params = _trial_params(settings, trial)
        try:
            flat = run_lm_eval(
                backend,
                names,
                limit=settings.limit,
                params=params,
                include_path=str(include_path) if include_path else None,
                batch_size=batch_size or 16,
            )
        except ImportError as error:
            _fail(str(error))
        except KeyError as error:  # lm-eval names the task it does not know
            _fail(f"--lm-eval {tasks}: {error.args[0]} (custom tasks: --lm-eval-include DIR)")
        trials.append(flat)
    return BenchmarkResult(
        name="lm-eval",
        headline=next(iter(trials[0]), ""),
        references=(),
        n_samples=0,
        metrics={"official": trials},
    )


def alpaca_inputs(
    instructions_path: Path,
    reference: Path | None,
    *,
    judge_model: str | None,
    judge_base_url: str | None,
    verdict: str,
    limit: int | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The checked instructions and references of ``--alpaca-eval``: checked before
    any model is loaded, so a bad file fails in a second, not after the benchmarks."""
    from secreason.evals import alpacaeval

    if importlib.util.find_spec("alpaca_eval") is None:
        _fail("--alpaca-eval needs alpaca-eval: pip install 'secreason[general]'")
    if not judge_model or not judge_base_url:
        _fail(
            "--alpaca-eval needs its judge: --alpaca-judge MODEL and "
            "--alpaca-judge-base-url URL (an OpenAI-compatible server)"
        )
    if verdict not in ("logprobs", "text"):
        _fail(f"--alpaca-verdict {verdict!r}: choose logprobs or text")
    try:
        rows = alpacaeval.load_instructions(instructions_path)
        references = alpacaeval.load_instructions(reference) if reference else None
    except (FileNotFoundError, ValueError) as error:
        _fail(f"--alpaca-eval: {error}")
    if limit:
        rows = rows[:limit]
        references = references[:limit] if references else None
    if references is not None:
        if len(references) < len(rows):
            _fail(
                f"--alpaca-reference {reference}: must hold the same instructions in the "
                f"same order as {instructions_path} (it has {len(references)} records)"
            )
        for number, (row, ref) in enumerate(zip(rows, references, strict=False), 1):
            if row["instruction"] != ref["instruction"]:
                _fail(
                    f"--alpaca-reference {reference}: must hold the same instructions in "
                    f"the same order as {instructions_path} (they differ at record {number})"
                )
            if not isinstance(ref.get("output"), str):
                _fail(f"--alpaca-reference {reference}: record {number} has no 'output' text")
    return rows, references


def run_alpaca(
    runner: Any,
    settings: Any,
    rows: list[dict[str, Any]],
    references: list[dict[str, Any]] | None,
    out: Path,
    *,
    judge_model: str,
    judge_base_url: str,
    verdict: str = "logprobs",
    length_controlled: bool = True,
) -> Any:
    """AlpacaEval 2.0 on the run's model: generate (cached), strip reasoning, judge.

    One alpaca-eval evaluation per trial (seeds S, S+1, ...). The judge is an
    OpenAI-compatible model; ``verdict='text'`` reads its verdict letter from the reply
    (servers without log-probabilities), ``'logprobs'`` is AlpacaEval 2.0's own rule.
    The judge's key is ``$OPENAI_API_KEY`` (the model's ``--api-key`` is not sent to it).
    Inputs come from :func:`alpaca_inputs`.
    """
    from secreason.evals import alpacaeval
    from secreason.evals.cache import CacheRecord, GenerationCache, generation_key
    from secreason.evals.runner import BenchmarkResult, progress

    folder = out / "alpaca-eval"
    cache = GenerationCache(out / "cache" / "alpaca-eval" / "generations.jsonl")
    annotators = alpacaeval.judge_annotator_config(
        folder / "judge",
        judge_model,
        judge_base_url,
        weighted=verdict == "logprobs",
    )
    generator = Path(settings.model).name or settings.model or "model"
    conversations = [[{"role": "user", "content": r["instruction"]}] for r in rows]
    trials: list[dict[str, float]] = []
    for trial in range(settings.trials):
        params = _trial_params(settings, trial)
        keys = [generation_key(settings.model, settings.revision, c, params) for c in conversations]
        missing = [i for i, key in enumerate(keys) if key not in cache]
        bar = progress(total=len(missing), desc=f"alpaca-eval trial {trial}", unit="gen")
        for start in range(0, len(missing), ALPACA_CHUNK):
            chunk = missing[start : start + ALPACA_CHUNK]
            backend = runner.backend()
            made = backend.generate([conversations[i] for i in chunk], params)
            cache.append(
                [
                    CacheRecord.from_generation(
                        keys[i], f"alpaca-{i}", g, prefilled=backend.prefilled
                    )
                    for i, g in zip(chunk, made, strict=True)
                ]
            )
            bar.update(len(chunk))
        bar.close()
        outputs = []
        for row, key in zip(rows, keys, strict=True):
            record = cache.get(key)
            assert record is not None, "every instruction was generated above"
            outputs += alpacaeval.alpaca_outputs(
                [row["instruction"]],
                [record.generation().full_text()],
                generator,
                prefilled=runner.prefilled_for(record.prefilled),
            )
        try:
            trials.append(
                alpacaeval.run_alpaca_eval(
                    outputs,
                    reference_outputs=references,
                    annotators_config=annotators,
                    output_path=folder / f"trial-{trial}",
                    length_controlled=length_controlled,
                )
            )
        except RuntimeError as error:  # the length control's hub file, offline
            _fail(str(error))
    headline = "length_controlled_winrate" if length_controlled else "win_rate"
    return BenchmarkResult(
        name="alpaca-eval",
        headline=headline,
        references=(),
        n_samples=len(rows),
        metrics={"official": trials},
    )
