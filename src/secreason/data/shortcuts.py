"""The no-model baseline of the shortcut audit: answer from the prompt by string matching.

One matcher per task, each looking only for the answer *written in the prompt*, under
any of the names the knowledge bases give it:

* ``cwe``: a CWE id (any dash, ``cwe 79``), or a CWE's name (full, or the short form in
  its parentheses);
* ``ate``: technique ids (any case) and unambiguous technique names;
* ``taa``: an actor's names and aliases, its campaigns, and software only it uses;
* ``cvss``: ``AV:N``-style metrics (any case or spacing), metric and value names
  ("Attack Vector: Network"), the metric-definition phrases of ``kb.cvss``, or a base
  score (the rest of the vector is the split's per-metric majority);
* ``mcq``: a letter given away ("the answer is (B)"), an option copied into the
  question, else the option sharing the most words.

Names are matched on word n-grams (``data.phrases``: lower case, punctuation dropped,
also with the spaces squashed: "Gruesome-Larch"), so one pass over a prompt checks every
name at once. The text read is the item's own fields plus every turn the task's template
would not write (a system prompt, an earlier exchange). A matcher that finds nothing
returns ``None`` and the audit falls back to the chance answer.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from secreason.data.phrases import PhraseIndex, loose, overlap, quoted, words
from secreason.tasks.base import Sample

# any dash, space or colon between "CWE" and the number (CWE-79, cwe 79, CWE\u201179, CWE: 79)
_CWE_ID = re.compile(r"\bCWE[\W_]{0,3}(\d+)\b", re.IGNORECASE)
TECHNIQUE_ID = re.compile(r"\bT\d{4}(?:\.\d{3})?\b", re.IGNORECASE)
_METRIC = re.compile(r"\b(AV|AC|PR|UI|S|C|I|A)\s*:\s*([NALPHRUC])\b", re.IGNORECASE)
# the specification's metric and value names ("Attack Vector: Physical"), CVSS v3.x
_METRIC_NAMES = {
    "AV": (
        "attack vector",
        {"network": "N", "adjacent network": "A", "adjacent": "A", "local": "L", "physical": "P"},
    ),
    "AC": ("attack complexity", {"low": "L", "high": "H"}),
    "PR": ("privileges required", {"none": "N", "low": "L", "high": "H"}),
    "UI": ("user interaction", {"none": "N", "required": "R"}),
    "S": ("scope", {"unchanged": "U", "changed": "C"}),
    "C": ("confidentiality", {"none": "N", "low": "L", "high": "H"}),
    "I": ("integrity", {"none": "N", "low": "L", "high": "H"}),
    "A": ("availability", {"none": "N", "low": "L", "high": "H"}),
}
_SCORE = re.compile(
    r"\bscore[sd]?\b\D{0,20}?(\d{1,2}\.\d)\b"  # "base score of 9.8"
    r"|\b(\d{1,2}\.\d)\s*\(?(?:critical|high|medium|low)\b",  # "9.8 (Critical)"
    re.IGNORECASE,
)
# an option letter given away ("the answer is (B)", "Answer: B")
_LETTER = re.compile(r"\banswer\b\W{0,4}(?:is\W{0,3})?\(?((?-i:[A-Z]))\b\)?", re.IGNORECASE)
_SHORT_NAME = re.compile(r"\('([^']+)'\)")
_CVSS_KEYS = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")


@dataclass(frozen=True)
class Guess:
    answer: str
    reason: str  # the kind of shortcut ("CWE name", "actor alias", ...)
    why: str  # what was matched, for the report


def _cwe_number(cwe_id: str) -> int:
    return int(cwe_id.rsplit("-", 1)[-1])


def _extra_turns(sample: Sample) -> list[str]:
    """Prompt lines the task's own template would not write for this item's fields."""
    from secreason.tasks import get_task

    turns = sample.messages
    if turns and turns[-1]["role"] == "assistant":
        turns = turns[:-1]  # the gold trace of an SFT row
    try:
        rendered = get_task(sample.task).prompt(sample)
    except Exception:  # noqa: BLE001 - an odd item: read every line
        rendered = []
    known = {line.strip() for m in rendered for line in m["content"].splitlines()}
    return [
        line
        for m in turns
        for line in m["content"].splitlines()
        if line.strip() and line.strip() not in known
    ]


class Shortcuts:
    """The per-task matchers; knowledge-base vocabularies are built on first use."""

    TASKS = ("cwe", "ate", "taa", "cvss", "mcq")

    def __init__(self) -> None:
        self._cvss_majority: dict[str, str] = {}
        self._cvss_by_score: dict[float, str] = {}  # a gold vector per base score seen

    def covers(self, task: str) -> bool:
        return task in self.TASKS

    # -- vocabularies ---------------------------------------------------------------
    @functools.cached_property
    def cwe_names(self) -> PhraseIndex:
        from secreason.kb import load_cwe

        pairs = []
        for w in load_cwe().all():
            pairs.append((w.name, w.cwe_id))
            pairs += [(short, w.cwe_id) for short in _SHORT_NAME.findall(w.name)]
            pairs.append((_SHORT_NAME.sub("", w.name), w.cwe_id))
        # "path traversal" names CWE-22 and CWE-35: the lower id is the general class
        return PhraseIndex(pairs, min_chars=6, tie=lambda ids: min(ids, key=_cwe_number))

    @functools.cached_property
    def technique_names(self) -> PhraseIndex:
        from secreason.kb import load_attack

        return PhraseIndex(((t.name, t.id) for t in load_attack().techniques()), min_chars=5)

    @functools.cached_property
    def actor_index(self) -> PhraseIndex:
        from secreason.data.kb_items.actor_scrub import scrubbable_software
        from secreason.kb import load_attack
        from secreason.kb.actor_names import actor_names

        kb = load_attack()
        pairs = []
        for gid, names in actor_names().items():
            label = kb.group(gid).name
            pairs += [(n, label) for n in (*names.actor, *names.campaigns)]
            # short lower-case tool names ("at", "cmd") are ordinary words, as for the scrubber
            pairs += [(n, label) for n in names.software if scrubbable_software(n)]
        return PhraseIndex(pairs, min_chars=3)

    @functools.cached_property
    def cvss_phrases(self) -> list[tuple[str, str, str]]:
        from secreason.kb.cvss import metric_meanings

        out = []
        for (key, code), text in metric_meanings().items():
            out.append((key, code, loose(text)))
            # the leading clause alone ("the attacker needs local access")
            clause = re.split(r"[,;(]", text)[0]
            if clause != text and len(words(clause)) >= 4:
                out.append((key, code, loose(clause)))
        return out

    # -- constants and guesses ------------------------------------------------------
    def constants(self, task: str, items: Sequence[Sample]) -> list[str]:
        """Prompt-blind answers worth trying as the chance level (also fits majorities)."""
        if task == "mcq":
            letters = sorted({k for s in items for k in (s.meta.get("options") or {})})
            return letters or ["A"]
        if task == "cvss":
            from secreason.tasks.cvss import gold_vector

            counts: dict[str, Counter[str]] = {k: Counter() for k in _CVSS_KEYS}
            for s in items:
                for key, code in _METRIC.findall(s.reference.upper()):
                    counts[key][code] += 1
                try:
                    score = gold_vector(s.reference).base_score
                except ValueError:
                    continue
                if score is not None:
                    self._cvss_by_score.setdefault(score, s.reference)
            self._cvss_majority = {
                k: (c.most_common(1)[0][0] if c else "N") for k, c in counts.items()
            }
            return [self._vector(self._cvss_majority)]
        return []

    @staticmethod
    def _vector(metrics: dict[str, str]) -> str:
        return "CVSS:3.1/" + "/".join(f"{k}:{metrics[k]}" for k in _CVSS_KEYS)

    def guess(self, sample: Sample) -> Guess | None:
        """The answer the prompt gives away, or None when no matcher fires."""
        from secreason.data.pipeline import item_content

        # The item's own text: the task's fixed instruction (with its example ids and
        # vector template) is the same for every item and answers nothing. Turns the
        # template does not write (a system prompt, an earlier exchange) are content too.
        text = "\n".join([item_content(sample), *_extra_turns(sample)])
        return getattr(self, f"_{sample.task}")(sample, text)

    def _cwe(self, sample: Sample, text: str) -> Guess | None:
        ids = _CWE_ID.findall(text)
        if ids:
            # the first id is the item's classification ("CWE-79, a child of CWE-74")
            return Guess(f"CWE-{ids[0]}", "CWE id", f"'CWE-{ids[0]}' in the prompt")
        found = self.cwe_names.find(text)
        if not found:
            return None
        label, name = max(found, key=lambda x: len(x[1]))
        return Guess(label, "CWE name", f"names '{name}'")

    def _ate(self, sample: Sample, text: str) -> Guess | None:
        ids = {t.upper() for t in TECHNIQUE_ID.findall(text)}
        found = self.technique_names.find(text)
        ids |= {label for label, _ in found}
        if not ids:
            return None
        reason = "technique name" if found else "technique id"
        why = ", ".join(sorted({name for _, name in found})) or ", ".join(sorted(ids))
        return Guess(", ".join(sorted(ids)), reason, f"names '{why}'")

    def _taa(self, sample: Sample, text: str) -> Guess | None:
        found = self.actor_index.find(text)
        if not found:
            return None
        label, _ = Counter(label for label, _ in found).most_common(1)[0]
        names = sorted({name for lab, name in found if lab == label})
        # The leak is the actor's identity; the scorer compares names literally, so a
        # gold spelled by an alias ("Fancy Bear") is answered in that spelling.
        gold = self.actor_index.find(sample.reference)[:1]
        answer = sample.reference if gold and gold[0][0] == label else label
        return Guess(answer, "actor-linked name", f"names '{', '.join(names)}'")

    def _cvss(self, sample: Sample, text: str) -> Guess | None:
        lowered = " ".join(words(text))
        loosened = loose(text)
        metrics = dict(self._cvss_majority) or {k: "N" for k in _CVSS_KEYS}
        hits = []
        for key, code in _METRIC.findall(text):
            metrics[key.upper()] = code.upper()
            hits.append(f"{key.upper()}:{code.upper()}")
        for key, (name, values) in _METRIC_NAMES.items():
            alts = "|".join(sorted(values, key=len, reverse=True))
            found = re.search(rf"\b{name}(?: impact)?(?: {key.lower()})? ({alts})\b", lowered)
            if found:
                metrics[key] = values[found.group(1)]
                hits.append(f"'{found.group(0)}'")
        for key, code, phrase in self.cvss_phrases:
            if f" {phrase} " in f" {loosened} ":
                metrics[key] = code
                hits.append(f"'{phrase[:40]}'")
        if not hits:
            # a base score written out: any vector with that score scores as exact
            found = _SCORE.search(text)
            number = found and (found.group(1) or found.group(2))
            vector = self._cvss_by_score.get(float(number)) if number else None
            if found and vector:
                return Guess(vector, "CVSS base score", f"'{found.group(0)}'")
            return None
        return Guess(self._vector(metrics), "CVSS metric phrase", "; ".join(hits[:4]))

    def _mcq(self, sample: Sample, text: str) -> Guess | None:
        options = sample.meta.get("options") or {}
        rendered = {" ".join(words(f"{k} {v}")) for k, v in options.items()}
        question = str(sample.meta.get("question") or "") or "\n".join(
            line for line in text.splitlines() if " ".join(words(line)) not in rendered
        )
        letter = _LETTER.search(text)
        if letter and letter.group(1) in options:
            key = letter.group(1)
            return Guess(key, "option letter", f"'{letter.group(0)}' in the prompt")
        in_question = {k: " ".join(words(v)) for k, v in options.items() if quoted(v, question)}
        # an option quoted only as part of a longer quoted one ("Access" in "Initial Access")
        copied = [
            k
            for k, v in in_question.items()
            if not any(v != o and v in o for o in in_question.values())
        ]
        if len(copied) == 1:
            return Guess(copied[0], "option in question", f"option {copied[0]} is quoted")
        shares = {k: overlap(v, question) for k, v in options.items()}
        if not shares:
            return None
        best = max(shares.values())
        top = [k for k, v in shares.items() if v == best]
        if best <= 0 or len(top) != 1:
            return None
        return Guess(top[0], "option overlap", f"option {top[0]} shares {best:.0%} of its words")
