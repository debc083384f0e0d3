"""Hostile review of decontamination: a benchmark item disguised every cheap way.

Each row takes one benchmark item of a small fixture set (written here, never copied
from a real benchmark), disguises it the way a scraped or rewritten training text
would (case, punctuation, spacing, look-alike and invisible characters, HTML, markdown,
options shuffled or relabelled, the item buried in a long prompt, CVE ids in other
spellings) and expects the index to catch it. The false-positive rows are texts that
share only short common phrases, options without their question, or a question
without its options, and must stay.

Out of scope, and why (documented, not tested as caught): a paraphrase that changes
most words (n-gram overlap is the method; a semantic matcher would need a model), a
translation into another language, and a benchmark's one-letter or one-id answer key
appearing in a training target (an ``Answer: B`` or ``CWE-79`` is not attributable to
one benchmark item; the CVE it concerns is, and that is checked).
"""

from __future__ import annotations

import html
import random

import pytest

from secreason.data.decontaminate import (
    BenchmarkText,
    ContaminationIndex,
    DecontamConfig,
    decontaminate,
)

RCM = (
    "CVE-2031-4242: The session manager in Widgetron Portal before 5.2 stores the "
    "recovery token in a world readable cache file, which allows local users to hijack "
    "administrator sessions by reading the cache."
)
SHORT_Q = "Which port does Widgetron telemetry use?"
SHORT_OPTS = {"A": "8443", "B": "9301", "C": "7070", "D": "1812"}
WORD_Q = "How does the Frobnix loader persist?"
WORD_OPTS = {
    "A": "a scheduled task",
    "B": "a registry run key",
    "C": "a WMI event subscription",
    "D": "a startup folder shortcut",
}
SAQ_Q = "Explain the Quillfeather downgrade."
SAQ_ANSWER = (
    "The Quillfeather downgrade forces both peers to renegotiate with an export cipher "
    "because the handshake transcript is not authenticated until the finished message, "
    "so a man in the middle can strip the stronger suites from the client hello."
)
RCM_BODY = RCM.split(": ", 1)[1]
MID_Q = (
    "Which registry value does the Quillfeather dropper rewrite to survive a reboot "
    "on domain controllers?"
)
FILLER_WORDS = [
    "parser",
    "kernel",
    "router",
    "module",
    "session",
    "token",
    "header",
    "packet",
    "buffer",
    "firmware",
    "driver",
    "channel",
    "beacon",
    "loader",
    "archive",
    "backup",
    "gateway",
    "tunnel",
    "sensor",
    "policy",
]


def _mcq(question: str, options: dict[str, str], labels: str = "ABCD", order=None) -> str:
    keys = order or list(options)
    lines = [f"{lab}) {options[k]}" for lab, k in zip(labels, keys, strict=False)]
    return question + "\n" + "\n".join(lines)


def _filler(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(FILLER_WORDS) for _ in range(n)) + "."


@pytest.fixture(scope="module")
def index() -> ContaminationIndex:
    rng = random.Random(7)
    texts = [
        BenchmarkText("fx/rcm", 0, "Map the CVE to a CWE.\n" + RCM, "CWE-538"),
        BenchmarkText("fx/mcq", 0, _mcq(SHORT_Q, SHORT_OPTS), "B"),
        BenchmarkText("fx/mcq", 1, _mcq(WORD_Q, WORD_OPTS), "C"),
        BenchmarkText("fx/saq", 0, SAQ_Q, SAQ_ANSWER),
        BenchmarkText("fx/saq", 1, MID_Q, "Run"),
    ]
    # Unrelated items so that the fixture looks like a benchmark, not four rows.
    for i in range(40):
        opts = {k: _filler(rng, 3) for k in "ABCD"}
        texts.append(BenchmarkText("fx/mcq", 2 + i, _mcq(_filler(rng, 14), opts), "A"))
    return ContaminationIndex(texts, DecontamConfig())


FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in map(chr, range(0x21, 0x7F))}
CYRILLIC = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у"})
GREEK = str.maketrans({"o": "ο", "i": "ι", "v": "ν", "A": "Α", "T": "Τ", "H": "Η"})


def _every_word(text: str, f) -> str:
    return " ".join(f(w) for w in text.split(" "))


