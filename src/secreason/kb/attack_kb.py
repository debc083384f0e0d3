"""The ATT&CK query layer: techniques, tactics, groups, software and "uses" relations.

Separate from how the index is built (``kb.attack`` merges two installed packages):
every lookup here works on plain records, by id or by any name a report might use
("Cozy Bear" for G0016, "execution" for TA0002, ``t1059/001`` for T1059.001), in both
directions of a relationship. A miss raises ``UnknownEntryError`` that says which
version was searched, that revoked and deprecated entries are dropped, and which
spellings are closest.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from secreason.kb.cache import UnknownEntryError

ATTACK_VERSION = "18.1"
TEXT_VERSION = "15"
VERSION_NOTE = f"ATT&CK Enterprise v{ATTACK_VERSION} (full descriptions from v{TEXT_VERSION})"

_TECHNIQUE_RE = re.compile(r"^\s*(T\d{4})(?:[./](\d{3}))?\s*$", re.IGNORECASE)


def normalize_technique_id(value: str) -> str:
    """``t1059/001`` or `` T1059.001 `` -> ``T1059.001``; raises ValueError otherwise."""
    match = _TECHNIQUE_RE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not an ATT&CK technique id (T1234 or T1234.001)")
    head, sub = match.group(1).upper(), match.group(2)
    return f"{head}.{sub}" if sub else head


@dataclass(frozen=True)
class Technique:
    id: str  # T1059 or T1059.001
    name: str
    description: str
    tactics: tuple[str, ...]  # tactic short names, e.g. "execution"
    platforms: tuple[str, ...]
    is_subtechnique: bool
    parent: str | None  # T1059 for T1059.001
    full_text: bool  # False when only the v18.1 excerpt was available

    @property
    def url(self) -> str:
        return f"https://attack.mitre.org/techniques/{self.id.replace('.', '/')}"


@dataclass(frozen=True)
class Tactic:
    id: str  # TA0002
    name: str  # Execution
    shortname: str  # execution
    description: str


@dataclass(frozen=True)
class Group:
    id: str  # G0016
    name: str
    aliases: tuple[str, ...]  # the name first, as ATT&CK lists it
    description: str
    full_text: bool


@dataclass(frozen=True)
class Software:
    id: str  # S0154
    name: str
    kind: str  # "malware" or "tool"
    aliases: tuple[str, ...]
    platforms: tuple[str, ...]
    description: str
    full_text: bool


@dataclass(frozen=True)
class Use:
    """A "uses" relationship: group->technique, software->technique or group->software."""

    source: str
    target: str
    description: str  # the procedure example, cleaned


Entry = Technique | Tactic | Group | Software
_Named = TypeVar("_Named", Group, Software)


class AttackKB:
    """Lookups over techniques, tactics, groups, software and their "uses" relationships."""

    def __init__(
        self,
        techniques: Iterable[Technique],
        tactics: Iterable[Tactic],
        groups: Iterable[Group],
        software: Iterable[Software],
        uses: Iterable[Use],
        version: str = ATTACK_VERSION,
    ) -> None:
        self.version = version
        self.text_version = TEXT_VERSION
        self._techniques = {t.id: t for t in techniques}
        self._tactics = list(tactics)
        self._groups = {g.id: g for g in groups}
        self._software = {s.id: s for s in software}
        self._uses = list(uses)
        self._by_source: dict[str, list[Use]] = {}
        self._by_target: dict[str, list[Use]] = {}
        for use in self._uses:
            self._by_source.setdefault(use.source, []).append(use)
            self._by_target.setdefault(use.target, []).append(use)
        self._group_names: dict[str, str] = {}
        for group in self._groups.values():
            for alias in (group.name, *group.aliases):
                self._group_names.setdefault(alias.casefold(), group.id)
        self._software_names: dict[str, str] = {}
        for item in self._software.values():
            for alias in (item.name, *item.aliases):
                self._software_names.setdefault(alias.casefold(), item.id)

    @property
    def version_note(self) -> str:
        return VERSION_NOTE

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AttackKB):
            return NotImplemented
        mine = (self.version, self._techniques, self._tactics, self._groups, self._software)
        theirs = (other.version, other._techniques, other._tactics, other._groups, other._software)
        return mine == theirs and self._uses == other._uses

    __hash__ = None  # type: ignore[assignment]

    # -- techniques and tactics --------------------------------------------------------

    def technique(self, technique_id: str) -> Technique:
        key = normalize_technique_id(technique_id)
        found = self._techniques.get(key)
        if found is None:
            raise self._unknown("technique", key, self._techniques)
        return found

    def has_technique(self, technique_id: str) -> bool:
        """Whether an id names a live technique; malformed ids are simply False."""
        try:
            return normalize_technique_id(technique_id) in self._techniques
        except ValueError:
            return False

    def techniques(self, subtechniques: bool = True) -> list[Technique]:
        """All techniques in id order (sub-techniques after their parent)."""
        return [
            t for _, t in sorted(self._techniques.items()) if subtechniques or not t.is_subtechnique
        ]

    def subtechniques(self, technique_id: str) -> list[Technique]:
        parent = self.technique(technique_id).id
        return [t for t in self.techniques() if t.parent == parent]

    def tactics(self) -> list[Tactic]:
        """Tactics in kill-chain order, as the Enterprise matrix lists them."""
        return list(self._tactics)

    def tactic(self, key: str) -> Tactic:
        """By id (TA0002), short name (execution) or name (Execution)."""
        wanted = key.strip().casefold()
        for tactic in self._tactics:
            if wanted in (tactic.id.casefold(), tactic.shortname, tactic.name.casefold()):
                return tactic
        raise self._unknown("tactic", key, [n for t in self._tactics for n in (t.id, t.name)])

    def techniques_for_tactic(self, key: str) -> list[Technique]:
        shortname = self.tactic(key).shortname
        return [t for t in self.techniques() if shortname in t.tactics]

    # -- groups and software -----------------------------------------------------------

    def group(self, key: str) -> Group:
        """By ATT&CK id (G0016), name (APT29) or any alias (Cozy Bear), case-insensitive."""
        return self._named("group", key, self._groups, self._group_names)

    def group_by_alias(self, alias: str) -> Group:
        return self.group(alias)

    def groups(self) -> list[Group]:
        return [g for _, g in sorted(self._groups.items())]

    def software(self) -> list[Software]:
        return [s for _, s in sorted(self._software.items())]

    def software_item(self, key: str) -> Software:
        """By ATT&CK id (S0154), name or alias (Cobalt Strike), case-insensitive."""
        return self._named("software", key, self._software, self._software_names)

    # -- relationships -----------------------------------------------------------------

    def uses(self, source_id: str) -> list[Use]:
        """Every "uses" relationship from a group or software id, with procedure text."""
        return list(self._by_source.get(self._resolve_actor(source_id), ()))

    def techniques_used_by(self, source: str, via_software: bool = False) -> list[Technique]:
        """Techniques a group or software uses; optionally also through the group's software."""
        source_id = self._resolve_actor(source)
        ids = {u.target for u in self._by_source.get(source_id, ()) if u.target in self._techniques}
        if via_software:
            for item in self.software_used_by(source_id):
                ids |= {u.target for u in self._by_source.get(item.id, ())}
        return [self._techniques[i] for i in sorted(ids) if i in self._techniques]

    def software_used_by(self, group: str) -> list[Software]:
        group_id = self.group(group).id
        ids = {u.target for u in self._by_source.get(group_id, ()) if u.target in self._software}
        return [self._software[i] for i in sorted(ids)]

    def groups_using(self, technique_or_software: str) -> list[Group]:
        target = self._resolve_target(technique_or_software)
        ids = {u.source for u in self._by_target.get(target, ()) if u.source in self._groups}
        return [self._groups[i] for i in sorted(ids)]

    def software_using(self, technique_id: str) -> list[Software]:
        target = self.technique(technique_id).id
        ids = {u.source for u in self._by_target.get(target, ()) if u.source in self._software}
        return [self._software[i] for i in sorted(ids)]

    # -- any id ------------------------------------------------------------------------

    def lookup(self, key: str) -> Entry:
        """Whatever ``key`` names: a technique, tactic, group or software (id or name)."""
        text = key.strip()
        upper = text.upper()
        if _TECHNIQUE_RE.match(text):
            return self.technique(text)
        if upper.startswith("TA") and upper[2:].isdigit():
            return self.tactic(text)
        if upper.startswith("G") and upper[1:].isdigit():
            return self.group(text)
        if upper.startswith("S") and upper[1:].isdigit():
            return self.software_item(text)
        for finder in (self.group, self.software_item, self.tactic, self._technique_by_name):
            try:
                return finder(text)
            except KeyError:
                continue
        names = [*_aliases(self._groups.values()), *_aliases(self._software.values())]
        names += [t.name for t in self._techniques.values()]
        hint = _did_you_mean(text, names)
        raise UnknownEntryError(f"{key!r} is not an id or name in {VERSION_NOTE}{hint}")

    def _named(
        self, kind: str, key: str, by_id: dict[str, _Named], names: dict[str, str]
    ) -> _Named:
        """By id, else by name or alias (``names``: casefolded -> id); else an error
        suggesting the closest ids, names and aliases."""
        found = by_id.get(key.strip().upper())
        if found is not None:
            return found
        entry_id = names.get(key.strip().casefold())
        if entry_id is None:
            raise self._unknown(kind, key, _aliases(by_id.values()))
        return by_id[entry_id]

    def _technique_by_name(self, name: str) -> Technique:
        wanted = name.strip().casefold()
        for technique in self._techniques.values():
            if technique.name.casefold() == wanted:
                return technique
        raise UnknownEntryError(f"no technique is named {name!r}")

    def _resolve_actor(self, key: str) -> str:
        upper = key.strip().upper()
        if upper in self._groups or upper in self._software:
            return upper
        if key.strip().casefold() in self._group_names:
            return self._group_names[key.strip().casefold()]
        return self.software_item(key).id

    def _resolve_target(self, key: str) -> str:
        if _TECHNIQUE_RE.match(key):
            return self.technique(key).id
        return self.software_item(key).id

    def _unknown(self, kind: str, key: str, known: Iterable[str]) -> UnknownEntryError:
        return UnknownEntryError(
            f"{kind} {key!r} is not in {VERSION_NOTE} (revoked and deprecated entries are"
            f" dropped){_did_you_mean(key, known)}"
        )


def _aliases(entries: Iterable[Group | Software]) -> list[str]:
    """Every id, name and alias of ``entries``."""
    return [a for e in entries for a in (e.id, e.name, *e.aliases)]


def _did_you_mean(key: str, known: Iterable[str]) -> str:
    """``; did you mean A, B?`` with the canonical spelling of the closest names."""
    display = {name.casefold(): name for name in known}
    close = difflib.get_close_matches(key.strip().casefold(), list(display), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(display[c] for c in close)}?" if close else ""
