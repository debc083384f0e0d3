"""The openai backend against ``secreason serve`` running the tiny model: a served greedy
completion reads exactly like the same model's local one."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from openai_fixture_server import free_port  # noqa: E402

from secreason.backends.base import SamplingParams  # noqa: E402
from secreason.backends.openai import OpenAIBackend  # noqa: E402
from secreason.backends.transformers import TransformersBackend  # noqa: E402
from secreason.reasoning import split  # noqa: E402


@pytest.mark.slow
def test_served_tiny_model_matches_local_generation(tiny_model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from secreason.cli import main; main()",
            "serve",
            "--model",
            str(tiny_model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-system-prompt",
            "--served-model-name",
            "tiny",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "secreason serve did not start"
            time.sleep(0.2)
        convs = [[{"role": "user", "content": f"Which CWE is bug {i}?"}] for i in range(3)]
        params = SamplingParams(max_tokens=12)
        served = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "tiny", concurrency=3)
        remote = served.generate(convs, params)
        served.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    local = TransformersBackend(str(tiny_model_dir)).generate(convs, params)
    for r, loc in zip(remote, local, strict=True):
        a, b = split(r.full_text(), prefilled=True), split(loc.text, prefilled=True)
        assert (a.reasoning, a.answer, a.status) == (b.reasoning, b.answer, b.status)
