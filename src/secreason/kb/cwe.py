"""The CWE catalog (version 4.14, shipped inside the ``cwe2`` package), offline.

Why a catalog of our own instead of ``cwe2.Database``: we need the hierarchy per view
(ChildOf in view 1000 "Research Concepts" and view 1003 "Simplified Mapping") for the
hierarchical partial credit of the CWE task, and the catalog's Observed_Examples (CVE id
plus text) for data synthesis; ``cwe2`` exposes neither as structured data. The XML is
parsed once with ``iterparse`` and stored as a compact JSON index (see ``kb.cache``).

Categories (e.g. CWE-16 "Configuration") are kept with ``abstraction == "Category"``
because benchmark gold labels sometimes name them; deprecated and obsolete entries are
kept with their ``status`` so that a lookup explains itself instead of failing.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from secreason.kb.cache import UnknownEntryError, cache_dir, cached_index, package_version

CWE_VERSION = "4.14"
VIEW_RESEARCH = 1000
VIEW_SIMPLIFIED = 1003
VIEWS = (VIEW_RESEARCH, VIEW_SIMPLIFIED)

_NS = "{http://cwe.mitre.org/cwe-7}"
_ID_RE = re.compile(r"^\s*(?:CWE\s*[-_ ]?\s*)?(\d+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Weakness:
    """One CWE entry. ``parent_ids``/``child_ids`` map a view id to ChildOf neighbours."""

    id: int
    name: str
    abstraction: str  # Pillar, Class, Base, Variant, Compound, or Category
    status: str  # Stable, Draft, Incomplete, Deprecated, Obsolete
    description: str
    extended: str = ""
    alternate_terms: tuple[str, ...] = ()
    consequences: tuple[str, ...] = ()  # "Confidentiality: Read Application Data"
    mapping_usage: str = ""  # Allowed, Allowed-with-Review, Discouraged, Prohibited
    examples: tuple[tuple[str, str], ...] = ()  # (CVE id, what happened)
    parent_ids: dict[int, tuple[int, ...]] = field(default_factory=dict)
    child_ids: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def cwe_id(self) -> str:
        return f"CWE-{self.id}"

    @property
    def is_category(self) -> bool:
        return self.abstraction == "Category"

    @property
    def is_deprecated(self) -> bool:
        return self.status in ("Deprecated", "Obsolete")

    def parents(self, view: int = VIEW_RESEARCH) -> tuple[int, ...]:
        return self.parent_ids.get(view, ())

    def children(self, view: int = VIEW_RESEARCH) -> tuple[int, ...]:
        return self.child_ids.get(view, ())


def parse_cwe_id(value: int | str) -> int:
    """``79``, ``"79"``, ``"CWE-79"``, ``"cwe‑79"`` (unicode hyphen) -> 79."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = unicodedata.normalize("NFKC", str(value))
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    match = _ID_RE.match(text)
    if match is None:
        raise ValueError(f"{value!r} is not a CWE id; expected a form like 79 or CWE-79")
    return int(match.group(1))


