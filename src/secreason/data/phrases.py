"""Word-level text matching shared by the shortcut audit and the item generators.

The audit's no-model baseline (``data.shortcuts``) and the generators that must not
leave it a cue (``data.kb_items``) have to read text the same way: if a generator
measured "this option shares words with the question" differently from the audit, its
distractors would close a gap the audit still sees. So both use these definitions:

* ``words``: lower-case ASCII letters and digits, everything else a separator;
* ``content_words``: those words less a short list of function words;
* ``overlap`` and ``quoted``: how much of an option the question holds, and whether it
  holds all of it, in order;
* ``PhraseIndex``: many names matched at once as whole word n-grams, also written
  without their spaces or dashes ("Gruesome-Larch" for GruesomeLarch).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

_WORD = re.compile(r"[a-z0-9]+")
_SQUASH_MIN = 4
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "for",
        "to",
        "and",
        "or",
        "by",
        "with",
        "from",
        "as",
        "is",
        "are",
        "be",
        "this",
        "that",
        "which",
        "what",
        "its",
        "it",
        "into",
        "via",
        "using",
        "use",
        "used",
        "does",
        "do",
        "not",
        "no",
    ]
)


def words(text: str) -> list[str]:
    """The lower-case words of ``text`` (punctuation and non-ASCII letters dropped)."""
    return _WORD.findall(text.lower())


@functools.lru_cache(maxsize=1 << 14)
def content_words(text: str) -> frozenset[str]:
    """The words of ``text`` that are not :data:`STOPWORDS`."""
    return frozenset(w for w in words(text) if w not in STOPWORDS)


def loose(text: str) -> str:
    """Words without articles or a plural s: "An attacker must..." reads as "the attacker must"."""
    return " ".join(
        w[:-1] if len(w) > 3 and w.endswith("s") else w
        for w in words(text)
        if w not in ("a", "an", "the")
    )


def overlap(option: str, question: str) -> float:
    """The share of the option's content words that the question also holds."""
    own = content_words(option)
    return len(own & content_words(question)) / max(1, len(own))


def quoted(option: str, question: str) -> bool:
    """Whether the option's words appear, in order, in the question."""
    o, q = " ".join(words(option)), " ".join(words(question))
    return bool(o) and f" {o} " in f" {q} "


class PhraseIndex:
    """Names -> labels, matched as whole word n-grams; ambiguous names are dropped."""

    def __init__(
        self,
        pairs: Iterable[tuple[str, str]],
        min_chars: int = 3,
        tie: Callable[[set[str]], str] | None = None,
    ) -> None:
        labels: dict[str, set[str]] = {}
        for name, label in pairs:
            toks = words(name)
            key = " ".join(toks)
            if len(key) >= min_chars:
                labels.setdefault(key, set()).add(label)
            # the same name written without its spaces or dashes ("GruesomeLarch")
            if len(toks) > 1 and len("".join(toks)) >= _SQUASH_MIN:
                labels.setdefault("".join(toks), set()).add(label)
        # an ambiguous name is dropped, unless ``tie`` picks one of its labels
        self.table = {
            k: tie(v) if tie is not None and len(v) > 1 else next(iter(v))
            for k, v in labels.items()
            if len(v) == 1 or tie is not None
        }
        self.max_n = max((k.count(" ") + 1 for k in self.table), default=0)

    def find(self, text: str) -> list[tuple[str, str]]:
        """(label, matched name) for the longest name starting at each word, left to right."""
        toks = words(text)
        out = []
        i = 0
        while i < len(toks):
            for n in range(min(self.max_n, len(toks) - i), 0, -1):
                key = " ".join(toks[i : i + n])
                if key not in self.table and n > 1:
                    # re-punctuated ("Gruesome-Larch" for GruesomeLarch)
                    squashed = "".join(toks[i : i + n])
                    key = squashed if len(squashed) >= _SQUASH_MIN else key
                if key in self.table:
                    out.append((self.table[key], key))
                    i += n
                    break
            else:
                i += 1
        return out
