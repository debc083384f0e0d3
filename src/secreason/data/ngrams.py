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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
_CVE = re.compile(rb"\bcve (\d{4}) (\d{4,7})\b")


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (a bijection that avalanches every bit)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def normalise_text(text: str) -> str:
    """The normalisation used everywhere here, for one string (tests, baselines)."""
    return text.encode("utf-8").translate(_TABLE).decode("utf-8", "replace")


def words(text: str) -> list[str]:
    return normalise_text(text).split()


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


def chunk(texts: Sequence[str]) -> Chunk:
    """Normalise and word-hash a batch of documents."""
    encoded = [t.encode("utf-8") for t in texts]
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
