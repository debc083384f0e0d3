"""Every name that points at a threat actor: its aliases, its software, its campaigns.

Attribution items must not carry the answer in their text, and the answer is not only
the group's name: a report that says "INC Ransomware" or "Operation Cleaver" names its
author as surely as one that says the group's name, because ATT&CK links that malware
or that campaign to one group. This module gathers, per group, every such name from the
bundled ATT&CK data (group aliases, the software the group uses and its aliases, the
campaigns attributed to it and theirs), so that generators can scrub them and the
shortcut audit can look for them.

Campaigns are not part of ``AttackKB`` (which keeps groups, software and techniques);
they are read here from the same STIX lookup package, once per process.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from secreason.kb.attack import load_attack, read_lookup

#: "Operation Cleaver", "Operation Dream Job": campaign names, whether or not ATT&CK has them
OPERATION_RE = re.compile(r"\bOperation\s+(?:[A-Z][\w'-]*)(?:\s+[A-Z][\w'-]*)*")


@dataclass(frozen=True)
class ActorNames:
    """The names linked to one group, by kind (each tuple sorted, longest first)."""

    group_id: str
    actor: tuple[str, ...]
    software: tuple[str, ...]
    campaigns: tuple[str, ...]

    def all(self) -> tuple[str, ...]:
        return _longest_first({*self.actor, *self.software, *self.campaigns})


def _longest_first(names: set[str]) -> tuple[str, ...]:
    return tuple(sorted({n.strip() for n in names if n.strip()}, key=lambda n: (-len(n), n)))


@functools.lru_cache(maxsize=1)
def campaigns_by_group() -> dict[str, tuple[str, ...]]:
    """Group id -> names and aliases of the campaigns ATT&CK attributes to it."""
    rows = read_lookup("groups-campaigns")
    relations = read_lookup("relationships")
    group_of_stix: dict[str, str] = {}
    campaign_names: dict[str, set[str]] = {}
    for item in rows["groups_campaigns"]:
        if item["stix_type"] == "intrusion-set":
            group_of_stix[item["stix_id"]] = item["external_id"]
        elif item["stix_type"] == "campaign":
            campaign_names[item["stix_id"]] = {item["name"], *(item.get("aliases") or [])}
    out: dict[str, set[str]] = {}
    for rel in relations["relationships"]:
        if rel["relationship_type"] != "attributed-to":
            continue
        names = campaign_names.get(rel["source_ref"])
        group = group_of_stix.get(rel["target_ref"])
        if names and group:
            out.setdefault(group, set()).update(names)
    return {g: _longest_first(n) for g, n in out.items()}


@functools.lru_cache(maxsize=1)
def actor_names() -> dict[str, ActorNames]:
    """Group id -> :class:`ActorNames`, for every group of the bundled ATT&CK."""
    kb = load_attack()
    campaigns = campaigns_by_group()
    out = {}
    for g in kb.groups():
        software: set[str] = set()
        for s in kb.software_used_by(g.id):
            software.update({s.name, *s.aliases})
        out[g.id] = ActorNames(
            group_id=g.id,
            actor=_longest_first({g.name, *g.aliases}),
            software=_longest_first(software),
            campaigns=campaigns.get(g.id, ()),
        )
    return out


def name_pattern(names: tuple[str, ...] | list[str]) -> re.Pattern[str] | None:
    """One case-insensitive whole-word pattern for ``names`` (longest alternative first)."""
    kept = [n for n in names if n.strip()]
    if not kept:
        return None
    alternatives = "|".join(re.escape(n) for n in sorted(kept, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)
