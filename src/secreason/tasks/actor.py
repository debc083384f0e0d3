"""Threat actor attribution (CTIBench-TAA): name the group behind a report, alias-aware.

Groups go by many names (APT29, Cozy Bear, Midnight Blizzard, ...), so the answer is
judged on two graphs read from data files in CTIBench's format (a JSON object mapping
a name to a list of names): an alias graph and a related-groups graph. As in the
authors' scorer, both are lower-cased and made symmetric, and a breadth-first search
starts FROM THE GOLD label:

* reachable through alias edges only -> ``correct`` (value 1);
* reachable once related edges are allowed too -> ``plausible``: status
  ``incorrect``, ``details["label"] == "plausible"``, value ``plausible_credit``
  (0.5 by default: a sibling or parent group is closer than a random one);
* otherwise ``incorrect`` (value 0).

``aggregate`` reports ``correct`` and ``correct_plausible`` rates, CTIBench's two figures.

Protocols:

* ``official`` reproduces the authors' notebook literally: every entry counts, the
  string ``"nan"`` included (their maps list ``["nan"]`` for actors with no known
  alias, which links all those actors through a node called "nan"), and the gold name
  matches itself only when the search loops back to it (a name with no entry at all
  cannot be matched). The authors extracted the predicted actor by hand; the
  automatic rule is FAITH's (the harness Foundation-Sec-8B-Reasoning was evaluated
  with): the words after ``Threat Actor:``, lower-cased, kept only when every match
  names the same actor. So the prompt must ask for ``Threat Actor: <name>``. FAITH's
  words are ``\\w+``, which cuts ``APT-C-36`` to ``apt`` and costs GPT-4 four points
  of its published TAA figures; here a word may join ``\\w`` runs with ``-``, ``.`` or
  ``/`` (``APT-C-36``, ``Storm-1811``, ``TA505``), and quotes or bold markers between
  the colon and the name are skipped (``Threat Actor: "Sandworm Team"``).
* ``strict`` reads ``Answer: APT29`` on the last line, drops "nan" and empty entries,
  matches names up to case, hyphens and spacing (``APT-C-36`` = ``apt c 36``), falls
  back on the name without a leading "the" or a trailing "group" when only that form
  is known, and an exact name match is always correct. A line naming two different
  groups (``APT28 or APT29``; ``APT29 (Lazarus)``) is invalid; an alias in
  parentheses (``APT29 (Cozy Bear)``) is fine.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from secreason.tasks.base import (
    Extraction,
    Message,
    Protocol,
    Sample,
    Score,
    Task,
    invalid,
    register,
    strict_answer,
)

PROMPT_V1 = (
    "The threat report below describes an incident; the names of the responsible group, "
    "its campaigns and its malware were replaced by [PLACEHOLDER]. Attribute the incident "
    "to a known threat actor from the tactics, techniques, tools, targets and any other "
    "clues, explaining your reasoning. Finish with one last line of the form "
    "'Answer: <threat actor name>'.\n\nReport: {text}"
)

NameMap = Mapping[str, Sequence[str]]
MapSource = NameMap | str | Path | None

_WORD = r"\w+(?:[-./]\w+)*"
_MARKS = "[*_`\"'\u201c\u2018]*"
_FAITH = re.compile(rf"(?i)threat actor:{_MARKS}\s+{_MARKS}((?:{_WORD} )*{_WORD})")
_SEPARATORS = re.compile(r"\s*(?:[,;|/&]|\bor\b|\band\b)\s*", re.IGNORECASE)
_PARENS = re.compile(r"[(\[]([^)\]]*)[)\]]")
_PUNCT = re.compile(r"[\s\-_]+")


def load_name_map(source: MapSource, what: str) -> dict[str, list[str]]:
    """A name map from a mapping or a JSON file, checked: ``{"name": ["other", ...]}``."""
    if source is None:
        return {}
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{what} map {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{what} map {path}: not JSON ({exc})") from None
        where = str(path)
    else:
        data, where = source, f"the {what} map"
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected an object mapping a name to a list of names")
    out: dict[str, list[str]] = {}
    for key, names in data.items():
        if isinstance(names, str) or not isinstance(names, Iterable):
            raise ValueError(f"{where}: entry {key!r} must be a list of names, got {names!r}")
        out[str(key)] = [str(name) for name in names]
    return out


def official_key(name: str) -> str:
    return name.strip().lower()


def strict_key(name: str) -> str:
    return _PUNCT.sub(" ", name.lower()).strip(" .,:;'\"")


def _symmetric(
    name_map: NameMap, key: Callable[[str], str], keep: Callable[[str], bool]
) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for head, names in name_map.items():
        a = key(head)
        if not keep(a):
            continue
        graph.setdefault(a, set())
        for name in names:
            b = key(name)
            if keep(b):
                graph[a].add(b)
                graph.setdefault(b, set()).add(a)
    return graph


def _reached(start: str, graphs: Sequence[dict[str, set[str]]]) -> frozenset[str]:
    """Every name some visited node links to (the start only if a path loops back)."""
    seen = {start}
    reached: set[str] = set()
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for graph in graphs:
            for nxt in graph.get(node, ()):
                reached.add(nxt)
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
    return frozenset(reached)


class _ActorGraph:
    """The alias and related graphs under one protocol's normalisation, with cached BFS."""

    def __init__(self, aliases: NameMap, related: NameMap, protocol: Protocol) -> None:
        self.key = official_key if protocol == "official" else strict_key
        keep: Callable[[str], bool] = (
            bool if protocol == "official" else (lambda n: bool(n) and n != "nan")
        )
        self.alias = _symmetric(aliases, self.key, keep)
        self.related = _symmetric(related, self.key, keep)
        self._cache: dict[str, tuple[frozenset[str], frozenset[str]]] = {}

    def known(self, name: str) -> bool:
        return name in self.alias or name in self.related

    def reach(self, gold: str) -> tuple[frozenset[str], frozenset[str]]:
        """(names reached by alias edges, names reached by alias and related edges)."""
        if gold not in self._cache:
            self._cache[gold] = (
                _reached(gold, [self.alias]),
                _reached(gold, [self.alias, self.related]),
            )
        return self._cache[gold]

    def group_of(self, name: str) -> frozenset[str]:
        """The alias group of a name (itself alone when unknown)."""
        return self.reach(name)[0] | {name}


