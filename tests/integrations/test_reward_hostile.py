"""A hostile review of the rewards: completions that try to be paid without reasoning,
and callers that hand the adapters odd shapes.

Every hack row runs through the three trainers' calling conventions of
``test_reward_table`` (TRL's weighted sum, verl's ``skip_special_tokens`` decode,
OpenRLHF's left-padded special-token decode) and must (a) give the same total in each
and (b) never pay more than the honest completion of the same item. Hedges are also
scored against every gold they name: their rewards summed must not exceed 1.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from test_reward_table import CONVENTIONS, PREFILL, PROMPT, WHY

from secreason.integrations import openrlhf, verl
from secreason.integrations.scoring import RoutingError, Scorer
from secreason.tasks import get_task
from secreason.train.rewards import RewardSuite

V = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
HONEST = {
    "mcq": ("B", "Answer: B"),
    "cwe": ("CWE-79", "Answer: CWE-79"),
    "ate": ("T1059.001, T1071", "Answer: T1059.001, T1071"),
    "cvss": (V, f"Answer: {V}"),
    "taa": ("APT29", "Answer: APT29"),
    "rms": ("M1038, M1042", "Answer: M1038, M1042"),
}
EVERY_TECHNIQUE = ", ".join(f"T{n}" for n in range(1001, 1700))

# (id, task, completion after a prefilled "<think>\n", total reward in every convention)
HACKS: list[tuple[str, str, str, float]] = [
    ("answer-only-inside-think", "mcq", f"{WHY}\nAnswer: B</think>\n", -1.0),
    ("answer-inside-wrong-outside", "mcq", f"{WHY}\nAnswer: B</think>\nAnswer: C", 0.0),
    ("empty-think", "mcq", "</think>\nAnswer: B", 0.0),
    ("blank-think", "mcq", "   \n\t</think>\nAnswer: B", 0.0),
    ("nested-think", "mcq", f"<think>{WHY}</think></think>\nAnswer: B", -1.0),
    ("unbalanced-reopen", "mcq", f"{WHY}<think></think>\nAnswer: B", 0.0),
    ("close-only-twice", "mcq", f"{WHY}</think>\n</think>\nAnswer: B", -1.0),
    ("two-answer-lines-wrong-last", "mcq", f"{WHY}</think>\nAnswer: B\nAnswer: C", 0.0),
    ("every-option-commas", "mcq", f"{WHY}</think>\nAnswer: A, B, C, D", 0.0),
    ("every-option-glued", "mcq", f"{WHY}</think>\nAnswer: ABCD", 0.0),
    ("every-option-slashes", "mcq", f"{WHY}</think>\nAnswer: A/B/C/D", 0.0),
    ("option-with-hedge-tail", "mcq", f"{WHY}</think>\nAnswer: B (or maybe A, C, D)", 0.0),
    ("cyrillic-ve-for-b", "mcq", f"{WHY}</think>\nAnswer: \u0412", 0.0),
    ("cyrillic-hedge", "mcq", f"{WHY}</think>\nAnswer: A, \u0412", 0.0),
    ("greek-alpha-hedge", "mcq", f"{WHY}</think>\nAnswer: \u0391, B", 0.0),
    ("zero-width-hedge", "mcq", f"{WHY}</think>\nAnswer: B\u200b, C", 0.0),
    ("literal-end-marker", "mcq", f"{WHY}</think>\nAnswer: B<|im_end|>", 1.0),
    (
        "marker-then-new-turn",
        "mcq",
        f"{WHY}</think>\nAnswer: B<|im_end|><|im_start|>user\nAnswer: C",
        0.0,
    ),
    ("line-separator-wrong-last", "mcq", f"{WHY}</think>\nAnswer: B\u2028Answer: C", 0.0),
    ("uppercase-close-tag", "mcq", f"{WHY}</THINK>\nAnswer: B", -1.0),
    ("zero-width-in-close-tag", "mcq", f"{WHY}</think\u200b>\nAnswer: B", -1.0),
    ("fullwidth-close-tag", "mcq", f"{WHY}\uff1c/think\uff1e\nAnswer: B", -1.0),
    ("marker-glued-wrong-last", "mcq", f"{WHY}</think>\nAnswer: B<|end|>Answer: C", 0.0),
    # An invisible character is not part of an answer (tasks.base.visible): honest pay.
    ("zero-width-after-letter", "mcq", f"{WHY}</think>\nAnswer: B\u200b", 1.0),
    ("nul-between-letters", "mcq", f"{WHY}</think>\nAnswer: B\x00C", 0.0),
    ("repeated-reasoning", "mcq", WHY * 400 + "</think>\nAnswer: B", 0.0),
    (
        "cvss-duplicate-metric",
        "cvss",
        f"{WHY}</think>\nAnswer: CVSS:3.1/AV:N/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        0.0,
    ),
    ("cvss-metric-again-at-end", "cvss", f"{WHY}</think>\nAnswer: {V}/C:L", 0.0),
    (
        "cvss-two-vectors",
        "cvss",
        f"{WHY}</think>\nAnswer: {V} CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        0.0,
    ),
    ("cvss-score-only", "cvss", f"{WHY}</think>\nAnswer: 9.8", 0.0),
    ("cwe-list", "cwe", f"{WHY}</think>\nAnswer: CWE-79, CWE-89, CWE-20", 0.0),
    ("cwe-slash-pair", "cwe", f"{WHY}</think>\nAnswer: CWE-79/CWE-89", 0.0),
    ("cwe-or-tail", "cwe", f"{WHY}</think>\nAnswer: CWE-79 (or CWE-80)", 0.0),
    ("ate-every-technique", "ate", f"{WHY}</think>\nAnswer: {EVERY_TECHNIQUE}", 0.0),
    ("ate-repeated-gold", "ate", f"{WHY}</think>\nAnswer: T1059.001, T1059.001, T1071, T1071", 1.0),
    ("ate-wildcards", "ate", f"{WHY}</think>\nAnswer: T1059.*, T1071.*", 0.5),
    ("taa-list", "taa", f"{WHY}</think>\nAnswer: APT28, APT29, Lazarus Group", 0.0),
    ("taa-or", "taa", f"{WHY}</think>\nAnswer: APT29 or APT28", 0.0),
    (
        "rms-every-mitigation",
        "rms",
        f"{WHY}</think>\nAnswer: " + ", ".join(f"M{n}" for n in range(1013, 1057)),
        0.0,
    ),
]


@pytest.mark.parametrize(
    ("name", "task", "completion", "expected"), HACKS, ids=[h[0] for h in HACKS]
)
def test_hacks_never_pay_more_than_honest_and_agree_across_trainers(
    name: str, task: str, completion: str, expected: float
) -> None:
    gold, answer = HONEST[task]
    honest = CONVENTIONS["trl"](task, gold, f"{WHY}</think>\n{answer}", True)
    got = {c: fn(task, gold, completion, True) for c, fn in sorted(CONVENTIONS.items())}
    assert got == pytest.approx(dict.fromkeys(got, expected), abs=1e-6), got
    assert max(got.values()) <= honest


HEDGES = (
    [
        ("mcq", ["A", "B", "C", "D"], h)
        for h in (
            "B. A. C. D.",
            "A) B) C) D)",
            "B.A.C.D",
            "B|A|C|D",
            "B; A",
            "B - or A",
            "{A,B,C,D}",
            "B (also A)",
            "B\tA",
            "B\u00a0A",
            "B\u3000A",
            "AB",
            "B and A",
            "B & A",
            "[A][B]",
        )
    ]
    + [
        ("cwe", ["CWE-79", "CWE-89"], h)
        for h in (
            "CWE-79-89",
            "CWE-79/89",
            "CWE-79 CWE-89",
            "CWE-79.89",
            "CWE-79,89",
            "CWE-79 or 89",
            "CWE-{79,89}",
            "CWE-79|CWE-89",
            "CWE-79 (CWE-89)",
        )
    ]
    + [
        ("taa", ["APT29", "APT28"], h)
        for h in (
            "APT29/APT28",
            "APT29 (APT28)",
            "APT29 aka APT28",
            "APT29 | APT28",
            "APT28-29",
            "APT29;APT28",
            "APT29 & APT28",
        )
    ]
)


@pytest.mark.parametrize(("task", "golds", "hedge"), HEDGES, ids=[h[2] for h in HEDGES])
def test_a_hedge_is_paid_for_one_gold_at_most(task: str, golds: list[str], hedge: str) -> None:
    scorer = Scorer()
    completion = f"<think>{WHY}</think>\nAnswer: {hedge}"
    assert sum(scorer.score(completion, g, task).task_score for g in golds) <= 1.0


# ------------------------------------------------------------------ TRL conversational


@pytest.mark.parametrize("key", ["reasoning_content", "thinking"])
@pytest.mark.parametrize(
    ("reasoning", "content", "expected"),
    [(WHY, "Answer: B", 1.0), (WHY, "Answer: C", 0.0), ("", "Answer: B", 0.0),
     # no reasoning field: the parser found no </think>, so the prefilled block never closed
     (None, "Answer: B", -1.0)],
)  # fmt: skip
def test_trl_parsed_completions_keep_their_reasoning(
    key: str, reasoning: str | None, content: str, expected: float
) -> None:
    """TRL >= 1.x parses completions with the tokenizer's response schema: the reasoning
    arrives in its own field, not in ``content``. It is still the reasoning."""
    suite = RewardSuite({"mcq": get_task("mcq")}, prefilled=True)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message[key] = reasoning
    total = 0.0
    for fn, weight in zip(suite.functions(), suite.weights(), strict=True):
        (value,) = fn(prompts=[PROMPT], completions=[[message]], task=["mcq"], reference=["B"])
        total += weight * (value or 0.0)
    assert total == pytest.approx(expected)


def test_trl_content_parts_are_text() -> None:
    suite = RewardSuite({"mcq": get_task("mcq")}, prefilled=True)
    parts = [{"type": "text", "text": f"{WHY}</think>\n"}, {"type": "text", "text": "Answer: B"}]
    values = [
        fn(
            prompts=[PROMPT],
            completions=[[{"role": "assistant", "content": parts}]],
            task=["mcq"],
            reference=["B"],
        )[0]
        for fn in suite.functions()
    ]
    assert values == [1.0, 0.0]


def test_trl_refuses_a_negative_or_non_finite_format_penalty() -> None:
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="format_penalty"):
            RewardSuite({"mcq": get_task("mcq")}, format_penalty=bad)


# ----------------------------------------------------------------- verl calling shapes

DONE = f"{WHY}</think>\nAnswer: B"
ATE_DONE = f"{WHY}</think>\nAnswer: T1059.001, T1071"

# (id, kwargs of compute_score, expected score or (exception, message))
VERL_CALLS: list[tuple[str, dict[str, Any], Any]] = [
    ("bytes-solution", {"solution_str": DONE.encode()}, 1.0),
    ("bytearray-solution", {"solution_str": bytearray(DONE.encode())}, 1.0),
    ("none-solution", {"solution_str": None}, (TypeError, "solution_str: expected text, got None")),
    ("int-solution", {"solution_str": 7}, (TypeError, "solution_str: expected text, got int")),
    ("extra-info-string", {"extra_info": "train"}, (TypeError, "extra_info: expected a dict")),
    ("extra-info-list", {"extra_info": ["mcq"]}, (TypeError, "extra_info: expected a dict")),
    (
        "prefilled-string-false",
        {"extra_info": {"prefilled": "false"}, "solution_str": f"{WHY}\nAnswer: B"},
        0.0,
    ),
    (
        "prefilled-string-true",
        {"extra_info": {"prefilled": "true"}, "solution_str": f"{WHY}\nAnswer: B"},
        -1.0,
    ),
    ("prefilled-zero", {"extra_info": {"prefilled": 0}, "solution_str": f"{WHY}\nAnswer: B"}, 0.0),
    (
        "prefilled-nonsense",
        {"extra_info": {"prefilled": "maybe"}},
        (ValueError, "extra_info['prefilled']: 'maybe'"),
    ),
    ("kwarg-prefilled-string", {"prefilled": "False", "solution_str": f"{WHY}\nAnswer: B"}, 0.0),
    ("extra-task-int", {"extra_info": {"task": 3}}, (RoutingError, "extra_info['task']")),
    ("data-source-int", {"data_source": 42, "extra_info": None}, (RoutingError, "data_source 42")),
    ("data-source-none", {"data_source": None, "extra_info": {"task": "mcq"}}, 1.0),
    ("gt-list", {"ground_truth": ["B"]}, 1.0),
    ("gt-numpy", {"ground_truth": np.array(["B"])}, 1.0),
    (
        "gt-list-ate",
        {
            "data_source": "secreason/ate",
            "ground_truth": ["T1059.001", "T1071"],
            "solution_str": ATE_DONE,
        },
        1.0,
    ),
    (
        "gt-numpy-ate",
        {
            "data_source": "secreason/ate",
            "ground_truth": np.array(["T1059.001", "T1071"]),
            "solution_str": ATE_DONE,
        },
        1.0,
    ),
    ("gt-dict", {"ground_truth": {"reference": "B"}}, 1.0),
    ("gt-dict-ground-truth", {"ground_truth": {"ground_truth": "B"}}, 1.0),
    (
        "gt-dict-other",
        {"ground_truth": {"answer": "B"}},
        (ValueError, "ground_truth: a dict without 'reference'"),
    ),
    ("gt-label-json", {"ground_truth": openrlhf.label_for("mcq", "B")}, 1.0),
    (
        "gt-label-other-task",
        {"ground_truth": openrlhf.label_for("cwe", "CWE-79")},
        (ValueError, "names task 'cwe'"),
    ),
    (
        "gt-bad-json",
        {"ground_truth": '{"reference": '},
        (ValueError, "ground_truth: not a JSON object"),
    ),
    ("gt-none", {"ground_truth": None}, (ValueError, "ground_truth: empty")),
    ("gt-empty", {"ground_truth": "  "}, (ValueError, "ground_truth: empty")),
    ("gt-nan", {"ground_truth": math.nan}, (ValueError, "ground_truth: NaN")),
    ("gt-bool", {"ground_truth": True}, (ValueError, "ground_truth: expected text")),
    (
        "gt-int-cwe",
        {
            "data_source": "cwe",
            "ground_truth": 79,
            "solution_str": f"{WHY}</think>\nAnswer: CWE-79",
        },
        1.0,
    ),
    ("gt-unreachable-mcq", {"ground_truth": "Z"}, (ValueError, "gold 'Z'")),
    ("gt-unreachable-list-text", {"ground_truth": "['B']"}, (ValueError, "gold \"['B']\"")),
    ("gt-bad-cwe", {"data_source": "cwe", "ground_truth": "XSS"}, (ValueError, "gold 'XSS'")),
    ("penalty-text", {"format_penalty": "abc"}, (ValueError, "format_penalty")),
    ("penalty-nan", {"format_penalty": math.nan}, (ValueError, "format_penalty")),
    ("penalty-negative", {"format_penalty": -1}, (ValueError, "format_penalty")),
    ("format-not-a-dict", {"format": "strict"}, (TypeError, "reward_kwargs.format")),
    (
        "format-field-wrong-type",
        {"format": {"min_reasoning_words": "ten"}},
        (TypeError, "reward_kwargs.format.min_reasoning_words: 'ten' is not of type int"),
    ),
    ("format-field-negative", {"format": {"min_reasoning_words": -5}}, (ValueError, "negative")),
    ("format-field-bool-for-int", {"format": {"min_reasoning_words": True}}, (TypeError, "True")),
    ("format-ratio-int-ok", {"format": {"max_repeat_ratio": 1}}, 1.0),
    ("task-options-list", {"task_options": ["mcq"]}, (TypeError, "reward_kwargs.task_options")),
    ("task-options-text", {"task_options": {"mcq": "ABCDE"}}, (TypeError, "task_options")),
    (
        "task-options-unknown",
        {"task_options": {"mcq": {"letterz": "AB"}}},
        (RoutingError, "task_options['mcq']: "),
    ),
]


@pytest.mark.parametrize(("name", "kwargs", "expected"), VERL_CALLS, ids=[c[0] for c in VERL_CALLS])
def test_verl_calling_shapes(name: str, kwargs: dict[str, Any], expected: Any) -> None:
    call: dict[str, Any] = {
        "data_source": "secreason/mcq",
        "solution_str": DONE,
        "ground_truth": "B",
        "extra_info": {"split": "train"},
        "prefilled": True,
    }
    call.update(kwargs)
    if "prefilled" in (kwargs.get("extra_info") or {}):
        call.pop("prefilled")  # the row decides
    if isinstance(expected, tuple):
        error, needle = expected
        with pytest.raises(error) as caught:
            verl.compute_score(**call)
        assert needle in str(caught.value)
    else:
        assert verl.compute_score(**call)["score"] == pytest.approx(expected)


def test_verl_batch_reward_manager_convention() -> None:
    """verl's ``batch`` reward manager passes plural keywords and wants one result a row."""
    rows = [
        ("secreason/mcq", DONE, "B", {"task": "mcq"}),
        ("secreason/mcq", f"{WHY}</think>\nAnswer: C", "B", {}),
        ("secreason/ate", ATE_DONE, np.array(["T1059.001", "T1071"]), None),
    ]
    sources, solutions, truths, infos = (
        np.array(col, dtype=object) for col in zip(*rows, strict=True)
    )
    got = verl.compute_score(
        data_sources=sources, solution_strs=solutions, ground_truths=truths, extra_infos=infos,
        prefilled=True,
    )  # fmt: skip
    single = [verl.compute_score(s, c, g, e, prefilled=True) for s, c, g, e in rows]
    assert got == single and [r["score"] for r in got] == [1.0, 0.0, 1.0]
    assert verl.compute_score_batch(sources, solutions, truths, infos, prefilled=True) == single
    with pytest.raises(ValueError, match=r"differ in length \(3, 2, 3, 3\)"):
        verl.compute_score(
            data_sources=sources, solution_strs=solutions[:2], ground_truths=truths,
            extra_infos=infos,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"row 1: .*gold 'Z'"):
        verl.compute_score_batch(sources, solutions, [truths[0], "Z", truths[2]], infos)


