"""What a guard reads of client or model text: disguises a reader sees through, undone.

A hostile user disguises a harmful word so that a person (and the model) still reads
it while a classifier does not: fullwidth or styled letters, invisible characters
inside it, look-alike letters of other scripts, Zalgo marks, a right-to-left override
that shows reversed text the right way round. :func:`guard_view` undoes these on the
GUARD's copy only (the model reads the client's text unchanged), keeps ASCII text as
it is at the cost of one check, and leaves other languages readable for a multilingual
guard (the look-alike rule is per word: :mod:`secreason.serve.confusables`).
Control strings are broken after folding (:mod:`secreason.serve.sanitize`), so folding
cannot rebuild one.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from typing import NamedTuple

from secreason.serve.confusables import fold_words, framed


def _ranges(points: Iterable[int]) -> str:
    """A regex character class body for code points (consecutive ones as ranges)."""
    out: list[str] = []
    run: list[int] = []
    for point in sorted(points):
        if run and point == run[-1] + 1:
            run.append(point)
            continue
        if run:
            out.append(
                re.escape(chr(run[0])) + ("-" + re.escape(chr(run[-1])) if len(run) > 1 else "")
            )
        run = [point]
    if run:
        out.append(re.escape(chr(run[0])) + ("-" + re.escape(chr(run[-1])) if len(run) > 1 else ""))
    return "".join(out)


#: Unicode's default-ignorable code points beyond category Cf (letters and marks that
#: draw nothing): the combining grapheme joiner, Hangul fillers, Khmer inherent vowels,
#: Mongolian variation selectors, variation selectors, unassigned ones, the tag block
#: (its ASCII tags are decoded first).
_BLANK = [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, *range(0x180B, 0x1810), 0x2065, 0x3164,
          0xFFA0, *range(0xFE00, 0xFE10), *range(0xFFF0, 0xFFF9),
          *range(0xE0000, 0xE1000)]  # fmt: skip
#: The generic combining marks (diacritics, overlays such as the strike-through U+0336,
#: enclosing circles and keycaps), as opposed to the marks of one script.
_DECORATION = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_ACCENT = re.compile(f"[{_DECORATION}]")
#: Before NFKC: hair and six-per-em spaces join letters (they show no gap a reader sees),
#: the Braille blank is a space, line and paragraph separators are line breaks.
_SPACING = {0x200A: "", 0x2006: "", 0x2800: " ", 0x2028: "\n", 0x2029: "\n\n", 0x85: "\n"}


#: Letters whose marks are judged one by one: Basic Latin, Latin-1, Extended A and B,
#: Extended Additional.
_LATIN_LETTERS = "A-Za-z\u00c0-\u024f\u1e00-\u1eff"


#: Supplementary planes, as one range: a character class with hundreds of supplementary
#: ranges is tested range by range for every character (25x slower on 64 KB of text).
_ASTRAL = "\U00010000-\U0010ffff"


class _Patterns(NamedTuple):
    invisible: re.Pattern[str]  # every Cf and _BLANK
    special: re.Pattern[str]  # anything the steps before NFKC change (or any astral)
    work: re.Pattern[str]  # the same, or a combining mark: what may need more than NFKC
    marks: re.Pattern[str]  # runs of combining marks (any astral too: see unstack)
    marked_latin: re.Pattern[str]  # a Latin letter and the marks after it
    loose: re.Pattern[str]  # generic marks that are not on a Latin letter
    table: dict[int, str]  # framed letters and spacing, translated before NFKC


@functools.cache
def _patterns() -> _Patterns:
    """Built once (~40 ms). Each basic-plane class is a bitmap for the regex engine; the
    supplementary planes stay one range, checked apart (see :data:`_ASTRAL`)."""
    invisible, marks = list(_BLANK), []
    for point in range(0x20000):
        category = unicodedata.category(chr(point))
        if category == "Cf":
            invisible.append(point)
        elif category in ("Mn", "Me") and point < 0x10000 and point not in _BLANK:
            marks.append(point)
    table = {**framed(), **_SPACING}
    basic = [p for p in [*invisible, *table] if p < 0x10000]
    return _Patterns(
        re.compile(f"[{_ranges(invisible)}]+"),
        re.compile(f"[{_ranges(basic)}{_ASTRAL}]"),
        re.compile(f"[{_ranges([*basic, *marks])}{_ASTRAL}]"),
        re.compile(f"[{_ranges(marks)}{_ASTRAL}]+"),
        re.compile(f"([{_LATIN_LETTERS}])([{_ranges(marks)}{_ASTRAL}]+)"),
        re.compile(f"[{_DECORATION}](?<![{_LATIN_LETTERS}{_DECORATION}].)[{_DECORATION}]*"),
        table,
    )


#: Generic marks that styled-text generators put on every letter (over- and underlines,
#: x above and below), though they are not overlays.
_LINES = frozenset("\u0305\u0332\u0333\u033d\u033f\u0347\u0348\u034d\u0353\u0359")


def _accent(mark: str) -> bool:
    """A diacritic a language writes (not an overlay, a line, an enclosing mark or another
    script's mark)."""
    return (
        unicodedata.combining(mark) > 1 and mark not in _LINES and _ACCENT.match(mark) is not None
    )


def _is_mark(char: str) -> bool:
    return unicodedata.category(char) in ("Mn", "Me")


def _leading_marks(run: str) -> int:
    """How many characters of ``run`` are marks (a supplementary one may be anything)."""
    if max(run) < "\U00010000":
        return len(run)
    for count, char in enumerate(run):
        if char >= "\U00010000" and not _is_mark(char):
            return count
    return len(run)


def unstack(text: str, patterns: _Patterns) -> str:
    """Drop the combining marks NFKC could not compose that are decoration. On a Latin
    letter one or two accents are kept (Yoruba ``ọ̀``), but an overlay (the
    strike-through), an enclosing mark, another script's mark or a stack of three,
    composed ones counted (Zalgo), is decoration: the letter loses every mark, its own
    accents too. On other letters the generic marks (:data:`_DECORATION`) are dropped
    (one regex pass: only marked Latin letters are looked at one by one)."""
    pieces: list[str] = []
    at = 0
    for match in patterns.marked_latin.finditer(text):
        count = _leading_marks(match[2])
        run = match[2][:count]
        letter = unicodedata.normalize("NFD", match[1])
        if not run or (len(letter) - 1 + count < 3 and all(map(_accent, run))):
            continue
        pieces += [text[at : match.start()], letter[0]]
        at = match.start(2) + count
    if pieces:
        pieces.append(text[at:])
        text = "".join(pieces)
    return patterns.loose.sub("", text)


_TAGS = re.compile("[\U000e0020-\U000e007e]")
_PARAGRAPH = frozenset("\n\r\x1c\x1d\x1e\x85\u2029")
_EMBEDDING, _ISOLATE = frozenset("\u202a\u202b\u202d\u202e"), frozenset("\u2066\u2067\u2068")
RLO = "\u202e"


#: UAX #9's deepest nesting; openers beyond it are ignored, and so are their closers.
MAX_DEPTH = 125


def read_overrides(text: str) -> str:
    """Text under a right-to-left override (U+202E) shows its characters in reverse:
    each outermost span holding one is given in logical order (what a model reads),
    then in the order a person sees, so the guard reads both (at most twice the text).
    Spans end at their PDF, or at the PDI or paragraph end that closes them (UAX #9);
    a nested span moves as one unit. Embeddings and isolates do not reorder the letters
    of a Latin word (only runs of text), so they are just dropped with the other
    controls; a left-to-right override of Arabic or Hebrew letters is not undone."""
    # Each frame: its opener and its items as (logical, seen) pairs.
    stack: list[tuple[str, list[tuple[str, str]]]] = [("", [])]
    isolates = overflow = 0

    def close() -> None:
        nonlocal isolates
        kind, items = stack.pop()
        isolates -= kind in _ISOLATE
        logical = "".join(pair[0] for pair in items)
        seen = "".join(pair[1] for pair in (reversed(items) if kind == RLO else items))
        stack[-1][1].append((logical, seen))

    for char in text:
        items = stack[-1][1]
        if char in _EMBEDDING or char in _ISOLATE:
            if len(stack) > MAX_DEPTH:
                overflow += 1
                continue
            stack.append((char, []))
            isolates += char in _ISOLATE
        elif char in "\u202c\u2069" and overflow:
            overflow -= 1
        elif char == "\u202c" and stack[-1][0] in _EMBEDDING:
            close()
        elif char == "\u2069" and isolates:
            while stack[-1][0] not in _ISOLATE:
                close()
            close()
        elif char in _PARAGRAPH:
            while len(stack) > 1:
                close()
            overflow = 0
            stack[0][1].append((char, char))
        elif items and unicodedata.combining(char):
            items[-1] = (items[-1][0] + char, items[-1][1] + char)  # marks stay on letters
        else:
            items.append((char, char))
    while len(stack) > 1:
        close()
    return _both_ways(stack[0][1])


def _both_ways(pairs: list[tuple[str, str]]) -> str:
    """Each word (spaces apart) holding a reordered span, in logical order then as seen:
    the WORD, not the span alone, since a span may be part of one (``ran`` + ``mos``
    reversed + ``ware`` shows ``ransomware``)."""
    out: list[str] = []
    word: list[tuple[str, str]] = []

    def flush() -> None:
        logical = "".join(pair[0] for pair in word)
        seen = "".join(pair[1] for pair in word)
        out.append(logical if seen == logical else f"{logical} {seen}")
        word.clear()

    for pair in pairs:
        if pair[0] == pair[1] and pair[0].isspace():
            flush()
            out.append(pair[0])
        else:
            word.append(pair)
    flush()
    return "".join(out)


def guard_view(text: str) -> str:
    """What a guard reads of client or model text: disguises a reader sees through but a
    classifier may not are undone, in this order. Tag characters become the ASCII they
    spell; a right-to-left override is read both ways (:func:`read_overrides`); framed
    letters and flag letters become letters (``🅡`` -> ``R``); invisible characters are
    dropped (format characters, Hangul fillers, variation selectors, hair spaces); NFKC
    folds fullwidth, mathematical, circled and superscript letters (``ｒａｎｓｏｍ`` ->
    ``ransom``); decorating marks on a Latin letter (Zalgo, the
    strike-through U+0336) are dropped with its accents (:func:`unstack`); look-alike
    letters in Latin words become Latin (:mod:`secreason.serve.confusables`: ``ехрlоit``
    -> ``exploit``; Russian prose is left as it is). ASCII text is returned as it is.
    Only the guard's copy is folded; control strings are broken afterwards (see
    :data:`~secreason.serve.sanitize.GENERIC_NEUTRALISER`), so folding cannot rebuild one."""
    if text.isascii():
        return text
    patterns = _patterns()
    if patterns.work.search(text) is None:  # most text: one scan, then NFKC and words
        return fold_words(unicodedata.normalize("NFKC", text))
    if patterns.special.search(text):
        text = _TAGS.sub(lambda m: chr(ord(m[0]) - 0xE0000), text)
        if RLO in text:
            text = read_overrides(text)
        text = patterns.invisible.sub("", text.translate(patterns.table))
    text = unicodedata.normalize("NFKC", text)
    has_marks = patterns.marks.search(text) is not None
    if has_marks:
        text = unstack(text, patterns)
    folded = fold_words(text)
    # A mark on a look-alike was on a letter of another script: now it is on a Latin one.
    return unstack(folded, patterns) if has_marks and folded is not text else folded
