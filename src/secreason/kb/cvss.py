"""CVSS v3.0, v3.1 and v4.0 vectors: parse, validate, score and explain.

The scores come from the ``cvss`` package (RedHat's reference implementation); this
module never computes a score itself. It adds what the package lacks for our uses: one
typed result for both versions, errors that say how to fix the vector, and plain-English
facts about each base metric, which the CLI prints and the data helpers turn into
teacher reasoning.

``base_score`` is always the score of the base metrics alone. A vector that also carries
temporal/threat or environmental metrics gets its overall score in ``score`` (for v4 the
specification names it CVSS-BT, CVSS-BE or CVSS-BTE; for v3 it is the environmental, or
else temporal, score).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from cvss import CVSS3, CVSS4, CVSSError, constants3, constants4

VERSIONS = ("3.0", "3.1", "4.0")


class CVSSVectorError(ValueError):
    """A vector that cannot be scored; the message says what is wrong with it."""


@dataclass(frozen=True)
class Metric:
    key: str  # AV
    name: str  # Attack Vector
    code: str  # N
    value: str  # Network


@dataclass(frozen=True)
class CVSSResult:
    vector: str  # as given, surrounding whitespace removed
    version: str  # "3.0", "3.1" or "4.0"
    base_score: float
    severity: str  # None, Low, Medium, High, Critical (of the base score)
    score: float  # with every metric the vector carries
    score_type: str  # "base", "temporal", "environmental", or v4's CVSS-B/BT/BE/BTE
    metrics: tuple[Metric, ...]  # base metrics first, then the optional ones given
    exploitability: float | None = None  # v3 sub-scores, rounded to one decimal
    impact: float | None = None

    @property
    def base_metrics(self) -> tuple[Metric, ...]:
        mandatory = constants4.METRICS_MANDATORY if self.version == "4.0" else _V3_BASE
        return tuple(m for m in self.metrics if m.key in mandatory)


_V3_BASE = tuple(constants3.METRICS_MANDATORY)


def _version_of(vector: str) -> str:
    prefix, _, _ = vector.partition("/")
    if not prefix.upper().startswith("CVSS:"):
        raise CVSSVectorError(
            f"{vector!r} has no version prefix; start it with CVSS:3.1/ (or CVSS:3.0/, CVSS:4.0/)"
        )
    version = prefix[5:]
    if prefix[:5] != "CVSS:" or version not in VERSIONS:
        raise CVSSVectorError(
            f"{vector!r}: unsupported prefix {prefix!r}; expected one of "
            + ", ".join(f"CVSS:{v}/" for v in VERSIONS)
        )
    return version


@functools.lru_cache(maxsize=65536)
def parse(vector: str, default_version: str | None = None) -> CVSSResult:
    """Score a vector; ``default_version`` ("3.0", ...) is prefixed when it has none.

    Cached: benchmarks and rewards score the same few thousand vectors many times.
    """
    text = vector.strip()
    if default_version is not None and not text.upper().startswith("CVSS:"):
        if default_version not in VERSIONS:
            raise CVSSVectorError(f"default_version must be one of {VERSIONS}")
        text = f"CVSS:{default_version}/{text}"
    version = _version_of(text)
    try:
        return _parse_v4(text) if version == "4.0" else _parse_v3(text, version)
    except CVSSError as error:
        raise CVSSVectorError(f"{text!r} is not a valid CVSS v{version} vector: {error}") from None


def _metrics(
    given: dict[str, str], names: dict[str, str], values: dict[str, dict[str, str]]
) -> tuple[Metric, ...]:
    return tuple(
        Metric(key, names.get(key, key), code, values.get(key, {}).get(code, code))
        for key, code in given.items()
    )


def _parse_v3(text: str, version: str) -> CVSSResult:
    parsed = CVSS3(text)
    base, temporal, environmental = (float(s) for s in parsed.scores())
    given = parsed.original_metrics
    has_env = any(k in constants3.ENVIRONMENTAL_METRICS for k in given)
    has_temporal = any(k in constants3.TEMPORAL_METRICS for k in given)
    score, score_type = (
        (environmental, "environmental")
        if has_env
        else (temporal, "temporal")
        if has_temporal
        else (base, "base")
    )
    return CVSSResult(
        vector=text,
        version=version,
        base_score=base,
        severity=str(parsed.severities()[0]),
        score=score,
        score_type=score_type,
        metrics=_metrics(given, constants3.METRICS_ABBREVIATIONS, constants3.METRICS_VALUE_NAMES),
        exploitability=round(float(parsed.esc), 1),
        impact=round(float(parsed.isc), 1) if float(parsed.isc) > 0 else 0.0,
    )


def _parse_v4(text: str) -> CVSSResult:
    parsed = CVSS4(text)
    given = parsed.original_metrics
    base_only = "CVSS:4.0/" + "/".join(
        f"{k}:{given[k]}" for k in constants4.METRICS_MANDATORY if k in given
    )
    base = CVSS4(base_only) if base_only != text else parsed
    threat = given.get("E", "X") != "X"
    env = any(k in _V4_ENVIRONMENTAL and v != "X" for k, v in given.items())
    score_type = "CVSS-B" + ("T" if threat else "") + ("E" if env else "")
    return CVSSResult(
        vector=text,
        version="4.0",
        base_score=float(base.base_score),
        severity=str(base.severity),
        score=float(parsed.base_score),
        score_type=score_type,
        metrics=_metrics(given, constants4.METRICS_ABBREVIATIONS, constants4.METRICS_VALUE_NAMES),
    )


# Environmental metrics of v4 (CR/IR/AR and the Modified base metrics); the
# supplemental ones (S, AU, R, V, RE, U) change no score.
_V4_ENVIRONMENTAL = {"CR", "IR", "AR"} | {"M" + k for k in constants4.METRICS_MANDATORY}


def validate(vector: str, default_version: str | None = None) -> str | None:
    """None for a valid vector, else the reason it is invalid."""
    try:
        parse(vector, default_version)
    except CVSSVectorError as error:
        return str(error)
    return None


def base_score(vector: str, default_version: str | None = None) -> float:
    return parse(vector, default_version).base_score


def severity(score: float) -> str:
    """The qualitative rating of a score (same bands in v3.x and v4.0)."""
    if score == 0:
        return "None"
    if score < 4.0:
        return "Low"
    if score < 7.0:
        return "Medium"
    if score < 9.0:
        return "High"
    return "Critical"


# Every value of each v3.1 base metric, in the order random vectors draw them.
V31_BASE_VALUES = {
    "AV": "NALP",
    "AC": "LH",
    "PR": "NLH",
    "UI": "NR",
    "S": "UC",
    "C": "NLH",
    "I": "NLH",
    "A": "NLH",
}


def random_v31_vector(rng: random.Random) -> str:
    """A v3.1 base vector with each metric's value drawn uniformly from ``rng``."""
    parts = [f"{m}:{rng.choice(values)}" for m, values in V31_BASE_VALUES.items()]
    return "CVSS:3.1/" + "/".join(parts)