@dataclass(frozen=True)
class ActorExtraction(Extraction):
    """An extracted actor name, remembering which protocol's graph must score it."""

    protocol: Protocol = "strict"


@register
class ThreatActorAttribution(Task):
    """Threat actor attribution; see the module docstring."""

    name = "taa"
    prompt_version = "taa-v1"

    def __init__(
        self, aliases: MapSource = None, related: MapSource = None, plausible_credit: float = 0.5
    ) -> None:
        if not 0.0 <= plausible_credit <= 1.0:
            raise ValueError(f"plausible_credit must lie in [0, 1], got {plausible_credit}")
        alias_map = load_name_map(aliases, "alias")
        related_map = load_name_map(related, "related")
        self.plausible_credit = plausible_credit
        self.graphs = {
            protocol: _ActorGraph(alias_map, related_map, protocol)
            for protocol in ("strict", "official")
        }

    def prompt(self, sample: Sample) -> list[Message]:
        text = sample.meta.get("text") or sample.meta.get("description", "")
        return [{"role": "user", "content": PROMPT_V1.format(text=text)}]

    # ------------------------------------------------------------------ extraction
    def extract(self, answer_text: str, protocol: Protocol = "strict") -> Extraction:
        if protocol == "official":
            names = {m.strip().lower() for m in _FAITH.findall(answer_text)}
            if not names:
                return Extraction(None, "no 'Threat Actor: <name>' in the answer")
            if len(names) > 1:
                return Extraction(None, f"several different actors named ({len(names)})")
            return ActorExtraction(names.pop(), protocol="official")
        got = strict_answer(answer_text)
        if not got.ok:
            return got
        return self._strict_payload(str(got.value))

    def _strict_payload(self, payload: str) -> Extraction:
        graph = self.graphs["strict"]
        inside = [p for p in _PARENS.findall(payload) if self._resolve(p) is not None]
        outside = _PARENS.sub(" ", payload)
        names = [n for n in _SEPARATORS.split(outside) if strict_key(n)]
        if not names:
            return Extraction(None, f"no actor name in {payload[:40]!r}")
        groups = {graph.group_of(self._resolve(n) or strict_key(n)) for n in names + inside}
        if len(groups) > 1:
            return Extraction(None, f"several candidate actors in {payload[:60]!r}")
        return ActorExtraction(names[0].strip(" .,:;'\"`"), protocol="strict")

    def _resolve(self, name: str) -> str | None:
        """The strict graph's node for a name, trying light variants; None when unknown."""
        graph = self.graphs["strict"]
        key = strict_key(name)
        variants = [key]
        bare = re.sub(r"^the ", "", key)
        variants += [bare, re.sub(r" group$", "", bare)]
        return next((v for v in variants if v and graph.known(v)), None)

    # --------------------------------------------------------------------- scoring
    def score(self, extracted: Extraction, reference: str) -> Score:
        if not extracted.ok:
            return invalid(extracted.error)
        protocol: Protocol = getattr(extracted, "protocol", "strict")
        graph = self.graphs[protocol]
        if protocol == "official":
            pred, gold = official_key(str(extracted.value)), official_key(reference)
        else:
            pred = self._resolve(str(extracted.value)) or strict_key(str(extracted.value))
            gold = self._resolve(reference) or strict_key(reference)
        aliases, connected = graph.reach(gold)
        if pred in aliases or (protocol == "strict" and pred == gold):
            return Score(1.0, "correct", {"label": "correct"})
        if pred in connected:
            return Score(self.plausible_credit, "incorrect", {"label": "plausible"})
        return Score(0.0, "incorrect", {"label": "incorrect"})

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        out = super().aggregate(scores)
        if scores:
            n = len(scores)
            plausible = sum(s.details.get("label") == "plausible" for s in scores)
            out["correct"] = out["accuracy"]
            out["plausible"] = plausible / n
            out["correct_plausible"] = out["accuracy"] + plausible / n
        return out
