"""The data card shows the figures a user checks before training, and only those that apply."""

from __future__ import annotations

from secreason.data.card import render_card


def _summary(kind: str) -> dict:
    return {
        "recipe": {"name": "t", "teacher": {"kind": kind, "model": "m", "base_url": "u", "k": 4}},
        "stats": {
            "per_task": {
                "cwe": {
                    "sft": 3,
                    "rl": 1,
                    "heldout": 2,
                    "trace_words_median": 10,
                    "trace_words_max": 20,
                    "teacher_pass_rate": 0.5,
                    "difficulty": {"medium": 3},
                }
            }
        },
        "teacher": {"counts": {"kept": 3, "rejected": 1}, "total": 4},
        "audit": {
            "passed": False,
            "config": {"margin": 0.05, "enforce": ["heldout"]},
            "rows": [
                {
                    "task": "cwe",
                    "split": "heldout",
                    "n": 2,
                    "baseline": 1.0,
                    "chance": 0.5,
                    "solved": 1,
                    "reasons": {"CWE id": 1},
                    "enforced": True,
                    "passed": False,
                    "examples": [
                        {"id": "abc123", "why": "'CWE-79' in the prompt", "answer": "CWE-79"}
                    ],
                }
            ],
        },
        "consistency": {
            "n_in": 10,
            "n_out": 8,
            "conflicting_prompts": 2,
            "resolved_by_union": 1,
            "dropped_conflicts": 2,
            "cross_split_dropped": 1,
            "repeats_merged": 0,
            "cross_split_near_duplicates": {
                "heldout_with_train_near_duplicate": 4,
                "heldout": 2,
                "threshold": 0.8,
            },
        },
        "lengths": {
            "unit": "whitespace words",
            "splits": {
                "sft": {"n": 3, "p50": 5, "p90": 9, "p99": 9, "max": 9, "limit": 8, "over_limit": 1}
            },
        },
    }


def test_template_teacher_card_has_no_pass_rate_or_endpoint_fields() -> None:
    card = render_card(_summary("template"))
    assert "| teacher pass rate |" not in card and "| difficulty |" not in card
    assert '"base_url"' not in card and "Template teacher" in card
    assert "**FAILED.**" in card and "`abc123`" in card and "CWE id 1" in card
    assert "several gold answers: 2 (1 resolved by the union" in card
    assert "training copies of held-out prompts dropped: 1" in card
    assert "4 of 2" in card and "| sft | 3 | 5 | 9 | 9 | 9 | 8 | 1 |" in card


def test_model_teacher_card_shows_pass_rate_and_difficulty() -> None:
    card = render_card(_summary("endpoint"))
    assert "teacher pass rate" in card and "50.0 %" in card and "medium 3" in card
    assert "Model teacher `m`" in card and '"base_url": "u"' in card
