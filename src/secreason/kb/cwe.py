"""The CWE catalog (version 4.14, shipped inside the ``cwe2`` package), offline.

Why a catalog of our own instead of ``cwe2.Database``: we need the hierarchy per view
(ChildOf in view 1000 "Research Concepts" and view 1003 "Simplified Mapping") for the
hierarchical partial credit of the CWE task, and the catalog's Observed_Examples (CVE id
plus text) for data synthesis; ``cwe2`` exposes neither as structured data. The XML is
parsed once with ``iterparse`` and stored as a compact JSON index (see ``kb.cache``).

Categories (e.g. CWE-16 "Configuration") are kept with ``abstraction == "Category"``
because benchmark gold labels sometimes name them; deprecated and obsolete entries are
kept with their ``status`` so that a lookup explains itself instead of failing.

This module reads the XML and caches the index; the entries and the hierarchy
(``Weakness``, ``CWECatalog``) are in ``kb.cwe_catalog`` and re-exported here.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Any

from secreason.kb.cache import cache_dir, cached_index, package_version
from secreason.kb.cwe_catalog import (
    VIEW_RESEARCH,
    VIEW_SIMPLIFIED,
    VIEWS,
    CWECatalog,
    Weakness,
    parse_cwe_id,
)

__all__ = [
    "CWE_VERSION",
    "VIEWS",
    "VIEW_RESEARCH",
    "VIEW_SIMPLIFIED",
    "CWECatalog",
    "Weakness",
    "build_index",
    "catalog_path",
    "index_key",
    "load_cwe",
    "parse_cwe_id",
]

CWE_VERSION = "4.14"
_NS = "{http://cwe.mitre.org/cwe-7}"


# -- building the index ------------------------------------------------------------------


def catalog_path() -> Path:
    """The XML catalog inside the installed ``cwe2`` package."""
    return Path(str(resources.files("cwe2") / "database_v49" / f"cwec_v{CWE_VERSION}.xml"))


_BLOCKS = {"p", "li", "div", "ul", "ol", "table", "tr"}


def _text(element: ET.Element | None) -> str:
    """Element text with XHTML paragraphs and list items as blank-line separated blocks."""
    if element is None:
        return ""
    paragraphs: list[str] = []
    _collect(element, paragraphs)
    return "\n\n".join(p for p in paragraphs if p)


def _collect(element: ET.Element, out: list[str]) -> None:
    """Flatten nested XHTML: a block holding other blocks is split, a leaf block is joined."""
    children = list(element)
    if not any(child.tag.rsplit("}", 1)[-1] in _BLOCKS for child in children):
        out.append(" ".join("".join(element.itertext()).split()))
        return
    out.append(" ".join((element.text or "").split()))
    for child in children:
        _collect(child, out)
        out.append(" ".join((child.tail or "").split()))


def _parse_weakness(element: ET.Element) -> dict[str, Any]:
    parents: dict[str, list[int]] = {}
    for rel in element.iterfind(f"{_NS}Related_Weaknesses/{_NS}Related_Weakness"):
        if rel.get("Nature") == "ChildOf":
            view = rel.get("View_ID", "")
            ids = parents.setdefault(view, [])
            cwe = int(rel.get("CWE_ID", "0"))
            if cwe not in ids:
                ids.append(cwe)
    consequences = []
    for cons in element.iterfind(f"{_NS}Common_Consequences/{_NS}Consequence"):
        scopes = "/".join(s.text or "" for s in cons.iterfind(f"{_NS}Scope"))
        impacts = ", ".join(i.text or "" for i in cons.iterfind(f"{_NS}Impact"))
        consequences.append(f"{scopes}: {impacts}")
    examples = [
        [_text(ex.find(f"{_NS}Reference")), _text(ex.find(f"{_NS}Description"))]
        for ex in element.iterfind(f"{_NS}Observed_Examples/{_NS}Observed_Example")
    ]
    term_path = f"{_NS}Alternate_Terms/{_NS}Alternate_Term/{_NS}Term"
    terms = [_text(t) for t in element.iterfind(term_path)]
    return {
        "id": int(element.get("ID", "0")),
        "name": element.get("Name", ""),
        "abstraction": element.get("Abstraction", ""),
        "status": element.get("Status", ""),
        "description": _text(element.find(f"{_NS}Description")),
        "extended": _text(element.find(f"{_NS}Extended_Description")),
        "alternate_terms": terms,
        "consequences": consequences,
        "mapping_usage": _text(element.find(f"{_NS}Mapping_Notes/{_NS}Usage")),
        "examples": examples,
        "parents": parents,
    }


def _parse_category(element: ET.Element) -> dict[str, Any]:
    return {
        "id": int(element.get("ID", "0")),
        "name": element.get("Name", ""),
        "abstraction": "Category",
        "status": element.get("Status", ""),
        "description": _text(element.find(f"{_NS}Summary")),
        "mapping_usage": _text(element.find(f"{_NS}Mapping_Notes/{_NS}Usage")),
    }


def build_index(path: Path | None = None) -> dict[str, Any]:
    """Parse the XML catalog into the JSON-able index (about a second)."""
    entries: list[dict[str, Any]] = []
    views: dict[str, list[int]] = {}
    version = CWE_VERSION
    for event, element in ET.iterparse(str(path or catalog_path()), events=("start", "end")):
        tag = element.tag
        if event == "start":
            if tag == f"{_NS}Weakness_Catalog":
                version = element.get("Version", CWE_VERSION)
            continue
        if tag == f"{_NS}Weakness":
            entries.append(_parse_weakness(element))
            element.clear()
        elif tag == f"{_NS}Category":
            entries.append(_parse_category(element))
            element.clear()
        elif tag == f"{_NS}View":
            members = [int(m.get("CWE_ID", "0")) for m in element.iter(f"{_NS}Has_Member")]
            if members:
                views[element.get("ID", "")] = members
            element.clear()
    # A graph view lists only its top level (1003) or nothing (1000, defined by a filter):
    # its members are the listed ids plus every entry taking part in its ChildOf graph.
    for view in VIEWS:
        key = str(view)
        graph = set(views.get(key, ()))
        graph |= {e["id"] for e in entries if key in e.get("parents", {})}
        graph |= {p for e in entries for p in e.get("parents", {}).get(key, [])}
        views[key] = sorted(graph)
    return {"version": version, "entries": entries, "views": views}


def _catalog_from_index(index: dict[str, Any]) -> CWECatalog:
    parents: dict[int, dict[int, tuple[int, ...]]] = {}
    children: dict[int, dict[int, list[int]]] = {}
    for raw in index["entries"]:
        own = {int(view): tuple(ids) for view, ids in raw.get("parents", {}).items()}
        parents[raw["id"]] = own
        for view, ids in own.items():
            for parent in ids:
                children.setdefault(parent, {}).setdefault(view, []).append(raw["id"])
    entries = [
        Weakness(
            id=raw["id"],
            name=raw["name"],
            abstraction=raw["abstraction"],
            status=raw["status"],
            description=raw["description"],
            extended=raw.get("extended", ""),
            alternate_terms=tuple(raw.get("alternate_terms", ())),
            consequences=tuple(raw.get("consequences", ())),
            mapping_usage=raw.get("mapping_usage", ""),
            examples=tuple((cve, text) for cve, text in raw.get("examples", ())),
            parent_ids=parents[raw["id"]],
            child_ids={
                view: tuple(sorted(ids)) for view, ids in children.get(raw["id"], {}).items()
            },
        )
        for raw in index["entries"]
    ]
    views = {int(view): tuple(ids) for view, ids in index["views"].items()}
    return CWECatalog(entries, index["version"], views)


def index_key() -> str:
    return f"cwe{CWE_VERSION}-cwe2-{package_version('cwe2')}"


def load_cwe(directory: Path | None = None) -> CWECatalog:
    """The CWE catalog, from the index in ``directory`` (default ``kb.cache.cache_dir()``).

    The index is built on first use; the result is memoised per process and directory.
    """
    return _load_cwe(directory or cache_dir())


@functools.cache
def _load_cwe(directory: Path) -> CWECatalog:
    return _catalog_from_index(cached_index("cwe", index_key(), build_index, directory))
