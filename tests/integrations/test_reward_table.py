"""One table of completions, one expected reward each, through three trainers' conventions.

TRL calls secreason's RewardSuite (task reward + weighted format reward); verl's reward
manager decodes the response ids with ``skip_special_tokens=True`` and calls
``compute_score``; OpenRLHF decodes the left-padded prompt+response ids with their
special tokens and calls ``reward_func``. Neither trainer can be installed beside
secreason here (verl 0.9.1 pins transformers below 5.11 and antlr4 4.9; OpenRLHF pulls
flash-attn and deepspeed), so their two steps are written out, through the tiny
model's real tokenizer.
"""

from __future__ import annotations

from typing import Any

import pytest

from secreason.integrations import openrlhf, verl
from secreason.integrations.scoring import RoutingError, strip_end_markers
from secreason.tasks import get_task
from secreason.train.rewards import RewardSuite
from secreason.train.tiny import default_corpus, train_tokenizer

WHY = "The report says the actor ran encoded scripts through the shell."
PROMPT = "<|bos|><|user|>\nWhich tactic?<|end|>\n<|assistant|>\n"
PREFILL = "<think>\n"

# (id, task, reference, completion as generated after a prefilled prompt, total reward)
TABLE: list[tuple[str, str, str, str, float]] = [
    ("mcq-right", "mcq", "B", f"{WHY}</think>\nAnswer: B", 1.0),
    ("mcq-wrong", "mcq", "C", f"{WHY}</think>\nAnswer: B", 0.0),
    ("mcq-hedge", "mcq", "B", f"{WHY}</think>\nAnswer: A, B", -0.0),
    ("short-reasoning", "mcq", "B", "No.</think>\nAnswer: B", 0.0),
    ("degenerate", "mcq", "B", "no no no no no no no no no</think>\nAnswer: B", 0.0),
    ("unclosed", "mcq", "B", f"{WHY}\nAnswer: B", -1.0),
    ("reopened", "mcq", "B", f"{WHY}</think>\nAnswer: B\n<think>Answer: C", -1.0),
    ("no-answer", "mcq", "B", f"{WHY}</think>\n", -1.0),
    ("tag-re-emitted", "mcq", "B", f"<think>\n{WHY}</think>\nAnswer: B", 1.0),
    ("cwe-unicode", "cwe", "CWE-79", f"{WHY}</think>\n**Answer: CWE\u201179**", 1.0),
    ("cwe-wrong", "cwe", "CWE-79", f"{WHY}</think>\nAnswer: CWE-89", 0.0),
    ("ate-partial", "ate", "T1059.001, T1071", f"{WHY}</think>\nAnswer: T1059.001", 2 / 3),
    (
        "cvss-close",
        "cvss",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        f"{WHY}</think>\nAnswer: CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:L",
        0.96,
    ),
    ("taa-right", "taa", "APT29", f"{WHY}</think>\nAnswer: APT29", 1.0),
    # from the hostile review (tests/integrations/test_reward_hostile.py has the rest)
    ("empty-think", "mcq", "B", "</think>\nAnswer: B", 0.0),
    ("every-option", "mcq", "B", f"{WHY}</think>\nAnswer: A, B, C, D", 0.0),
    ("literal-end-marker", "mcq", "B", f"{WHY}</think>\nAnswer: B<|im_end|>", 1.0),
    (
        "cvss-duplicate-metric",
        "cvss",
        "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        f"{WHY}</think>\nAnswer: CVSS:3.1/AV:N/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        0.0,
    ),
]
IDS = [row[0] for row in TABLE]


def trl_total(task: str, reference: str, completion: str, prefilled: bool) -> float:
    """What GRPOTrainer sums: each reward function (None = not applicable) times its weight."""
    suite = RewardSuite({task: get_task(task)}, prefilled=prefilled)
    total = 0.0
    for fn, weight in zip(suite.functions(), suite.weights(), strict=True):
        (value,) = fn(
            prompts=[PROMPT], completions=[completion], task=[task], reference=[reference]
        )
        if value is not None:
            total += weight * value
    return total


TOKENIZER = train_tokenizer(default_corpus(), vocab_size=300)


