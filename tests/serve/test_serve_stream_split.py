"""The incremental split must agree with the reasoning contract for every chunking."""

from __future__ import annotations

import pytest

from secreason.reasoning import Tags, split
from secreason.serve.stream_split import StreamSplitter, held_back

WELL_FORMED = [
    ("closed", "<think>\nLet me think. a<b</think>\nAnswer: B", False),
    ("closed, leading newline", "\n<think>step one</think>Answer: C", False),
    ("prefilled", "Reasoning here.\n</think>\n\nAnswer: <b>D</b>", True),
    ("prefilled, tag re-emitted", "<think>again</think>Answer: A", True),
    ("unclosed prefilled", "I keep thinking and never stop </thi", True),
    ("unclosed", "<think>I keep thinking", False),
    ("no reasoning", "Just an answer with a < sign and </ a tag-like bit", False),
    ("empty answer", "<think>only thoughts</think>", False),
    ("unicode", "<think>Ünïcødé ✓ 思考</think>答え: B", False),
]


def _stream(text: str, prefilled: bool, step: int, tags: Tags = Tags()) -> tuple[list, object]:
    splitter = StreamSplitter(prefilled=prefilled, tags=tags)
    pieces = []
    for start in range(0, len(text), step):
        pieces.extend(splitter.feed(text[start : start + step]))
    last, final = splitter.finish()
    return [*pieces, *last], (final, splitter.diverged)


@pytest.mark.parametrize("step", [1, 2, 3, 5, 8, 1000])
@pytest.mark.parametrize(
    ("text", "prefilled"), [c[1:] for c in WELL_FORMED], ids=[c[0] for c in WELL_FORMED]
)
def test_stream_equals_contract(text: str, prefilled: bool, step: int) -> None:
    pieces, (final, diverged) = _stream(text, prefilled, step)
    expected = split(text, prefilled=prefilled)
    assert final == expected
    assert not diverged
    reasoning = "".join(t for k, t in pieces if k == "reasoning")
    content = "".join(t for k, t in pieces if k == "content")
    assert (reasoning, content) == (expected.reasoning, expected.answer)
    kinds = [k for k, _ in pieces]
    assert kinds == sorted(kinds, key=lambda k: k == "content"), "reasoning after content"
    assert all(t for _, t in pieces), "empty delta"


def test_no_tag_fragment_ever_leaks() -> None:
    text = "<think>abc</think>xyz"
    for step in range(1, len(text) + 1):
        pieces, _ = _stream(text, False, step)
        assert all("<" not in t and ">" not in t for _, t in pieces), step


def test_custom_tags() -> None:
    tags = Tags("<reasoning>", "</reasoning>")
    pieces, (final, _) = _stream("<reasoning>r</reasoning>a", False, 2, tags)
    assert [k for k, _ in pieces] == ["reasoning", "content"]
    assert final.answer == "a"  # type: ignore[attr-defined]


MALFORMED = [
    ("two blocks", "<think>a</think>b</think>c", False),
    ("text before think", "Hello <think>r</think>a", False),
]


@pytest.mark.parametrize(
    ("text", "prefilled"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_divergence_is_reported(text: str, prefilled: bool) -> None:
    _, (final, diverged) = _stream(text, prefilled, 1)
    assert final == split(text, prefilled=prefilled)
    assert diverged


HOLD = [
    ("", 0),
    ("abc", 0),
    ("abc<", 1),
    ("abc</", 2),
    ("abc<th", 3),
    ("abc</think", 7),
    ("<think>", 0),
    ("a<x", 0),
]


@pytest.mark.parametrize(("text", "expected"), HOLD, ids=[repr(t) for t, _ in HOLD])
def test_held_back(text: str, expected: int) -> None:
    assert held_back(text, Tags()) == expected


STOPS = [
    # (deltas, stops, what the client is sent, hit)
    (["abc ST", "OP def"], ("STOP",), "abc ", True),
    (["abc S", "T", "O", "P"], ("STOP",), "abc ", True),
    (["abc ST", "ILL here"], ("STOP",), "abc STILL here", False),
    (["ends with ST"], ("STOP",), "ends with ST", False),  # released when the stream ends
    (["xENDy"], ("END", "y"), "x", True),
    (["a", "b"], (), "ab", False),
    (["<|e", "ot|>tail"], ("<|eot|>",), "", True),
    (["aaS", "aaSTOP"], ("aaSTOP",), "aaS", True),
]


@pytest.mark.parametrize(("deltas", "stops", "sent", "hit"), STOPS)
def test_stop_strings_never_leak_a_partial_match(
    deltas: list[str], stops: tuple[str, ...], sent: str, hit: bool
) -> None:
    from secreason.serve.stream_split import StopStrings

    holder = StopStrings(stops)
    out = [holder.feed(delta) for delta in deltas]
    out.append(holder.finish())
    assert ("".join(out), holder.hit) == (sent, hit)
