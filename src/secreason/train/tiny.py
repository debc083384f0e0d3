"""A tiny reasoning model made from nothing, offline and deterministic.

Tests, the demo and the benchmarks need a real model whose tokenizer, chat template
and think tags behave like the real 8B one, but nothing may be downloaded. So we train
a byte-level BPE tokenizer on text we make, build a small Llama from a config and save
both as an ordinary Hugging Face folder that ``AutoModelForCausalLM`` /
``AutoTokenizer`` load offline.

Choices that matter downstream:

* ``<think>`` and ``</think>`` are added as NON-special tokens: TRL decodes GRPO
  completions with ``skip_special_tokens=True`` before rewards see them, so special
  think tags would vanish and every completion would look like it skipped reasoning.
* The chat template wraps assistant turns in ``{% generation %}`` markers, so TRL's
  assistant-only loss works.
* With ``prefill_think`` (the default, as Foundation-Sec-8B-Reasoning's template does)
  the generation prompt ends with ``<think>\\n``; completions then start inside the
  reasoning and the reasoning contract reads them with ``prefilled=True``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

BOS, EOS, PAD = "<|bos|>", "<|end|>", "<|pad|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
THINK_TOKENS = ("<think>", "</think>")

_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] != 'system' and default_system %}"
    "<|system|>\n{{ default_system }}<|end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|assistant|>\n{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}\n"
    "{% else %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{{ prefill }}{% endif %}"
)


@dataclass(frozen=True)
class TinyConfig:
    """Shape of the tiny model; the defaults train a format in ~1 minute on 2 cores."""

    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 1024
    prefill_think: bool = True
    default_system: str = ""


def default_corpus() -> list[str]:
    """Text the tokenizer learns from when the caller gives none: the answer formats
    and identifiers of the project's tasks, in plain, regular sentences."""
    lines = [
        "Answer: A",
        "Answer: B",
        "Answer: C",
        "Answer: D",
        "The weakness is CWE-79, improper neutralization of input during web page generation.",
        "CWE-787 out-of-bounds write. CWE-125 out-of-bounds read. CWE-89 SQL injection.",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H has base score 9.8, critical.",
        "CVSS:3.1/AV:L/AC:H/PR:L/UI:R/S:C/C:L/I:L/A:N",
        "Technique T1059.001 PowerShell belongs to the execution tactic.",
        "T1071 application layer protocol, T1573 encrypted channel, command and control.",
        "The group APT29 is also known as Cozy Bear. The actor uses spearphishing.",
        "Let me think step by step. First, the description mentions a buffer.",
        "So the answer is the option that matches the mitigation.",
    ]
    digits = " ".join(str(i) for i in range(100))
    return lines + [digits, "".join(chr(c) for c in range(32, 127))]


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 1024):  # -> TokenizersBackend
    """Train a byte-level BPE tokenizer and wrap it for transformers."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [PAD, BOS, EOS, *ROLE_TOKENS]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    # Non-special on purpose (see module docstring).
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",
    )


def chat_template(config: TinyConfig) -> str:
    prefill = "<think>\n" if config.prefill_think else ""
    system = json.dumps(config.default_system)
    return (
        "{% set prefill = "
        + json.dumps(prefill)
        + " %}{% set default_system = "
        + (system + " %}" + _TEMPLATE)
    )


def build_tiny_model(
    out_dir: str | Path,
    seed: int = 0,
    corpus: Iterable[str] | None = None,
    config: TinyConfig = TinyConfig(),
) -> Path:
    """Build, save and return the folder of a tiny Llama reasoning model."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(
        corpus if corpus is not None else default_corpus(), config.vocab_size
    )
    tokenizer.chat_template = chat_template(config)

    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(model_config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "secreason_tiny.json").write_text(json.dumps({"seed": seed, **asdict(config)}) + "\n")
    return out
