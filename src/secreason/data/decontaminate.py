"""Decontamination: drop training items that overlap any benchmark we evaluate on.

The field's known failure is a training set that contains its test set (a public cyber
reasoning set overlapped CTIBench-RCM by 75-92 %). An item is contaminated with respect
to a benchmark item when

* its prompt, its answer, or both read together (an item split between the prompt
  and the training target) share enough informative word n-grams (``n`` configurable,
  8 by default as open-r1 uses; at least two words of 4+ characters, so that a shared
  CVSS vector or option list does not count) with the benchmark item's text or gold
  answer: at least
  ``min(min_shared, item n-grams)`` and at least ``min_coverage`` of the benchmark
  item's n-grams; or
* it mentions a CVE id that appears in the benchmark (an item about a CVE that
  CTIBench asks about is contamination even when reworded); or
* the benchmark item is too short for n-grams (a short question with one-word
  options) and the text holds its lines in any order and under any option labels
  (:mod:`secreason.data.short_items`).

Both sides are folded first (:func:`secreason.data.ngrams.fold`): case, punctuation,
HTML, fullwidth, invisible and look-alike characters do not hide a copy.

Benchmark boilerplate (instruction preambles repeated in every row, answer-format
lines) would flag everything, so an n-gram found in at least ``boilerplate_share`` of a
benchmark's items (and at least 3) is dropped from the index, and the report says how
many were.

The index is a sorted array of 64-bit n-gram hashes (see :mod:`secreason.data.ngrams`)
with the benchmark item owning each, behind a bitmap prefilter, so checking a sample
costs a few vectorised array operations per chunk of thousands of samples.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from secreason.data import ngrams
from secreason.data.bench_texts import (  # noqa: F401 - re-exported: the public names
    BenchmarkText,
    benchmark_texts,
    harness_texts,
    read_benchmark_folder,
)
from secreason.data.short_items import ShortConfig, ShortItemIndex


@dataclass
class DecontamConfig:
    n: int = 8
    min_shared: int = 2
    min_coverage: float = 0.05
    boilerplate_share: float = 0.05
    #: an n-gram must hold this many words of 4+ characters (vectors, letter lists skip)
    min_long_words: int = 2
    check_cve_ids: bool = True
    #: match items too short for n-grams by their lines in any order (see short_items)
    short_items: bool = True
    short_coverage: float = 0.8
    chunk_docs: int = 4000
    bitmap_bits: int = 27
    examples_per_benchmark: int = 3


# ------------------------------------------------------------------------ the index


def unique_pairs(grams: np.ndarray, doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (n-gram, document) pairs, sorted by n-gram."""
    if not len(grams):
        return grams, doc
    order = np.lexsort((doc, grams))
    g, d = grams[order], doc[order]
    first = np.ones(len(g), dtype=bool)
    first[1:] = (g[1:] != g[:-1]) | (d[1:] != d[:-1])
    return g[first], d[first]


@dataclass
class Verdict:
    """Why one sample is contaminated (empty ``benchmarks``: it is clean)."""

    benchmarks: dict[str, str] = field(default_factory=dict)  # name -> reason
    example: dict[str, Any] = field(default_factory=dict)

    @property
    def contaminated(self) -> bool:
        return bool(self.benchmarks)


