from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from secreason.reasoning import split
from secreason.train.tiny import TinyConfig, build_tiny_model


def test_loads_offline_with_auto_classes(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.num_hidden_layers == 4
    assert tok.pad_token_id is not None and tok.eos_token_id is not None
    assert tok.padding_side == "left"


@pytest.mark.parametrize("tag", ["<think>", "</think>"])
def test_think_tags_are_single_non_special_tokens(tiny_model_dir: Path, tag: str) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok.encode(tag, add_special_tokens=False)
    assert len(ids) == 1
    assert tok.decode(ids, skip_special_tokens=True) == tag


def test_tags_survive_skip_special_tokens_so_the_contract_splits(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok.encode("first step</think>\nAnswer: CWE-79<|end|>", add_special_tokens=False)
    text = tok.decode(ids, skip_special_tokens=True)
    parts = split(text, prefilled=True)
    assert parts.status == "prefilled"
    assert parts.answer == "Answer: CWE-79"


def test_template_prefills_think_and_masks_only_assistant(tiny_model_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    user = [{"role": "user", "content": "Which CWE?"}]
    prompt = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>\n<think>\n")
    convo = [*user, {"role": "assistant", "content": "<think>\nwhy</think>\nAnswer: CWE-79"}]
    out = tok.apply_chat_template(
        convo, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tok.decode(masked) == "<think>\nwhy</think>\nAnswer: CWE-79<|end|>"


def test_no_prefill_and_default_system_prompt(tmp_path: Path) -> None:
    cfg = TinyConfig(prefill_think=False, default_system="Be precise.", num_layers=1)
    path = build_tiny_model(tmp_path / "m", config=cfg)
    tok = AutoTokenizer.from_pretrained(path)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|bos|><|system|>\nBe precise.<|end|>\n<|user|>\nhi<|end|>\n<|assistant|>\n"


def test_same_seed_same_model(tmp_path: Path) -> None:
    cfg = TinyConfig(num_layers=1, hidden_size=32, intermediate_size=64)
    a = build_tiny_model(tmp_path / "a", seed=3, config=cfg)
    b = build_tiny_model(tmp_path / "b", seed=3, config=cfg)
    c = build_tiny_model(tmp_path / "c", seed=4, config=cfg)
    blob = lambda p: (p / "model.safetensors").read_bytes()  # noqa: E731
    assert blob(a) == blob(b) != blob(c)
    assert json.loads((a / "tokenizer.json").read_text()) == json.loads(
        (b / "tokenizer.json").read_text()
    )
