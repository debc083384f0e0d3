"""CWE prediction: build a fresh RCM-style benchmark from CVE data, then evaluate on it.

A fixed benchmark leaks into training data with time; the paper's CWE-Prediction set is
fresh CVEs mapped to CWEs. The builder reads what a user downloads (NVD CVE JSON 2.0
feeds ``nvdcve-2.0-*.json[.gz]``, or a GitHub advisory-database dump of OSV JSON files),
keeps CVEs published in a date window (after the model's training cut-off), with an
English description and exactly one concrete CWE, drops duplicate descriptions and
descriptions whose copies disagree on the CWE, and writes a TSV in CTIBench-RCM's layout
(``URL, Description, Prompt, GT`` plus ``ID, Published``). The benchmark then loads that
file and scores it exactly like RCM (the ``cwe`` task, RCM's aggregates).

Which CWE is gold: NVD's own ``Primary`` weakness when it gave one, else any
``Primary``, else the listed ones; ``NVD-CWE-Other``/``NVD-CWE-noinfo`` are not CWEs.
A CVE left with several distinct CWEs is ambiguous and skipped.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from secreason.evals.base import Reference
from secreason.evals.ctibench import PAPER_MODEL, CTIBenchRCM
from secreason.evals.sources import Row, limited, local_file, read_table
from secreason.tasks.base import Sample

FILE_NAME = "cwe-prediction.tsv"
COLUMNS = ("ID", "Published", "URL", "Description", "Prompt", "GT")
PROMPT = (
    "Read the vulnerability description below and decide which CWE weakness it is an "
    "instance of. Explain your choice briefly, then put the CWE id (for example CWE-79) "
    "alone on the last line.\n\nVulnerability description: {description}"
)
_CWE = re.compile(r"^CWE-(\d+)$")


@dataclass(frozen=True)
class CVERecord:
    id: str
    published: date
    description: str
    cwes: tuple[str, ...]
    url: str


@dataclass
class BuildReport:
    """What the builder kept and why it dropped the rest (printed by the CLI)."""

    read: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "kept": self.kept, "dropped": dict(self.dropped)}


def _parse_date(value: Any) -> date | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _open_json(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def _concrete(values: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        value = value.strip().upper()
        if _CWE.match(value) and value not in out:
            out.append(value)
    return tuple(out)


def nvd_records(data: dict[str, Any]) -> Iterator[CVERecord | str]:
    """Records of an NVD CVE JSON 2.0 document; a string says why an item was dropped."""
    for item in data.get("vulnerabilities", []):
        cve = item.get("cve", item)
        if str(cve.get("vulnStatus", "")).lower() == "rejected":
            yield "rejected"
            continue
        published = _parse_date(cve.get("published"))
        text = next(
            (d.get("value", "") for d in cve.get("descriptions", []) if d.get("lang") == "en"),
            "",
        )
        weaknesses = cve.get("weaknesses", [])
        ranked = (
            [w for w in weaknesses if w.get("type") == "Primary" and "nvd" in w.get("source", "")]
            or [w for w in weaknesses if w.get("type") == "Primary"]
            or weaknesses
        )
        cwes = _concrete(d.get("value", "") for w in ranked for d in w.get("description", []))
        cve_id = str(cve.get("id", ""))
        if published is None or not text.strip() or not cve_id:
            yield "incomplete"
            continue
        url = f"https://nvd.nist.gov/vuln/detail/{cve_id}"
        yield CVERecord(cve_id, published, text.strip(), cwes, url)


def advisory_record(data: dict[str, Any]) -> CVERecord | str:
    """A GitHub advisory (OSV JSON) as a record, or why it was dropped."""
    if data.get("withdrawn"):
        return "withdrawn"
    aliases = [a for a in data.get("aliases", []) if str(a).startswith("CVE-")]
    adv_id = aliases[0] if aliases else str(data.get("id", ""))
    published = _parse_date(data.get("published"))
    text = str(data.get("details") or data.get("summary") or "").strip()
    cwes = _concrete(data.get("database_specific", {}).get("cwe_ids", []))
    if published is None or not text or not adv_id:
        return "incomplete"
    url = f"https://github.com/advisories/{data.get('id', adv_id)}"
    return CVERecord(adv_id, published, text, cwes, url)


def read_records(paths: Sequence[str | Path], report: BuildReport) -> Iterator[CVERecord]:
    """Every record in the given files or folders (searched for ``*.json[.gz]``)."""
    files: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.name.endswith((".json", ".json.gz")))
            )
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    for path in files:
        try:
            data = _open_json(path)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a readable JSON file ({error})") from None
        found = nvd_records(data) if "vulnerabilities" in data else iter([advisory_record(data)])
        for record in found:
            report.read += 1
            if isinstance(record, str):
                report.dropped[record] += 1
            else:
                yield record


def build(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    since: date | str,
    until: date | str | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> BuildReport:
    """Write a fresh RCM-style TSV of CVEs published in ``[since, until]``."""
    start = since if isinstance(since, date) else date.fromisoformat(since)
    end = until if isinstance(until, date) or until is None else date.fromisoformat(until)
    report = BuildReport()
    by_text: dict[str, list[CVERecord]] = {}
    seen_ids: set[str] = set()
    for record in read_records(inputs, report):
        if record.id in seen_ids:
            report.dropped["duplicate id"] += 1
            continue
        seen_ids.add(record.id)
        if record.published < start or (end is not None and record.published > end):
            report.dropped["outside date window"] += 1
        elif not record.cwes:
            report.dropped["no concrete CWE"] += 1
        elif len(record.cwes) > 1:
            report.dropped["several CWEs"] += 1
        else:
            by_text.setdefault(" ".join(record.description.split()).lower(), []).append(record)
    kept: list[CVERecord] = []
    for group in by_text.values():
        if len({r.cwes for r in group}) > 1:
            report.dropped["description with conflicting CWEs"] += len(group)
            continue
        report.dropped["duplicate description"] += len(group) - 1
        kept.append(group[0])
    if limit is not None and len(kept) > limit:
        report.dropped["over limit"] += len(kept) - limit
        kept = random.Random(seed).sample(kept, limit)
    kept.sort(key=lambda r: (r.published, r.id))
    report.dropped = Counter({k: v for k, v in report.dropped.items() if v})
    report.kept = len(kept)
    out_path = Path(out).expanduser()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in kept:
            text = " ".join(r.description.split())
            prompt = PROMPT.format(description=text)
            writer.writerow([r.id, r.published.isoformat(), r.url, text, prompt, r.cwes[0]])
    return report


class CWEPrediction(CTIBenchRCM):
    """The built benchmark, scored as RCM is; ``since`` filters rows again at load time."""

    name = "cwe-prediction"
    file = FILE_NAME
    references = (Reference(PAPER_MODEL, "accuracy", 0.704),)

    def __init__(self, *, since: date | str | None = None) -> None:
        super().__init__()
        self.default_source = FILE_NAME
        self.since = date.fromisoformat(since) if isinstance(since, str) else since

    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        try:
            path = local_file(source or self.default_source, self.file)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{error}; build it first: secreason build-benchmark cwe-prediction"
            ) from None
        if path is None:
            raise FileNotFoundError(
                f"{source}: CWE prediction loads a file made by the builder "
                "(secreason build-benchmark cwe-prediction); it has no hub copy"
            )
        rows: list[Row] = read_table(path, "\t", ("Prompt", "GT"))
        samples = []
        for index, row in enumerate(rows):
            published = _parse_date(row.get("Published"))
            if self.since is not None and (published is None or published < self.since):
                continue
            sample = self.sample(index, row)
            sample.meta.update(id=row.get("ID", ""), published=row.get("Published", ""))
            samples.append(sample)
        return limited(samples, limit)
