"""Files to serve a secreason model with vLLM: launch script, sampling defaults, prompt.

vLLM takes its default sampling from a ``generation_config.json`` (``--generation-config
DIR``), so the paper's decoding (temperature 0.6, top_p 0.95) becomes the server's
default without touching the weights. The launch names the ``secreason`` reasoning
parser plugin, so ``reasoning_content`` follows the reasoning contract, and a
``serve.yaml`` puts ``secreason serve`` in front (system prompt, guard, keys, audit).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from secreason.export.ollama import TEMPERATURE, TOP_P


def generation_config(model_dir: Path) -> dict[str, Any]:
    """The model's generation config with the paper's sampling on top."""
    path = model_dir / "generation_config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    config.update(do_sample=True, temperature=TEMPERATURE, top_p=TOP_P)
    return config


def launch_script(model_dir: Path, name: str, prefilled: bool) -> str:
    model = shlex.quote(str(model_dir.resolve()))
    return "\n".join(
        [
            "#!/usr/bin/env bash",
            "# vLLM with secreason's reasoning parser and the paper's sampling defaults.",
            "# Extra vllm arguments pass through: bash launch.sh --port 8001",
            "set -euo pipefail",
            'HERE="$(cd "$(dirname "$0")" && pwd)"',
            "PLUGIN=\"$(python -c 'import secreason.integrations.vllm_reasoning as m; "
            "print(m.__file__)')\"",
            f"export SECREASON_PREFILLED={int(prefilled)}",
            f"exec vllm serve {model} --served-model-name {shlex.quote(name)} \\",
            '  --generation-config "$HERE" \\',
            '  --reasoning-parser-plugin "$PLUGIN" --reasoning-parser secreason "$@"',
            "",
            "# In front of it (system prompt, guard, API keys, audit log):",
            '#   secreason serve --config "$HERE/serve.yaml" --api-key "$KEY" --port 8080',
            "",
        ]
    )


def serve_config(name: str, prefilled: bool, prompt_file: Path, upstream: str) -> dict[str, Any]:
    return {
        "model": {"path": name, "upstream": upstream, "prefilled": prefilled},
        "system_prompt": {"mode": "replace", "file": str(prompt_file.resolve())},
    }


def write_vllm(
    model_dir: Path, out: Path, *, name: str, prefilled: bool, system_prompt: str
) -> list[Path]:
    """Write launch.sh, generation_config.json, system_prompt.txt and serve.yaml."""
    out.mkdir(parents=True, exist_ok=True)
    prompt = out / "system_prompt.txt"
    prompt.write_text(system_prompt + "\n", encoding="utf-8")
    gen = out / "generation_config.json"
    gen.write_text(json.dumps(generation_config(model_dir), indent=2) + "\n", encoding="utf-8")
    launch = out / "launch.sh"
    launch.write_text(launch_script(model_dir, name, prefilled), encoding="utf-8")
    launch.chmod(0o755)
    serve = out / "serve.yaml"
    config = serve_config(name, prefilled, prompt, "http://127.0.0.1:8000/v1")
    serve.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return [launch, gen, prompt, serve]
