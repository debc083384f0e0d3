"""The CWE catalog as the tasks use it: entries by id, and the ChildOf graph per view.

Separate from how the catalog is read (``kb.cwe`` parses MITRE's XML into an index):
this is what the CWE task's hierarchical partial credit and the synthesis generators
ask of it. Ids are read in any common spelling (``79``, ``CWE-79``, a Unicode hyphen),
an unknown id fails with the closest ones named, and distance counts ChildOf edges
only between an entry and its ancestors or descendants, never across to a sibling.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from secreason.kb.cache import UnknownEntryError

VIEW_RESEARCH = 1000
VIEW_SIMPLIFIED = 1003
VIEWS = (VIEW_RESEARCH, VIEW_SIMPLIFIED)

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
