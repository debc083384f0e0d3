"""Dedup + decontamination at the paper's scale: time, memory, linear growth, vs a baseline.

Generates N samples of ~2,000 characters (Zipf-distributed words, so common n-grams
exist), plants contamination (benchmark items pasted verbatim and lightly edited) and
duplicates (exact and one-word edits), then measures side by side in one run:

* ours: ``secreason.data.decontaminate`` (vectorised 64-bit n-gram hashes, sorted
  index + bitmap) and ``secreason.data.dedup`` (exact + numpy MinHash LSH);
* baseline: open-r1-style decontamination, a Python set of word 8-grams per benchmark
  and ``any(gram in set ...)`` per sample (same word normalisation, so recall is
  comparable).

Each measurement runs in a forked child; memory is the child's peak RSS above what it
inherited. Benchmarks come from ../shared/benchmarks when present, else are generated.

    .venv/bin/python benchmarks/dedup_decontam.py                 # 50k, 100k, 200k
    .venv/bin/python benchmarks/dedup_decontam.py --sizes 20000 --baseline-max 20000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from secreason.data.decontaminate import (
    BenchmarkText,
    ContaminationIndex,
    DecontamConfig,
    decontaminate,
    read_benchmark_folder,
)
from secreason.data.dedup import DedupConfig, dedup

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"
N_PLANT = 400  # per kind (verbatim, edited) and per size
OPEN_R1_RULE = DecontamConfig(
    min_shared=1, min_coverage=0.0, boilerplate_share=1.0, min_long_words=0
)
_WORD = re.compile(r"[^\W_]+")


# ------------------------------------------------------------------------- data


def make_vocab(rng: np.random.Generator, size: int = 40000) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(2, 11, size)
    return np.array(["".join(rng.choice(letters, n)) for n in lengths])


def generate(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = make_vocab(rng)
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    weights /= weights.sum()
    words = rng.choice(vocab, size=(n, 280), p=weights)
    return [" ".join(row) for row in words]


def generated_benchmarks(seed: int = 7) -> list[BenchmarkText]:
    docs = generate(6000, seed)
    return [BenchmarkText(f"gen/b{i % 6}", i, " ".join(d.split()[:60])) for i, d in enumerate(docs)]


def light_edit(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(3):
        words[rng.randrange(len(words))] = "edited"
    return ", ".join(" ".join(words[i : i + 6]) for i in range(0, len(words), 6)).upper()


def plant(
    texts: list[str], bench: list[BenchmarkText], seed: int, avoid: set[int]
) -> tuple[list[int], list[int]]:
    """Paste benchmark items into samples; return the indices (verbatim, edited)."""
    rng = random.Random(seed)
    usable = [b for b in bench if len(b.prompt.split()) >= 20]
    idx = rng.sample([i for i in range(len(texts)) if i not in avoid], 2 * N_PLANT)
    verbatim, edited = idx[:N_PLANT], idx[N_PLANT:]
    for i in verbatim:
        b = rng.choice(usable).prompt
        texts[i] = texts[i][:1000] + " " + b + " " + texts[i][1000 + len(b) :]
    for i in edited:
        b = light_edit(rng.choice(usable).prompt, rng)
        texts[i] = texts[i][:800] + " " + b + " " + texts[i][800 + len(b) :]
    return verbatim, edited


def plant_duplicates(texts: list[str], seed: int) -> set[int]:
    """Overwrite 1 % of samples with exact or one-word-edited copies of others."""
    rng = random.Random(seed + 1)
    n = max(1, len(texts) // 100)
    picked = rng.sample(range(len(texts)), 2 * n)
    for src, dst in zip(picked[:n], picked[n:], strict=True):
        words = texts[src].split()
        words[rng.randrange(len(words))] = "dupe"
        texts[dst] = " ".join(words) if rng.random() < 0.5 else texts[src]
    return set(picked)


# ------------------------------------------------------------------- measuring


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def _child(fn: Any, args: tuple, queue: Any) -> None:
    start_rss = _status("VmRSS")
    t = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - t
    queue.put((seconds, max(0, _status("VmHWM") - start_rss), result))


def measure(fn: Any, *args: Any) -> tuple[float, int, Any]:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def ours_decontam(texts: list[str], bench: list[BenchmarkText], cfg: DecontamConfig) -> list[int]:
    index = ContaminationIndex(bench, cfg)
    keep, _ = decontaminate([str(i) for i in range(len(texts))], texts, [""] * len(texts), index)
    return [i for i, k in enumerate(keep) if not k]


def ours_dedup(texts: list[str]) -> list[int]:
    keep, _ = dedup([str(i) for i in range(len(texts))], texts, config=DedupConfig())
    return [i for i, k in enumerate(keep) if not k]


def _grams(text: str, n: int = 8) -> list[tuple[str, ...]]:
    w = _WORD.findall(text.lower())
    return [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]


def baseline_decontam(texts: list[str], bench: list[BenchmarkText]) -> list[int]:
    sets: dict[str, set[tuple[str, ...]]] = {}
    for b in bench:
        sets.setdefault(b.benchmark, set()).update(_grams(b.prompt + "\n" + b.answer))
    flagged = []
    for i, text in enumerate(texts):
        grams = _grams(text)
        if any(any(g in s for g in grams) for s in sets.values()):
            flagged.append(i)
    return flagged


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    ap.add_argument("--baseline-max", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if SHARED.is_dir():
        bench, source = read_benchmark_folder(SHARED), str(SHARED)
    else:
        bench, source = generated_benchmarks(), "generated"
    print(f"benchmarks: {source} ({len(bench)} items, {len({b.benchmark for b in bench})} sets)")

    rows = []
    for n in args.sizes:
        t = time.perf_counter()
        texts = generate(n, args.seed)
        involved = plant_duplicates(texts, args.seed)
        n_dupes = len(involved) // 2
        verbatim, edited = plant(texts, bench, args.seed, involved)
        planted = set(verbatim) | set(edited)
        gen_s = time.perf_counter() - t
        chars = sum(map(len, texts)) / n
        # Same decision rule as the baseline (any shared 8-gram), for equal recall ...
        d_s, d_mem, flagged = measure(ours_decontam, texts, bench, OPEN_R1_RULE)
        # ... and the project's default rule (>= 2 shared and >= 5 % of the item).
        _, _, flagged_default = measure(ours_decontam, texts, bench, DecontamConfig())
        u_s, u_mem, removed = measure(ours_dedup, texts)
        flagged_set = set(flagged)
        fd = set(flagged_default)
        row = {
            "n": n,
            "chars": chars,
            "gen_s": gen_s,
            "decon_s": d_s,
            "decon_mem": d_mem,
            "dedup_s": u_s,
            "dedup_mem": u_mem,
            "recall_v": len(flagged_set & set(verbatim)) / len(verbatim),
            "recall_e": len(flagged_set & set(edited)) / len(edited),
            "fp": len(flagged_set - planted) / (n - len(planted)),
            "def_recall_v": len(fd & set(verbatim)) / len(verbatim),
            "def_recall_e": len(fd & set(edited)) / len(edited),
            "def_fp": len(fd - planted) / (n - len(planted)),
            "dupes_removed": len(removed),
            "dupes_planted": n_dupes,
        }
        if n <= args.baseline_max:
            b_s, b_mem, b_flagged = measure(baseline_decontam, texts, bench)
            bset = set(b_flagged)
            row.update(
                base_s=b_s,
                base_mem=b_mem,
                base_recall_v=len(bset & set(verbatim)) / len(verbatim),
                base_recall_e=len(bset & set(edited)) / len(edited),
                base_fp=len(bset - planted) / (n - len(planted)),
            )
        rows.append(row)
        print(f"  done {n} (generation {gen_s:.1f} s)", file=sys.stderr)
        del texts

    gb = 1024**3
    print(
        "\n| samples | chars/sample | decontam s | dedup s | ours total s "
        "| peak mem GB (decon/dedup) | recall verbatim/edited | FP rate | baseline decontam s "
        "| baseline mem GB | baseline recall v/e | baseline FP | speed-up (decontam) |"
    )
    print("|" + "---|" * 13)
    for r in rows:
        total = r["decon_s"] + r["dedup_s"]
        base = (
            f"{r['base_s']:.1f} | {r['base_mem'] / gb:.2f} | {r['base_recall_v']:.3f}/"
            f"{r['base_recall_e']:.3f} | {r['base_fp']:.4f} | {r['base_s'] / r['decon_s']:.1f}x"
            if "base_s" in r
            else "- | - | - | - | -"
        )
        print(
            f"| {r['n']:,} | {r['chars']:.0f} | {r['decon_s']:.1f} | {r['dedup_s']:.1f} | "
            f"{total:.1f} | {r['decon_mem'] / gb:.2f}/{r['dedup_mem'] / gb:.2f} | "
            f"{r['recall_v']:.3f}/{r['recall_e']:.3f} | {r['fp']:.4f} | {base} |"
        )
    print(
        "\ndefault rule (min_shared=2, min_coverage=0.05, boilerplate filter): recall "
        "verbatim/edited, FP: "
        + ", ".join(
            f"{r['n']:,}: {r['def_recall_v']:.3f}/{r['def_recall_e']:.3f}, {r['def_fp']:.4f}"
            for r in rows
        )
    )
    print(
        "\ndedup: removed / planted duplicate copies: "
        + ", ".join(f"{r['n']:,}: {r['dupes_removed']}/{r['dupes_planted']}" for r in rows)
    )
    if len(rows) >= 2:
        ns = np.array([r["n"] for r in rows], dtype=float)
        ts = np.array([r["decon_s"] + r["dedup_s"] for r in rows])
        slope, intercept = np.polyfit(ns, ts, 1)
        per_k = [t / n * 1000 for t, n in zip(ts, ns, strict=True)]
        print(
            "seconds per 1k samples at each size: "
            + ", ".join(f"{x:.3f}" for x in per_k)
            + " (flat = linear)"
        )
        est = slope * 2_000_000 + intercept
        mems = np.array([max(r["decon_mem"], r["dedup_mem"]) for r in rows], dtype=float)
        m_slope, m_icpt = np.polyfit(ns, mems, 1)
        # Never below the largest measured peak plus the signatures still to come.
        floor = mems.max() + (2_000_000 - ns[-1]) * DedupConfig().num_perm * 8
        work_2m = max(m_slope * 2_000_000 + m_icpt, floor) / gb
        text_2m = 2_000_000 * (rows[-1]["chars"] + 49) / gb  # CPython str of ASCII text
        print(
            f"extrapolated to 2,000,000 samples: {est / 60:.1f} min (linear fit); peak working "
            f"memory {work_2m:.1f} GB (linear fit, floored; MinHash signatures are "
            f"{2_000_000 * DedupConfig().num_perm * 8 / gb:.2f} GB of it) + the texts "
            f"themselves when held in memory, {text_2m:.1f} GB: {work_2m + text_2m:.1f} GB"
        )


if __name__ == "__main__":
    main()
