"""Short benchmark items, matched as a set of segments in any order and under any labels.

The n-gram check needs a run of ``n`` words shared with a benchmark item. A
multiple-choice item whose question is shorter than that, with one-word options
("Which port does X use?" 8443 / 9301 / ...), has no such run once its options are
shuffled or relabelled (A-D to 1-4): every 8-gram crosses an option boundary. Such
items are indexed here by their segments instead: each line of the item (the
question, each option) with a leading option label removed.

A text contains a short item when, within a window a few times the item's length, it
holds the item's longest segment (its question) and segments covering at least
``coverage`` of the item's words. Options alone, or the question alone, are not the
item. Segments that many items of a benchmark share (instructions, "None of the
above") are boilerplate and dropped, as for n-grams.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from secreason.data import ngrams
from secreason.data.bench_texts import BenchmarkText


@dataclass(frozen=True)
class ShortConfig:
    #: an item is short when no segment has this many words (its n-grams are too few)
    max_segment_words: int = 9
    min_item_words: int = 6
    min_anchor_words: int = 3
    coverage: float = 0.8
    window: float = 3.0
    boilerplate_share: float = 0.05


def segments(text: str) -> list[list[str]]:
    """Normalised words of each line, a one-character option label dropped."""
    out = []
    for words in ngrams.line_words(text):
        if len(words) > 1 and len(words[0]) == 1:
            words = words[1:]
        if words:
            out.append(words)
    return out


def _hashes(segs: list[list[str]]) -> list[int]:
    """Run hashes of many segments, batched by length (a segment is one whole run)."""
    out = [0] * len(segs)
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, words in enumerate(segs):
        by_len[len(words)].append(i)
    for length, idx in by_len.items():
        h, doc, _ = ngrams.run_hashes(ngrams.chunk([" ".join(segs[i]) for i in idx]), [length])[
            length
        ]
        for d, value in zip(doc.tolist(), h.tolist(), strict=True):
            out[idx[d]] = value
    return out


class ShortItemIndex:
    """Segment hashes of the short items of some benchmarks."""

    def __init__(self, items: Sequence[BenchmarkText], config: ShortConfig) -> None:
        self.config = config
        words_of = [segments(t.prompt) for t in items]
        shared: dict[str, Counter[str]] = defaultdict(Counter)
        bench_size: Counter[str] = Counter()
        for t, ws in zip(items, words_of, strict=True):
            shared[t.benchmark].update({" ".join(w) for w in ws})
            bench_size[t.benchmark] += 1
        self.items: list[int] = []  # benchmark item index of each short item
        self.per_benchmark: Counter[str] = Counter()
        kept: list[list[list[str]]] = []
        for i, (t, ws) in enumerate(zip(items, words_of, strict=True)):
            limit = max(3, math.ceil(config.boilerplate_share * bench_size[t.benchmark]))
            segs = list(
                {" ".join(w): w for w in ws if shared[t.benchmark][" ".join(w)] < limit}.values()
            )
            longest = max((len(w) for w in segs), default=0)
            if (
                sum(len(w) for w in segs) < config.min_item_words
                or longest >= config.max_segment_words
                or longest < config.min_anchor_words
            ):
                continue
            self.items.append(i)
            self.per_benchmark[t.benchmark] += 1
            kept.append(segs)
        flat = _hashes([w for segs in kept for w in segs])
        longest_of = [max(segs, key=len) for segs in kept]
        first_words = [int(h) for h in ngrams.chunk([w[0] for w in longest_of]).word_hash]
        self.words: list[int] = []
        self.anchor: list[tuple[int, int]] = []  # (hash, words) of each item's longest segment
        self.segs: dict[int, list[tuple[int, int]]] = defaultdict(list)  # hash -> (short, len)
        at = 0
        for k, segs in enumerate(kept):
            pairs = [(h, len(w)) for h, w in zip(flat[at : at + len(segs)], segs, strict=True)]
            at += len(segs)
            self.words.append(sum(n for _, n in pairs))
            self.anchor.append(max(pairs, key=lambda p: p[1]))
            for h, n in pairs:
                self.segs[h].append((k, n))
        self._keys = _lookup(list(self.segs))
        self._anchor_keys = _lookup(list({h for h, _ in self.anchor}))
        self._anchor_first = _lookup(first_words)
        self._by_anchor: dict[int, list[int]] = defaultdict(list)
        for k, (h, _) in enumerate(self.anchor):
            self._by_anchor[h].append(k)
        self.lengths = sorted({n for entries in self.segs.values() for _, n in entries})

    def matches(self, c: ngrams.Chunk) -> list[tuple[int, int]]:
        """``(document, benchmark item index)`` for every document of a chunk that
        contains a short item."""
        if not self.items or not c.n_docs:
            return []
        # Anchors (each short item's longest segment) first: only the documents holding
        # one are looked at again for the rest of the item's segments.
        anchor_lengths = sorted({n for _, n in self.anchor})
        anchored: set[tuple[int, int]] = set()
        starts = _members(c.word_hash, self._anchor_first)
        for length, (h, doc, _) in ngrams.run_hashes(c, anchor_lengths, starts).items():
            for j in _members(h, self._anchor_keys).tolist():
                for k in self._by_anchor[int(h[j])]:
                    if self.anchor[k][1] == length:
                        anchored.add((int(doc[j]), k))
        if not anchored:
            return []
        docs = sorted({d for d, _ in anchored})
        sub = ngrams.chunk([c.text(d) for d in docs])
        hits: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
        for length, (h, doc, pos) in ngrams.run_hashes(sub, self.lengths).items():
            for j in _members(h, self._keys).tolist():
                hv, d = int(h[j]), docs[int(doc[j])]
                for k, n in self.segs[hv]:
                    if n == length and (d, k) in anchored:
                        hits[(d, k)].append((int(pos[j]), n, hv))
        return [(d, self.items[k]) for d, k in sorted(anchored) if self._covered(k, hits[(d, k)])]

    def _covered(self, k: int, hits: list[tuple[int, int, int]]) -> bool:
        """Some window around an anchor holds segments covering ``coverage`` of the item."""
        total = self.words[k]
        span = int(self.config.window * total) + 10
        anchor = self.anchor[k][0]
        for start, _, hv in hits:
            if hv != anchor:
                continue
            inside = {(h, n) for p, n, h in hits if abs(p - start) <= span}
            if sum(n for _, n in inside) >= self.config.coverage * total:
                return True
        return False


def _members(values: np.ndarray, keys: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Indices of ``values`` found among the keys (a bitmap on the top bits, then a
    binary search for the few values that pass it)."""
    bitmap, sorted_keys = keys
    if not len(sorted_keys) or not len(values):
        return np.zeros(0, dtype=np.int64)
    maybe = np.flatnonzero(bitmap[values >> _SHIFT])
    at = np.minimum(np.searchsorted(sorted_keys, values[maybe]), len(sorted_keys) - 1)
    return maybe[sorted_keys[at] == values[maybe]]


_SHIFT = np.uint64(64 - 22)


def _lookup(keys: list[int]) -> tuple[np.ndarray, np.ndarray]:
    sorted_keys = np.array(sorted(keys), dtype=np.uint64)
    bitmap = np.zeros(1 << 22, dtype=bool)
    bitmap[sorted_keys >> _SHIFT] = True
    return bitmap, sorted_keys
