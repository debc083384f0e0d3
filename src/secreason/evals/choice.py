"""What every multiple-choice benchmark shares: rows -> samples, a prompt, accuracy by group.

CyberMetric, SecBench, SecEval and MMLU differ only in their file format, their
official extraction rule and the wording of their prompt. Each module converts its rows
to ``(question, options, gold)`` and picks the rule; this module does the rest once.

Prompts: the published harnesses build each question from a template. Their wording is
theirs, so the defaults here are written for this project and keep only the structural
facts that affect scoring (how options are laid out, what answer format is requested).
A user who needs the exact published wording passes ``template=`` (a string or a file)
with ``{question}`` and ``{options}`` placeholders.

Every subclass's ``load`` ends in :meth:`ChoiceBenchmark.finish`, which adds few-shot
examples (``fewshot``), applies ``--limit`` and shuffles the options (``shuffle``,
re-rendered through the benchmark's own prompt builder).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secreason.evals.base import Benchmark, ItemResult
from secreason.evals.choice_measures import choice_measures
from secreason.evals.fewshot import with_fewshot
from secreason.evals.shuffle import shuffle_measures, shuffled
from secreason.evals.sources import limited
from secreason.tasks.base import Extraction, Message, Protocol, Sample, Task
from secreason.tasks.mcq import MCQ, OfficialRule

STRICT_LETTER = (
    "Finish your response with a final line of exactly this form: 'Answer: <letter>' "
    "(one letter, nothing after it)."
)
STRICT_LETTERS = (
    "Finish your response with a final line of exactly this form: 'Answer: <letters>' "
    "listing every correct letter (e.g. 'Answer: A, C'), nothing after it."
)


def answer_statement(text: str, letters: str = "ABCDE") -> Extraction:
    """The paper harness's convention: every ``Answer: X`` in the text must agree.

    For benchmarks with no published generative rule (SecBench, MMLU): FAITH's proper
    format ``(?i)\\banswer\\s*:\\s*\\(?([LETTERS])\\b``, letters the benchmark's options
    (MMLU A-D: ``Answer: E`` is no answer), anywhere in the answer region, valid only
    when every statement names the same letter.
    """
    pattern = re.compile(rf"\banswer\s*:\s*\(?([{letters}])\b", re.IGNORECASE)
    found = {m.upper() for m in pattern.findall(text)}
    if not found:
        return Extraction(None, "no 'Answer: X' statement")
    if len(found) > 1:
        return Extraction(None, f"conflicting answers {''.join(sorted(found))}")
    return Extraction(found.pop())


def load_template(template: str | Path | None, default: str) -> str:
    """A prompt template given inline or as a file path (``{question}``, ``{options}``)."""
    if template is None:
        return default
    path = Path(template).expanduser()
    text = path.read_text(encoding="utf-8") if path.is_file() else str(template)
    missing = [key for key in ("{question}", "{options}") if key not in text]
    if missing:
        where = str(path) if path.is_file() else "template"
        raise ValueError(f"{where}: prompt template lacks {', '.join(missing)}")
    return text


def render(template: str, question: str, options: str) -> str:
    # str.replace, not str.format: user templates may contain literal braces.
    return template.replace("{question}", question).replace("{options}", options)


def accuracy_by(
    samples: Sequence[Sample], results: Sequence[ItemResult], key: str, prefix: str
) -> dict[str, float]:
    """Accuracy per value of ``sample.meta[key]`` (a string or a list: one count each)."""
    by_id = {s.id: s for s in samples}
    hits: dict[str, list[float]] = defaultdict(list)
    for result in results:
        sample = by_id.get(result.sample_id)
        if sample is None:
            continue
        groups = sample.meta.get(key)
        for group in groups if isinstance(groups, (list, tuple)) else [groups]:
            if group not in (None, ""):
                hits[str(group)].append(result.judgement.score.value)
    return {f"{prefix}/{g}": sum(v) / len(v) for g, v in sorted(hits.items())}


class ChoiceBenchmark(Benchmark):
    """A multiple-choice benchmark scored by the MCQ task under its own official rule."""

    letters: str = "ABCD"
    multi: bool = False
    default_template: str = ""
    group_key: str | None = None
    #: robustness options (``--shuffle-options``, ``--fewshot``; see ``finish``)
    shuffle: int = 1
    shuffle_seed: int = 0
    fewshot: int = 0
    fewshot_seed: int = 0

    def __init__(self, *, template: str | Path | None = None, official: OfficialRule | None = None):
        self.template = load_template(template, self.default_template)
        self._task = MCQ(letters=self.letters, multi=self.multi, official=official or self.rule)
        self.strict_instruction = STRICT_LETTERS if self.multi else STRICT_LETTER

    @property
    def task(self) -> Task:
        return self._task

    def rule(self, text: str) -> Any:  # pragma: no cover - every subclass sets one
        raise NotImplementedError

    def options_text(self, options: dict[str, str]) -> str:
        return "\n".join(f"{k}) {v}" for k, v in options.items())

    def build_messages(self, question: str, options: dict[str, str]) -> list[Message]:
        messages: list[Message] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        content = render(self.template, question.strip(), self.options_text(options))
        messages.append({"role": "user", "content": content})
        return messages

    def make_sample(
        self, index: int, question: str, options: dict[str, str], gold: str, **meta: Any
    ) -> Sample:
        return Sample(
            id=f"{self.name}-{index}",
            task="mcq",
            messages=self.build_messages(question, options),
            reference=gold,
            meta={"index": index, "question": question, "options": options, **meta},
        )

    def rows_limit(self, limit: int | None) -> int | None:
        """How many rows to read: all of them when few-shot examples are drawn from them."""
        return None if self.fewshot else limit

    def finish(
        self, samples: list[Sample], limit: int | None, pool: Sequence[Sample] | None = None
    ) -> list[Sample]:
        """Few-shot examples (from ``pool``, the dev split, else the other rows), the
        ``--limit``, then option shuffling: what every subclass's ``load`` returns."""
        if self.fewshot:
            samples = with_fewshot(samples, self.fewshot, seed=self.fewshot_seed, pool=pool)
        samples = limited(samples, limit)
        if self.shuffle > 1:
            samples = shuffled(samples, self.shuffle, self.shuffle_seed, self._render)
        return samples

    def _render(self, sample: Sample, options: dict[str, str]) -> str:
        question = str(sample.meta.get("question", ""))
        return self.build_messages(question, options)[-1]["content"]

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        out = dict(self.task.aggregate([r.judgement.score for r in results]))
        if self.shuffle > 1:
            out.update(shuffle_measures(samples, results))
        if not self.multi:
            out.update(choice_measures(self.task, samples, results))
        if self.group_key:
            out.update(accuracy_by(samples, results, self.group_key, self.group_key))
        return out
