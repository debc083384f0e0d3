"""CVSS v3.0/v3.1/v4.0: published scores, clear rejections, plain-English facts."""

from __future__ import annotations

import random

import pytest

from secreason.kb.cvss import (
    V31_BASE_VALUES,
    CVSSVectorError,
    base_score,
    describe_vector,
    parse,
    random_v31_vector,
    severity,
    validate,
)

V3_CRITICAL = "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


@pytest.mark.parametrize(
    ("vector", "score", "rating"),
    [
        (f"CVSS:3.1/{V3_CRITICAL}", 9.8, "Critical"),
        (f"CVSS:3.0/{V3_CRITICAL}", 9.8, "Critical"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0, "Critical"),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 8.8, "High"),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8, "High"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5, "High"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, "Medium"),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9, "Medium"),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5, "Medium"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0, "None"),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3, "Critical"),
        ("CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 8.5, "High"),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N", 0.0, "None"),
    ],
    ids=[
        "v31-rce",
        "v30-rce",
        "v31-scope-changed",
        "v31-low-priv",
        "v31-local",
        "v31-dos",
        "v31-xss",
        "v31-high-complexity",
        "v31-local-info",
        "v31-no-impact",
        "v40-rce",
        "v40-local",
        "v40-no-impact",
    ],
)
def test_published_base_scores(vector: str, score: float, rating: str) -> None:
    result = parse(vector)
    assert result.base_score == score == base_score(vector)
    assert result.severity == rating == severity(score)
    assert result.version == vector[5:8]
    assert validate(vector) is None


def test_v3_temporal_metrics_leave_the_base_score_alone() -> None:
    result = parse(f"CVSS:3.1/{V3_CRITICAL}/E:U/RL:O/RC:C")
    assert result.base_score == 9.8
    assert (result.score_type, result.score) == ("temporal", 8.5)  # 9.8 * 0.91 * 0.95
    assert [m.key for m in result.base_metrics] == ["AV", "AC", "PR", "UI", "S", "C", "I", "A"]


def test_v4_threat_metric_is_reported_as_cvss_bt() -> None:
    vector = "CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:U"
    result = parse(vector)
    assert result.base_score == 8.5 and result.severity == "High"
    assert result.score_type == "CVSS-BT" and result.score < result.base_score
    assert len(result.base_metrics) == 11


def test_v3_subscores_and_metric_names() -> None:
    result = parse(f"CVSS:3.1/{V3_CRITICAL}")
    assert (result.exploitability, result.impact) == (3.9, 5.9)
    first = result.metrics[0]
    assert (first.key, first.name, first.code, first.value) == (
        "AV",
        "Attack Vector",
        "N",
        "Network",
    )


@pytest.mark.parametrize(
    ("vector", "reason"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", 'Missing mandatory metrics "A"'),
        ("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 'Unknown value "X"'),
        (f"CVSS:3.1/{V3_CRITICAL}/AV:L", 'Duplicate metric "AV"'),
        (f"CVSS:3.1/{V3_CRITICAL}/", 'trailing "/"'),
        (f"cvss:3.1/{V3_CRITICAL}", "unsupported prefix 'cvss:3.1'"),
        (f"CVSS:3.2/{V3_CRITICAL}", "unsupported prefix 'CVSS:3.2'"),
        ("CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", "unsupported prefix"),
        (V3_CRITICAL, "no version prefix"),
        ("", "no version prefix"),
        ("Answer: critical", "no version prefix"),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N", 'metrics "SA"'),
        (f"CVSS:4.0/{V3_CRITICAL}", "not a valid CVSS v4.0 vector"),
    ],
    ids=[
        "missing-metric",
        "bad-value",
        "duplicate",
        "trailing-slash",
        "lowercase-prefix",
        "v32",
        "v2",
        "no-prefix",
        "empty",
        "prose",
        "v4-missing",
        "v3-metrics-as-v4",
    ],
)
def test_invalid_vectors_say_why(vector: str, reason: str) -> None:
    with pytest.raises(CVSSVectorError) as caught:
        parse(vector)
    assert isinstance(caught.value, ValueError)
    assert reason in str(caught.value)
    assert validate(vector) == str(caught.value)


def test_default_version_adds_the_prefix_only_when_missing() -> None:
    assert parse(V3_CRITICAL, default_version="3.0").vector == f"CVSS:3.0/{V3_CRITICAL}"
    assert parse(f"CVSS:3.1/{V3_CRITICAL}", default_version="3.0").version == "3.1"
    with pytest.raises(CVSSVectorError, match="default_version"):
        parse(V3_CRITICAL, default_version="2")


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse(f"  CVSS:3.1/{V3_CRITICAL}\n").vector == f"CVSS:3.1/{V3_CRITICAL}"


@pytest.mark.parametrize(
    ("score", "rating"),
    [(0.0, "None"), (0.1, "Low"), (3.9, "Low"), (4.0, "Medium"), (6.9, "Medium")]
    + [(7.0, "High"), (8.9, "High"), (9.0, "Critical"), (10.0, "Critical")],
)
def test_severity_bands(score: float, rating: str) -> None:
    assert severity(score) == rating


def test_v3_facts_explain_every_base_metric_then_the_score() -> None:
    facts = describe_vector(f"CVSS:3.1/{V3_CRITICAL}")
    assert len(facts) == 9
    assert facts[0].startswith("Attack Vector (AV:N) is Network: ")
    assert facts[4].startswith("Scope (S:U) is Unchanged: ")
    assert facts[-1].startswith("CVSS v3.1 base score 9.8 (Critical)")
    assert all(f.endswith(".") and ": ." not in f for f in facts)


def test_v4_facts_name_vulnerable_and_subsequent_systems() -> None:
    vector = "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:A/VC:H/VI:L/VA:N/SC:L/SI:N/SA:N/E:A"
    facts = describe_vector(vector)
    assert len(facts) == 11 + 2  # the base metrics, the base score, the CVSS-BT score
    joined = "\n".join(facts)
    assert "(AT:P) is Present" in joined and "(UI:A) is Active" in joined
    assert "loss of integrity on the vulnerable system" in joined
    assert "loss of confidentiality on subsequent systems" in joined
    assert "CVSS-BT score" in facts[-1]


def test_describe_rejects_invalid_vectors() -> None:
    with pytest.raises(CVSSVectorError):
        describe_vector("CVSS:3.1/AV:N")


def test_random_v31_vectors_parse_and_reach_every_value() -> None:
    rng = random.Random(0)
    seen: dict[str, set[str]] = {m: set() for m in V31_BASE_VALUES}
    for _ in range(300):
        result = parse(random_v31_vector(rng))
        assert result.version == "3.1"
        for metric in result.base_metrics:
            seen[metric.key].add(metric.code)
    assert seen == {m: set(values) for m, values in V31_BASE_VALUES.items()}
