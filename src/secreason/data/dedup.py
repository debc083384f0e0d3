"""Dedup: exact (normalised hash) and near-duplicate (MinHash LSH), within and across splits.

Synthetic sets repeat themselves: templates meet the same knowledge-base fact twice, a
teacher answers two rephrasings the same way. Exact duplicates are found by hashing
the normalised text (lower case, punctuation and spacing ignored, HTML, fullwidth,
invisible and look-alike characters folded: :func:`secreason.data.ngrams.fold`). Near
duplicates are found with MinHash over word 5-grams and LSH banding at a Jaccard
``threshold``; by default digits are ignored there (``ignore_numbers``), so template
twins that differ only in a CVE id, a version or a port are one group.

The MinHash is datasketch's (``scheme="affine64"``: its permutation parameters, its
MurmurHash3 pre-mix, ``min(a*h + b mod 2^64)``), computed for a whole chunk of
documents at once with numpy instead of one Python call per document; the band and
row counts are the ones ``MinHashLSH`` chooses. Only datasketch's public API is used
(``MinHash.permutations``, ``MinHashLSH.b``/``.r``). A test checks that the signatures
equal datasketch's, so ``engine="datasketch"`` (its ``MinHashLSH``, one document at a
time) gives the same answer, slower.

Across splits, a group that spans several splits keeps its member from the split
listed first in ``priority`` (e.g. keep the held-out item, drop its training twin),
so no split leaks into another. Labels keep a minimal pair (one word apart, another
answer) inside a split, never across: there the training copy is a near copy of the
held-out question whatever its answer.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from secreason.data import ngrams


@dataclass
class DedupConfig:
    exact: bool = True
    near: bool = True
    threshold: float = 0.8
    num_perm: int = 64
    shingle: int = 5
    seed: int = 1
    #: LSH band/row choice weighs missed duplicates above extra candidates (which are
    #: verified against the threshold anyway)
    false_negative_weight: float = 0.8
    chunk_docs: int = 2000
    engine: str = "numpy"  # or "datasketch"
    #: near duplicates ignore digits (twins differing in ids, versions, ports only)
    ignore_numbers: bool = True
    priority: list[str] = field(default_factory=lambda: ["heldout", "rl", "sft", "train"])


_DIGITS = re.compile(r"\d+")


def near_text(text: str, config: DedupConfig) -> str:
    """What MinHash sees: with ``ignore_numbers`` every digit run reads ``0``."""
    return _DIGITS.sub("0", ngrams.fold(text)) if config.ignore_numbers else text


def exact_key(text: str) -> str:
    return hashlib.blake2b(" ".join(ngrams.words(text)).encode(), digest_size=8).hexdigest()


@functools.lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int, fn_weight: float = 0.8) -> tuple[int, int]:
    """(bands, rows) minimising weighted false positives + negatives: the ones datasketch's
    ``MinHashLSH`` picks for the same threshold and weights (its public ``b`` and ``r``)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(1.0 - fn_weight, fn_weight))
    return int(lsh.b), int(lsh.r)


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine64").permutations
    return np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)


def minhash_signatures(texts: Sequence[str], config: DedupConfig) -> np.ndarray:
    """``(len(texts), num_perm)`` uint64 signatures, equal to datasketch's affine64 ones."""
    a, b = _permutations(config.num_perm, config.seed)
    out = np.full((len(texts), config.num_perm), np.iinfo(np.uint64).max, dtype=np.uint64)
    for start in range(0, len(texts), config.chunk_docs):
        part = [near_text(t, config) for t in texts[start : start + config.chunk_docs]]
        c = ngrams.chunk(part)
        grams, doc = ngrams.ngram_hashes(c, config.shingle)
        # Documents shorter than a shingle hash their words instead.
        short = np.flatnonzero(np.bincount(doc, minlength=len(part)) == 0)
        if len(short):
            sel = np.isin(c.word_doc, short)
            grams = np.concatenate((grams, c.word_hash[sel]))
            doc = np.concatenate((doc, c.word_doc[sel]))
        if not len(grams):
            continue
        order = np.argsort(doc, kind="stable")
        # affine64 pre-mixes each hash with MurmurHash3's finaliser before permuting
        hv, doc = ngrams.fmix64(grams[order]), doc[order]
        starts = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]])
        docs = doc[starts]
        tmp = np.empty_like(hv)
        for p in range(config.num_perm):
            np.multiply(hv, a[p], out=tmp)
            np.add(tmp, b[p], out=tmp)
            out[start + docs, p] = np.minimum.reduceat(tmp, starts)
    return out


BUCKET_REACH = 64


def _near_groups_numpy(sigs: np.ndarray, config: DedupConfig) -> list[tuple[int, int]]:
    """Candidate pairs from LSH bands, verified by signature agreement >= threshold."""
    bands, rows = lsh_params(config.threshold, config.num_perm, config.false_negative_weight)
    found: list[np.ndarray] = []
    n = len(sigs)
    for band in range(bands):
        block = sigs[:, band * rows : (band + 1) * rows]
        key = np.zeros(n, dtype=np.uint64)
        for j in range(rows):
            key = ngrams.fmix64(key ^ block[:, j])
        order = np.argsort(key, kind="stable")
        k = key[order]
        # Every pair of a bucket, not only neighbours: a dissimilar member between two
        # twins must not hide them from each other (buckets over BUCKET_REACH members
        # pair each one with the next BUCKET_REACH).
        for d in range(1, min(BUCKET_REACH, n - 1) + 1):
            same = np.flatnonzero(k[d:] == k[:-d])
            if not len(same):
                break
            x, y = order[same], order[same + d]
            found.append(np.stack([np.minimum(x, y), np.maximum(x, y)], axis=1))
    if not found:
        return []
    pairs = np.unique(np.concatenate(found), axis=0)
    if not len(pairs):
        return []
    agree = (sigs[pairs[:, 0]] == sigs[pairs[:, 1]]).mean(axis=1)
    return [(int(x), int(y)) for x, y in pairs[agree >= config.threshold]]


