"""vLLM is optional: without it, asking for the backend says how to get it."""

from __future__ import annotations

import importlib.util

import pytest

from secreason.backends.registry import make_backend


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_clear_error_without_vllm() -> None:
    from secreason.backends.vllm import VLLMNotInstalled

    with pytest.raises(VLLMNotInstalled, match=r"pip install 'secreason\[vllm\]'"):
        make_backend("vllm", "some/model")