def verl_total(task: str, reference: str, completion: str, prefilled: bool) -> float:
    extra = {"split": "train", "index": 0, "task": task}
    ids = TOKENIZER.encode(completion, add_special_tokens=False) + [TOKENIZER.eos_token_id]
    completion = TOKENIZER.decode(ids, skip_special_tokens=True)  # verl's reward manager
    result = verl.compute_score(
        f"secreason/{task}", completion, reference, extra, prefilled=prefilled
    )
    assert set(result) >= {"score", "task_score", "format_ok", "reasoning_words"}
    assert all(isinstance(v, float) for v in result.values())  # verl stacks numbers
    return result["score"]


def openrlhf_total(task: str, reference: str, completion: str, prefilled: bool) -> float:
    prompt = PROMPT + (PREFILL if prefilled else "")
    # OpenRLHF left-pads and decodes with special tokens: pads before, end marker after.
    encode = TOKENIZER.encode
    ids = [TOKENIZER.pad_token_id] * 2 + encode(prompt, add_special_tokens=False)
    ids += encode(completion, add_special_tokens=False) + [TOKENIZER.eos_token_id]
    query = TOKENIZER.decode(ids, skip_special_tokens=False)
    assert query.startswith("<|pad|><|pad|><|bos|>") and query.endswith("<|end|>")
    out = openrlhf.reward_func([query], [prompt], [openrlhf.label_for(task, reference)])
    assert set(out) == {"rewards", "scores", "extra_logs"}
    assert out["scores"].tolist()[0] == pytest.approx(out["extra_logs"]["task_score"].tolist()[0])
    return float(out["rewards"][0])


CONVENTIONS = {"trl": trl_total, "verl": verl_total, "openrlhf": openrlhf_total}


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
@pytest.mark.parametrize(("name", "task", "reference", "completion", "expected"), TABLE, ids=IDS)
def test_prefilled_table(
    convention: str, name: str, task: str, reference: str, completion: str, expected: float
) -> None:
    got = CONVENTIONS[convention](task, reference, completion, True)
    assert got == pytest.approx(expected, abs=1e-6)


# The same items when the template does not prefill: the model writes <think> itself.
OPEN = [
    (n, t, r, "<think>\n" + c if "</think>" in c and not c.startswith("<think>") else c, e)
    for n, t, r, c, e in TABLE
    if n not in ("unclosed",)
]
# Without tags and without a prefill there is no reasoning: the answer line still
# scores, the format check fails, so the total is task - 1.
OPEN.append(("no-reasoning", "mcq", "B", "Answer: B", 0.0))
OPEN.append(("open-unclosed", "mcq", "B", f"<think>\n{WHY}\nAnswer: B", -1.0))


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
@pytest.mark.parametrize(
    ("name", "task", "reference", "completion", "expected"), OPEN, ids=[r[0] for r in OPEN]
)
def test_not_prefilled_table(
    convention: str, name: str, task: str, reference: str, completion: str, expected: float
) -> None:
    got = CONVENTIONS[convention](task, reference, completion, False)
    assert got == pytest.approx(expected, abs=1e-6)


# ------------------------------------------------------------------- verl specifics


def test_verl_routes_by_data_source_when_extra_info_has_no_task() -> None:
    done = f"{WHY}</think>\nAnswer: CWE-79"
    assert verl.compute_score("secreason/cwe", done, "CWE-79", None, prefilled=True)["score"] == 1
    assert verl.compute_score("cwe", done, "CWE-79", {}, prefilled=True)["acc"] == 1.0


def test_verl_prefilled_from_extra_info_decides_an_unclosed_block() -> None:
    text = f"{WHY}\nAnswer: B"
    closed_by_nothing = verl.compute_score("secreason/mcq", text, "B", {"prefilled": True})
    assert closed_by_nothing["unclosed"] == 1.0 and closed_by_nothing["task_score"] == 0.0
    no_reasoning = verl.compute_score("secreason/mcq", text, "B", {"prefilled": False})
    assert no_reasoning["task_score"] == 1.0 and no_reasoning["format_ok"] == 0.0


