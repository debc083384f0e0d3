"""An Ollama ``Modelfile`` for a secreason model: template, system prompt, sampling.

Ollama treats a model as able to think only when its TEMPLATE ranges over
``.Messages`` and writes each turn's ``.Thinking`` between literal tags; a prompt that
ends in ``<think>`` is read by its parser as reasoning already open, which is how
Foundation-Sec-8B-Reasoning's template (and the tiny model's) starts every reply. The
TEMPLATE is written from the model's own chat template, reduced to per-role pieces by
:mod:`secreason.export.template` (and checked against it there); every literal piece is
a quoted Go string action, so Go's whitespace trimming (``{{-``) never eats a newline
that belongs to the prompt. The BOS token is not in the TEMPLATE: the runtime adds it
(the GGUF's ``add_bos_token``).
"""

from __future__ import annotations

import json
from pathlib import Path

from secreason.export.template import TemplateParts
from secreason.reasoning import THINK

TEMPERATURE, TOP_P = 0.6, 0.95  # the paper's decoding


def go_string(text: str) -> str:
    """A Go string-constant action printing ``text`` exactly."""
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"


def go_template(parts: TemplateParts) -> str:
    """The TEMPLATE text (Go text/template, Ollama's variables)."""
    (sys_pre, sys_suf), (user_pre, user_suf) = parts.system, parts.user
    asst_pre, asst_suf = parts.assistant
    thinking_when = ".Thinking" if parts.keeps_reasoning else "and $last .Thinking"
    lines = [
        "{{- range $i, $_ := .Messages }}",
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}",
        '{{- if eq .Role "system" }}'
        + go_string(sys_pre) + "{{ .Content }}" + go_string(sys_suf),
        '{{- else if eq .Role "user" }}'
        + go_string(user_pre) + "{{ .Content }}" + go_string(user_suf),
        "{{- if $last }}" + go_string(parts.generation) + "{{ end }}",
        '{{- else if eq .Role "assistant" }}' + go_string(asst_pre),
        "{{- if " + thinking_when + " }}"
        + go_string(THINK.open + "\n") + "{{ .Thinking }}" + go_string(THINK.close + "\n")
        + "{{ end }}",
        "{{- .Content }}",
        "{{- if not $last }}" + go_string(asst_suf) + "{{ end }}",
        "{{- end }}",
        "{{- end }}",
    ]  # fmt: skip
    return "\n".join(lines)


def stop_strings(parts: TemplateParts, eos_token: str | None) -> list[str]:
    """Where a reply ends: the EOS token and the marker that would open a user turn."""
    stops = [eos_token or "", parts.assistant[1].strip(), parts.user[0].strip()]
    out: list[str] = []
    for stop in stops:
        if stop and stop not in out and THINK.close not in stop:
            out.append(stop)
    return out


def modelfile(source: str, parts: TemplateParts, system_prompt: str, eos_token: str | None) -> str:
    """The Modelfile text; ``source`` is what FROM names (a GGUF file or the HF folder)."""
    for name, text in (("template", go_template(parts)), ("system prompt", system_prompt)):
        if '"""' in text:
            raise ValueError(f'the {name} contains """, which a Modelfile cannot quote')
    stops = stop_strings(parts, eos_token)
    lines = [
        "# Written by `secreason export --to ollama`.",
        f"FROM {source}",
        f'TEMPLATE """{go_template(parts)}"""',
        f'SYSTEM """{system_prompt}"""',
        f"PARAMETER temperature {TEMPERATURE}",
        f"PARAMETER top_p {TOP_P}",
        *(f"PARAMETER stop {json.dumps(s, ensure_ascii=False)}" for s in stops),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_modelfile(
    out_dir: Path, source: str, parts: TemplateParts, system_prompt: str, eos: str | None
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "Modelfile"
    path.write_text(modelfile(source, parts, system_prompt, eos), encoding="utf-8")
    return path