class CWECatalog:
    """All CWE entries of one catalog version, with hierarchy helpers per view."""

    def __init__(
        self, entries: Iterable[Weakness], version: str, view_members: dict[int, tuple[int, ...]]
    ) -> None:
        self.version = version
        self._entries = {entry.id: entry for entry in entries}
        self._view_members = view_members

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, cwe: object) -> bool:
        try:
            return parse_cwe_id(cwe) in self._entries  # type: ignore[arg-type]
        except ValueError:
            return False

    def __iter__(self) -> Iterator[Weakness]:
        return iter(self._entries.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CWECatalog):
            return NotImplemented
        return (self.version, self._entries, self._view_members) == (
            other.version,
            other._entries,
            other._view_members,
        )

    __hash__ = None  # type: ignore[assignment]

    def get(self, cwe: int | str) -> Weakness:
        """The entry for an id; unknown ids raise ``UnknownEntryError`` with suggestions."""
        number = parse_cwe_id(cwe)
        entry = self._entries.get(number)
        if entry is None:
            close = difflib.get_close_matches(str(number), [str(i) for i in self._entries], n=3)
            if not close:  # fall back on the numerically nearest ids
                close = [str(i) for i in sorted(self._entries, key=lambda i: abs(i - number))[:3]]
            hint = f"; did you mean {', '.join('CWE-' + c for c in close)}?" if close else ""
            raise UnknownEntryError(f"CWE-{number} is not in CWE {self.version}{hint}")
        return entry

    def all(self, *, categories: bool = False, deprecated: bool = False) -> list[Weakness]:
        """Entries in id order; by default only current weaknesses (what a mapping may name)."""
        return [
            entry
            for _, entry in sorted(self._entries.items())
            if (categories or not entry.is_category) and (deprecated or not entry.is_deprecated)
        ]

    def search(self, text: str, limit: int = 10) -> list[Weakness]:
        """Entries whose name or alternate terms contain ``text`` (case-insensitive)."""
        needle = " ".join(text.split()).casefold()
        if not needle:
            return []
        hits = [
            entry
            for entry in self.all(categories=True)
            if needle in entry.name.casefold()
            or any(needle in term.casefold() for term in entry.alternate_terms)
        ]
        return hits[:limit]

    def view_members(self, view: int) -> tuple[int, ...]:
        """Ids that belong to a view (1000: every weakness in its graph; 1003: ~130 ids)."""
        return self._view_members.get(view, ())

    def parents(self, cwe: int | str, view: int = VIEW_RESEARCH) -> tuple[int, ...]:
        return self.get(cwe).parents(view)

    def children(self, cwe: int | str, view: int = VIEW_RESEARCH) -> tuple[int, ...]:
        return self.get(cwe).children(view)

    def ancestors(self, cwe: int | str, view: int = VIEW_RESEARCH) -> list[int]:
        """Every ancestor along ChildOf edges, nearest first (breadth-first)."""
        return list(self._walk(parse_cwe_id(cwe), view, up=True))

    def descendants(self, cwe: int | str, view: int = VIEW_RESEARCH) -> list[int]:
        return list(self._walk(parse_cwe_id(cwe), view, up=False))

    def distance(self, a: int | str, b: int | str, view: int = VIEW_RESEARCH) -> int | None:
        """ChildOf edges between a and b when one is an ancestor of the other, else None.

        0 for the same id, 1 for parent/child, 2 for grandparent, ... Siblings are not
        related this way on purpose: partial credit should reward a correct but coarser
        or finer answer, not a neighbouring one.
        """
        first, second = parse_cwe_id(a), parse_cwe_id(b)
        self.get(first), self.get(second)
        if first == second:
            return 0
        up = self._depths(first, view)
        down = self._depths(second, view)
        found = [d for d in (up.get(second), down.get(first)) if d is not None]
        return min(found) if found else None

    def related(
        self, a: int | str, b: int | str, view: int = VIEW_RESEARCH, max_distance: int = 1
    ) -> bool:
        """True when a and b are the same entry or within ``max_distance`` ChildOf edges.

        An id the catalog does not hold is related to nothing (a scorer may pass a
        model's invented id); a malformed id still raises ValueError.
        """
        first, second = parse_cwe_id(a), parse_cwe_id(b)
        if first not in self._entries or second not in self._entries:
            return False
        distance = self.distance(first, second, view)
        return distance is not None and distance <= max_distance

    def _walk(self, start: int, view: int, up: bool) -> Iterator[int]:
        yield from self._depths(start, view, up=up)

    def _depths(self, start: int, view: int, up: bool = True) -> dict[int, int]:
        """Breadth-first depths of every node reachable from ``start`` (excluded)."""
        depths: dict[int, int] = {}
        queue = deque([(start, 0)])
        while queue:
            node, depth = queue.popleft()
            entry = self._entries.get(node)
            if entry is None:
                continue
            for nxt in entry.parents(view) if up else entry.children(view):
                if nxt not in depths and nxt != start:
                    depths[nxt] = depth + 1
                    queue.append((nxt, depth + 1))
        return depths


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
