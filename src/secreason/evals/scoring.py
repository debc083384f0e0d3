"""The score pass of a run: completions through the benchmark's judge, logs, metrics.

Why a module of its own: every number of a report is made here, from completions that
were generated now, read back from the cache, or made elsewhere (``--predictions``),
and the rules that keep those numbers honest live together: a sample without a
completion is scored as an empty one (invalid, counted, never dropped); every judgement
is written to a per-sample log beside the metrics; run-wide rates (invalid, unclosed
reasoning, truncation, format) are added to whatever the benchmark aggregates.

:class:`ScoringPass` is a mixin of :class:`~secreason.evals.runner.Runner`;
:func:`read_predictions` checks a predictions file line by line (FILE:LINE errors).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from secreason.backends.base import Backend, Generation
from secreason.evals.base import Benchmark, ItemResult
from secreason.evals.dedup import dedup_metrics
from secreason.evals.generation import progress
from secreason.evals.length_stats import length_stats
from secreason.evals.run_settings import BenchmarkResult, RunSettings
from secreason.tasks.base import Judgement, Protocol, Sample

if TYPE_CHECKING:
    from secreason.evals.runner import Runner


class ScoringPass:
    """Judge, log and aggregate completions (mixed into the runner)."""

    settings: RunSettings
    out: Path

    def log_path(self, benchmark: Benchmark, trial: int, protocol: Protocol) -> Path:
        return self.out / "samples" / benchmark.name / f"trial-{trial}.{protocol}.jsonl"

    def score(
        self,
        benchmark: Benchmark,
        samples: Sequence[Sample],
        completions: dict[str, Generation],
        protocol: Protocol,
        *,
        prefilled: dict[str, bool] | None = None,
        judge: Backend | None = None,
        trial: int = 0,
        attempts: dict[str, int] | None = None,
    ) -> tuple[dict[str, float], Path]:
        """Judge every sample's completion (missing ones count as empty), log, aggregate."""
        prefilled = prefilled or {}
        texts = {
            s.id: completions[s.id].full_text() if s.id in completions else "" for s in samples
        }
        flags = {s.id: self.settings.prefilled_for(prefilled.get(s.id, False)) for s in samples}
        judgements = self._judge_all(benchmark, samples, texts, flags, protocol, judge)
        results = [
            ItemResult(s.id, protocol, j, {"trial": trial})
            for s, j in zip(samples, judgements, strict=True)
        ]
        metrics = dict(benchmark.metrics(samples, results, protocol))
        n = len(results) or 1
        metrics.setdefault("n", float(len(results)))
        metrics.setdefault(
            "invalid_rate", sum(r.judgement.score.status == "invalid" for r in results) / n
        )
        metrics["unclosed_rate"] = sum(r.judgement.split.status == "unclosed" for r in results) / n
        metrics["format_ok_rate"] = sum(r.judgement.format.ok for r in results) / n
        metrics["truncated_rate"] = (
            sum(completions[s.id].finish_reason == "length" for s in samples if s.id in completions)
            / n
        )
        metrics["missing"] = float(sum(s.id not in completions for s in samples))
        metrics.update(length_stats(results, {k: v for k, v in completions.items() if k in texts}))
        if self.settings.dedup:
            metrics.update(dedup_metrics(benchmark, samples, results, protocol))

        path = self.log_path(benchmark, trial, protocol)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for sample, judgement in zip(samples, judgements, strict=True):
                gen = completions.get(sample.id)
                line = {
                    "id": sample.id,
                    "trial": trial,
                    "protocol": protocol,
                    "prompt": benchmark.messages(sample, protocol),
                    "reference": sample.reference,
                    "completion": texts[sample.id],
                    "reasoning": judgement.split.reasoning,
                    "finish_reason": gen.finish_reason if gen else None,
                    "attempts": (attempts or {}).get(sample.id, 1 if gen else 0),
                    **judgement.as_dict(),
                }
                handle.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        return metrics, path

    def _judge_all(
        self,
        benchmark: Benchmark,
        samples: Sequence[Sample],
        texts: dict[str, str],
        flags: dict[str, bool],
        protocol: Protocol,
        judge: Backend | None,
    ) -> list[Judgement]:
        many = getattr(benchmark, "judge_many", None)
        if judge is not None and many is not None:
            # Model judges: batch the judge's generations, grouped by prefill flag.
            verdicts: dict[str, Judgement] = {}
            size = max(1, int(getattr(judge, "batch_size", 16) or 16))
            bar = progress(total=len(samples), desc=f"{benchmark.name} judge", unit="item")
            for start in range(0, len(samples), size):
                chunk = samples[start : start + size]
                for flag in (False, True):
                    part = [s for s in chunk if flags[s.id] == flag]
                    if part:
                        made = many(
                            part, [texts[s.id] for s in part], protocol, judge, prefilled=flag
                        )
                        verdicts.update(zip([s.id for s in part], made, strict=True))
                bar.update(len(chunk))
            bar.close()
            return [verdicts[s.id] for s in samples]
        return [
            benchmark.judge(s, texts[s.id], protocol, prefilled=flags[s.id], judge_backend=judge)
            for s in samples
        ]


