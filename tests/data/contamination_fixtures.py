"""Benchmark-shaped fixtures written for these tests (never copies of real benchmarks).

``write_benchmarks`` lays out a folder like ``../shared/benchmarks`` (a CTIBench-style
TSV with an instruction preamble in every prompt, a CyberMetric-style JSON and a
SecBench-style JSONL with long answers); ``plant`` makes training texts that paste
benchmark items verbatim or lightly edited into longer synthetic text; ``clean``
makes texts from the same vocabulary that do not come from any benchmark item.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

_WORD_TEXT = (
    "attacker remote local crafted request buffer overflow memory heap stack parser "
    "server client router firmware kernel driver module plugin library session token "
    "cookie header packet frame file path upload download query input output user admin "
    "account password hash key certificate signature firewall proxy gateway tunnel log "
    "audit policy rule alert sensor malware payload loader implant beacon channel domain "
    "registry service process thread handle pointer index length count value field form "
    "page script browser email attachment macro document archive backup network device"
)
WORDS = _WORD_TEXT.split()
VERBS = ("allows", "causes", "enables", "permits", "triggers", "leaks", "reads", "writes")
PREAMBLE = (
    "Read the vulnerability description below and name the weakness class that best "
    "explains it. Reply with the identifier only."
)


def sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) if i % 5 else rng.choice(VERBS) for i in range(n)]
    return " ".join(words).capitalize() + "."


def write_benchmarks(root: Path, seed: int = 0) -> dict[str, list[str]]:
    """Write three fixture benchmarks; return each one's item texts (for planting)."""
    rng = random.Random(seed)
    items: dict[str, list[str]] = {"fixture/rcm": [], "fixture/mcq": [], "fixture/saq": []}
    (root / "fixture").mkdir(parents=True)
    with (root / "fixture" / "rcm.tsv").open("w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["URL", "Description", "Prompt", "GT"])
        for i in range(300):
            desc = sentence(rng, rng.randint(25, 60))
            cve = f"CVE-2031-{1000 + i}"
            w.writerow(
                [f"https://example.invalid/{cve}", desc, f"{PREAMBLE}\n{cve}: {desc}", "CWE-79"]
            )
            items["fixture/rcm"].append(desc)
    questions = []
    for _ in range(300):
        q = sentence(rng, rng.randint(15, 35)).rstrip(".") + "?"
        opts = {k: sentence(rng, rng.randint(3, 8)) for k in "ABCD"}
        questions.append({"question": q, "answers": opts, "solution": rng.choice("ABCD")})
        items["fixture/mcq"].append(q + " " + " ".join(opts.values()))
    (root / "fixture" / "mcq.json").write_text(json.dumps({"questions": questions}))
    with (root / "fixture" / "saq.jsonl").open("w") as f:
        for _ in range(100):
            q, a = sentence(rng, 12), sentence(rng, rng.randint(30, 60))
            f.write(json.dumps({"question": q, "answer": a}) + "\n")
            items["fixture/saq"].append(a)
    return items


def edit(text: str, rng: random.Random, n_edits: int = 3) -> str:
    """A light edit: a few words replaced, case and punctuation changed."""
    words = text.split()
    for _ in range(n_edits):
        words[rng.randrange(len(words))] = rng.choice(WORDS)
    return ", ".join(" ".join(words[i : i + 6]) for i in range(0, len(words), 6)).upper()


def clean(rng: random.Random) -> str:
    return f"{PREAMBLE}\n" + " ".join(sentence(rng, rng.randint(20, 40)) for _ in range(3))
