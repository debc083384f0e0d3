"""Length checks before training: no row is silently cut.

TRL truncates an SFT row longer than ``max_length`` without a word, and with the
default ``truncation_mode: keep_start`` the cut falls on the END of the row: the
assistant's ``Answer:`` line, sometimes its ``</think>``. The model then learns to
reason and stop without answering. In RL, TRL 1.16 never truncates prompts, so a prompt
that leaves less than ``max_completion_length`` positions in the model's context cannot
be answered in full.

So before any training both stages render every row with the tokenizer and chat
template TRL will use, count the rows over the limit, say what they lose, and stop
unless the recipe sets ``truncation: allow``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from secreason.reasoning import THINK, split
from secreason.train.stage import StageError

TRUNCATION_MODES = ("refuse", "allow")


class TruncationError(StageError):
    """Rows would be cut by the length limit and the recipe did not allow it."""


@dataclass
class LengthReport:
    """What the length limit does to a training set."""

    stage: str
    limit_name: str
    limit: int
    rows: int
    longest: int = 0
    over: list[int] = field(default_factory=list)  # row indices over the limit
    lose_answer: int = 0  # ... whose answer line is cut (in part or whole)
    lose_close: int = 0  # ... whose closing reasoning tag is cut too
    lose_start: int = 0  # ... cut at the start (keep_end truncation, RL context)
    split_rows: bool = False  # packing with bfd_split: rows split, not cut

    def summary(self) -> str:
        n = len(self.over)
        if not n:
            return (
                f"{self.stage}: all {self.rows:,} rows fit {self.limit_name}={self.limit} "
                f"(longest {self.longest} tokens)"
            )
        head = (
            f"{self.stage}: {n:,} of {self.rows:,} rows are longer than "
            f"{self.limit_name}={self.limit} tokens (longest {self.longest})"
        )
        if self.split_rows:
            return f"{head}; packing_strategy bfd_split splits them into pieces"
        lost = []
        if self.lose_answer:
            lost.append(f"{self.lose_answer:,} lose their answer line")
        if self.lose_close:
            lost.append(f"{self.lose_close:,} lose the closing {THINK.close} too")
        if self.lose_start:
            lost.append(f"{self.lose_start:,} lose the start of the prompt")
        rest = n - self.lose_answer - self.lose_start
        if rest > 0:
            lost.append(f"{rest:,} lose only the end-of-turn token(s)")
        first = ", ".join(str(i) for i in self.over[:5])
        return f"{head}: {'; '.join(lost)} (rows {first}{', ...' if n > 5 else ''})"

    def fix(self) -> str:
        if self.stage == "rl":
            return (
                f"raise the model's context, lower max_completion_length, drop the long "
                f"prompts, or set truncation: allow (prompts over {self.limit} tokens then "
                "generate until the context ends)"
            )
        return (
            f"raise max_length to at least {self.longest}, drop the long rows, or set "
            "truncation: allow in the recipe to train on the cut rows anyway"
        )


def _tokens(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    if not texts:
        return []
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [len(x) for x in ids]


def _render(tokenizer: Any, turns: Any, template: str | None, **kw: Any) -> str:
    return str(
        tokenizer.apply_chat_template(list(turns), tokenize=False, chat_template=template, **kw)
    )


def sft_lengths(
    data: Any,
    tokenizer: Any,
    max_length: int,
    *,
    keep: str = "keep_start",
    packing_strategy: str | None = None,
    template: str | None = None,
) -> LengthReport:
    """Count SFT rows (a ``messages`` column) longer than ``max_length`` tokens."""
    rendered = [_render(tokenizer, m, template) for m in data["messages"]]
    lengths = _tokens(tokenizer, rendered)
    report = LengthReport("sft", "max_length", max_length, len(rendered))
    report.longest = max(lengths, default=0)
    report.over = [i for i, n in enumerate(lengths) if n > max_length]
    report.split_rows = packing_strategy == "bfd_split"
    for i in report.over:
        text, turns = rendered[i], data["messages"][i]
        reply = str(turns[-1].get("content", "")) if turns else ""
        at = text.rfind(reply) if reply else -1
        if keep == "keep_end" or at < 0:
            report.lose_start += 1
            continue
        close = reply.rfind(THINK.close)
        answer = split(reply, prefilled=True).answer
        # Tokens needed to keep the closing tag, and to keep the whole answer line.
        cut = [text[: at + close + len(THINK.close)]] if close >= 0 else []
        cut.append(text[: at + (reply.rfind(answer) + len(answer) if answer else len(reply))])
        needed = _tokens(tokenizer, cut)
        if needed[-1] > max_length:
            report.lose_answer += 1
            if close >= 0 and needed[0] > max_length:
                report.lose_close += 1
    return report


def rl_lengths(
    data: Any, tokenizer: Any, context: int, max_completion_length: int, template: str | None = None
) -> LengthReport:
    """Count RL prompts that leave fewer than ``max_completion_length`` positions."""
    limit = context - max_completion_length
    rendered = [_render(tokenizer, p, template, add_generation_prompt=True) for p in data["prompt"]]
    lengths = _tokens(tokenizer, rendered)
    report = LengthReport("rl", f"context {context} - max_completion_length", limit, len(lengths))
    report.longest = max(lengths, default=0)
    report.over = [i for i, n in enumerate(lengths) if n > limit]
    # Generation past the context fails or drops the prompt's start; either way the
    # completion cannot reach its answer.
    report.lose_answer = len(report.over)
    return report


def model_context(model_name_or_path: str) -> int | None:
    """The model's position limit from its config (None when it does not say)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_name_or_path)
    except (OSError, ValueError):
        return None
    config = getattr(config, "text_config", config)
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) else None


def enforce(report: LengthReport, mode: str) -> None:
    """Print the verdict; raise unless nothing is lost or the recipe allows it."""
    if mode not in TRUNCATION_MODES:
        raise TruncationError(f"truncation: {mode!r} is not one of {', '.join(TRUNCATION_MODES)}")
    if not report.over or report.split_rows:
        print(f"[secreason] {report.summary()}", file=sys.stderr)
        return
    if mode == "allow":
        print(f"[secreason] warning: {report.summary()} (truncation: allow)", file=sys.stderr)
        return
    raise TruncationError(f"{report.summary()}. Fix: {report.fix()}")


def check_sft(recipe: Any, data: Any, tokenizer: Any) -> LengthReport | None:
    """The SFT stage's check (None when the recipe sets no ``max_length``)."""
    if recipe.max_length is None:
        return None
    strategy = recipe.packing_strategy if recipe.packing else None
    report = sft_lengths(
        data,
        tokenizer,
        recipe.max_length,
        keep=recipe.truncation_mode,
        packing_strategy=strategy,
        template=_template_text(recipe),
    )
    enforce(report, recipe.truncation)
    return report


def check_rl(recipe: Any, data: Any, tokenizer: Any) -> LengthReport | None:
    """The RL stage's check (None when the model's context is unknown)."""
    context = recipe.vllm_max_model_length if recipe.use_vllm else None
    context = context or model_context(recipe.model_name_or_path)
    if context is None:
        return None
    report = rl_lengths(
        data, tokenizer, context, recipe.max_completion_length, _template_text(recipe)
    )
    enforce(report, recipe.truncation)
    return report


def _template_text(recipe: Any) -> str | None:
    """The recipe's own chat template file, as TRL would apply it (else the tokenizer's)."""
    from pathlib import Path

    path = getattr(recipe, "chat_template_path", None)
    if path and Path(path).is_file() and str(path).endswith((".jinja", ".j2")):
        return Path(path).read_text(encoding="utf-8")
    return None
