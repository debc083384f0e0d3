"""The CWE catalog: real lookups in CWE 4.14, hierarchy per view, errors that explain."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from secreason.kb.cache import UnknownEntryError
from secreason.kb.cwe import (
    VIEW_RESEARCH,
    VIEW_SIMPLIFIED,
    CWECatalog,
    load_cwe,
    parse_cwe_id,
)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> CWECatalog:
    return load_cwe(Path(tmp_path_factory.mktemp("kb")))


def test_xss_entry_has_the_catalog_facts(catalog: CWECatalog) -> None:
    xss = catalog.get(79)
    assert catalog.version == "4.14"
    assert "Cross-site Scripting" in xss.name
    assert xss.abstraction == "Base" and xss.status == "Stable"
    assert xss.description.startswith("The product does not neutralize")
    assert "Reflected XSS" in xss.extended
    assert "XSS" in xss.alternate_terms
    assert xss.mapping_usage == "Allowed"
    assert xss.parents(VIEW_RESEARCH) == (74,)
    assert xss.parents(VIEW_SIMPLIFIED) == (74,)
    assert {80, 81, 83, 84, 85, 86, 87} <= set(xss.children(VIEW_RESEARCH))
    assert len(xss.examples) >= 10
    for cve, text in xss.examples:
        assert re.fullmatch(r"CVE-\d{4}-\d{4,}", cve), cve
        assert text and "<" not in text


def test_paragraphs_of_extended_description_are_kept(catalog: CWECatalog) -> None:
    extended = catalog.get(79).extended
    assert "\n\n" in extended
    assert all(p.strip() == p and p for p in extended.split("\n\n"))


@pytest.mark.parametrize(
    "value",
    [79, "79", "CWE-79", "cwe-79", "CWE\u201179", "CWE\u221279", " CWE 79 ", "CWE_79", "ＣＷＥ-79"],
    ids=[
        "int",
        "digits",
        "canonical",
        "lower",
        "nb-hyphen",
        "minus",
        "spaces",
        "underscore",
        "wide",
    ],
)
def test_id_forms_all_reach_the_same_entry(catalog: CWECatalog, value: int | str) -> None:
    assert parse_cwe_id(value) == 79
    assert catalog.get(value).id == 79
    assert value in catalog


@pytest.mark.parametrize(
    "value",
    ["", "CWE-", "XSS", "79a", "CWE-79,CWE-80", "CWE-79 CWE-80", "CWE--79", "-79", "7 9"],
    ids=[
        "empty",
        "no-number",
        "word",
        "suffix",
        "two-ids",
        "two-ids-space",
        "double",
        "neg",
        "gap",
    ],
)
def test_malformed_ids_are_rejected(catalog: CWECatalog, value: str) -> None:
    with pytest.raises(ValueError, match="not a CWE id"):
        parse_cwe_id(value)
    assert value not in catalog


def test_unknown_id_names_the_version_and_suggests(catalog: CWECatalog) -> None:
    with pytest.raises(KeyError) as caught:
        catalog.get("CWE-99999")
    error = caught.value
    assert isinstance(error, UnknownEntryError)
    message = str(error)
    assert message.startswith("CWE-99999 is not in CWE 4.14; did you mean CWE-")
    suggested = [int(n) for n in re.findall(r"CWE-(\d+)", message)[1:]]
    assert suggested and all(n in catalog for n in suggested)


@pytest.mark.parametrize(
    ("a", "b", "view", "distance"),
    [
        (79, 79, VIEW_RESEARCH, 0),
        (79, 74, VIEW_RESEARCH, 1),
        (74, 79, VIEW_RESEARCH, 1),
        (79, 707, VIEW_RESEARCH, 2),
        (707, 79, VIEW_RESEARCH, 2),
        (79, 89, VIEW_RESEARCH, None),
        (89, 943, VIEW_RESEARCH, 1),
        (89, 74, VIEW_RESEARCH, 2),
        (89, 74, VIEW_SIMPLIFIED, 1),
        (80, 79, VIEW_RESEARCH, 1),
        (80, 74, VIEW_RESEARCH, 2),
        (79, 74, VIEW_SIMPLIFIED, 1),
        (79, 707, VIEW_SIMPLIFIED, None),
        (79, 20, VIEW_RESEARCH, None),
    ],
    ids=[
        "same",
        "child-parent",
        "parent-child",
        "grandparent",
        "grandchild",
        "siblings",
        "sqli-parent",
        "sqli-injection-1000",
        "sqli-injection-1003",
        "variant-base",
        "variant-class",
        "simplified-view",
        "pillar-not-in-1003",
        "unrelated",
    ],
)
def test_distance_follows_childof_edges_only(
    catalog: CWECatalog, a: int, b: int, view: int, distance: int | None
) -> None:
    assert catalog.distance(a, b, view) == distance
    assert catalog.related(a, b, view) == (distance is not None and distance <= 1)


def test_related_widens_with_max_distance(catalog: CWECatalog) -> None:
    assert not catalog.related(79, 707)
    assert catalog.related(79, 707, max_distance=2)
    assert catalog.related("CWE-79", "cwe-74", VIEW_SIMPLIFIED)


def test_ancestors_are_nearest_first(catalog: CWECatalog) -> None:
    assert catalog.ancestors(79) == [74, 707]
    assert catalog.ancestors(79, VIEW_SIMPLIFIED) == [74]
    assert 79 in catalog.descendants(707)
    assert catalog.ancestors(707) == []


def test_unknown_ids_are_related_to_nothing_but_distance_says_why(catalog: CWECatalog) -> None:
    with pytest.raises(UnknownEntryError, match="CWE-99999"):
        catalog.distance(79, 99999)
    assert catalog.related(99999, 79) is False
    assert catalog.related(79, 99999, VIEW_SIMPLIFIED, max_distance=5) is False
    with pytest.raises(ValueError, match="not a CWE id"):
        catalog.related("CWE-79 or CWE-80", 79)


def test_hierarchy_is_closed_and_consistent(catalog: CWECatalog) -> None:
    for entry in catalog:
        for view in (VIEW_RESEARCH, VIEW_SIMPLIFIED):
            for parent in entry.parents(view):
                assert parent in catalog, (entry.id, parent)
                assert entry.id in catalog.children(parent, view)


def test_simplified_view_is_the_small_two_level_graph(catalog: CWECatalog) -> None:
    members = set(catalog.view_members(VIEW_SIMPLIFIED))
    assert 100 <= len(members) <= 160
    assert {20, 74, 79, 89, 787} <= members
    for cwe in members:
        for parent in catalog.parents(cwe, VIEW_SIMPLIFIED):
            assert parent in members
            assert catalog.parents(parent, VIEW_SIMPLIFIED) == ()  # only two levels
    assert len(catalog.view_members(VIEW_RESEARCH)) > 900


def test_categories_and_deprecated_are_kept_but_not_listed_by_default(
    catalog: CWECatalog,
) -> None:
    configuration = catalog.get(16)
    assert configuration.is_category and configuration.name == "Configuration"
    current = catalog.all()
    assert all(not e.is_category and not e.is_deprecated for e in current)
    assert len(current) > 900
    everything = catalog.all(categories=True, deprecated=True)
    assert len(everything) == len(catalog) > len(current)
    assert any(e.is_deprecated for e in everything)


def test_search_matches_names_and_alternate_terms(catalog: CWECatalog) -> None:
    assert 79 in [e.id for e in catalog.search("xss")]
    assert 89 in [e.id for e in catalog.search("SQL Command")]
    assert catalog.search("no weakness is called this") == []
    assert catalog.search("") == [] and catalog.search("   ") == []