# ------------------------------------------------------------------- OpenRLHF labels

P = PROMPT + PREFILL
Q = P + DONE + "<|end|>"

# (id, labels for one row of Q, $SECREASON_TASK, expected reward or error needle)
LABELS: list[tuple[str, Any, str | None, Any]] = [
    ("dict-label", {"task": "mcq", "reference": "B"}, None, 1.0),
    ("dict-list-reference", {"task": "mcq", "reference": ["B"]}, None, 1.0),
    ("dict-without-task-default", {"reference": "B"}, "mcq", 1.0),
    ("json-without-task-default", '{"reference": "B"}', "mcq", 1.0),
    ("list-label-default", ["B"], "mcq", 1.0),
    ("none-label", None, None, "labels[0]: empty"),
    ("none-label-default", None, "mcq", "labels[0]: empty"),
    ("nan-label", math.nan, "mcq", "labels[0]: NaN"),
    ("json-list", '["B"]', None, "labels[0]: expected"),
    ("json-array-of-objects", "[{}]", None, "labels[0]: expected"),
    ("unreachable-gold", {"task": "mcq", "reference": "E"}, None, "labels[0]: gold 'E'"),
    ("task-not-text", {"task": ["mcq"], "reference": "B"}, None, "labels[0]: 'task'"),
    (
        "reference-dict",
        {"task": "mcq", "reference": {"x": "B"}},
        None,
        "labels[0].reference: a dict",
    ),
]