# -- plain-English facts ------------------------------------------------------------------

_COMMON = {
    "AV": {
        "N": "the flaw can be exploited remotely, across routed networks",
        "A": "the attacker must sit on an adjacent network (same subnet, Bluetooth, local link)",
        "L": "the attacker needs local access, or a user who opens a malicious file",
        "P": "the attacker must physically touch or manipulate the device",
    },
    "PR": {
        "N": "no account or authentication is needed",
        "L": "ordinary user privileges are needed",
        "H": "administrative or otherwise significant privileges are needed",
    },
}
_IMPACT = {
    "H": "a total or serious loss of {what}",
    "L": "a partial, limited loss of {what}",
    "N": "no loss of {what}",
}
_WHAT = {"C": "confidentiality", "I": "integrity", "A": "availability"}
_V3 = {
    **_COMMON,
    "AC": {
        "L": "no special conditions are needed and the attack works reliably",
        "H": "success depends on conditions outside the attacker's control"
        " (a race, a specific configuration, a position on the network path)",
    },
    "UI": {
        "N": "no user has to do anything",
        "R": "a user must take some action, such as opening a file or clicking a link",
    },
    "S": {
        "U": "the impact stays within the security authority of the vulnerable component",
        "C": "the impact reaches components beyond the vulnerable one's security authority",
    },
}
_V4 = {
    **_COMMON,
    "AC": {
        "L": "no protection has to be defeated",
        "H": "the attacker must defeat a protection such as ASLR or obtain target secrets",
    },
    "AT": {
        "N": "no particular deployment or execution condition is required",
        "P": "the attack depends on a specific condition of the target, such as a race",
    },
    "UI": {
        "N": "no user has to do anything",
        "P": "a user must do something limited or involuntary (passive interaction)",
        "A": "a user must deliberately perform an action (active interaction)",
    },
}


def _explain(result: CVSSResult, metric: Metric) -> str:
    key, code = metric.key, metric.code
    table = _V4 if result.version == "4.0" else _V3
    if key in table:
        return table[key].get(code, "")
    letter = key[-1] if result.version == "4.0" and key[:1] in "VS" and len(key) == 2 else key
    if letter in _WHAT and code in _IMPACT:
        what = _WHAT[letter]
        if result.version == "4.0":
            place = "the vulnerable system" if key[0] == "V" else "subsequent systems"
            what = f"{what} on {place}"
        return _IMPACT[code].format(what=what)
    return ""


def metric_meanings() -> dict[tuple[str, str], str]:
    """(metric key, value code) -> the plain-English meaning ``describe`` writes (v3.x)."""
    out = {(key, code): text for key, values in _V3.items() for code, text in values.items()}
    for letter, what in _WHAT.items():
        for code, text in _IMPACT.items():
            out[(letter, code)] = text.format(what=what)
    return out


def describe(result: CVSSResult) -> list[str]:
    """One sentence per base metric, then the score; suitable for reasoning text."""
    facts = []
    for metric in result.base_metrics:
        meaning = _explain(result, metric)
        sentence = f"{metric.name} ({metric.key}:{metric.code}) is {metric.value}"
        facts.append(f"{sentence}: {meaning}." if meaning else f"{sentence}.")
    scored = f"CVSS v{result.version} base score {result.base_score:.1f} ({result.severity})"
    if result.exploitability is not None:
        scored += (
            f", from an exploitability sub-score of {result.exploitability:.1f}"
            f" and an impact sub-score of {result.impact:.1f}"
        )
    facts.append(scored + ".")
    if result.score_type not in ("base", "CVSS-B"):
        overall = f"{result.score_type} score is {result.score:.1f}"
        facts.append(f"With the other metrics given, the {overall}.")
    return facts


def describe_vector(vector: str, default_version: str | None = None) -> list[str]:
    """Plain-English facts about a vector; raises CVSSVectorError when it is invalid."""
    return describe(parse(vector, default_version))
