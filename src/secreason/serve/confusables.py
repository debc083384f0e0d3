"""Letters that look Latin are read as Latin by the guard, inside words that are Latin.

A reader takes ``ехрlоit`` (Cyrillic е, х, р, о) or ``ʀᴀɴsᴏᴍᴡᴀʀᴇ`` (small capitals) for
``exploit`` and ``ransomware``; a classifier sees other tokens, a keyword list sees
nothing. NFKC (in :func:`~secreason.serve.disguise.guard_view`) already folds fullwidth,
mathematical, circled and superscript letters, but not letters of other scripts.

The look-alikes come from Unicode's own data, UTS #39 ``confusables.txt``, as shipped
by the ``confusable-homoglyphs`` package (its public ``is_confusable``/``alias``): every
single character it lists as confusable with an ASCII letter or digit. Unicode keeps a
few Latin prototypes apart that a reader does not (the small capitals, letters with a
hook or tail), so these are added by their Unicode names, with the characters UTS #39
lists as confusable with them (Cyrillic ``т`` with ``ᴛ``). Capitals confusable with
``l`` fold to ``I``: UTS #39's skeleton merges the two, a reader does not.

Folding must not take meaning from other languages (a multilingual guard reads Russian),
so it is per word (a run of letters and digits), in :func:`fold_words`:

* a word of Latin letters only (ASCII, small capitals...) folds its look-alikes
  (``ʀᴀɴsᴏᴍ``), but letters of a living Latin orthography (Turkish ``ı``, Vietnamese
  ``đ``, Polish ``ł``...) are kept;
* a word mixing Latin letters (ASCII or look-alikes) with another script folds every
  look-alike in it (``ехрlоit``, ``ʀаɴѕᴏᴍ``) unless it has as many letters with no
  Latin look-alike (then it is a foreign word with a slip: Russian ``пpивет``);
* a word made only of look-alikes from other scripts (``ѕсам``) folds when the text
  around it on its line (:data:`WINDOW` characters each side) has more ASCII letters
  than letters with no Latin look-alike: Russian prose, where most words have such
  letters, is left as it is, and so is a lone word (``как``); padding a message with
  Russian on other lines does not shield an English sentence;
* a Latin word where most letters carry an accent (``ŕáńśóḿ``) loses them;
* any other word (``привет``, ``café``, ``東京``, a Russian word with a Latin letter typed
  by mistake) is left as it is.

Only the guard's copy is folded; the model reads the client's text unchanged.
"""

from __future__ import annotations

import functools
import operator
import re
import string
import unicodedata
from collections.abc import Iterable
from typing import NamedTuple

#: Latin letters of living orthographies that UTS #39 or their names relate to an ASCII
#: letter: kept in a Latin-only word (Turkish ``ılık`` is not ``ilik``; Hausa, Fula and
#: Ewe write ``ɓ ɗ ƙ ƴ ɖ ƒ ɣ ʋ ɛ``).
KEEP = frozenset("ıɣƔʋƲǀđĐłŁøØħĦŧŦǥǤɛƐɓƁɗƊƙƘƴƳɖƉƒƑ")
#: Where the data's nearest ASCII letter is not the one a reader sees (UTS #39 relates the
#: epsilons to ``c`` through ``ϲ``).
_READ_AS = {"ε": "e", "ϵ": "e", "ɛ": "e", "ԑ": "e", "є": "e", "Ɛ": "E", "Є": "E", "Ԑ": "E"}

_NAMED = (
    # (name pattern, case of the result): the letter is the pattern's last group
    (re.compile(r"LATIN (?:LETTER SMALL CAPITAL|SMALL CAPITAL LETTER) ([A-Z])"), str.lower),
    (re.compile(r"LATIN SMALL LETTER ([A-Z]) WITH .+"), str.lower),
    (re.compile(r"LATIN CAPITAL LETTER ([A-Z]) WITH .+"), str.upper),
)
#: Blocks searched by name: Latin Extended A-G, IPA, phonetic extensions.
_NAMED_BLOCKS = (
    (0x0100, 0x02AF),
    (0x1D00, 0x1DBF),
    (0x2C60, 0x2C7F),
    (0xA720, 0xA7FF),
    (0xAB30, 0xAB6F),
    (0x10780, 0x107BF),
    (0x1DF00, 0x1DFFF),
)
#: Symbols that are Latin letters in a frame, and regional indicators (flag letters):
#: folded everywhere, before NFKC (which would turn ``⒜`` into ``(a)``).
_FRAMED = re.compile(
    r"(?:.* )?LATIN (CAPITAL|SMALL) LETTER ([A-Z])|REGIONAL INDICATOR SYMBOL LETTER ([A-Z])"
)
_FRAMED_BLOCKS = ((0x2460, 0x24FF), (0x1F100, 0x1F1FF))
_ALNUM = frozenset(string.ascii_letters + string.digits)


