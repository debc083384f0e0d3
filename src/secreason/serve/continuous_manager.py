"""transformers' continuous batching manager, set up and driven the way the server needs.

Everything that touches the manager's API is here, so that a transformers release that
changes it is fixed in one place (tests pin each piece on the real tiny model):

* :func:`start_manager`: one manager for the model, sampling for every row (the
  per-request processors need ``do_sample`` and a non-neutral default for each setting
  to exist), its paged KV cache sized explicitly off the GPU (transformers would take
  60 % of the free RAM on CPU).
* :func:`row_sampling`: a request's settings as the manager's per-row arguments: greedy
  is ``top_k=1`` (the argmax, what ``generate`` picks), sampling has top-k off, as
  OpenAI-compatible servers have it.
* :func:`drop_handler`: the manager delivers no final output for a cancelled request,
  so its result handler is removed here (through the router's own lock), and any output
  that raced the cancel into the shared queue (where nobody reads) is discarded.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from secreason.backends.base import SamplingParams

if TYPE_CHECKING:
    from secreason.backends.transformers import TransformersBackend

log = logging.getLogger("secreason.serve")

#: Tokens per page of the paged KV cache (transformers' default is 256; smaller pages
#: waste less on short chat turns).
PAGE_SIZE = 64


def vocab_size(backend: TransformersBackend) -> int:
    return int(backend.model.config.get_text_config().vocab_size)


def start_manager(
    backend: TransformersBackend,
    *,
    max_rows: int,
    cache_tokens: int | None,
    context_length: int | None,
) -> Any:
    """A started manager over ``backend``'s model (rows of up to ``max_rows``)."""
    from transformers import ContinuousBatchingConfig, GenerationConfig

    vocab = vocab_size(backend)
    options: dict[str, Any] = {
        "page_size": PAGE_SIZE,
        "max_requests_per_batch": max_rows,
        "per_request_processors": True,  # each row's own temperature, top-k, top-p
        "allow_block_sharing": False,
    }
    tokens = cache_tokens
    if tokens is None and not str(backend.device).startswith("cuda"):
        tokens = max_rows * (context_length or 4096)
    if tokens is not None:
        options["num_blocks"] = max(2, math.ceil(tokens / PAGE_SIZE))
        options["max_batch_tokens"] = min(tokens, 2048)
    # Placeholders that make transformers build the three per-request processors (it
    # skips one at its neutral value); every row sends its own values.
    generation = GenerationConfig(
        do_sample=True,
        temperature=0.5,
        top_k=vocab,
        top_p=0.5,
        eos_token_id=list(backend._eos_ids),
        pad_token_id=backend.tokenizer.pad_token_id,
    )
    manager = backend.model.init_continuous_batching(
        generation_config=generation,
        continuous_batching_config=ContinuousBatchingConfig(**options),
    )
    manager.start()
    return manager


def stop_manager(manager: Any) -> None:
    try:
        manager.stop(block=True, timeout=10)
    except Exception as error:  # a dead loop may refuse; its thread is gone anyway
        log.warning("continuous batching did not stop cleanly: %r", error)


def row_sampling(params: SamplingParams, vocab: int) -> dict[str, Any]:
    if params.temperature <= 0:  # greedy: the argmax, as generate(do_sample=False)
        return {"temperature": 1.0, "top_k": 1, "top_p": 1.0}
    return {"temperature": float(params.temperature), "top_k": vocab, "top_p": float(params.top_p)}


def drop_handler(manager: Any, request_id: str) -> None:
    router = manager.output_router
    with router._lock:
        router.result_handlers.pop(request_id, None)
    while not router.output_queue.empty():
        router.output_queue.get_nowait()
