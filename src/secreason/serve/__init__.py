"""Guarded serving: an OpenAI-compatible server with the reasoning split, a safety system
prompt, Llama-Guard-3 moderation, limits and an audit trail (``secreason serve``).

Modules, one concept each: ``config`` (settings), ``protocol`` (the wire format),
``strict_json`` (request bodies read strictly), ``errors`` (the client error),
``stream_split`` (incremental reasoning split over :mod:`secreason.reasoning`),
``guard`` (the Llama Guard protocol and category policy), ``system_prompt``, ``limits``
(keys, sizes, concurrency), ``audit`` (crash-safe JSONL), ``outcome`` (what a request
produced), ``engine`` (local batching / upstream proxy), ``deployment`` (the served
model and its policies), ``handler`` (one request's path), ``streaming`` (SSE events),
``awaiting`` (deadline and disconnect bounds), ``metrics`` (bounded ``/metrics``),
``app`` (routes and middleware), ``server`` (assembly and uvicorn), ``http_bounds``
(header time and size bounds, exit after the drain), ``fixed_backend``
(benchmark-only constant backend).
Heavy imports (torch, transformers) happen only when a local model is loaded.
"""
