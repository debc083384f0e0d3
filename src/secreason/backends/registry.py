"""Backends by name, so the CLI and recipes say ``transformers``/``vllm``/``openai``.

Each backend module is imported only when asked for: building an openai client must
not load torch, and vLLM may not be installed at all.
"""

from __future__ import annotations

from typing import Any

from secreason.backends.base import Backend

BACKENDS = ("transformers", "vllm", "openai")


def make_backend(kind: str, model: str, **options: Any) -> Backend:
    """Build a backend; ``None`` options are dropped so each keeps its own defaults."""
    options = {k: v for k, v in options.items() if v is not None}
    if kind == "transformers":
        from secreason.backends.transformers import TransformersBackend

        return TransformersBackend(model, **options)
    if kind == "vllm":
        from secreason.backends.vllm import VLLMBackend

        return VLLMBackend(model, **options)
    if kind == "openai":
        from secreason.backends.openai import OpenAIBackend

        base_url = options.pop("base_url", None)
        if not base_url:
            raise ValueError("the openai backend needs a server address: --base-url URL")
        return OpenAIBackend(base_url, model, **options)
    raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