EVASIONS: list[tuple[str, str, str]] = [
    ("verbatim", RCM_BODY, ""),
    ("cve-id-alone", "Which weakness is behind CVE-2031-4242?", ""),
    ("upper-case", RCM_BODY.upper(), ""),
    ("punctuation", RCM_BODY.replace(",", ";").replace(".", "!").replace(" ", " - ", 3), ""),
    ("whitespace", RCM_BODY.replace(" ", "\t\n  "), ""),
    ("no-break-spaces", RCM_BODY.replace(" ", "\u00a0"), ""),
    ("ideographic-spaces", RCM_BODY.replace(" ", "\u3000"), ""),
    ("fullwidth", "".join(FULLWIDTH.get(c, c) for c in RCM_BODY), ""),
    ("zero-width-in-words", _every_word(RCM_BODY, lambda w: "\u200b".join(w)), ""),
    ("zero-width-joiners-as-spaces", RCM_BODY.replace(" ", " \u200d"), ""),
    ("soft-hyphens", _every_word(RCM_BODY, lambda w: w[:2] + "\u00ad" + w[2:]), ""),
    ("word-joiner-bom", _every_word(RCM_BODY, lambda w: "\ufeff" + w + "\u2060"), ""),
    ("tag-characters", _every_word(RCM_BODY, lambda w: w + "\U000e0041"), ""),
    ("cyrillic-lookalikes", RCM_BODY.translate(CYRILLIC), ""),
    ("greek-lookalikes", RCM_BODY.translate(GREEK), ""),
    ("combining-accents", _every_word(RCM_BODY, lambda w: w[0] + "\u0301" + w[1:]), ""),
    ("html-entities", html.escape(RCM_BODY).replace(" ", "&nbsp;"), ""),
    ("html-numeric-entities", "".join(f"&#{ord(c)};" if c in "aeiou" else c for c in RCM_BODY), ""),
    ("html-tags", _every_word(RCM_BODY, lambda w: f"<b>{w}</b>"), ""),
    ("markdown", "> **" + RCM_BODY.replace(" ", "** _", 5) + "**\n- `cache`", ""),
    ("curly-quotes-dashes", RCM_BODY.replace(" ", "\u2014").replace(",", "\u201d"), ""),
    (
        "embedded-long-prompt",
        _filler(random.Random(1), 400) + RCM_BODY + _filler(random.Random(2), 400),
        "",
    ),  # noqa: E501
    ("sentences-reordered", " ".join(reversed(RCM_BODY.split(", "))), ""),
    ("short-mcq-verbatim", _mcq(SHORT_Q, SHORT_OPTS), ""),
    ("short-mcq-reordered", _mcq(SHORT_Q, SHORT_OPTS, order=["C", "A", "D", "B"]), ""),
    ("short-mcq-relabelled", _mcq(SHORT_Q, SHORT_OPTS, labels="1234"), ""),
    ("short-mcq-both", _mcq(SHORT_Q, SHORT_OPTS, labels="1234", order=["D", "B", "A", "C"]), ""),  # noqa: E501
    ("short-mcq-inline", SHORT_Q + " Options: (a) 1812, (b) 8443, (c) 9301, (d) 7070.", ""),
    ("word-mcq-reordered", _mcq(WORD_Q, WORD_OPTS, order=["B", "D", "C", "A"]), ""),
    ("word-mcq-relabelled", _mcq(WORD_Q, WORD_OPTS, labels="wxyz"), ""),
    ("word-mcq-in-prompt", "Quiz time!\n" + _mcq(WORD_Q, WORD_OPTS, "1234") + "\nThink.", ""),
    ("answer-key-in-target", "Explain a TLS weakness.", SAQ_ANSWER),
    ("answer-key-upper-in-target", "Explain it.", "Answer: " + SAQ_ANSWER.upper()),
    ("cve-spaced", "What weakness is behind cve 2031 4242?", ""),
    ("cve-underscores", "Tell me about CVE_2031_4242.", ""),
    ("cve-no-break-hyphen", "Tell me about CVE\u20112031\u20114242.", ""),
    ("cve-en-dash", "Tell me about CVE\u20132031\u20134242.", ""),
    ("cve-fullwidth", "Tell me about ＣＶＥ－２０３１－４２４２.", ""),
    ("cve-glued", "Tell me about CVE2031-4242.", ""),
    ("cve-zero-width", "Tell me about CVE-2031\u200b-4242.", ""),
    ("cve-lowercase-colon", "see cve:2031:4242", ""),
]


@pytest.mark.parametrize(
    ("prompt", "answer"), [r[1:] for r in EVASIONS], ids=[r[0] for r in EVASIONS]
)  # noqa: E501
def test_disguised_benchmark_item_is_caught(
    index: ContaminationIndex, prompt: str, answer: str
) -> None:  # noqa: E501
    keep, report = decontaminate(["x"], [prompt], [answer], index)
    assert keep == [False], "got through"
    assert report.n_removed == 1


