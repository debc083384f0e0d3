"""Option shuffling for multiple choice: is the model choosing the answer or the letter?

Why: a model that prefers a position (always "B") or whose answer changes when the same
options are listed in another order knows less than its accuracy says. Each item is
asked ``k`` times with its options permuted (the first time in the published order, the
others in seeded random orders, all distinct); the gold letter moves with its text.

The benchmark's own prompt is kept: the option block it shows (``A) text`` per line, or
inline ``A) text B) text``, any whitespace between words) is found in the last user
turn and rewritten in the new order, so the wording around it never changes (when the
option columns disagree with the prompt, the prompt's own ``A) text`` lines are used). A
prompt whose option block cannot be found is an error that names the row.

:func:`shuffle_measures` adds, beside the ordinary accuracy (the mean over every
permutation): ``shuffle_consistency`` (items whose chosen option TEXT is the same in
every order, none invalid), ``shuffle_all_correct`` (items right in every order) and
``accuracy_gold_at/<L>`` (accuracy over the rows whose gold sits at letter L).
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

from secreason.evals.base import ItemResult
from secreason.tasks.base import Message, Sample


def orders(n: int, k: int, seed: int, index: int) -> list[tuple[int, ...]]:
    """``k`` distinct orders of ``n`` options: the identity first, then seeded shuffles."""
    if k < 1:
        raise ValueError(f"shuffle must be at least 1, got {k}")
    if k > math.factorial(n):
        raise ValueError(f"shuffle={k}: {n} options have only {math.factorial(n)} orders")
    out = [tuple(range(n))]
    rng = random.Random(f"{seed}:{index}")
    while len(out) < k:
        order = tuple(rng.sample(range(n), n))
        if order not in out:
            out.append(order)
    return out


def _pattern(options: dict[str, str]) -> re.Pattern[str]:
    """The option block ``A) text B) text ...`` with any run of whitespace between words."""
    words = " ".join(f"{letter}) {text}" for letter, text in options.items()).split()
    return re.compile(r"\s+".join(re.escape(w) for w in words))


Render = Callable[[Sample, dict[str, str]], str]


def permuted(
    sample: Sample, order: Sequence[int], position: int, render: Render | None = None
) -> Sample:
    """The sample with options listed in ``order`` (new slot i holds old option order[i]).

    ``render`` (the benchmark's own prompt builder: sample, options -> the question's
    text) is used when given; otherwise the option block is found and rewritten.
    """
    options: dict[str, str] = dict(sample.meta.get("options") or {})
    letters = list(options)
    if not letters:
        raise ValueError(f"{sample.id}: no options to shuffle")
    origin = {letters[i]: letters[j] for i, j in enumerate(order)}
    messages = [dict(m) for m in sample.messages]
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    if render is not None:
        moved = {new: options[old] for new, old in origin.items()}
        messages[last]["content"] = render(sample, moved)
        return _tagged(sample, messages, origin, moved, position)
    content = messages[last]["content"]
    # CTIBench shows an empty option as "nan"; try that first (an empty one matches anything).
    candidates = [{k: v or "nan" for k, v in options.items()}, options]
    lines = dict(re.findall(r"(?m)^([A-Z])\) (.*?)\s*$", content))
    if all(letter in lines for letter in letters):
        candidates.append({letter: lines[letter] for letter in letters})  # the prompt's own
    for shown in candidates:
        found = _pattern(shown).search(content)
        if found:
            sep = "\n" if "\n" in found.group(0) else " "
            block = sep.join(f"{new}) {shown[old]}" for new, old in origin.items())
            content = content[: found.start()] + block + content[found.end() :]
            moved = {new: shown[old] for new, old in origin.items()}
            break
    else:
        raise ValueError(f"{sample.id}: the prompt does not show its options as 'A) text'")
    messages[last]["content"] = content
    return _tagged(sample, messages, origin, moved, position)


def _tagged(
    sample: Sample,
    messages: list[Message],
    origin: dict[str, str],
    moved: dict[str, str],
    position: int,
) -> Sample:
    # Every gold letter moves with its text (several for multiple-answer items).
    gold = set(sample.reference.strip().upper())
    reference = "".join(sorted(new for new, old in origin.items() if old in gold))
    meta = {**sample.meta, "options": moved, "item": sample.id}
    meta.update({"permutation": position, "origin": origin})
    suffix = f"~{position}" if position else ""
    return replace(
        sample,
        id=f"{sample.id}{suffix}",
        messages=messages,
        reference=reference or sample.reference,
        meta=meta,
    )


def shuffled(
    samples: Sequence[Sample], k: int, seed: int = 0, render: Render | None = None
) -> list[Sample]:
    """Every sample in ``k`` option orders (``k`` = 1: the samples, unchanged but tagged)."""
    out = []
    for index, sample in enumerate(samples):
        n = len(sample.meta.get("options") or {})
        for position, order in enumerate(orders(n, k, seed, index)):
            out.append(permuted(sample, order, position, render))
    return out


def shuffle_measures(samples: Sequence[Sample], results: Sequence[ItemResult]) -> dict[str, float]:
    """Consistency across orders and accuracy by gold position (see the module)."""
    by_id = {s.id: s for s in samples}
    chosen: dict[str, list[str | None]] = defaultdict(list)
    right: dict[str, list[bool]] = defaultdict(list)
    at: dict[str, list[float]] = defaultdict(list)
    for result in results:
        sample = by_id.get(result.sample_id)
        if sample is None or "origin" not in sample.meta:
            continue
        item = str(sample.meta["item"])
        extraction = result.judgement.extraction
        letters = str(extraction.value).strip().upper() if extraction.ok else ""
        origin = sample.meta["origin"]
        picked = "".join(sorted(origin.get(c, "?") for c in letters))
        chosen[item].append(picked if picked and "?" not in picked else None)
        correct = result.judgement.score.status == "correct"
        right[item].append(correct)
        at[sample.reference].append(float(correct))
    if not chosen:
        return {}
    items = len(chosen)
    steady = sum(len(set(c)) == 1 and c[0] is not None for c in chosen.values())
    out = {
        "shuffle_consistency": steady / items,
        "shuffle_all_correct": sum(all(r) for r in right.values()) / items,
        "shuffle_k": float(max(len(c) for c in chosen.values())),
    }
    out.update({f"accuracy_gold_at/{k}": sum(v) / len(v) for k, v in sorted(at.items())})
    return out
