"""A vLLM reasoning parser that follows secreason's reasoning contract (``secreason``).

vLLM's built-in parsers disagree with the contract where it matters for a cyber model
whose template prefills ``<think>``: ``deepseek_r1`` puts a completion that never
closes its reasoning entirely in ``reasoning`` but treats an untagged reply of a
template that does *not* prefill as reasoning too, and streaming parsers differ on a
prefilled tag. This parser reads every completion through
:func:`secreason.reasoning.split` (and :func:`~secreason.reasoning.split_ids` for token
ids), so vLLM, ``secreason serve`` and ``secreason eval`` agree:

* an unclosed block is reasoning and there is NO answer (``content`` is None);
* the answer is what follows the last ``</think>``; a reopened block is not answer;
* without a prefill and without tags, the whole text is the answer.

Whether the template prefills is read once from the tokenizer's chat template
(``$SECREASON_PREFILLED=1|0`` overrides). Launch::

    vllm serve MODEL --reasoning-parser-plugin \\
        $(python -c 'import secreason.integrations.vllm_reasoning as m; print(m.__file__)') \\
        --reasoning-parser secreason

When the tags are special tokens, vLLM's detokenizer drops them from the text: the
token-id methods still work, but send ``skip_special_tokens: false`` with requests
(or ``model.upstream_extra_body`` in ``secreason serve``) so the text keeps them.
The pure functions below hold all the logic; the vLLM class only adapts signatures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from secreason.reasoning import THINK, Split, split, split_ids
from secreason.serve.stream_split import held_back

Pair = tuple[str | None, str | None]


def split_final(text: str, *, prefilled: bool) -> Pair:
    """(reasoning, content) of a whole completion; None where a side is empty."""
    parts = split(text, prefilled=prefilled)
    reasoning = " ".join(p for p in (parts.leading, parts.reasoning) if p) or None
    if parts.status == "unclosed":
        return reasoning, None
    return reasoning, parts.answer or None


def _visible(text: str, prefilled: bool) -> Split:
    # A tail that may still become a tag ("...</thi") waits for the next delta.
    return split(text[: len(text) - held_back(text, THINK)], prefilled=prefilled)


def stream_delta(previous_text: str, current_text: str, *, prefilled: bool) -> Pair:
    """What one streamed delta adds to each side: the contract's split of the text so
    far minus its split of the text before. Text already sent is never re-assigned: a
    side whose split stops growing by prefix (malformed output) sends nothing more, and
    no reasoning follows content."""
    before = _visible(previous_text, prefilled)
    now = _visible(current_text, prefilled)
    reasoning = content = None
    if before.status != "unclosed" and before.answer:
        pass  # content started: later reasoning (a reopened block) is not streamed
    elif now.reasoning.startswith(before.reasoning) and now.reasoning != before.reasoning:
        reasoning = now.reasoning[len(before.reasoning) :]
    if now.status != "unclosed" and now.answer != before.answer:
        prev_answer = before.answer if before.status != "unclosed" else ""
        if now.answer.startswith(prev_answer):
            content = now.answer[len(prev_answer) :]
    return reasoning, content


def reasoning_ended(ids: Sequence[int], open_id: int, close_id: int) -> bool:
    """True once a ``</think>`` id has come and no ``<think>`` reopened after it."""
    ids = list(ids)
    if close_id not in ids:
        return False
    last_close = len(ids) - 1 - ids[::-1].index(close_id)
    return open_id not in ids[last_close + 1 :]


def content_ids(ids: Sequence[int], open_id: int, close_id: int, *, prefilled: bool) -> list[int]:
    """The answer's token ids (empty while or when the reasoning is unclosed)."""
    parts = split_ids(ids, open_id, close_id, prefilled=prefilled)
    return [] if parts.status == "unclosed" else parts.answer_ids


def template_prefills(tokenizer: Any) -> bool:
    """Does the chat template end the generation prompt inside ``<think>``?"""
    env = os.environ.get("SECREASON_PREFILLED", "").strip().lower()
    if env in ("1", "true", "yes", "0", "false", "no"):
        return env in ("1", "true", "yes")
    try:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
        )
    except Exception:  # no template: nothing is prefilled
        return False
    return str(prompt).rstrip().endswith(THINK.open)


def tag_ids(tokenizer: Any) -> tuple[int, int] | None:
    """Ids of ``<think>`` and ``</think>`` when each is one token of the vocabulary."""
    vocab = tokenizer.get_vocab()
    if THINK.open in vocab and THINK.close in vocab:
        return int(vocab[THINK.open]), int(vocab[THINK.close])
    return None


def _delta_message(reasoning: str | None, content: str | None) -> Any:
    try:  # vLLM >= 0.12 moved the protocol module and renamed the field
        from vllm.entrypoints.openai.engine.protocol import DeltaMessage
    except ImportError:
        from vllm.entrypoints.openai.protocol import DeltaMessage
    fields = getattr(DeltaMessage, "model_fields", None) or {}
    key = "reasoning" if "reasoning" in fields or not fields else "reasoning_content"
    return DeltaMessage(**{key: reasoning, "content": content})


try:
    from vllm.reasoning import ReasoningParser, ReasoningParserManager
except ImportError:  # vLLM absent (CPU machines): the pure functions above still work
    ReasoningParser = None

if ReasoningParser is not None:

    @ReasoningParserManager.register_module("secreason")
    class SecreasonReasoningParser(ReasoningParser):
        """vLLM's interface over the pure functions of this module."""

        def __init__(self, tokenizer: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(tokenizer, *args, **kwargs)
            self.prefilled = template_prefills(tokenizer)
            ids = tag_ids(tokenizer)
            self.start_token_id, self.end_token_id = ids if ids else (-1, -1)

        def is_reasoning_end(self, input_ids: Sequence[int]) -> bool:
            if self.end_token_id < 0:  # tags of several tokens: decide on the text
                text = self.model_tokenizer.decode(list(input_ids))
                last = text.rfind(THINK.close)
                return last >= 0 and THINK.open not in text[last:]
            return reasoning_ended(input_ids, self.start_token_id, self.end_token_id)

        def extract_content_ids(self, input_ids: list[int]) -> list[int]:
            return content_ids(
                input_ids, self.start_token_id, self.end_token_id, prefilled=self.prefilled
            )

        def extract_reasoning(self, model_output: str, request: Any) -> Pair:
            return split_final(model_output, prefilled=self.prefilled)

        def extract_reasoning_streaming(
            self,
            previous_text: str,
            current_text: str,
            delta_text: str,
            previous_token_ids: Sequence[int],
            current_token_ids: Sequence[int],
            delta_token_ids: Sequence[int],
        ) -> Any:
            reasoning, content = stream_delta(previous_text, current_text, prefilled=self.prefilled)
            if reasoning is None and content is None:
                return None
            return _delta_message(reasoning, content)

        # Names of vLLM releases before 0.11.
        extract_reasoning_content = extract_reasoning
        extract_reasoning_content_streaming = extract_reasoning_streaming
