"""Whether a conversation fits the model's context, decided before it is queued.

A prompt longer than the model can attend to fails inside ``generate``, where it would
take its whole batch down (or, behind an upstream, comes back as the upstream's own
error). Counting it on arrival refuses it alone, with a 400 that says by how much.
The count uses the model's own chat template and a private copy of its tokenizer (the
model thread tokenises with the original, and tokenizers are not safe to share across
threads while one is in use).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

from secreason.backends.base import Message, SamplingParams
from secreason.serve.engine_base import EngineError


def context_length(backend: Any) -> int | None:
    """Positions the model can attend to (its config), else the tokenizer's own limit."""
    config = getattr(getattr(backend, "model", None), "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(getattr(backend, "tokenizer", None), "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else None


class ContextOverflow(EngineError):
    """Prompt + max_tokens over the context (a 400); ``room`` is the most that fits."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context_length: int) -> None:
        self.room = context_length - prompt_tokens
        fix = (
            f"send max_tokens <= {self.room} or a shorter conversation"
            if self.room > 0
            else "shorten the conversation"
        )
        super().__init__(
            f"the prompt is {prompt_tokens} tokens; with max_tokens={max_tokens} it "
            f"exceeds the model's context of {context_length} tokens: {fix}",
            400,
        )


class PromptCounter:
    """Counts a conversation's prompt tokens and refuses one that cannot fit.

    ``render`` turns a conversation into the exact prompt text (chat template and
    generation prompt); ``tokenizer`` is copied on first use.
    """

    def __init__(
        self,
        tokenizer: Any,
        render: Callable[[list[Message]], str],
        context_length: int | None,
    ) -> None:
        self.tokenizer = tokenizer
        self.render = render
        self.context_length = context_length
        self._counter: Any = None  # the private copy

    async def prepare(self, messages: list[Message], params: SamplingParams) -> int:
        """The prompt's tokens; :class:`EngineError` (400) when it cannot be served."""
        tokens = await asyncio.to_thread(self.count, messages)
        if self.context_length and tokens + params.max_tokens > self.context_length:
            raise ContextOverflow(tokens, params.max_tokens, self.context_length)
        return tokens

    def count(self, messages: list[Message]) -> int:
        try:
            prompt = self.render(messages)
        except Exception as error:  # e.g. a template that requires alternating roles
            raise EngineError(
                f"the model's chat template refused this conversation: {error}"[:500], 400
            ) from None
        if self._counter is None:
            try:
                self._counter = copy.deepcopy(self.tokenizer)
            except Exception:  # a tokenizer that cannot be copied is shared (read only)
                self._counter = self.tokenizer
        try:
            return len(self._counter(prompt, add_special_tokens=False)["input_ids"])
        except Exception as error:  # refused here, it cannot fail a batch later
            raise EngineError(f"the prompt could not be tokenised: {error}"[:300], 400) from None


def load_counter(source: str) -> PromptCounter:
    """A counter from a tokenizer folder or hub id (its chat template renders prompts).

    For engines that do not hold the model themselves (an upstream): the count is exact
    when this is the tokenizer and template the upstream serves. Raises ``ValueError``
    naming ``source`` when it cannot be loaded or has no chat template.
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as error:
        raise ValueError(f"{source}: no tokenizer could be loaded ({error})"[:500]) from None
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{source}: the tokenizer has no chat template to render prompts with")

    def render(messages: list[Message]) -> str:
        return str(
            tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        )

    return PromptCounter(tokenizer, render, None)
