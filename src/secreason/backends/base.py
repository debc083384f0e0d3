"""The inference contract shared by evals, data (teacher) and serve.

A backend turns chat conversations into completions. It never parses answers: the
reasoning contract and the tasks do that. ``Generation.reasoning`` is only set when
the engine itself split the reasoning off (an OpenAI-compatible server returning
``reasoning_content``); :func:`Generation.full_text` puts it back inside think tags so
that the one contract can read every backend's output the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from secreason.reasoning import THINK, Tags

Message = dict[str, str]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Generation:
    text: str
    reasoning: str | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def full_text(self, tags: Tags = THINK) -> str:
        """The completion with engine-split reasoning put back inside think tags."""
        if self.reasoning is None:
            return self.text
        return f"{tags.open}{self.reasoning}{tags.close}{self.text}"


class Backend(ABC):
    """Generates completions for a batch of conversations."""

    model_id: str = ""
    #: True when the chat template ends the prompt inside the reasoning (``<think>\\n``).
    prefilled: bool = False

    @abstractmethod
    def generate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        """One generation per conversation, in order."""

    def stream(self, conversation: list[Message], params: SamplingParams) -> Iterator[str]:
        """Text deltas of one generation; backends that cannot stream yield it whole."""
        yield self.generate([conversation], params)[0].full_text()

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release engines, threads or connections."""
