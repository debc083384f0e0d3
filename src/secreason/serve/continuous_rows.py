"""One request inside continuous batching, and its text as tokens come in.

transformers' manager reports a row as token ids (every token so far, at each step);
the server needs text deltas, its finish reason and its token counts, decoded exactly as
the transformers backend decodes a whole completion (think-tag ids written back as tags,
special tokens dropped). :class:`Decoder` does it incrementally: each step decodes only
a short window (from the token before the last emitted delta), so a long completion
costs linear work, and a delta is held while it ends inside a multi-byte character.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from secreason.backends.base import SamplingParams

#: Put on a row's events when the server ends it (shutdown): the row stops with what it has.
ENDED = object()


class Decoder:
    """Text of a growing list of token ids, up to the first end-of-sequence id."""

    def __init__(self, decode: Callable[[list[int]], str], eos: set[int]) -> None:
        self.decode = decode
        self.eos = eos
        self.reset()

    def reset(self) -> None:
        self.prefix = 0  # window start: the token before the last delta's tokens
        self.read = 0  # tokens already turned into text
        self.text = ""
        self.scanned = 0  # tokens already searched for an EOS
        self.eos_at: int | None = None  # where the first EOS is, once seen

    def _end(self, tokens: Sequence[int]) -> int:
        """Where the visible tokens end. The manager hands over every token so far at
        each step: only the new ones are searched (a whole scan per step made a stream
        quadratic in its length, on the event loop)."""
        if self.eos_at is None:
            for index in range(self.scanned, len(tokens)):
                if tokens[index] in self.eos:
                    self.eos_at = index
                    break
            else:
                self.scanned = len(tokens)
        return len(tokens) if self.eos_at is None else self.eos_at

    def visible(self, tokens: Sequence[int]) -> tuple[list[int], bool]:
        """The tokens before the first EOS, and whether there was one."""
        end = self._end(tokens)
        return list(tokens[:end]), end < len(tokens)

    def feed(self, tokens: Sequence[int]) -> str:
        """The new text since the last call ('' while a character is incomplete)."""
        end = self._end(tokens)
        if end <= self.read:
            return ""
        before = self.decode(list(tokens[self.prefix : self.read]))
        after = self.decode(list(tokens[self.prefix : end]))
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        delta = after[len(before) :]
        self.prefix, self.read = self.read, end
        self.text += delta
        return delta

    def flush(self, tokens: Sequence[int]) -> str:
        """Whatever text is left at the end (an incomplete character included)."""
        visible, _ = self.visible(tokens)
        before = self.decode(visible[self.prefix : self.read])
        delta = self.decode(visible[self.prefix :])[len(before) :]
        self.prefix = self.read = len(visible)
        self.text += delta
        return delta

    def holds(self, stops: Sequence[str], delta: str) -> bool:
        """Whether a stop string ends in the text's tail that ``delta`` just added."""
        longest = max((len(s) for s in stops), default=0)
        tail = self.text[-(len(delta) + longest) :]
        return any(s and s in tail for s in stops)

    def finish(self, tokens: Sequence[int], params: SamplingParams) -> tuple[str, int]:
        """The finish reason and completion tokens (the EOS counts, as in ``generate``)."""
        visible, ended = self.visible(tokens)
        if ended:
            return "stop", len(visible) + 1
        return ("length" if len(tokens) >= params.max_tokens else "stop"), len(visible)


@dataclass(eq=False)
class Row:
    """A request as the continuous engine tracks it."""

    prompt_ids: list[int]
    params: SamplingParams
    decoder: Decoder
    request_id: str | None = None
    events: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    finished: bool = False  # its last output came (or it was ended): nothing to cancel
    sent: bool = False  # text went to the client: a failed stream cannot be replayed

    def reset(self) -> None:
        """Start again from nothing (a retry)."""
        self.events = asyncio.Queue()
        self.finished = False
        self.decoder.reset()
