"""Reasoning/answer split of a completion that arrives in pieces.

The server streams reasoning deltas (``reasoning_content``) and then answer deltas
(``content``). It must not keep a private parser: at every delta it asks the one
reasoning contract (:func:`secreason.reasoning.split`) how the text seen so far splits
and sends only what each side gained. Two things make that safe:

* A delta may end in the middle of a tag (``...</thi``). The tail that could still
  become a tag is held back until the next delta shows what it is, so a tag's
  characters never leak into either side.
* Nothing already sent can be taken back. For well-formed completions (one block,
  prefilled or not, closed or unclosed) the contract's split of a prefix only grows,
  so the streamed text equals the final split. Malformed ones (several blocks, text
  before ``<think>``) can re-classify text already sent; :attr:`StreamSplitter.diverged`
  reports it, and the final :class:`~secreason.reasoning.Split` (what the audit log and
  the guard see) is always the contract's verdict on the whole text.
"""

from __future__ import annotations

from typing import Literal

from secreason.reasoning import THINK, Split, Tags, split

Kind = Literal["reasoning", "content"]


def held_back(text: str, tags: Tags) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a tag."""
    longest = 0
    for tag in (tags.open, tags.close):
        for size in range(min(len(tag) - 1, len(text)), longest, -1):
            if text.endswith(tag[:size]):
                longest = size
                break
    return longest


class StreamSplitter:
    def __init__(self, *, prefilled: bool = False, tags: Tags = THINK) -> None:
        self.prefilled = prefilled
        self.tags = tags
        self.text = ""
        self._sent: dict[Kind, str] = {"reasoning": "", "content": ""}
        self.diverged = False

    def _emit(self, current: Split) -> list[tuple[Kind, str]]:
        out: list[tuple[Kind, str]] = []
        sides: tuple[tuple[Kind, str], ...] = (
            ("reasoning", current.reasoning),
            ("content", current.answer),
        )
        for kind, now in sides:
            sent = self._sent[kind]
            if now == sent:
                continue
            late_reasoning = kind == "reasoning" and bool(self._sent["content"])
            if late_reasoning or not now.startswith(sent):
                self.diverged = True  # the contract re-classified text already sent
                continue
            out.append((kind, now[len(sent) :]))
            self._sent[kind] = now
        return out

    def feed(self, delta: str) -> list[tuple[Kind, str]]:
        """Deltas to send now, reasoning before content."""
        self.text += delta
        visible = self.text[: len(self.text) - held_back(self.text, self.tags)]
        return self._emit(split(visible, prefilled=self.prefilled, tags=self.tags))

    def finish(self) -> tuple[list[tuple[Kind, str]], Split]:
        """The last deltas and the contract's verdict on the whole completion."""
        final = split(self.text, prefilled=self.prefilled, tags=self.tags)
        out = self._emit(final)
        if self._sent["reasoning"] != final.reasoning or self._sent["content"] != final.answer:
            self.diverged = True
        return out, final


class StopStrings:
    """Cuts a stream at its first stop string and never sends part of one.

    A stop string can straddle two deltas (``...ST`` then ``OP``): the tail that could
    still grow into one is held back until the next delta shows what it is, and a
    match cuts the text where it starts (:attr:`hit` then says the stream should end).
    """

    def __init__(self, stops: tuple[str, ...] = ()) -> None:
        self.stops = tuple(s for s in stops if s)
        self.pending = ""
        self.hit = False

    def feed(self, delta: str) -> str:
        """The part of ``delta`` (with what was held) that is safe to send now."""
        if not self.stops or self.hit:
            return "" if self.hit else delta
        text = self.pending + delta
        starts = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if starts:
            self.hit, self.pending = True, ""
            return text[: min(starts)]
        keep = max(_prefix_tail(text, stop) for stop in self.stops)
        self.pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def finish(self) -> str:
        """What was held when the stream ended without completing a stop string."""
        rest, self.pending = self.pending, ""
        return "" if self.hit else rest


def _prefix_tail(text: str, stop: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``stop``."""
    for size in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0
