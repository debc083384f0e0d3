"""Hostile review of dedup: duplicates in disguise, degenerate items, and determinism.

Rows are pairs of texts that must (or must not) end in one group: twins that differ
only in ids and numbers, in spacing or Unicode disguises; very short, empty and huge
items. Then the split rules: a held-out item's training twin is dropped even when its
label differs (a near copy of a held-out question in training is a leak whatever its
answer), and the outcome is the same in a fresh interpreter under another
``PYTHONHASHSEED``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from secreason.data.dedup import DedupConfig, dedup

REPO = Path(__file__).resolve().parents[2]


def _text(rng: random.Random, n: int = 200) -> str:
    """Random words of letters (digits are ignored by near-dup signatures)."""
    return " ".join("".join(rng.choice("abcdefghij") for _ in range(6)) for _ in range(n))


BASE = (
    "CVE-2031-1111 in Widgetron Portal 5.2.1 lets a remote attacker read the recovery "
    "token of user 4242 from a world readable cache file at port 8443 and take over "
    "administrator sessions; versions before 5.2.2 are affected and build 77 fixes it."
)


def _renumber(text: str, seed: int) -> str:
    rng = random.Random(seed)
    out = []
    for w in text.split(" "):
        out.append("".join(str(rng.randrange(10)) if c.isdigit() else c for c in w))
    return " ".join(out)


FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in map(chr, range(0x21, 0x7F))}

SAME: list[tuple[str, str, str]] = [
    ("ids-and-numbers-only", BASE, _renumber(BASE, 1)),
    ("whitespace", BASE, BASE.replace(" ", " \t\n ")),
    ("no-break-spaces", BASE, BASE.replace(" ", "\u00a0")),
    ("fullwidth", BASE, "".join(FULLWIDTH.get(c, c) for c in BASE)),
    ("zero-width", BASE, BASE.replace("e", "e\u200b")),
    ("html", BASE, "<p>" + BASE.replace(" ", "&nbsp;") + "</p>"),
    ("short-identical", "What is XSS?", "what is xss"),
    ("empty", "", ""),
    ("only-punctuation", "...", "?!"),
]
DIFFERENT: list[tuple[str, str, str]] = [
    ("short-one-word-apart", "What is XSS?", "What is CSRF?"),
    ("one-word-each", "yes", "no"),
    ("empty-vs-text", "", "What is XSS?"),
    ("half-rewritten", BASE, " ".join(w if i % 2 else "other" for i, w in enumerate(BASE.split()))),  # noqa: E501
]


@pytest.mark.parametrize(("a", "b"), [r[1:] for r in SAME], ids=[r[0] for r in SAME])
def test_twins_in_disguise_are_one_group(a: str, b: str) -> None:
    keep, report = dedup(["a", "b"], [a, b])
    assert keep == [True, False]
    assert report.exact_removed + report.near_removed == 1


@pytest.mark.parametrize(("a", "b"), [r[1:] for r in DIFFERENT], ids=[r[0] for r in DIFFERENT])
def test_different_items_stay(a: str, b: str) -> None:
    assert dedup(["a", "b"], [a, b])[0] == [True, True]


def test_huge_items_dedup_without_trouble() -> None:
    rng = random.Random(0)
    huge = _text(rng, 100_000)
    twin = huge.replace(huge.split()[500], "changed", 1)
    keep, report = dedup(["a", "b", "c"], [huge, twin, _text(rng, 100_000)])
    assert keep == [True, False, True] and report.near_removed == 1


def test_heldout_twin_with_another_label_still_drops_the_training_copy() -> None:
    """Across splits the label does not matter: the held-out question must not be trained on."""
    rng = random.Random(4)
    held = _text(rng)
    words = held.split()
    words[7] = "different"
    train_twin = " ".join(words)
    texts = [train_twin, held, train_twin + " x", _text(rng)]
    splits = ["train", "heldout", "train", "train"]
    labels = ["cwe\tCWE-79", "cwe\tCWE-89", "cwe\tCWE-79", "cwe\tCWE-79"]
    keep, report = dedup(["t", "h", "t2", "other"], texts, splits, labels=labels)
    assert keep == [False, True, False, True]
    assert report.cross_split_removed == {"train->heldout": 2}
    # Inside one split, a one-word minimal pair with different answers is kept.
    keep_same_split, _ = dedup(["t", "h"], texts[:2], ["train", "train"], labels=labels[:2])
    assert keep_same_split == [True, True]


def test_chain_through_heldout_keeps_heldout() -> None:
    rng = random.Random(5)
    a = _text(rng).split()
    b, c = list(a), list(a)
    b[3] = "x1"
    c[3], c[40] = "x1", "x2"
    texts = [" ".join(a), " ".join(b), " ".join(c)]
    keep, _ = dedup(["a", "b", "c"], texts, ["train", "heldout", "rl"])
    assert keep == [False, True, False]


_SCRIPT = """
import json, random, sys
from secreason.data.dedup import dedup
rng = random.Random(0)
vocab = ["".join(rng.choice("abcdefgh") for _ in range(5)) for _ in range(300)]
base = [" ".join(rng.choice(vocab) for _ in range(120)) for _ in range(200)]
texts = base + [t.replace(t.split()[5], "zz", 1) for t in base[:50]] + base[100:120]
splits = [rng.choice(["train", "heldout", "rl"]) for _ in texts]
labels = [str(rng.randrange(3)) for _ in texts]
keep, report = dedup([str(i) for i in range(len(texts))], texts, splits, labels=labels)
print(json.dumps([keep, report.exact_removed, report.near_removed, report.cross_split_removed]))
"""


def test_same_result_in_fresh_interpreters_under_any_hash_seed() -> None:
    outs = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO / "src")}
        run = subprocess.run(
            [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr[-2000:]
        outs.append(json.loads(run.stdout))
    assert outs[0] == outs[1]
    keep, exact, near, _ = outs[0]
    assert exact > 0 and near >= 30 and keep.count(False) == exact + near


def test_an_unknown_split_is_an_error_not_a_loser() -> None:
    """Ranked after "train", a "test" item would be dropped for its training twin."""
    with pytest.raises(ValueError, match="'test' \\(item b\\) is not in dedup.priority"):
        dedup(["a", "b"], ["same text here", "same text here"], ["train", "test"])


def test_heldout_question_with_shuffled_options_is_dropped_from_training() -> None:
    """Same question, options shuffled and relabelled (so another gold letter): one group."""
    from secreason.data.pipeline import dedup_content
    from secreason.tasks.base import Sample

    q = "Which weakness lets an attacker read memory freed by a timer callback in the viewer?"
    opts = ["Use After Free", "Out-of-bounds Read", "Double Free", "NULL Pointer Dereference"]

    def item(order: list[int], gold: str, split: str) -> Sample:
        options = {k: opts[i] for k, i in zip("ABCD", order, strict=True)}
        meta = {"question": q, "options": options, "split": split}
        return Sample(split, "mcq", [{"role": "user", "content": q}], gold, meta)

    held, train = item([0, 1, 2, 3], "A", "heldout"), item([2, 0, 3, 1], "B", "train")
    keep, report = dedup(
        ["train", "heldout"],
        [dedup_content(train), dedup_content(held)],
        ["train", "heldout"],
        labels=["mcq\tB", "mcq\tA"],
    )
    assert keep == [False, True] and report.cross_split_removed == {"train->heldout": 1}


def test_a_dissimilar_item_in_the_same_lsh_bucket_does_not_hide_twins() -> None:
    """Twins a and c share only band 0 with each other and with a dissimilar b sorted
    between them: every pair of a bucket is verified, not only neighbours."""
    from secreason.data.dedup import _near_groups_numpy, lsh_params

    cfg = DedupConfig()
    bands, rows = lsh_params(cfg.threshold, cfg.num_perm, cfg.false_negative_weight)
    a = np.arange(1, cfg.num_perm + 1, dtype=np.uint64)
    b = a + np.uint64(1000)
    b[:rows] = a[:rows]  # same band 0, nothing else
    c = a.copy()
    for band in range(1, bands):  # one change per other band: agreement stays >= 0.8
        c[band * rows] += np.uint64(5000)
    assert (a == c).mean() >= cfg.threshold
    assert _near_groups_numpy(np.stack([a, b, c]), cfg) == [(0, 2)]
