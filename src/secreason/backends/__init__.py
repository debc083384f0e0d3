"""Inference backends: transformers (local), vLLM (GPU, optional), OpenAI-compatible servers."""

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.backends.registry import BACKENDS, make_backend

__all__ = ["BACKENDS", "Backend", "Generation", "Message", "SamplingParams", "make_backend"]