CLEAN: list[tuple[str, str]] = [
    ("common-instruction", "Which of the following is true? Answer with the letter only."),
    ("options-without-question", "Ports seen: 8443, 9301, 7070 and 1812 were open."),
    ("question-without-options", SHORT_Q + " Think about the vendor documentation."),
    ("word-options-alone", "Persistence can be a scheduled task or a registry run key."),
    ("other-cve", "Tell me about CVE-2031-42420 and CVE-2030-4242."),
    ("cve-like-number", "In 2031 4242 packets were dropped by the cve parser."),
    ("same-vocabulary", _filler(random.Random(3), 300)),
    ("one-shared-8gram", "Our session manager in Widgetron Portal before 5.2 was rewritten."),
    ("empty", ""),
    ("only-punctuation", "?!... --- ***"),
    ("only-invisible", "\u200b\u200d\ufeff" * 50),
]


@pytest.mark.parametrize("prompt", [c[1] for c in CLEAN], ids=[c[0] for c in CLEAN])
def test_short_common_overlap_is_not_contamination(index: ContaminationIndex, prompt: str) -> None:
    keep, _ = decontaminate(["x"], [prompt], [""], index)
    assert keep == [True]


def _turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in pairs]


HALF = len(RCM_BODY) // 2
TURNS = [
    ("system-and-user", _turns(("system", RCM_BODY[:HALF]), ("user", RCM_BODY[HALF:]))),
    ("earlier-assistant-turn", _turns(("user", "Hi"), ("assistant", RCM_BODY), ("user", "Go"))),
    ("tool-turn", _turns(("user", "Look it up."), ("tool", RCM_BODY), ("user", "Summarise."))),
    (
        "mcq-question-and-options-apart",
        _turns(("system", SHORT_Q), ("user", "1) 9301\n2) 1812\n3) 8443\n4) 7070")),
    ),  # noqa: E501
]


@pytest.mark.parametrize("messages", [t[1] for t in TURNS], ids=[t[0] for t in TURNS])
def test_item_spread_over_turns_is_caught(index: ContaminationIndex, messages) -> None:
    """The pipeline checks every turn of an item (an assistant turn is trained on too)."""
    from secreason.data.decontaminate import sample_texts
    from secreason.tasks.base import Sample

    prompt, answer = sample_texts(Sample("s", "mcq", messages, "B"), ["<think>x</think>"])
    assert decontaminate(["s"], [prompt], [answer], index)[0] == [False]


def test_trace_is_checked_as_a_training_target(index: ContaminationIndex) -> None:
    from secreason.data.decontaminate import sample_texts
    from secreason.tasks.base import Sample

    sample = Sample("s", "mcq", _turns(("user", "Explain a TLS weakness.")), "A")
    prompt, answer = sample_texts(sample, [f"<think>\n{SAQ_ANSWER}\n</think>\nAnswer: A"])
    keep, report = decontaminate(["s"], [prompt], [answer], index)
    assert keep == [False] and report.per_benchmark["fx/saq"]["reasons"] == {"ngram:answer": 1}


MID_HALF = " ".join(MID_Q.split()[:7])
SPLIT = [
    (
        "short-mcq-question-in-prompt-options-in-target",
        SHORT_Q,
        "1) 7070\n2) 9301\n3) 8443\n4) 1812",
    ),
    ("item-halves-prompt-and-target", MID_HALF, MID_Q[len(MID_HALF) :]),
]


@pytest.mark.parametrize(("prompt", "answer"), [r[1:] for r in SPLIT], ids=[r[0] for r in SPLIT])
def test_item_split_between_prompt_and_target_is_caught(
    index: ContaminationIndex, prompt: str, answer: str
) -> None:
    keep, _ = decontaminate(["x"], [prompt], [answer], index)
    assert keep == [False]


def test_report_counts_short_items_checked_by_lines(index: ContaminationIndex) -> None:
    keep, report = decontaminate(
        ["x"], [_mcq(SHORT_Q, SHORT_OPTS, order=["B", "A", "C", "D"])], [""], index
    )  # noqa: E501
    assert keep == [False] and report.per_benchmark["fx/mcq"]["reasons"] == {"segments": 1}
    assert report.as_dict()["short_items_matched_by_lines"] == {"fx/mcq": 2}
