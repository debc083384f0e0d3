"""The offline teacher: deterministic, grounded reasoning written from knowledge-base facts.

With no endpoint (tests, the CPU demo, a first dry run of a recipe) the pipeline still
needs traces in the exact shape a real teacher's kept traces have. Synthesis stores,
with each item, the facts that lead to its gold answer (``meta["facts"]``: short
sentences drawn from the CWE catalog, ATT&CK or the CVSS specification); this teacher
writes them out as step-by-step reasoning inside ``<think>...</think>`` and ends with
the answer line the task's strict extractor reads::

    <think>
    The text says a crafted id changes the database query.
    That is sql injection.
    Sql injection is CWE-89.
    So the answer is CWE-89.
    </think>
    Answer: CWE-89

Its traces go through the same rejection filter as a real teacher's (the task's
verifier and the reasoning contract), so a bad fact or a format drift is caught, not
trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

from secreason.reasoning import THINK
from secreason.tasks.base import Sample

NAME = "template"
UNCOVERED = (
    f"{THINK.open}\nI have no fact that explains this phrasing.\n{THINK.close}\nAnswer: unknown"
)


def reasoning_lines(sample: Sample) -> list[str]:
    """The reasoning, one step per line: the item's facts, then the conclusion.

    ``meta["conclude"] = False`` leaves the conclusion to the answer line (the demo's
    tiny model generates few tokens, so its traces stay short).
    """
    facts = sample.meta.get("facts")
    if not facts:
        raise ValueError(
            f"item {sample.id} ({sample.task}) has no meta['facts']; the template teacher "
            "only writes traces for items made by secreason.data synthesis"
        )
    lines = [str(f).strip() for f in facts if str(f).strip()]
    if sample.meta.get("conclude", True):
        lines.append(f"So the answer is {sample.reference}.")
    return lines


def template_trace(sample: Sample) -> str:
    """The assistant turn for ``sample``: ``<think>`` reasoning ``</think>`` then the answer."""
    body = "\n".join(reasoning_lines(sample))
    return f"{THINK.open}\n{body}\n{THINK.close}\nAnswer: {sample.reference}"


def sft_messages(sample: Sample, trace: str | None = None) -> list[dict[str, str]]:
    """The item's prompt messages plus the assistant turn (conversational SFT row)."""
    return [*sample.messages, {"role": "assistant", "content": trace or template_trace(sample)}]


class TemplateTeacher:
    """The offline teacher behind the same interface as the endpoint teacher."""

    name = NAME

    def complete(self, sample: Sample, k: int = 1) -> list[str]:
        """``k`` completions (identical: the template teacher is deterministic).

        An item marked ``teacher_seen: False`` (a demo phrasing the teacher does not
        cover) gets an honest non-answer, which the verifier rejects: such items become
        RL prompts the teacher never solved, as with a real teacher's hard items.
        """
        if sample.meta.get("teacher_seen") is False:
            return [UNCOVERED] * max(1, k)
        return [template_trace(sample)] * max(1, k)

    def traces(self, samples: Sequence[Sample]) -> list[str]:
        return [template_trace(s) for s in samples]