@pytest.mark.parametrize(
    ("source", "extra", "match"),
    [
        ("openai/gsm8k", None, "names no secreason task"),
        ("secreason/nope", {}, "names no secreason task"),
        ("secreason/mcq", {"task": "nope"}, "unknown task 'nope'"),
    ],
)
def test_verl_refuses_rows_it_cannot_route(source: str, extra: Any, match: str) -> None:
    with pytest.raises(RoutingError, match=match):
        verl.compute_score(source, "x</think>\nAnswer: B", "B", extra)


def test_verl_reward_kwargs_set_penalty_and_format_thresholds() -> None:
    short = "Short but fine.</think>\nAnswer: B"
    assert verl.compute_score("mcq", short, "B", None, prefilled=True)["score"] == 0.0
    relaxed = verl.compute_score(
        "mcq", short, "B", None, prefilled=True, format={"min_reasoning_words": 2}
    )
    assert relaxed["score"] == 1.0
    half = verl.compute_score("mcq", "No.</think>\nAnswer: C", "B", None, format_penalty=0.5)
    assert half["score"] == -0.5
    with pytest.raises(TypeError, match="reward_kwargs.format"):
        verl.compute_score("mcq", short, "B", None, format={"min_words": 2})
    with pytest.warns(UserWarning, match="prefiled"):
        verl.compute_score("mcq", short, "B", None, prefiled=True)


# --------------------------------------------------------------- openrlhf specifics


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: B<|end|>", "Answer: B"),
        ("Answer: B<|eot_id|><|pad|><|pad|>", "Answer: B"),
        ("Answer: B</s>", "Answer: B"),
        ("Answer: B<|end|>" + "<|pad|>" * 300 + "\n", "Answer: B"),  # right padding
        ("Answer: B \n", "Answer: B \n"),  # no marker: unchanged
        ("Answer: B <｜end▁of▁sentence｜>\n", "Answer: B"),
        ("x</think>\nAnswer: B", "x</think>\nAnswer: B"),  # the close tag is no end marker
        ("Answer: <|B|> is odd", "Answer: <|B|> is odd"),  # only trailing markers go
    ],
)
def test_end_markers_are_cut_only_at_the_end(text: str, expected: str) -> None:
    assert strip_end_markers(text) == expected


@pytest.mark.parametrize(
    ("queries", "prompts", "labels", "match"),
    [
        (["a"], ["a", "b"], ["{}"], "differ in length"),
        (["P x"], ["Q"], [openrlhf.label_for("mcq", "B")], r"queries\[0\] does not contain"),
        (["P x"], ["P"], ["B"], r"labels\[0\]: expected"),
        (["P x"], ["P"], ["{not json"], r"labels\[0\]: not a JSON object"),
        (["P x"], ["P"], ['{"task": "mcq"}'], r"labels\[0\]: needs non-empty"),
        (["P x"], ["P"], [openrlhf.label_for("nope", "B")], r"labels\[0\]: unknown task"),
        ([1], ["P"], ["B"], r"must be strings"),
    ],
)
def test_openrlhf_bad_batches_name_the_row(
    queries: Any, prompts: Any, labels: Any, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        openrlhf.reward_func(queries, prompts, labels)


def test_openrlhf_bare_references_with_a_default_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECREASON_TASK", "cwe")
    prompt = PROMPT + PREFILL
    out = openrlhf.reward_func([prompt + f"{WHY}</think>\nAnswer: CWE-79"], [prompt], ["CWE-79"])
    assert out["rewards"].tolist() == [1.0]


def test_special_think_tags_dropped_by_decoding_leave_only_the_answer_line() -> None:
    """verl#715: tags that are special tokens vanish in a skip_special_tokens decode. The
    answer line still scores; the format check cannot see reasoning and fails (the
    documented reason to keep the tags ordinary tokens)."""
    from tokenizers import AddedToken

    tok = train_tokenizer(default_corpus(), vocab_size=300)
    tok.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True) for t in ("<t>", "</t>")]}
    )
    text = f"<t>{WHY}</t>\nAnswer: B"
    decoded = tok.decode(tok.encode(text, add_special_tokens=False), skip_special_tokens=True)
    assert "<t>" not in decoded and decoded.endswith("Answer: B")
    result = verl.compute_score("secreason/mcq", decoded, "B", None)
    assert (result["task_score"], result["format_ok"], result["score"]) == (1.0, 0.0, 0.0)