def _near_groups_datasketch(texts: Sequence[str], config: DedupConfig) -> list[tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    sigs = minhash_signatures(texts, config)
    w = config.false_negative_weight
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm, weights=(1 - w, w))
    a, b = _permutations(config.num_perm, config.seed)
    pairs = []
    for i, sig in enumerate(sigs):
        m = MinHash(hashvalues=sig, permutations=(a, b), scheme="affine64", seed=config.seed)
        for j in lsh.query(m):
            if float(np.mean(sigs[int(j)] == sig)) >= config.threshold:
                pairs.append((int(j), i))
        lsh.insert(i, m)
    return pairs


def near_pairs(texts: Sequence[str], config: DedupConfig) -> list[tuple[int, int]]:
    """Index pairs whose estimated Jaccard similarity is at least ``config.threshold``."""
    if len(texts) < 2:
        return []
    return _near_groups_numpy(minhash_signatures(texts, config), config)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            self.parent[max(rx, ry)] = min(rx, ry)


@dataclass
class DedupReport:
    n_in: int
    n_kept: int
    exact_removed: int
    near_removed: int
    cross_split_removed: dict[str, int]
    examples: list[dict[str, Any]]
    conflicting_labels: int = 0


def dedup(
    ids: Sequence[str],
    texts: Sequence[str],
    splits: Sequence[str] | None = None,
    config: DedupConfig | None = None,
    labels: Sequence[str] | None = None,
) -> tuple[list[bool], DedupReport]:
    """``keep`` flags: one survivor per duplicate group, from the highest-priority split.

    With ``labels`` (e.g. task and gold answer), only items with the same label can be
    duplicates: two templated items that differ in one word *and* in their answer are a
    minimal pair worth keeping, not a duplicate. Identical texts with different labels
    are counted in ``conflicting_labels`` (label noise to look at) and kept, unless they
    sit in different splits (then the lower-priority copy goes, as for any twin).
    """
    cfg = config or DedupConfig()
    n = len(texts)
    splits = list(splits) if splits is not None else ["train"] * n
    label = list(labels) if labels is not None else [""] * n
    rank = {s: i for i, s in enumerate(cfg.priority)}
    unknown = sorted(set(splits) - set(rank))
    if unknown:
        # Ranked last, a "test" split would lose its items to their training twins.
        item = ids[splits.index(unknown[0])]
        raise ValueError(
            f"dedup: split {unknown[0]!r} (item {item}) is not in dedup.priority "
            f"{cfg.priority}; add it there, held-out splits first"
        )
    uf = _UnionFind(n)
    conflicts = 0
    if cfg.exact:
        first: dict[tuple[str, str], int] = {}
        split_firsts: dict[str, dict[str, int]] = {}
        seen_labels: dict[str, set[str]] = {}
        for i, t in enumerate(texts):
            text_key = exact_key(t)
            labels_here = seen_labels.setdefault(text_key, set())
            if labels_here and label[i] not in labels_here:
                conflicts += 1
            labels_here.add(label[i])
            j = first.setdefault((text_key, label[i]), i)
            uf.union(j, i)
            # The same text in another split is one group whatever the labels say.
            firsts = split_firsts.setdefault(text_key, {})
            firsts.setdefault(splits[i], i)
            for split, k in firsts.items():
                if split != splits[i]:
                    uf.union(k, i)
    near_pairs: list[tuple[int, int]] = []
    if cfg.near and n > 1:
        if cfg.engine == "datasketch":
            near_pairs = _near_groups_datasketch(texts, cfg)
        elif cfg.engine == "numpy":
            near_pairs = _near_groups_numpy(minhash_signatures(texts, cfg), cfg)
        else:
            raise ValueError(f"dedup engine must be 'numpy' or 'datasketch', got {cfg.engine!r}")
        exact_roots = [uf.find(i) for i in range(n)]
        for x, y in near_pairs:
            # A minimal pair (one word apart, other answer) is kept inside a split; across
            # splits it is a copy of the held-out question, whatever its answer.
            if label[x] == label[y] or splits[x] != splits[y]:
                uf.union(x, y)
    else:
        exact_roots = [uf.find(i) for i in range(n)]
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(uf.find(i), []).append(i)
    keep = [False] * n
    cross: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    exact_removed = near_removed = 0
    for members in groups.values():
        best = min(members, key=lambda i: (rank.get(splits[i], len(rank)), i))
        keep[best] = True
        for i in members:
            if i == best:
                continue
            if exact_roots[i] == exact_roots[best]:
                exact_removed += 1
            else:
                near_removed += 1
            if splits[i] != splits[best]:
                pair = f"{splits[i]}->{splits[best]}"
                cross[pair] = cross.get(pair, 0) + 1
            if len(examples) < 5:
                examples.append({"removed": ids[i], "kept": ids[best], "text": texts[i][:160]})
    report = DedupReport(n, sum(keep), exact_removed, near_removed, cross, examples, conflicts)
    return keep, report
