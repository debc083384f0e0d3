"""Word n-grams hashed to 64-bit integers, vectorised over many documents at once.

Dedup and decontamination at the paper's scale (2M documents of ~2,000 characters)
spend almost all their time turning text into n-grams. A Python set of word tuples per
document (open-r1's decontamination) costs a few microseconds per n-gram; here a chunk
of documents is joined into one byte buffer and everything after that is numpy:

1. normalise with one ``bytes.translate``: ASCII letters lower-cased, digits kept,
   bytes of non-ASCII characters kept, everything else a space;
2. find word starts and ends from the letter mask;
3. hash each word from its bytes (a polynomial hash, one vectorised pass per
   character position, words longer than 32 bytes mixed with their length);
4. hash each run of ``n`` consecutive words within a document (fixed random odd
   multipliers per position, then the MurmurHash3 finaliser).

Two texts share an n-gram hash exactly when they share the n words (up to 64-bit
collisions, about one in 10^19 per pair). CVE ids survive normalisation as
``cve YYYY NNNN`` and are read from the same buffer.

Before step 1, :func:`fold` undoes the disguises a copied text picks up on the way
(scraped HTML, a chat UI, someone hiding a copy): HTML entities and tags, fullwidth and
styled letters (NFKC), invisible characters (zero-width, soft hyphen, BOM, tag
characters), accents, look-alikes of Latin letters from other scripts (UTS #39, the
table the serving guard uses), and non-ASCII spaces, dashes and quotes. Plain ASCII
text without ``&`` or ``<`` skips it.
"""

from __future__ import annotations

import functools
import html
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

_TABLE = bytes(
    (c + 32 if 65 <= c <= 90 else c)
    if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c >= 128)
    else 32  # noqa: E501
    for c in range(256)
)
_SPACE = 32
_MAX_WORD = 32
_P = np.uint64(0x100000001B3)  # FNV prime: odd, spreads bytes
_GRAM_MULTS = np.array(
    np.random.default_rng(0x5EC).integers(1, 2**63, size=64, dtype=np.uint64) * 2 + 1,
    dtype=np.uint64,
)
_CVE = re.compile(rb"\bcve ?(\d{4}) (\d{4,7})\b")
# Inline tags vanish (``re<b>mo</b>te`` is one word); any other tag separates words.
_INLINE_TAG = re.compile(
    r"</?(?:b|i|u|s|em|strong|span|a|code|mark|font|sub|sup|small|tt)\b[^<>]{0,200}>", re.I
)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]{0,31}\b[^<>]{0,200}/?>")
_NON_WORD = re.compile(r"(?:[^\w\n]|_)+")  # lines stay lines
#: combining diacritics (after NFKD: accents come off their Latin, Greek, Cyrillic letters)
_ACCENTS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def _char_class(code_points: Iterable[int]) -> re.Pattern[str]:
    """One character class, as ranges (matched much faster than hundreds of characters)."""
    ranges: list[list[int]] = []
    for c in sorted(set(code_points)):
        if ranges and c == ranges[-1][1] + 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return re.compile(
        "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges) + "]"
    )