class ContaminationIndex:
    """N-gram and CVE-id index over benchmark texts."""

    def __init__(
        self,
        texts: Sequence[BenchmarkText],
        config: DecontamConfig,
        allowed: Sequence[str] = (),
    ) -> None:
        """``allowed``: texts whose n-grams never count (e.g. the knowledge bases' own
        names and definitions, which benchmarks and training items both quote)."""
        self.config = config
        self.items = list(texts)
        self.names = sorted({t.benchmark for t in texts})
        n = config.n
        grams_parts, owner_parts = [], []
        self.item_grams = np.zeros(len(self.items), dtype=np.int64)
        self.boilerplate_dropped: dict[str, int] = {}
        self.cves: dict[str, set[str]] = defaultdict(set)
        self.unchecked: Counter[str] = Counter()
        self.allowed_dropped: dict[str, int] = {}
        allowed_grams = np.zeros(0, dtype=np.uint64)
        if allowed:
            allowed_grams = np.unique(
                ngrams.ngram_hashes(ngrams.chunk(list(allowed)), n, config.min_long_words)[0]
            )
        by_bench: dict[str, list[int]] = defaultdict(list)
        for i, t in enumerate(self.items):
            by_bench[t.benchmark].append(i)
        for bench, idx in by_bench.items():
            docs = [self.items[i].prompt + "\n" + self.items[i].answer for i in idx]
            c = ngrams.chunk(docs)
            if config.check_cve_ids:
                for cves in ngrams.cve_ids(c):
                    for cve in cves:
                        self.cves[cve].add(bench)
            grams, doc = ngrams.ngram_hashes(c, n, config.min_long_words)
            grams, doc = unique_pairs(grams, doc)
            uniq, counts = np.unique(grams, return_counts=True)
            limit = max(3, math.ceil(config.boilerplate_share * len(idx)))
            common = uniq[counts >= limit]
            keep = ~np.isin(grams, common)
            self.boilerplate_dropped[bench] = int(len(common))
            if len(allowed_grams):
                known = np.isin(grams, allowed_grams)
                self.allowed_dropped[bench] = int(len(np.unique(grams[known & keep])))
                keep &= ~known
            grams, doc = grams[keep], doc[keep]
            owners = np.asarray(idx, dtype=np.int64)[doc]
            self.item_grams[np.asarray(idx)] = np.bincount(doc, minlength=len(idx))
            self.unchecked[bench] = int((self.item_grams[np.asarray(idx)] == 0).sum())
            grams_parts.append(grams)
            owner_parts.append(owners)
        grams_all = np.concatenate(grams_parts) if grams_parts else np.zeros(0, np.uint64)
        owners_all = np.concatenate(owner_parts) if owner_parts else np.zeros(0, np.int64)
        order = np.argsort(grams_all, kind="stable")
        self.grams = grams_all[order]
        self.owners = owners_all[order]
        self.shift = np.uint64(64 - config.bitmap_bits)
        self.bitmap = np.zeros(1 << max(0, config.bitmap_bits - 3), dtype=np.uint8)
        slots = (self.grams >> self.shift).astype(np.int64)
        np.bitwise_or.at(self.bitmap, slots >> 3, (1 << (slots & 7)).astype(np.uint8))
        g = self.item_grams
        self.need = np.maximum(np.minimum(config.min_shared, g), np.ceil(config.min_coverage * g))
        self.need[g == 0] = np.iinfo(np.int64).max
        self.short: ShortItemIndex | None = None
        if config.short_items:
            self.short = ShortItemIndex(
                self.items,
                ShortConfig(
                    max_segment_words=n + config.min_shared - 1,
                    coverage=config.short_coverage,
                    boilerplate_share=config.boilerplate_share,
                ),
            )
            # Items too short for n-grams that their lines check are not unchecked.
            for i in self.short.items:
                if self.item_grams[i] == 0:
                    self.unchecked[self.items[i].benchmark] -= 1

    def _shared(self, c: ngrams.Chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(doc, item, shared count) for every doc/benchmark-item pair over the threshold."""
        grams, doc = ngrams.ngram_hashes(c, self.config.n, self.config.min_long_words)
        if not len(grams) or not len(self.grams):
            e = np.zeros(0, np.int64)
            return e, e, e
        slots = (grams >> self.shift).astype(np.int64)
        maybe = (self.bitmap[slots >> 3] >> (slots & 7).astype(np.uint8)) & 1
        grams, doc = grams[maybe.astype(bool)], doc[maybe.astype(bool)]
        lo = np.searchsorted(self.grams, grams, side="left")
        hi = np.searchsorted(self.grams, grams, side="right")
        hit = hi > lo
        lo, hi, doc, grams = lo[hit], hi[hit], doc[hit], grams[hit]
        # A doc counts each distinct n-gram once.
        grams, doc = unique_pairs(grams, doc)
        lo = np.searchsorted(self.grams, grams, side="left")
        hi = np.searchsorted(self.grams, grams, side="right")
        width = hi - lo
        rows = np.repeat(np.arange(len(lo)), width)
        offs = np.arange(len(rows)) - np.repeat(np.cumsum(width) - width, width)
        items = self.owners[lo[rows] + offs]
        docs = doc[rows]
        key = docs * len(self.items) + items
        uk, counts = np.unique(key, return_counts=True)
        d, it = uk // len(self.items), uk % len(self.items)
        over = counts >= self.need[it]
        return d[over], it[over], counts[over]

    def check(
        self,
        prompts: Sequence[str],
        answers: Sequence[str],
        extra_cves: Sequence[Iterable[str]] | None = None,
    ) -> list[Verdict]:
        """One verdict per sample, from its prompt text and its answer text."""
        verdicts = [Verdict() for _ in prompts]

        def flag(doc: int, item: int, reason: str, shared: int | None = None) -> None:
            b = self.items[item]
            v = verdicts[doc]
            if b.benchmark not in v.benchmarks:
                v.benchmarks[b.benchmark] = reason
                example = {"item": b.index}
                if shared is not None:
                    example |= {"shared": shared, "of": int(self.item_grams[item])}
                v.example.setdefault(b.benchmark, example)

        both = [p + "\n" + a for p, a in zip(prompts, answers, strict=True)]
        # The prompt and the answer alone (the report says which), then together: an
        # item split between the prompt and the training target.
        for where, texts in (("prompt", prompts), ("answer", answers), ("prompt+answer", both)):
            c = ngrams.chunk(texts)
            for doc, item, shared in zip(*(x.tolist() for x in self._shared(c)), strict=True):
                flag(doc, item, f"ngram:{where}", shared)
        for doc, item in self.short.matches(c) if self.short else ():
            flag(doc, item, "segments")
        if self.config.check_cve_ids and self.cves:
            for doc, cves in enumerate(ngrams.cve_ids(c)):
                if extra_cves is not None:
                    cves |= {str(x).upper() for x in extra_cves[doc]}
                for cve in cves:
                    for bench in self.cves.get(cve, ()):
                        verdicts[doc].benchmarks.setdefault(bench, f"cve:{cve}")
        return verdicts


def sample_texts(sample: Any, traces: Sequence[str] = ()) -> tuple[str, str]:
    """What of a training item is checked: ``(prompt, answer)``.

    The prompt is EVERY turn, an earlier assistant turn (a few-shot example, a
    prefilled reply) included: a benchmark item pasted there is trained on as much as
    one in the user turn. A question split across turns is joined. The answer is the
    gold reference and the teacher's traces (the training targets).
    """
    prompt = "\n".join(str(m.get("content") or "") for m in sample.messages)
    return prompt, "\n".join([sample.reference, *traces])


# --------------------------------------------------------------------------- report


@dataclass
class DecontamReport:
    n_samples: int
    n_removed: int
    per_benchmark: dict[str, dict[str, Any]]
    boilerplate_dropped: dict[str, int]
    unchecked_items: dict[str, int]
    config: dict[str, Any]
    allowed_dropped: dict[str, int] = field(default_factory=dict)
    short_items: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_samples": self.n_samples,
            "n_removed": self.n_removed,
            "per_benchmark": self.per_benchmark,
            "boilerplate_ngrams_dropped": self.boilerplate_dropped,
            "benchmark_items_too_short_to_check": self.unchecked_items,
            "kb_ngrams_ignored": self.allowed_dropped,
            "short_items_matched_by_lines": self.short_items,
            "config": self.config,
        }


def decontaminate(
    ids: Sequence[str],
    prompts: Sequence[str],
    answers: Sequence[str],
    index: ContaminationIndex,
    *,
    extra_cves: Sequence[Iterable[str]] | None = None,
    show_progress: bool = False,
) -> tuple[list[bool], DecontamReport]:
    """Return ``keep`` flags and a per-benchmark report (counts, reasons, examples)."""
    from tqdm.auto import tqdm

    cfg = index.config
    keep = [True] * len(ids)
    per: dict[str, dict[str, Any]] = {
        b: {"removed": 0, "reasons": Counter(), "examples": []} for b in index.names
    }
    step = cfg.chunk_docs
    for start in tqdm(range(0, len(ids), step), desc="decontaminate", disable=not show_progress):
        stop = min(len(ids), start + step)
        verdicts = index.check(
            prompts[start:stop],
            answers[start:stop],
            extra_cves[start:stop] if extra_cves is not None else None,
        )
        for off, v in enumerate(verdicts):
            if not v.contaminated:
                continue
            i = start + off
            keep[i] = False
            for bench, reason in v.benchmarks.items():
                entry = per[bench]
                entry["removed"] += 1
                entry["reasons"]["cve" if reason.startswith("cve:") else reason] += 1
                if len(entry["examples"]) < cfg.examples_per_benchmark:
                    bench_item = v.example.get(bench, {})
                    entry["examples"].append(
                        {
                            "sample_id": ids[i],
                            "sample": prompts[i][:200],
                            "reason": reason,
                            **({"benchmark_item": bench_item} if bench_item else {}),
                        }
                    )
    for entry in per.values():
        entry["reasons"] = dict(entry["reasons"])
    report = DecontamReport(
        n_samples=len(ids),
        n_removed=keep.count(False),
        per_benchmark=per,
        boilerplate_dropped=dict(index.boilerplate_dropped),
        unchecked_items=dict(index.unchecked),
        allowed_dropped=dict(index.allowed_dropped),
        short_items=dict(index.short.per_benchmark) if index.short else {},
        config=cfg.__dict__.copy(),
    )
    return keep, report
