"""``secreason export``: deployment files for vLLM, Ollama and llama.cpp, and a model card.

Each target reads the same two things from the model folder, once: the chat template
(reduced to per-role pieces, so it can be rewritten for runtimes that do not run
Jinja) and whether it prefills ``<think>``. The card (``README.md``) is written beside
the targets; ``secreason card`` rewrites it alone, e.g. after a new evaluation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TARGETS = ("vllm", "ollama", "gguf")


def _tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: not a model folder (no config.json)")
    return AutoTokenizer.from_pretrained(str(model_dir))


def deployment_notes(out: Path, targets: Sequence[str], name: str) -> list[str]:
    notes = []
    if "vllm" in targets:
        notes += ["vLLM (reasoning parser `secreason`, temperature 0.6, top_p 0.95):", "",
                  f"    bash {out / 'vllm' / 'launch.sh'} --port 8000", ""]  # fmt: skip
    if "gguf" in targets:
        notes += ["GGUF (llama.cpp): see the `gguf/` folder (the file, or `convert.sh`).", ""]
    if "ollama" in targets:
        notes += ["Ollama:", "", f"    ollama create {name} -f {out / 'ollama' / 'Modelfile'}",
                  f"    ollama run {name} --think", ""]  # fmt: skip
    return notes


def export_model(
    model_dir: Path,
    targets: Sequence[str],
    out: Path,
    *,
    name: str | None = None,
    system_prompt: str | None = None,
    eval_runs: Sequence[Path] = (),
    data_summary: Path | None = None,
    run_converter: bool = True,
) -> dict[str, Any]:
    """Write the targets under ``out/<target>/`` and ``out/README.md``; return a summary."""
    from secreason.export.card import load_reports, render_card
    from secreason.export.gguf import write_gguf
    from secreason.export.ollama import write_modelfile
    from secreason.export.template import probe
    from secreason.export.vllm import write_vllm
    from secreason.serve.system_prompt import DEFAULT_SYSTEM_PROMPT

    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise ValueError(f"--to {unknown or targets}: expected some of {', '.join(TARGETS)}")
    name = name or model_dir.resolve().name
    prompt = system_prompt if system_prompt is not None else DEFAULT_SYSTEM_PROMPT
    reports = load_reports(eval_runs)  # bad inputs fail before anything is written
    summary = json.loads(data_summary.read_text(encoding="utf-8")) if data_summary else None
    tokenizer = _tokenizer(model_dir)
    parts = probe(tokenizer)
    files: dict[str, list[str]] = {}
    gguf_file: Path | None = None
    if "gguf" in targets:
        written, checks = write_gguf(
            model_dir, out / "gguf", name=name, tokenizer=tokenizer, run=run_converter
        )
        files["gguf"] = [str(p) for p in written]
        files["gguf_warnings"] = [p for c in checks if (p := c.problem())]
        gguf_file = next((p for p in written if p.suffix == ".gguf"), None)
    if "vllm" in targets:
        written = write_vllm(
            model_dir, out / "vllm", name=name, prefilled=parts.prefilled, system_prompt=prompt
        )
        files["vllm"] = [str(p) for p in written]
    if "ollama" in targets:
        source = str(gguf_file.resolve()) if gguf_file else str(model_dir.resolve())
        path = write_modelfile(out / "ollama", source, parts, prompt, tokenizer.eos_token)
        files["ollama"] = [str(path)]
    card = out / "README.md"
    card.write_text(
        render_card(
            model_dir,
            name=name,
            reports=reports,
            data_summary=summary,
            deployment=deployment_notes(out, targets, name),
            prefilled=parts.prefilled,
        ),
        encoding="utf-8",
    )
    files["card"] = [str(card)]
    return {"model": str(model_dir), "prefilled": parts.prefilled, "files": files}
