"""The vectorised n-gram hashes agree with a plain Python reading of the same text."""

from __future__ import annotations

import random

import pytest

from secreason.data import ngrams


def _python_grams(text: str, n: int) -> list[tuple[str, ...]]:
    w = ngrams.words(text)
    return [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("CVE-2021-44228 in log4j", ["cve", "2021", "44228", "in", "log4j"]),
        ("  tabs\tand\nnewlines  ", ["tabs", "and", "newlines"]),
        ("naïve café", ["naive", "cafe"]),
        ("漏洞 利用", ["漏洞", "利用"]),
        ("ｆｕｌｌ\u00a0wіdth\u200b\u2014x", ["full", "width", "x"]),
        ("a &amp; b<br>c <b>d</b>e", ["a", "b", "c", "de"]),
        ("", []),
        ("...", []),
        ("a" * 40 + " b", ["a" * 40, "b"]),
    ],
    ids=[
        "punct",
        "cve",
        "whitespace",
        "accents",
        "cjk",
        "disguised",
        "html",
        "empty",
        "only-punct",
        "long-word",
    ],
)
def test_normalised_words(text: str, expected: list[str]) -> None:
    assert ngrams.words(text) == expected
    c = ngrams.chunk([text])
    assert len(c.word_hash) == len(expected)


def test_gram_hashes_match_python_grams_and_never_cross_documents() -> None:
    rng = random.Random(0)
    vocab = ["alpha", "beta", "gamma", "delta", "x" * 35, "x" * 36, "café", "7"]
    docs = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 30))) for _ in range(200)]
    c = ngrams.chunk(docs)
    hashes, doc = ngrams.ngram_hashes(c, 4)
    by_gram: dict[tuple[str, ...], int] = {}
    k = 0
    for d, text in enumerate(docs):
        for g in _python_grams(text, 4):
            assert int(doc[k]) == d
            h = int(hashes[k])
            assert by_gram.setdefault(g, h) == h  # same words -> same hash
            k += 1
    assert k == len(hashes)
    assert len(set(by_gram.values())) == len(by_gram)  # distinct words -> distinct hashes


def test_case_and_punctuation_do_not_matter_but_words_do() -> None:
    c = ngrams.chunk(["The quick, brown fox!", "the QUICK brown fox", "the quick brown box"])
    h, d = ngrams.ngram_hashes(c, 4)
    assert h[d == 0].tolist() == h[d == 1].tolist() != h[d == 2].tolist()


def test_cve_ids_per_document() -> None:
    c = ngrams.chunk(["see CVE-2021-44228 and cve-2014-0160", "none", "CVE-1999-0001."])
    assert ngrams.cve_ids(c) == [{"CVE-2021-44228", "CVE-2014-0160"}, set(), {"CVE-1999-0001"}]


def test_bad_n() -> None:
    with pytest.raises(ValueError, match="n-gram size"):
        ngrams.ngram_hashes(ngrams.chunk(["a b"]), 0)
