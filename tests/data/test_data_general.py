"""General-domain prompts from a dataset file; math verified with math-verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secreason.data.general import general_items, general_rejection, math_correct
from secreason.data.recipe import GeneralSource
from secreason.reasoning import FormatConfig

REASONING = "<think>\nAdd the two numbers step by step and check the sum twice.\n</think>\n"


@pytest.mark.parametrize(
    ("completion", "reference", "ok"),
    [
        (REASONING + "The answer is $\\frac{1}{2}$", "0.5", True),
        (REASONING + "Answer: 42", "#### 42", True),
        (REASONING + "Answer: 41", "42", False),
        ("<think>\nthe answer is 42\n</think>\n", "42", False),  # only inside the reasoning
        ("<think>\nstill thinking 42", "42", False),  # unclosed
        (REASONING + "Answer: $x^2 + 2x + 1$", "$(x+1)^2$", True),
    ],
    ids=[
        "latex-vs-decimal",
        "gsm8k-style-gold",
        "wrong",
        "answer-in-reasoning",
        "unclosed",
        "symbolic",
    ],
)
def test_math_correct(completion: str, reference: str, ok: bool) -> None:
    assert math_correct(completion, reference) is ok


def test_general_items_from_a_local_file_and_rejection(tmp_path: Path) -> None:
    path = tmp_path / "math.jsonl"
    rows = [{"problem": f"What is {i} + {i}?", "solution": str(2 * i)} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    src = GeneralSource(
        path=str(path), domain="math", prompt_field="problem", answer_field="solution"
    )
    items = general_items(src)
    assert [s.reference for s in items] == ["0", "2", "4", "6", "8"]
    assert all(s.task == "math" and s.meta["domain"] == "math" for s in items)
    cfg = FormatConfig()
    good = REASONING + "Answer: 6"
    assert general_rejection(items[3], good, cfg, prefilled=False) is None
    assert general_rejection(items[2], good, cfg, prefilled=False) == "verifier:math"
    assert general_rejection(items[3], "Answer: 6", cfg, prefilled=False).startswith("format:")
    chat = GeneralSource(path=str(path), domain="chat", prompt_field="problem")
    chat_item = general_items(chat)[0]
    assert general_rejection(chat_item, REASONING + "Hello there.", cfg, prefilled=False) is None


def test_missing_prompt_field_names_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"q": "hi"}\n')
    with pytest.raises(KeyError, match=r"no column 'prompt' \(has \['q'\]\)"):
        general_items(GeneralSource(path=str(path)))
