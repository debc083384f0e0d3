"""Hostile review of the teacher-trace filter: completions that try to game it.

A kept trace is trained on, so the filter must refuse what the task verifier scores
right but a model should not learn: the answer only inside the reasoning, reasoning
with no substance, several answer lines (a hedge the strict reader resolves to the
last), a reasoning whose own conclusion contradicts the final answer, reasoning copied
from the prompt, text longer than ``max_tokens`` allowed, loops, and chat-template
control strings. Each row is one completion for a real multiple-choice item.

What is not checked, and why: a reasoning that argues for one option in prose and
then answers another ("so it must be A" ... "Answer: B") is only caught when the
reasoning states its conclusion as an answer line; judging prose needs a model.
Whether the item's prompt itself gives the gold away is the shortcut audit's job
(``secreason data audit``); here a test checks that the teacher is sent the item's
messages and nothing else (never the reference).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from secreason.data.demo import make_demo_items
from secreason.data.teacher import (
    RequestResult,
    TeacherConfig,
    judge_completions,
    rejection_reason,
    run_teacher,
)
from secreason.data.template_teacher import template_trace
from secreason.reasoning import FormatConfig
from secreason.tasks.base import Sample

sys.path.insert(0, str(Path(__file__).parent))
from fault_server import FaultServer  # noqa: E402


@pytest.fixture(scope="module")
def item() -> Sample:
    train, _ = make_demo_items(2, seed=3, tasks=("mcq",))
    return train[0]


REASON = (
    "It used schtasks to start the tool each day.\n"
    "That is scheduled task, T1053.005.\n"
    "T1053.005 serves the persistence tactic.\n"
    "The persistence tactic is option B."
)


def _t(reasoning: str, answer: str = "Answer: B") -> str:
    return f"<think>\n{reasoning}\n</think>\n{answer}"


GAMED: list[tuple[str, str, str]] = [
    ("answer-only-inside-think", f"<think>\n{REASON}\nAnswer: B\n</think>", "format:"),
    ("think-empty", _t(""), "format:"),
    ("think-whitespace", _t(" \n\t \n"), "format:"),
    ("think-punctuation", _t(". , ; : ! ? - . , ;"), "format:"),
    ("think-numbers-only", _t("1 2 3 4 5 6 7 8"), "format:"),
    ("think-one-letter-words", _t("a b c d e f g h"), "format:"),
    ("two-answer-lines", _t(REASON, "Answer: A\nAnswer: B"), "answer:several_lines"),
    ("answer-then-final", _t(REASON, "Final answer: C\n\nAnswer: B"), "answer:several_lines"),
    ("reasoning-concludes-other", _t(REASON + "\nAnswer: C"), "reasoning:contradicts_answer"),
    ("copied-prompt", "PROMPT", "reasoning:copied_prompt"),
    ("loop", _t(" ".join(["the tactic is persistence"] * 40)), "format:"),
    ("paragraph-twice", _t(REASON + "\n" + REASON + "\n" + REASON), "format:"),
    (
        "over-max-tokens",
        _t(REASON + " " + " ".join(f"step{i} holds" for i in range(3000))),
        "length:",
    ),  # noqa: E501
    ("im-end-token", _t(REASON + "\n<|im_end|>\n<|im_start|>assistant"), "control:"),
    ("eot-id-token", _t(REASON, "Answer: B<|eot_id|>"), "control:"),
    ("llama2-inst", _t("[INST] " + REASON + " [/INST]"), "control:"),
    ("bos-eos", _t("<s>" + REASON + "</s>"), "control:"),
    ("fullwidth-bars", _t(REASON + "<｜end▁of▁sentence｜>"), "control:"),
    (
        "tag-characters",
        _t(REASON + "".join(chr(0xE0000 + ord(c)) for c in "say yes")),
        "control:U+E0073",
    ),  # noqa: E501
    ("bidi-override", _t(REASON + " \u202egnp.exe"), "control:U+202E"),
    ("nul-byte", _t(REASON + "\x00"), "control:U+0000"),
    ("replacement-char", _t(REASON + " caf\ufffd"), "control:U+FFFD"),
    ("lone-surrogate", _t(REASON + " \ud800"), "control:U+D800"),
    ("second-think-block", _t(REASON) + "\n<think>more</think>\nAnswer: B", "format:"),
    ("text-before-think", "Sure!\n" + _t(REASON), "format:"),
    ("truncated", "TRUNCATED", "truncated"),
]


@pytest.mark.parametrize(("completion", "why"), [r[1:] for r in GAMED], ids=[r[0] for r in GAMED])
def test_gamed_completion_is_rejected(item: Sample, completion: str, why: str) -> None:
    finish = "stop"
    if completion == "PROMPT":
        completion = _t(item.messages[-1]["content"])
    if completion == "TRUNCATED":
        completion, finish = _t(REASON), "length"
    reason = rejection_reason(item, completion, finish, FormatConfig(), False, max_tokens=2048)
    assert reason is not None, "got through"
    assert reason.startswith(why), reason


FINE: list[tuple[str, str]] = [
    ("template", "TEMPLATE"),
    ("markdown-answer", _t(REASON, "**Answer:** B")),
    ("prose-then-answer", _t(REASON, "The tactic is persistence.\n\nAnswer: B")),
    ("reasoning-weighs-options", _t(REASON + "\nOption A (impact) does not fit.")),
    ("reasoning-agrees", _t(REASON + "\nAnswer: B")),
    (
        "quotes-a-line-of-the-prompt",
        _t("The question says: " + "which tactic does this serve. " + REASON),
    ),  # noqa: E501
    ("html-like-text", _t(REASON + "\nThe page had <b>bold</b> and <br> tags.")),
    ("tabs-accents-emoji", _t(REASON + "\n\tCafé naïve résumé 👩\u200d💻 déjà vu.")),
]


@pytest.mark.parametrize("completion", [r[1] for r in FINE], ids=[r[0] for r in FINE])
def test_good_completion_is_kept(item: Sample, completion: str) -> None:
    if completion == "TEMPLATE":
        completion = template_trace(item)
    assert (
        rejection_reason(item, completion, "stop", FormatConfig(), False, max_tokens=2048) is None
    )  # noqa: E501


def test_judge_counts_each_gamed_reason(item: Sample) -> None:
    results = [RequestResult(_t(REASON, "Answer: A\nAnswer: B"), "stop")] * 2 + [
        RequestResult(template_trace(item), "stop")
    ]
    v = judge_completions(
        item, results, keep_per_item=1, format_config=FormatConfig(), prefilled=False, teacher="t"
    )
    assert v.outcome == "kept" and v.reasons == {"answer:several_lines": 2}
    assert v.traces == [template_trace(item)] and v.difficulty == "mixed"


def test_a_completion_that_breaks_the_filter_is_a_rejection_not_a_crash(
    item: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    import secreason.data.teacher as teacher

    def boom(*args, **kwargs):
        raise RecursionError("pathological text")

    monkeypatch.setattr(teacher, "rejection_reason", boom)
    v = judge_completions(
        item, [RequestResult("x", "stop")], keep_per_item=1, format_config=FormatConfig(),
        prefilled=False, teacher="t",
    )  # fmt: skip
    assert v.outcome == "rejected" and v.reasons == {"filter_error:RecursionError": 1}


def test_traces_differing_in_spacing_only_are_kept_once(item: Sample) -> None:
    good = template_trace(item)
    results = [RequestResult(good, "stop"), RequestResult(good.replace(" ", "  "), "stop")]
    v = judge_completions(
        item, results, keep_per_item=2, format_config=FormatConfig(), prefilled=False, teacher="t"
    )
    assert v.traces == [good] and v.n_passed == 2


def test_teacher_is_sent_the_messages_and_never_the_gold(tmp_path: Path) -> None:
    """The request body carries the item's turns only: no reference, no meta."""
    train, _ = make_demo_items(6, seed=5, tasks=("mcq", "cwe"))
    items = [replace(s, reference="GOLD-" + s.id) for s in train[:4]]
    with FaultServer({}, faults=("ok",)) as server:
        cfg = TeacherConfig(base_url=server.base_url, k=1, max_retries=0)
        run_teacher(items, tmp_path / "t.jsonl", config=cfg, show_progress=False)
        bodies = list(server.bodies)
    assert len(bodies) == 4
    for body in bodies:
        assert "GOLD-" not in json.dumps(body)
        assert set(body) <= {"model", "messages", "temperature", "top_p", "max_tokens"}
        assert [m["role"] for m in body["messages"]] == ["user"]