@functools.cache
def _invisible() -> re.Pattern[str]:
    """Every format character (category Cf: zero-width, soft hyphen, BOM, bidi, tag
    characters, whatever they spell) and variation selector, read from ``unicodedata``."""
    cps = [c for c in range(0x80, sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
    return _char_class([*cps, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)])


@functools.cache
def _lookalikes() -> tuple[frozenset[str], dict[int, str]]:
    """Letters of other scripts drawn like Latin ones (UTS #39, the guard's table): the
    set of them (a text without one skips the fold) and the table that folds them."""
    from secreason.serve.confusables import lookalikes

    table = lookalikes()
    return frozenset(table), str.maketrans(table)


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (a bijection that avalanches every bit)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def fold(text: str) -> str:
    """Undo disguises of a copied text (see the module docstring); ASCII left as is."""
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = _TAG.sub(" ", _INLINE_TAG.sub("", text))
    if text.isascii():
        return text
    text = _invisible().sub("", text)
    letters, table = _lookalikes()
    if not letters.isdisjoint(text):
        text = text.translate(table)
    text = _ACCENTS.sub("", unicodedata.normalize("NFKD", text))
    return _NON_WORD.sub(" ", text.lower())


def normalise_text(text: str) -> str:
    """The normalisation used everywhere here, for one string (tests, baselines)."""
    return fold(text).encode("utf-8").translate(_TABLE).decode("utf-8", "replace")


def words(text: str) -> list[str]:
    return normalise_text(text).split()


_LINE_TABLE = _TABLE[:10] + b"\n" + _TABLE[11:]  # as _TABLE, but lines stay lines


def line_words(text: str) -> list[list[str]]:
    """:func:`words` of each line of a text (one pass for the whole text)."""
    raw = fold(text).encode("utf-8").translate(_LINE_TABLE).decode("utf-8", "replace")
    return [line.split() for line in raw.split("\n")]


@dataclass
class Chunk:
    """A batch of documents in normalised, word-split form."""

    buf: np.ndarray  # uint8, the normalised bytes of all documents, space-separated
    doc_start: np.ndarray  # int64 byte offset of each document in buf (+ final end)
    word_hash: np.ndarray  # uint64, one per word, in order
    word_doc: np.ndarray  # int64, the document of each word
    n_docs: int
    word_len: np.ndarray  # int64, bytes per word

    def words_per_doc(self) -> np.ndarray:
        return np.bincount(self.word_doc, minlength=self.n_docs)

    def text(self, doc: int) -> str:
        """One document as normalised text (its words, space-separated)."""
        raw = self.buf[self.doc_start[doc] : self.doc_start[doc + 1]].tobytes()
        return raw.decode("utf-8", "replace")


def chunk(texts: Sequence[str]) -> Chunk:
    """Normalise and word-hash a batch of documents."""
    encoded = [fold(t).encode("utf-8") for t in texts]
    lengths = np.fromiter((len(e) + 1 for e in encoded), dtype=np.int64, count=len(encoded))
    doc_start = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=doc_start[1:])
    raw = b" ".join(encoded) + b" "
    buf = np.frombuffer(raw.translate(_TABLE), dtype=np.uint8)
    is_word = buf != _SPACE
    edges = np.flatnonzero(np.diff(np.concatenate(([False], is_word, [False])).view(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    word_hash = _hash_words(buf, starts, ends)
    word_doc = np.searchsorted(doc_start, starts, side="right") - 1
    return Chunk(buf, doc_start, word_hash, word_doc, len(encoded), ends - starts)


def _hash_words(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    lengths = ends - starts
    h = np.zeros(len(starts), dtype=np.uint64)
    active = np.arange(len(starts))
    padded = np.concatenate((buf, np.zeros(_MAX_WORD, dtype=np.uint8)))
    for k in range(_MAX_WORD):
        if k:
            active = active[lengths[active] > k]
        if not len(active):
            break
        h[active] = h[active] * _P + padded[starts[active] + k].astype(np.uint64)
    long_words = lengths > _MAX_WORD
    if long_words.any():
        h[long_words] ^= lengths[long_words].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return fmix64(h + np.uint64(1))


def ngram_hashes(c: Chunk, n: int, min_long_words: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(hashes, doc)`` of every run of ``n`` words inside one document.

    ``min_long_words`` keeps only n-grams with at least that many words of 4+ bytes:
    runs of short tokens (a CVSS vector ``cvss 3 1 av n ac l pr``, a list of option
    letters) are answer formats, not text that can leak.
    """
    if not 1 <= n <= len(_GRAM_MULTS):
        raise ValueError(f"n-gram size must be within 1..{len(_GRAM_MULTS)}, got {n}")
    m = len(c.word_hash) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    g = c.word_hash[:m] * _GRAM_MULTS[0]
    for t in range(1, n):
        g += c.word_hash[t : t + m] * _GRAM_MULTS[t]
    inside = c.word_doc[:m] == c.word_doc[n - 1 : n - 1 + m]
    if min_long_words > 0:
        cs = np.concatenate(([0], np.cumsum(c.word_len >= 4)))
        inside &= (cs[n : n + m] - cs[:m]) >= min_long_words
    return fmix64(g[inside]), c.word_doc[:m][inside]


def cve_ids(c: Chunk) -> list[set[str]]:
    """CVE ids mentioned in each document (normalised to ``CVE-YYYY-NNNN``)."""
    found: list[set[str]] = [set() for _ in range(c.n_docs)]
    raw = c.buf.tobytes()
    for m in _CVE.finditer(raw):
        doc = int(np.searchsorted(c.doc_start, m.start(), side="right") - 1)
        found[doc].add(f"CVE-{m.group(1).decode()}-{m.group(2).decode()}")
    return found


def text_cve_ids(text: str) -> set[str]:
    return cve_ids(chunk([text]))[0]


_RUN_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2^64
_RUN_INV = pow(_RUN_BASE, -1, 1 << 64)


def _powers(base: int, count: int) -> np.ndarray:
    out = np.full(max(count, 1), base, dtype=np.uint64)
    out[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(out, dtype=np.uint64)


def run_hashes(
    c: Chunk, lengths: Sequence[int], starts: np.ndarray | None = None
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per length, ``(hashes, doc, word position)`` of every run of that many words
    inside a document (only the runs beginning at word indices ``starts``, if given).

    Unlike :func:`ngram_hashes` (a pass per word of the gram), one prefix sum serves
    every length at a few passes each. The hash of a run depends only on its words, so
    a run hashed alone matches its copies anywhere.
    """
    out: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    total = len(c.word_hash)
    at = np.arange(total) if starts is None else np.asarray(starts, dtype=np.int64)
    inv = _powers(_RUN_INV, total)
    fwd = _powers(_RUN_BASE, total)
    with np.errstate(over="ignore"):
        prefix = np.concatenate(([np.uint64(0)], np.cumsum(c.word_hash * inv)))
    first = np.searchsorted(c.word_doc, np.arange(c.n_docs), side="left")
    for length in lengths:
        i = at[at + length <= total] if length >= 1 else at[:0]
        i = i[c.word_doc[i] == c.word_doc[i + length - 1]]
        with np.errstate(over="ignore"):
            h = (prefix[i + length] - prefix[i]) * fwd[i]
        doc = c.word_doc[i]
        out[length] = (fmix64(h ^ np.uint64(length)), doc, i - first[doc])
    return out
