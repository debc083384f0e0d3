"""Log-likelihood multiple choice through an OpenAI-compatible server's ``top_logprobs``.

Why: a model served by vLLM or SGLang should be scorable the way a local one is
(``evals.loglik``) without loading it twice. The server cannot score a given
continuation, but it can say how likely each next token is: one request per item asks
for ``max_tokens=1`` with ``logprobs`` and ``top_logprobs=20`` after the conversation
and an assistant turn that already reads ``Answer:`` (continued, not answered anew:
``continue_final_message`` / ``add_generation_prompt=false``, the vLLM and SGLang
extension), and each option letter's log-probability is read from the top tokens
(`` A`` and ``A`` pooled with log-sum-exp). A letter outside the top 20 is left out; an
item with no letter in them is judged as an empty answer (invalid), never guessed.

A server that returns no ``top_logprobs`` is refused with a message naming it; a server
that ignores ``continue_final_message`` would score the first token of a fresh reply,
which this module cannot see: use vLLM or SGLang (or the transformers backend).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

TOP_LOGPROBS = 20


class NoLogprobs(RuntimeError):
    """The server answered without the token log-probabilities the mode needs."""


def letter_logprobs(top: Sequence[dict[str, Any]], letters: Sequence[str]) -> dict[str, float]:
    """Per letter, the log-sum-exp of the top tokens that read as it (`` A``, ``A``)."""
    out: dict[str, float] = {}
    for letter in letters:
        hits = [float(t["logprob"]) for t in top if str(t.get("token", "")).strip() == letter]
        if hits:
            peak = max(hits)
            out[letter] = peak + math.log(sum(math.exp(h - peak) for h in hits))
    return out


def request_body(
    model: str, conversation: list[dict[str, str]], prefix: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """The chat request: the conversation, then an assistant turn to continue."""
    return {
        **extra,
        "model": model,
        "messages": [*conversation, {"role": "assistant", "content": prefix}],
        "max_tokens": 1,
        "temperature": 0.0,
        "logprobs": True,
        "top_logprobs": TOP_LOGPROBS,
        "continue_final_message": True,
        "add_generation_prompt": False,
    }


def top_of(payload: dict[str, Any], url: str) -> list[dict[str, Any]]:
    """The first generated token's ``top_logprobs``, or :class:`NoLogprobs`."""
    try:
        content = payload["choices"][0]["logprobs"]["content"]
        top = content[0]["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        top = None
    if not top:
        raise NoLogprobs(
            f"{url} returned no top_logprobs (asked for logprobs=true, top_logprobs="
            f"{TOP_LOGPROBS}): --mc-mode loglik needs a server that returns them (vLLM, "
            "SGLang) or --backend transformers"
        )
    return list(top)


def server_choice_logprobs(
    backend: Any,
    conversations: Sequence[list[dict[str, str]]],
    prefixes: Sequence[str],
    letters: Sequence[str],
) -> list[dict[str, float]]:
    """Per conversation, the option letters' log-probabilities after its ``prefix``."""
    import httpx

    url = f"{backend.base_url}/chat/completions"
    headers = {"Authorization": f"Bearer {backend.api_key}"}
    extra = dict(getattr(backend, "extra_body", {}) or {})

    with httpx.Client(timeout=float(getattr(backend, "timeout", 600.0))) as client:

        def one(pair: tuple[list[dict[str, str]], str]) -> dict[str, float]:
            body = request_body(backend.model_id, pair[0], pair[1], extra)
            response = client.post(url, json=body, headers=headers)
            if response.status_code >= 400:
                raise NoLogprobs(
                    f"{url} refused the log-probability request ({response.status_code}): "
                    f"{response.text[:300]}"
                )
            return letter_logprobs(top_of(response.json(), url), letters)

        workers = max(1, int(getattr(backend, "concurrency", 8)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, zip(conversations, prefixes, strict=True)))