def _uts39() -> dict[str, str]:
    from confusable_homoglyphs import confusables

    table: dict[str, str] = {}
    for target in string.ascii_letters + string.digits:
        for found in confusables.is_confusable(target, greedy=True) or ():
            for glyph in found["homoglyphs"]:
                char = glyph["c"].strip("\u200e")  # RTL entries are wrapped in LRMs
                if len(char) == 1 and not char.isascii():
                    table.setdefault(char, "I" if target == "l" and char.isupper() else target)
    return table


def _named() -> dict[str, str]:
    table: dict[str, str] = {}
    for low, high in _NAMED_BLOCKS:
        for point in range(low, high + 1):
            char = chr(point)
            if unicodedata.decomposition(char):  # accented letters: NFKC keeps them composed
                continue
            name = unicodedata.name(char, "")
            for pattern, case in _NAMED:
                match = pattern.fullmatch(name)
                if match:
                    table[char] = case(match[1])
                    break
    return table


@functools.cache
def framed() -> dict[int, str]:
    """``str.translate`` table: enclosed Latin letters and regional indicators."""
    table: dict[int, str] = {}
    for low, high in _FRAMED_BLOCKS:
        for point in range(low, high + 1):
            match = _FRAMED.fullmatch(unicodedata.name(chr(point), ""))
            if match and match[2]:
                table[point] = match[2] if match[1] == "CAPITAL" else match[2].lower()
            elif match:
                table[point] = match[3]
    return table


@functools.cache
def lookalikes() -> dict[str, str]:
    """Every character the guard may read as an ASCII letter or digit, and which."""
    from confusable_homoglyphs import confusables

    table = _uts39()
    named = {c: t for c, t in _named().items() if c not in table}
    table.update(named)
    # Letters UTS #39 relates only to a named prototype (Cyrillic т to ᴛ, к to ĸ to ᴋ).
    frontier = dict(named)
    for _ in range(2):
        step: dict[str, str] = {}
        for char, target in frontier.items():
            for found in confusables.is_confusable(char, greedy=True) or ():
                for glyph in found["homoglyphs"]:
                    other = glyph["c"].strip("\u200e")
                    if len(other) == 1 and not other.isascii() and other not in table:
                        step[other] = target.lower() if other.islower() else target
        table.update(step)
        frontier = step
    table.update(_READ_AS)
    return {c: t for c, t in table.items() if t in _ALNUM and c.isalnum()}


#: Precomposed Latin letters (Latin-1, Extended-A and B, Extended Additional).
_ACCENTED = re.compile("[\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]")


class _Tables(NamedTuple):
    full: dict[int, str]  # every look-alike
    latin_only: dict[int, str]  # the same, less KEEP
    foreign: frozenset[str]  # look-alikes of scripts other than Latin
    unambiguous: re.Pattern[str]  # letters with no Latin look-alike
    few: re.Pattern[str]  # all of _hits' cases in one pass, for mostly-ASCII text
    beside: re.Pattern[str]  # ASCII beside non-ASCII, for mostly non-ASCII text
    any_word: re.Pattern[str]  # a whole word of look-alikes
    latin_letter: re.Pattern[str]  # a Latin look-alike (small capitals...)


@functools.cache
def _tables() -> _Tables:
    """Tables and patterns of :func:`fold_words`. Each pattern starts with one character
    class, so the regex engine skips what cannot match at full speed; look-behinds and
    look-aheads fix where a word starts and ends (linear). Supplementary characters are
    one range: a class with hundreds of supplementary ranges tests them one by one."""
    from confusable_homoglyphs import categories

    table = lookalikes()
    foreign = frozenset(c for c in table if categories.alias(c) not in ("LATIN", "COMMON"))

    def chars(keys: Iterable[str]) -> str:
        return re.escape("".join(c for c in keys if c < "\U00010000")) + "\U00010000-\U0010ffff"

    def word(letters: str) -> re.Pattern[str]:
        return re.compile(f"[{letters}](?<![^\\W_].)[{letters}]*(?![^\\W_])")

    letters = chars(table)
    return _Tables(
        full={ord(c): t for c, t in table.items()},
        latin_only={ord(c): t for c, t in table.items() if c not in KEEP},
        foreign=foreign,
        unambiguous=re.compile(f"[^\\W\\d_A-Za-z{letters}]"),
        few=re.compile(
            "[^\\x00-\\x7f](?:(?<=[A-Za-z0-9].)|(?=[A-Za-z0-9])"
            f"|(?<={_ACCENTED.pattern})|(?<![^\\W_].)(?<=[{letters}])[{letters}]*(?![^\\W_]))"
        ),
        beside=re.compile("[A-Za-z0-9](?:(?<=[^\\x00-\\x7f].)|(?=[^\\x00-\\x7f]))"),
        any_word=word(letters),
        latin_letter=re.compile(f"[{chars(c for c in table if c not in foreign)}]"),
    )


