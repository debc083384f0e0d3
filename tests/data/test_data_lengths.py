"""Length percentiles and rows over the trainers' limits, in words or a real tokenizer's tokens."""

from __future__ import annotations

from pathlib import Path

from secreason.data.lengths import LengthConfig, length_stats


def test_words_percentiles_and_over_limit() -> None:
    texts = [" ".join(["w"] * n) for n in range(1, 101)]  # 1..100 words
    out = length_stats({"sft": (texts, 90), "rl": ([], 5)}, LengthConfig())
    assert out["unit"].startswith("whitespace words") and "lower bound" in out["unit"]
    sft = out["splits"]["sft"]
    assert (sft["n"], sft["p50"], sft["p90"], sft["max"], sft["over_limit"]) == (
        100,
        51,
        91,
        100,
        10,
    )
    assert "rl" not in out["splits"]  # an empty split has no percentiles


def test_a_saved_tokenizer_counts_tokens(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(vocab={"[UNK]": 0, "a": 1, ".": 2}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()  # "a." is two tokens, one word
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]").save_pretrained(tmp_path)
    out = length_stats({"sft": (["a. a. a.", "a"], 4)}, LengthConfig(tokenizer=str(tmp_path)))
    assert out["unit"].startswith("tokens (")
    assert out["splits"]["sft"]["max"] == 6 and out["splits"]["sft"]["over_limit"] == 1
