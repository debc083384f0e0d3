"""IFEval: 541 prompts with verifiable formatting instructions (the paper's Table 5).

Data: ``input_data.jsonl`` (google/IFEval; one JSON per line with key, prompt,
instruction_id_list, kwargs) or the hub id ``google/IFEval``.

The instruction checkers are not rewritten here: the maintained ``if-verifiable``
package runs them (strict = the response as is; loose = also with the first and/or last
line dropped and ``*`` removed, IFEval's own variants). What this module adds is the
reasoning contract: the checkers see the answer region only, so a model that thinks
in ``<think>`` is not penalised for its reasoning and an unclosed reasoning leaves an
empty (failing) answer.

Metrics, as IFEval defines them: prompt-level = share of prompts whose every
instruction passes; instruction-level = passed instructions / all instructions, pooled
over prompts. The paper reports instruction-level loose accuracy (``inst_loose``).
Both protocols send IFEval's own prompt and score the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secreason.backends.base import SamplingParams
from secreason.evals.base import Benchmark, ItemResult
from secreason.evals.sources import hub_rows, limited, local_file, read_jsonl
from secreason.tasks.base import Extraction, Message, Protocol, Sample, Score, Task, invalid


def _spec(row: dict[str, Any]) -> str:
    """The gold of an IFEval item: its instructions and their arguments, as JSON."""
    kwargs = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in row["kwargs"]]
    return json.dumps(
        {
            "prompt": row["prompt"],
            "instruction_id_list": list(row["instruction_id_list"]),
            "kwargs": kwargs,
        }
    )


class InstructionFollowing(Task):
    """Scores a response against IFEval instructions with ``if-verifiable``'s checkers."""

    name = "ifeval"

    def prompt(self, sample: Sample) -> list[Message]:
        return [dict(m) for m in sample.messages]

    def extract(self, answer_text: str, protocol: Protocol = "strict") -> Extraction:
        if not answer_text.strip():
            return Extraction(None, "empty answer")
        return Extraction(answer_text)

    def score(self, extracted: Extraction, reference: str) -> Score:
        spec = json.loads(reference)
        total = len(spec["instruction_id_list"])
        if not extracted.ok:
            score = invalid(extracted.error)
            score.details.update(instructions=total, strict_passed=0, loose_passed=0)
            return score
        from if_verifiable.common import evaluate_instructions
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

        results, _ = evaluate_instructions(
            response=str(extracted.value),
            instruction_id_list=spec["instruction_id_list"],
            kwargs_list=spec["kwargs"],
            prompt=spec["prompt"],
            instruction_registry=INSTRUCTION_DICT,
        )
        strict = sum(r.strict_pass for r in results)
        loose = sum(r.loose_pass for r in results)
        details = {
            "instructions": total,
            "strict_passed": strict,
            "loose_passed": loose,
            "failed_loose": [r.instruction_id for r in results if not r.loose_pass],
        }
        all_loose = total > 0 and loose == total
        return Score(
            loose / total if total else 0.0, "correct" if all_loose else "incorrect", details
        )

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        n = len(scores)
        if not n:
            return {"n": 0}
        total = sum(int(s.details.get("instructions", 0)) for s in scores)
        strict = sum(int(s.details.get("strict_passed", 0)) for s in scores)
        loose = sum(int(s.details.get("loose_passed", 0)) for s in scores)
        whole = [int(s.details.get("instructions", 0)) for s in scores]
        return {
            "n": n,
            "prompt_strict": sum(
                w > 0 and s.details.get("strict_passed") == w
                for s, w in zip(scores, whole, strict=True)
            )
            / n,
            "prompt_loose": sum(
                w > 0 and s.details.get("loose_passed") == w
                for s, w in zip(scores, whole, strict=True)
            )
            / n,
            "inst_strict": strict / total if total else 0.0,
            "inst_loose": loose / total if total else 0.0,
            "invalid_rate": sum(s.status == "invalid" for s in scores) / n,
        }


class IFEval(Benchmark):
    name = "ifeval"
    default_source = "google/IFEval"
    headline = "inst_loose"
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=2048, seed=42)

    def __init__(self) -> None:
        self._task = InstructionFollowing()

    @property
    def task(self) -> Task:
        return self._task

    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        source = source or self.default_source
        path = local_file(source, ["input_data.jsonl", "ifeval_input_data.jsonl"])
        rows = (
            read_jsonl(path, ("prompt",))
            if path is not None
            else hub_rows(str(source), split="train")
        )
        samples = []
        for index, row in enumerate(limited(rows, limit)):
            samples.append(
                Sample(
                    id=f"{self.name}-{index}",
                    task="ifeval",
                    messages=[{"role": "user", "content": str(row["prompt"])}],
                    reference=_spec(row),
                    meta={"index": index, "key": row.get("key")},
                )
            )
        return samples

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        return dict(self._task.aggregate([r.judgement.score for r in results]))
