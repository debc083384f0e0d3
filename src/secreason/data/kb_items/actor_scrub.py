"""Hiding an actor's identity in its profile, for attribution items (``group_profile_to_actor``).

A profile names its author many ways: the group's names and aliases, the campaigns
ATT&CK attributes to it, the malware and tools it uses. Any of them answers the item by
lookup, so every name ``kb.actor_names`` links to the group is replaced, and so is
every other group's name. Short lower-case tool names (``at``, ``cmd``) are ordinary
words and stay: the same rule tells the shortcut audit (``data.shortcuts``) which
software names to look for.
"""

from __future__ import annotations

import functools
import re


def scrub_actor(text: str, group_id: str) -> str:
    """``text`` with every name ATT&CK links to the group replaced by a placeholder.

    The group's names and aliases (and every other group's) become ``[PLACEHOLDER]``,
    its campaigns and any "Operation X" ``[CAMPAIGN]``, the software it uses
    ``[SOFTWARE]`` (case-sensitive; short lower-case tool names such as ``at`` are
    ordinary words and stay).
    """
    from secreason.kb.actor_names import OPERATION_RE, actor_names, name_pattern

    names = actor_names()
    mine = names[group_id]
    software = [n for n in mine.software if scrubbable_software(n)]
    if software:
        alternatives = "|".join(re.escape(n) for n in sorted(software, key=len, reverse=True))
        text = re.sub(rf"(?<![\w-])(?:{alternatives})(?![\w-])", "[SOFTWARE]", text)
    campaigns = name_pattern(mine.campaigns)
    if campaigns is not None:
        text = campaigns.sub("[CAMPAIGN]", text)
    text = OPERATION_RE.sub("[CAMPAIGN]", text)
    return _all_actor_names().sub("[PLACEHOLDER]", text)


def scrubbable_software(name: str) -> bool:
    """Software names worth scrubbing: not short lower-case words such as ``at``, ``cmd``."""
    return len(name) >= 3 and not (name.islower() and len(name) <= 4)


@functools.lru_cache(maxsize=1)
def _all_actor_names() -> re.Pattern[str]:
    from secreason.kb.actor_names import actor_names, name_pattern

    pattern = name_pattern([n for a in actor_names().values() for n in a.actor])
    assert pattern is not None
    return pattern
