"""Where completions come from: a local :class:`Backend` with batching, or an upstream.

The HTTP layer only ever awaits an :class:`Engine`. The kinds:

* :class:`LocalEngine` (:mod:`.local_engine`) wraps any
  :class:`~secreason.backends.base.Backend` (the transformers backend, or the
  benchmark's fixed-text backend): concurrent requests are batched (:mod:`.batching`)
  on one model thread, and each prompt is checked against the context on arrival
  (:mod:`.prompt_fit`). ``model.engine: continuous`` serves the transformers backend
  through :class:`~secreason.serve.continuous.ContinuousEngine` instead (imported only
  when chosen).
* :class:`UpstreamEngine` (:mod:`.upstream`) talks to an OpenAI-compatible server
  (``vllm serve``, TGI, another secreason), relaying its SSE stream.

The interface itself is in :mod:`.engine_base`. This module is the one import path the
server, the request path (:mod:`.deployment`, :mod:`.handler`, :mod:`.streaming`) and
the tests use, so the engines can be split or added to without touching them.
"""

from __future__ import annotations

from secreason.serve.batching import batch_key, batch_seed
from secreason.serve.engine_base import Engine, EngineError, StreamInfo
from secreason.serve.local_engine import LocalEngine
from secreason.serve.upstream import UpstreamEngine

__all__ = [
    "Engine",
    "EngineError",
    "LocalEngine",
    "StreamInfo",
    "UpstreamEngine",
    "batch_key",
    "batch_seed",
]