def read_predictions(path: str | Path, samples: Sequence[Sample]) -> dict[str, Generation]:
    """Completions made elsewhere: JSONL lines with ``id`` (a sample id) or ``index``
    (the 0-based row of the benchmark file) and ``completion`` (optionally
    ``reasoning`` when the server split it off)."""
    by_id = {s.id: s for s in samples}
    by_index = {int(s.meta.get("index", i)): s for i, s in enumerate(samples)}
    out: dict[str, Generation] = {}
    source = Path(path)
    with source.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{source}:{number}"
            try:
                data = json.loads(line)
            except ValueError as error:
                raise ValueError(f"{where}: not a JSON line ({error})") from None
            if not isinstance(data, dict) or "completion" not in data:
                raise ValueError(f"{where}: a prediction needs 'completion' and 'id' or 'index'")
            if "id" not in data and "index" not in data:
                raise ValueError(f"{where}: a prediction needs 'id' or 'index' (0-based row)")
            if "index" in data:
                index = data["index"]
                if isinstance(index, bool) or not isinstance(index, int):
                    raise ValueError(
                        f"{where}: 'index' must be a whole number (the 0-based row), got {index!r}"
                    )
                sample = by_index.get(index)
                what = f"index {index!r}"
            if "id" in data:
                by_name = by_id.get(str(data["id"]))
                if "index" in data and sample is not None and by_name is not sample:
                    raise ValueError(
                        f"{where}: id {data['id']!r} and index {data['index']!r} name "
                        "different rows; give one of them"
                    )
                sample, what = by_name, f"id {data['id']!r}"
            if sample is None:
                raise ValueError(
                    f"{where}: {what} is not a row of this benchmark (or beyond --limit)"
                )
            if sample.id in out:
                raise ValueError(f"{where}: a second prediction for {sample.id}")
            completion = data["completion"]
            if not isinstance(completion, str):
                raise ValueError(f"{where}: 'completion' must be a string")
            reasoning = data.get("reasoning")
            if reasoning is not None and not isinstance(reasoning, str):
                raise ValueError(f"{where}: 'reasoning' must be a string or null")
            out[sample.id] = Generation(
                text=completion,
                reasoning=reasoning,
                finish_reason=str(data.get("finish_reason", "stop")),
            )
    return out


def score_predictions(runner: Runner, benchmark: Benchmark, path: str | Path) -> BenchmarkResult:
    """Score a predictions file under every protocol of the run (one trial)."""
    samples = runner.load(benchmark)
    completions = read_predictions(path, samples)
    if not completions:
        raise ValueError(f"{path}: no predictions (the file is empty); nothing to score")
    missing = len(samples) - len(completions)
    if missing:
        print(
            f"warning: {benchmark.name}: {missing} of {len(samples)} rows have no prediction; "
            "they are scored as empty completions (invalid)",
            file=sys.stderr,
        )
    judge = runner.judge_backend(benchmark)
    result = BenchmarkResult(benchmark.name, benchmark.headline, benchmark.references, len(samples))
    for protocol in runner.settings.protocols:
        metrics, log = runner.score(benchmark, samples, completions, protocol, judge=judge)
        result.metrics[protocol] = [metrics]
        result.samples_log[f"0.{protocol}"] = str(log)
    return result
