"""Task throughput: completions scored per second, per task and protocol, on one core.

RL scores every sampled completion and evaluations score whole benchmarks many times,
so reading answers must never be the bottleneck. For each task and protocol this
measures, over the same synthetic completions:

* ``split+extract+score``: the reasoning split, the protocol's extraction and the
  scorer (the issue's definition of the hot path);
* ``judge``: ``Task.judge`` as RL and evaluations call it, format checks included.

Completions look like a reasoning model's: a ``<think>`` block of a few hundred words
of security prose, then a short answer region. A mix of right, wrong, hedged,
malformed, unclosed and prefilled-style answers exercises every branch. A pool of
distinct completions (``--pool``) is cycled up to ``--n`` items so memory stays small;
nothing is cached per completion, only parsed CVSS vectors and gold labels (as in
production). Rates are per CPU-second of this process (``time.process_time``), so a
busy machine does not hide the single-core figure; wall-clock rates are printed too.

    .venv/bin/python benchmarks/task_throughput.py [--n 100000] [--pool 10000] [--words 300]
"""

from __future__ import annotations

import argparse
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from secreason.kb.cvss import random_v31_vector
from secreason.reasoning import split
from secreason.tasks import get_task
from secreason.tasks.base import Extraction, Protocol, Task

TARGETS = {"mcq": 50_000, "cwe": 50_000, "cvss": 10_000}  # completions per CPU-second

PROSE = (
    "the attacker sends a crafted request to the server which parses the header without "
    "checking its length so memory past the buffer is overwritten and control flow can be "
    "hijacked; the vendor advisory notes authentication is not required and the service "
    "listens on the network by default, confidentiality integrity and availability are "
    "all affected because code runs as the service account; the report mentions a loader "
    "that beacons over https, encrypts traffic, lists directories, deletes logs and "
    "timestomps files, infrastructure overlaps with earlier campaigns against government "
    "targets in south asia, option b matches the mitigation while a c and d do not"
)
VOCAB = PROSE.split()

ACTORS = ["Copper Heron", "Marsh Owl", "Salt Lynx", "Grey Finch", "Amber Kite", "Iron Vole"]
ALIASES = {"Copper Heron": ["Heron Team"], "Marsh Owl": ["Owl Unit"], "Grey Finch": []}
RELATED = {"Copper Heron": ["Grey Finch"], "Salt Lynx": ["Amber Kite"]}


@dataclass
class Item:
    completion: str
    reference: str


def answers(task: str, rng: random.Random) -> tuple[str, str, str]:
    """(gold, a right payload, a wrong payload) for one item of a task."""
    if task == "mcq":
        gold, wrong = rng.sample("ABCD", 2)
        return gold, gold, wrong
    if task == "cwe":
        gold_id, wrong_id = rng.sample([20, 22, 78, 79, 89, 94, 119, 125, 287, 352, 416, 787], 2)
        return f"CWE-{gold_id}", f"CWE-{gold_id}", f"CWE-{wrong_id}"
    if task == "cvss":
        gold = random_v31_vector(rng)
        return gold, gold, random_v31_vector(rng)
    if task == "ate":
        pool = [f"T{n}" for n in range(1001, 1200)]
        gold = rng.sample(pool, rng.randint(2, 8))
        wrong = gold[: len(gold) // 2] + rng.sample(pool, 2)
        return ", ".join(gold), ", ".join(gold), ", ".join(wrong)
    gold, wrong = rng.sample(ACTORS, 2)
    return gold, gold, wrong


def completion(task: str, rng: random.Random, words: int) -> Item:
    gold, right, wrong = answers(task, rng)
    n = max(20, int(rng.gauss(words, words / 4)))
    reasoning = " ".join(rng.choice(VOCAB) for _ in range(n))
    label = "Threat Actor" if task == "taa" and rng.random() < 0.3 else "Answer"
    roll = rng.random()
    if roll < 0.45:
        tail = f"{label}: {right}"
    elif roll < 0.70:
        tail = f"{label}: {wrong}"
    elif roll < 0.78:
        tail = f"**{label}:** {right.lower()}"
    elif roll < 0.84:
        tail = f"{label}: {right} or {wrong}"
    elif roll < 0.90:
        tail = f"{label}: {right}\nThat is my final choice."
    elif roll < 0.95:
        return Item(f"<think>{reasoning}\n{label}: {right}", gold)  # unclosed
    else:
        return Item(f"{reasoning}</think>\n{label}: {right}", gold)  # prefilled-style
    summary = "In short, the evidence above points to one answer."
    return Item(f"<think>\n{reasoning}\n</think>\n\n{summary}\n{tail}", gold)


def make_task(name: str) -> Task:
    if name == "taa":
        return get_task("taa", aliases=ALIASES, related=RELATED)
    return get_task(name)


def hot_path(task: Task, protocol: Protocol) -> Callable[[Item], float]:
    def run(item: Item) -> float:
        parts = split(item.completion)
        if not parts.has_answer_region or (protocol == "strict" and parts.status == "multiple"):
            extraction = Extraction(None, "no answer region")
        else:
            extraction = task.extract(parts.answer, protocol)
        return task.score(extraction, item.reference).value

    return run


def full_judge(task: Task, protocol: Protocol) -> Callable[[Item], float]:
    def run(item: Item) -> float:
        return task.judge(item.completion, item.reference, protocol=protocol).score.value

    return run


def timed(fn: Callable[[Item], float], items: Iterator[Item], n: int) -> tuple[float, float]:
    """(completions per CPU-second, per wall-second) over n items."""
    wall, cpu = time.perf_counter(), time.process_time()
    for item in itertools.islice(items, n):
        fn(item)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    return n / max(cpu, 1e-9), n / max(wall, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="completions per measurement")
    parser.add_argument("--pool", type=int, default=10_000, help="distinct completions")
    parser.add_argument("--words", type=int, default=300, help="mean reasoning words")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = []
    for name in ("mcq", "cwe", "cvss", "ate", "taa"):
        rng = random.Random(f"{args.seed}-{name}")
        pool = [completion(name, rng, args.words) for _ in range(args.pool)]
        task = make_task(name)
        for protocol in ("strict", "official"):
            warm = hot_path(task, protocol)
            for item in pool:  # warm the vector and gold caches, as a long run would
                warm(item)
            hot_cpu, hot_wall = timed(warm, itertools.cycle(pool), args.n)
            judge_cpu, _ = timed(full_judge(task, protocol), itertools.cycle(pool), args.n)
            rows.append((name, protocol, hot_cpu, hot_wall, judge_cpu, TARGETS.get(name)))

    mean_chars = sum(len(i.completion) for i in pool) / len(pool)
    print(
        f"{args.n:,} completions per cell, pool {args.pool:,}, ~{args.words} reasoning "
        f"words (~{mean_chars:,.0f} chars); rates in completions/s"
    )
    header = (
        f"{'task':<5} {'protocol':<9} {'split+extract+score':>20} {'(wall)':>10} "
        f"{'judge':>10} {'target':>8}  ok"
    )
    print(header)
    print("-" * len(header))
    for name, protocol, hot_cpu, hot_wall, judge_cpu, target in rows:
        verdict = "-" if target is None else ("yes" if hot_cpu >= target else "NO")
        target_text = f"{target:,}" if target else "-"
        print(
            f"{name:<5} {protocol:<9} {hot_cpu:>20,.0f} {hot_wall:>10,.0f} "
            f"{judge_cpu:>10,.0f} {target_text:>8}  {verdict}"
        )


if __name__ == "__main__":
    main()
