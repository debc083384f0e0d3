"""Guarded serving: an OpenAI-compatible server with the reasoning split, a safety system
prompt, Llama-Guard-3 moderation, limits and an audit trail (``secreason serve``).

Modules, one concept each:

* settings and wire format: ``config``, ``protocol`` (chat requests and answers),
  ``strict_json`` (request bodies read strictly), ``errors`` (the client error);
* the request path: ``app`` (routes and middleware), ``limits`` (keys, sizes,
  concurrency, rates), ``deployment`` (the served model and its policies), ``handler``
  (one request's steps), ``streaming`` (SSE events), ``stream_split`` (incremental
  reasoning split over :mod:`secreason.reasoning`), ``awaiting`` (deadline and
  disconnect bounds), ``system_prompt``, ``sanitize`` (control strings broken);
* the guard: ``guard`` (the Llama Guard protocol and category policy), ``disguise`` and
  ``confusables`` (what the guard reads of disguised text);
* the engines: ``engine`` (the import path), ``engine_base`` (the interface),
  ``local_engine`` and ``batching`` (a local model, batched), ``continuous``,
  ``continuous_manager`` and ``continuous_rows`` (transformers' continuous batching),
  ``upstream`` (an OpenAI-compatible server), ``prompt_fit`` and ``upstream_fit``
  (prompts checked against the context), ``fixed_backend`` (benchmark-only constant
  backend);
* evidence and monitoring: ``trail`` (one record per request), ``audit`` (the
  crash-safe JSONL file), ``audit_queue`` (the refusals' writer thread), ``outcome``
  (what a request produced), ``metrics`` (bounded ``/metrics``);
* the process: ``server`` (assembly and uvicorn), ``http_bounds`` (header time and size
  bounds, exit after the drain).

Heavy imports (torch, transformers) happen only when a local model is loaded.
"""
