"""Deployment settings: YAML to dataclasses, overrides, and errors that point at the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.serve.config import ConfigError, load_config
from secreason.serve.system_prompt import (
    DEFAULT_SYSTEM_PROMPT,
    SYSTEM_PROMPT_VERSION,
    apply_system_prompt,
)


def test_yaml_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(
        "model:\n  path: /models/x\n  max_batch_size: 4\n"
        "  upstream_extra_body: {skip_special_tokens: false}\n"
        "guard:\n  model: http://guard:8000/v1\n  allow_categories: [S2]\n"
        "limits:\n  api_keys: [k1]\n"
    )
    config = load_config(path, {"limits.max_concurrent": "3", "guard.on_error": "allow"})
    assert config.model.path == "/models/x" and config.model.max_batch_size == 4
    assert config.model.upstream_extra_body == {"skip_special_tokens": False}
    assert config.guard.allow_categories == ["S2"] and config.guard.on_error == "allow"
    assert config.limits.max_concurrent == 3 and config.limits.api_keys == ["k1"]
    assert config.system_prompt.text == DEFAULT_SYSTEM_PROMPT
    assert config.system_prompt.version == SYSTEM_PROMPT_VERSION


def test_api_keys_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECREASON_API_KEYS", "a, b,")
    config = load_config(None, {"model.path": "m", "limits.api_keys": "c"})
    assert config.api_keys() == {"a", "b", "c"}


def test_custom_prompt_file_gets_custom_version(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("Be brief.")
    config = load_config(None, {"model.path": "m", "system_prompt.file": str(tmp_path / "p.txt")})
    assert (config.system_prompt.text, config.system_prompt.version) == ("Be brief.", "custom")


ERRORS = [
    ("unknown key", "model:\n  path: m\n  batch: 3\n", r"deploy.yaml:3: model.batch: unknown"),
    (
        "bad category",
        "model:\n  path: m\nguard:\n  allow_categories: [S99]\n",
        r":4: guard.allow_categories",
    ),
    (
        "bad literal",
        "model:\n  path: m\nguard:\n  on_error: maybe\n",
        r":4: guard.on_error: 'maybe' is not one of",
    ),
    (
        "bad number",
        "model:\n  path: m\nlimits:\n  max_tokens: lots\n",
        r":4: limits.max_tokens: expected a number",
    ),
    ("no model", "host: 0.0.0.0\n", r"model.path: required"),
    ("not a mapping", "- a\n- b\n", r"expected a mapping"),
    (
        "bad bool",
        "model:\n  path: m\nlog_prompts: sometimes\n",
        r":3: log_prompts: expected true or false",
    ),
]


@pytest.mark.parametrize(("text", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


SYSTEM = {"role": "system", "content": "client rules"}
USER = {"role": "user", "content": "q"}
PROMPTS = [
    ("replace drops client", "replace", [SYSTEM, USER], ["P", "q"]),
    ("replace adds when absent", "replace", [USER], ["P", "q"]),
    ("extend appends client", "extend", [SYSTEM, USER], ["P\n\nclient rules", "q"]),
    ("client wins", "client", [SYSTEM, USER], ["client rules", "q"]),
    ("client falls back", "client", [USER], ["P", "q"]),
    ("off passes through", "off", [SYSTEM, USER], ["client rules", "q"]),
]


@pytest.mark.parametrize(
    ("mode", "messages", "expected"), [p[1:] for p in PROMPTS], ids=[p[0] for p in PROMPTS]
)
def test_system_prompt_modes(mode: str, messages: list, expected: list[str]) -> None:
    out = apply_system_prompt(messages, "P", mode)  # type: ignore[arg-type]
    assert [m["content"] for m in out] == expected
    assert messages[-1] is USER, "input mutated"


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("runs/demo/rl/final", "demo-rl"),
        ("work/runs/demo/sft/checkpoint-500", "demo-sft"),
        ("runs/solo/final", "solo"),
        ("exports/a/b/c/final", "b-c"),
        ("models/tiny-cyber", "tiny-cyber"),
    ],
)
def test_served_name_of_a_training_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str, expected: str
) -> None:
    from secreason.serve.deployment import served_name as _served_name

    monkeypatch.chdir(tmp_path)
    (tmp_path / folder).mkdir(parents=True)
    assert _served_name(folder) == expected
    assert _served_name(str(tmp_path / folder)) == expected
    assert _served_name("org/hub-model") == "org/hub-model"  # not a folder: as given


def test_local_model_is_loaded_without_the_static_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled static cache costs a compilation per new batch shape: off for serving."""
    from secreason.serve import server
    from secreason.serve.config import load_config
    from secreason.serve.fixed_backend import FixedTextBackend

    seen: dict[str, object] = {}

    def fake_load(path: str, **options: object) -> FixedTextBackend:
        seen.update(options)
        return FixedTextBackend()

    monkeypatch.setattr(server, "load_local_backend", fake_load)
    server.build_model_engine(load_config(overrides={"model.path": "some/model"}))
    assert seen["static_cache"] is False
    on = load_config(overrides={"model.path": "some/model", "model.static_cache": "true"})
    server.build_model_engine(on)
    assert seen["static_cache"] is True
