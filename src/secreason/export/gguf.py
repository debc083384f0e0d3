"""GGUF (llama.cpp, Ollama) from a Hugging Face folder, and the think-tag check.

The conversion is llama.cpp's own ``convert_hf_to_gguf.py``: it is run when found
(``$LLAMA_CPP_DIR`` or on ``PATH``); otherwise ``convert.sh`` gets the exact commands.
Either way the tags are checked first, on the tokenizer the converter reads: each of
``<think>`` and ``</think>`` must be ONE token, or the template's literal tags and the
model's output would not line up; and a tag that is a *special* token becomes a
control token in GGUF, which llama.cpp and Ollama do not print, so their reasoning
split would see no tags. Both are reported; a multi-token tag refuses the export.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secreason.reasoning import THINK

CONVERTER = "convert_hf_to_gguf.py"


@dataclass(frozen=True)
class TagCheck:
    tag: str
    ids: tuple[int, ...]
    special: bool

    @property
    def single(self) -> bool:
        return len(self.ids) == 1

    def problem(self) -> str | None:
        if not self.single:
            return f"{self.tag!r} is {len(self.ids)} tokens {list(self.ids)}, not one"
        if self.special:
            return (
                f"{self.tag!r} (id {self.ids[0]}) is a special token: GGUF stores it as a "
                "control token that llama.cpp and Ollama do not print"
            )
        return None


def check_tags(tokenizer: Any) -> list[TagCheck]:
    """How the tokenizer encodes each think tag."""
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    out = []
    for tag in (THINK.open, THINK.close):
        ids = tuple(tokenizer.encode(tag, add_special_tokens=False))
        special = tag in specials or any(
            getattr(decoder.get(i), "special", False) and str(decoder[i]) == tag for i in ids
        )
        out.append(TagCheck(tag, ids, bool(special)))
    return out


def find_converter() -> Path | None:
    home = os.environ.get("LLAMA_CPP_DIR")
    if home and (Path(home) / CONVERTER).is_file():
        return Path(home) / CONVERTER
    found = shutil.which(CONVERTER)
    return Path(found) if found else None


def commands(model_dir: Path, out: Path, name: str) -> list[str]:
    """What to run where llama.cpp is installed (or after cloning it)."""
    f16 = shlex.quote(str(out / f"{name}-f16.gguf"))
    q4 = shlex.quote(str(out / f"{name}-Q4_K_M.gguf"))
    return [
        "git clone --depth 1 https://github.com/ggml-org/llama.cpp",
        "pip install -r llama.cpp/requirements/requirements-convert_hf_to_gguf.txt",
        f"python llama.cpp/{CONVERTER} {shlex.quote(str(model_dir.resolve()))} "
        f"--outfile {f16} --outtype f16",
        "cmake -S llama.cpp -B llama.cpp/build && cmake --build llama.cpp/build -j "
        "--target llama-quantize",
        f"llama.cpp/build/bin/llama-quantize {f16} {q4} Q4_K_M",
        f"gguf-dump --no-tensors {f16} | grep -F -e '<think>' -e '</think>'  # pip install gguf",
    ]


def write_gguf(
    model_dir: Path, out: Path, *, name: str, tokenizer: Any, run: bool = True
) -> tuple[list[Path], list[TagCheck]]:
    """Convert (when the converter is found and ``run``) or write convert.sh."""
    checks = check_tags(tokenizer)
    broken = [c.problem() for c in checks if not c.single]
    if broken:
        raise ValueError(f"{model_dir}: {'; '.join(p for p in broken if p)}")
    out.mkdir(parents=True, exist_ok=True)
    converter = find_converter() if run else None
    if converter is None:
        script = out / "convert.sh"
        lines = ["#!/usr/bin/env bash", "set -euo pipefail", *commands(model_dir, out, name)]
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        script.chmod(0o755)
        return [script], checks
    target = out / f"{name}-f16.gguf"
    argv = [sys.executable, str(converter), str(model_dir), "--outfile", str(target)]
    done = subprocess.run([*argv, "--outtype", "f16"], capture_output=True, text=True)
    if done.returncode != 0 or not target.is_file():
        tail = (done.stderr or done.stdout)[-2000:]
        raise RuntimeError(f"{converter} failed (exit {done.returncode}):\n{tail}")
    return [target], checks