def _hits(text: str, t: _Tables) -> list[int]:
    """Where a word may need folding: an accented Latin letter; if the text has ASCII
    letters, a non-ASCII character beside an ASCII one, a word of look-alikes; if not, a
    Latin look-alike (small capitals). Prose of one script (Russian, Chinese) is scanned
    by the regex engine only, never character by character in Python."""
    if not _ASCII_LETTER.search(text):
        hits = [m.start() for m in t.latin_letter.finditer(text)]
    elif len(text.encode("ascii", "ignore")) * 2 >= len(text):
        return [m.start() for m in t.few.finditer(text)]  # one pass, non-ASCII led
    else:
        hits = [m.start() for m in t.beside.finditer(text)]
        hits += [m.start() for m in t.any_word.finditer(text)]
    return sorted(hits + [m.start() for m in _ACCENTED.finditer(text)])


def _unaccented(word: str) -> str | None:
    """``word`` without accents when most of its letters carry one (``ŕáńśóḿ``): no
    orthography writes that (French ``éméché`` has half, Czech ``užívá`` three of five)."""
    if len(word) < 5:
        return None
    bare = word.translate(_bare_letters())
    accented = sum(map(operator.ne, word, bare))
    return bare if accented * 5 > len(word) * 3 else None


@functools.cache
def _bare_letters() -> dict[int, str]:
    """``str.translate`` table: each precomposed Latin letter to its base letter."""
    table = {}
    for low, high in ((0xC0, 0x24F), (0x1E00, 0x1EFF)):
        for point in range(low, high + 1):
            base = unicodedata.normalize("NFD", chr(point))[0]
            if base != chr(point):
                table[point] = base
    return table


def _rtl(char: str) -> bool:
    return unicodedata.bidirectional(char) in ("R", "AL")


_WORD = re.compile(r"[^\W_]+")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_NOT_ASCII_LETTERS = re.compile(r"[^A-Za-z]+")
#: How far (characters, each side) the context of a word of look-alikes reaches.
WINDOW = 64


def fold_words(text: str) -> str:
    """``text`` with look-alike letters folded to Latin by the word rule above."""
    t = _tables()
    spans: list[tuple[int, int, str]] = []  # (start, end, folded) of words to replace
    candidates: list[tuple[int, int, str]] = []  # words made only of look-alikes
    done = 0
    for hit in _hits(text, t):
        if hit < done:
            continue
        start, end = hit, hit + 1
        while start > done and text[start - 1].isalnum():
            start -= 1
        for word in _WORD.finditer(text, start):
            if word.start() >= end:
                break
            done = end = word.end()
            chars = word[0]
            if chars.isascii():
                continue
            folded = chars.translate(t.full)
            if folded == chars:
                bare = _unaccented(chars)
                if bare:
                    spans.append((word.start(), end, bare))
                continue
            if t.foreign.isdisjoint(chars):  # Latin letters only (ASCII, small capitals...)
                spans.append((word.start(), end, chars.translate(t.latin_only)))
                continue
            latin = len(_NOT_ASCII_LETTERS.sub("", chars)) + len(t.latin_letter.findall(chars))
            if latin:  # Latin and another script in one word
                if len(t.unambiguous.findall(chars)) < latin:  # else: Russian пpивет
                    spans.append((word.start(), end, folded))
            elif folded.isalpha() and folded.isascii() and not any(map(_rtl, chars)):
                candidates.append((word.start(), end, folded))
    latin, last = False, -WINDOW
    for start, end, folded in candidates:
        if start - last > 8 or "\n" in text[last:start]:  # else: the same context
            before = text[max(0, start - WINDOW) : start].rsplit("\n", 1)[-1]
            around = before + " " + text[end : end + WINDOW].split("\n", 1)[0]
            latin = len(_NOT_ASCII_LETTERS.sub("", around)) > len(t.unambiguous.findall(around))
        last = end
        if latin:
            spans.append((start, end, folded))
    if not spans:
        return text
    pieces, at = [], 0
    for start, end, folded in sorted(spans):
        pieces += [text[at:start], folded]
        at = end
    pieces.append(text[at:])
    return "".join(pieces)