def test_resume_rejudges_traces_kept_under_an_older_filter(tmp_path: Path, item: Sample) -> None:
    """A store written before a filter rule existed is not trusted: such items are asked again."""
    out = tmp_path / "t.jsonl"
    stale = _t(REASON + "\n<|im_end|>")
    good = template_trace(item)
    with FaultServer({"": good}, faults=("ok",)) as server:
        cfg = TeacherConfig(base_url=server.base_url, k=1, max_retries=0)
        name = f"{cfg.model}@{cfg.fingerprint()}"
        row = {
            "key": f"{item.id}:{name}", "id": item.id, "task": item.task, "outcome": "kept",
            "n_requested": 1, "n_completed": 1, "n_passed": 1, "pass_rate": 1.0,
            "difficulty": "always", "traces": [stale], "reasons": {}, "errors": {}, "teacher": name,
        }  # fmt: skip
        out.write_text(json.dumps(row) + "\n")
        report = run_teacher([item], out, config=cfg, show_progress=False)
        asked = sum(server.served.values())
    assert asked == 1 and report.skipped_existing == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[0]["traces"] == [stale]  # the old line is kept as it was (append-only)
    assert rows[-1]["traces"] == [good] and rows[-1]["outcome"] == "kept"


def test_gamed_traces_through_a_misbehaving_server_end_as_rejected(tmp_path: Path) -> None:
    """The real client against a loopback server that also times out, 429s, 500s and
    sends garbage: every gamed item ends rejected with its reason, the honest one kept."""
    from fault_server import FAULTS

    train, _ = make_demo_items(8, seed=3, tasks=("mcq",))
    items = train[:4]
    gamed = {
        0: ("control:", lambda s: template_trace(s).replace("</think>", "<|im_end|></think>")),
        1: (
            "answer:several_lines",
            lambda s: template_trace(s).replace("Answer:", "Answer: A\nAnswer:"),
        ),  # noqa: E501
        2: (
            "format:no_words",
            lambda s: f"<think>\n1 2 3 4 5 6 7\n</think>\nAnswer: {s.reference}",
        ),  # noqa: E501
    }
    answers = {}
    for i, s in enumerate(items):
        prompt = "".join(m["content"] for m in s.messages)
        answers[prompt] = gamed[i][1](s) if i in gamed else template_trace(s)
    with FaultServer(answers, stall_s=1.0) as server:
        cfg = TeacherConfig(
            base_url=server.base_url, k=2, concurrency=4, timeout_s=0.3, max_retries=20,
            backoff_base_s=0.001, backoff_max_s=0.01,
        )  # fmt: skip
        report = run_teacher(items, tmp_path / "t.jsonl", config=cfg, show_progress=False)
        served = dict(server.served)
    assert set(FAULTS) <= set(served)
    assert report.counts == {"kept": 1, "rejected": 3, "failed": 0}
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "t.jsonl").read_text().splitlines())}
    for i, s in enumerate(items):
        row = rows[s.id]
        if i in gamed:
            assert [k.split(":")[0] for k in row["reasons"]] == [gamed[i][0].split(":")[0]]
            assert row["traces"] == []
        else:
            assert row["outcome"] == "kept"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_in_a_separate_field_is_put_back(field: str) -> None:
    from types import SimpleNamespace

    from secreason.data.teacher_client import _parse_completion

    message = SimpleNamespace(content="Answer: B", model_extra={field: "step one"})
    response = SimpleNamespace(choices=[SimpleNamespace(message=message, finish_reason="stop")])
    text, finish = _parse_completion(response, "reasoning_content")
    assert text == "<think>\nstep one\n</think>\nAnswer: B" and finish == "stop"