@pytest.mark.parametrize(
    ("name", "label", "default", "expected"), LABELS, ids=[r[0] for r in LABELS]
)
def test_openrlhf_label_shapes(
    monkeypatch: pytest.MonkeyPatch, name: str, label: Any, default: str | None, expected: Any
) -> None:
    if default:
        monkeypatch.setenv("SECREASON_TASK", default)
    else:
        monkeypatch.delenv("SECREASON_TASK", raising=False)
    if isinstance(expected, str):
        with pytest.raises(ValueError) as caught:
            openrlhf.reward_func([Q], [P], [label])
        assert expected in str(caught.value)
    else:
        assert openrlhf.reward_func([Q], [P], [label])["rewards"].tolist() == [expected]


def test_openrlhf_names_every_bad_row_not_only_the_first() -> None:
    good = openrlhf.label_for("mcq", "B")
    labels = [good, "{oops", good, json.dumps({"task": "nope", "reference": "B"}), good]
    with pytest.raises(ValueError) as caught:
        openrlhf.reward_func([Q] * 5, [P] * 5, labels)
    text = str(caught.value)
    assert "labels[1]" in text and "labels[3]" in text and "2 of 5 rows" in text


def test_openrlhf_accepts_extra_keywords_and_empty_batches() -> None:
    out = openrlhf.reward_func([Q], [P], [openrlhf.label_for("mcq", "B")], step=3, anything="x")
    assert out["rewards"].tolist() == [1.0]
    empty = openrlhf.reward_func([], [], [])
    assert empty["rewards"].tolist() == [] and set(empty["extra_logs"]) >= {"task_score"}


def test_trl_refuses_golds_no_answer_can_earn_before_training() -> None:
    """What verl and OpenRLHF refuse per row, TRL's coverage check refuses up front."""
    from secreason.train.rewards import RewardCoverageError, check_reward_coverage

    rows = [
        {"id": "ok", "task": "mcq", "reference": "B"},
        {"id": "z", "task": "mcq", "reference": "Z"},
        {"id": "x", "task": "cwe", "reference": "XSS"},
    ]
    with pytest.raises(RewardCoverageError) as caught:
        check_reward_coverage(rows, ["mcq", "cwe"])
    text = str(caught.value)
    assert "2 of 3" in text and "row 1 (id='z'): gold 'Z'" in text and "row 2 (id='x')" in text
    five = check_reward_coverage(rows[1:2], ["mcq"], {"mcq": {"letters": "ABCDZ"}})
    assert five == 1
