"""Real CVE text when the user has it: training items from NVD CVE JSON files.

The knowledge bases quote a few thousand CVE one-liners; NVD holds every CVE with its
analyst-written description, its CWE mapping and its CVSS vector. Given NVD files the
user downloaded (no network here), two kinds of item are made:

* ``cve -> CWE``: the description, gold = the one concrete CWE NVD assigns (the
  ranking and the CWE rules are those of ``evals.cwe_prediction``, which reads the
  same files to build a benchmark); CVEs with several CWEs, none, or a description
  naming a CWE id are skipped;
* ``description -> CVSS vector``: gold = NVD's CVSS v3.x base vector (the ``Primary``
  score when there are several), scored like every CVSS item.

Two layouts are read: the 2.0 format (API responses and the ``nvdcve-2.0-YYYY`` feeds,
``{"vulnerabilities": [{"cve": ...}]}``) and the older 1.1 yearly feeds
(``{"CVE_Items": [...]}``), plain or gzipped, as files or folders of them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secreason.data.synthesize import SynthesisConfig, build_sample, entity_split
from secreason.tasks.base import Sample


@dataclass(frozen=True)
class NvdEntry:
    id: str
    description: str
    cwes: tuple[str, ...]
    vector: str | None  # CVSS v3.x base vector, None when NVD gave none


def _files(paths: Sequence[str | Path]) -> list[Path]:
    out: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.name.endswith((".json", ".json.gz")))
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"synthesis.nvd: {path}: no such file or folder")
    return out


def _load(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable NVD JSON file ({error})") from None


def _vector_v2_format(cve: dict[str, Any]) -> str | None:
    metrics = cve.get("metrics") or {}
    for key in ("cvssMetricV31", "cvssMetricV30"):
        found = metrics.get(key) or []
        ranked = [m for m in found if m.get("type") == "Primary"] or found
        for m in ranked:
            vector = (m.get("cvssData") or {}).get("vectorString")
            if vector:
                return str(vector)
    return None


def _entries_v2(data: dict[str, Any]) -> Iterator[NvdEntry]:
    from secreason.evals.cwe_prediction import nvd_records

    for item in data.get("vulnerabilities") or []:
        cve = item.get("cve", item)
        for record in nvd_records({"vulnerabilities": [item]}):
            if not isinstance(record, str):
                yield NvdEntry(record.id, record.description, record.cwes, _vector_v2_format(cve))


def _entries_v11(data: dict[str, Any]) -> Iterator[NvdEntry]:
    from secreason.evals.cwe_prediction import _concrete

    for item in data.get("CVE_Items") or []:
        cve = item.get("cve") or {}
        cve_id = str((cve.get("CVE_data_meta") or {}).get("ID", ""))
        texts = (cve.get("description") or {}).get("description_data") or []
        text = next((d.get("value", "") for d in texts if d.get("lang") == "en"), "").strip()
        if not cve_id or not text or text.startswith("** REJECT **"):
            continue
        problems = (cve.get("problemtype") or {}).get("problemtype_data") or []
        cwes = _concrete(d.get("value", "") for p in problems for d in p.get("description", []))
        v3 = ((item.get("impact") or {}).get("baseMetricV3") or {}).get("cvssV3") or {}
        yield NvdEntry(cve_id, text, cwes, v3.get("vectorString"))


def read_nvd(paths: Sequence[str | Path]) -> Iterator[NvdEntry]:
    """Every usable CVE in the given NVD files or folders (2.0 or 1.1 layout)."""
    for path in _files(paths):
        data = _load(path)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected an NVD JSON object, got {type(data).__name__}")
        if "vulnerabilities" in data:
            yield from _entries_v2(data)
        elif "CVE_Items" in data:
            yield from _entries_v11(data)
        else:
            raise ValueError(
                f"{path}: neither NVD 2.0 ('vulnerabilities') nor 1.1 ('CVE_Items') layout"
            )


def nvd_items(cfg: SynthesisConfig) -> Iterator[Sample]:
    """CVE -> CWE and description -> CVSS vector items from ``cfg.nvd`` files."""
    from secreason.kb import load_cwe
    from secreason.kb.cvss import CVSSVectorError, describe_vector

    catalog = load_cwe()
    for entry in read_nvd(cfg.nvd):
        source = f"NVD {entry.id}"
        if len(entry.cwes) == 1 and "CWE-" not in entry.description.upper():
            cwe = entry.cwes[0]
            named = f" ({catalog.get(cwe).name})" if cwe in catalog else ""
            yield build_sample(
                "cwe",
                reference=cwe,
                meta={
                    "description": f"{entry.id}: {entry.description}",
                    "cves": [entry.id],
                    "facts": [
                        f"The description says: {entry.description}",
                        f"NVD's analysts map {entry.id} to {cwe}{named}.",
                    ],
                },
                entity=cwe,
                split=entity_split(cwe, cfg.heldout_fraction, cfg.seed),
                provenance=f"{source}, CWE mapping",
            )
        if entry.vector:
            try:
                facts = describe_vector(entry.vector)
            except CVSSVectorError:
                continue
            yield build_sample(
                "cvss",
                reference=entry.vector,
                meta={
                    "description": entry.description,
                    "cves": [entry.id],
                    "facts": [*facts[:8], f"NVD scored {entry.id} as {entry.vector}."],
                },
                entity=f"cvss:{entry.vector}",
                split=entity_split(f"cvss:{entry.vector}", cfg.heldout_fraction, cfg.seed),
                provenance=f"{source}, CVSS vector",
            )
