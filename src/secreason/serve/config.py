"""Settings of a deployment: typed dataclasses loaded from YAML, then CLI overrides.

One YAML file describes a deployment (model, guard, limits, audit, system prompt) so
that the deployment that was evaluated is exactly the one that runs. Every error
names the file, the line and the field, and what would be accepted.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from secreason.configfile import line_of
from secreason.serve.guard import CATEGORIES, OnError
from secreason.serve.system_prompt import DEFAULT_SYSTEM_PROMPT, SYSTEM_PROMPT_VERSION, Mode


@dataclass
class ModelConfig:
    """The model being served: a local folder / hub id, or a name at an upstream server."""

    path: str = ""
    # "fixed-text" is the BENCHMARK backend (a constant completion, no model): see
    # secreason.serve.fixed_backend. Ignored when ``upstream`` is set.
    backend: Literal["transformers", "fixed-text"] = "transformers"
    fixed_text_delay_s: float = 0.0
    upstream: str | None = None  # base URL of an OpenAI-compatible server (…/v1)
    upstream_api_key_env: str = "SECREASON_UPSTREAM_API_KEY"
    # Extra fields for every upstream request, e.g. vLLM's {skip_special_tokens: false}
    # when the think tags are special tokens and vLLM runs without a reasoning parser.
    upstream_extra_body: dict[str, Any] = field(default_factory=dict)
    # Prompts that cannot fit the upstream's context are refused before it is called
    # (serve.upstream_fit). Its context in tokens; None: learnt from GET /v1/models
    # (vLLM's max_model_len). The tokenizer (folder / hub id) that counts prompt tokens,
    # the one the upstream serves; None: model.path when it is a folder with one.
    upstream_context: int | None = None
    upstream_tokenizer: str | None = None
    served_name: str | None = None  # the id clients use; default: path's last part
    # Requests batched together by the local engine (16: the transformers backend's own
    # batch, and an eval client's default concurrency).
    max_batch_size: int = 16
    # A fixed wait after a batch's first request, before it is gathered (the adaptive
    # waits below usually do better); 0 turns it off.
    batch_wait_ms: float = 0.0
    # After a batch, wait up to this fraction of its model time for the clients it just
    # answered to send their next requests, so closed-loop load keeps forming full
    # batches (see serve.batching); 0 turns it off.
    batch_refill_wait: float = 0.2
    # Before a batch starts, wait up to this long for requests the server is still
    # reading or screening (a client's burst reaches the queue over milliseconds); a
    # lone request never waits. 0 turns it off.
    batch_arrival_wait_ms: float = 50.0
    # Requests under this far apart are one client's burst: a batch holding two or more
    # of a burst still arriving waits this long after the last for the next one (a client
    # spends milliseconds on each request, more on a busy box). 0 turns it off.
    batch_burst_gap_ms: float = 20.0
    device: str | None = None
    dtype: str | None = None
    # The transformers backend's compiled static KV cache: each new batch shape pays a
    # compilation (about a minute on a GPU), which a server with varying batches would
    # pay again and again; off unless asked.
    static_cache: bool = False
    # "batch": one generate call at a time on one thread (a long request holds later
    # ones). "continuous": transformers' continuous batching (serve.continuous): rows
    # join and leave between decode steps; seeds are not honoured. Transformers backend.
    engine: Literal["batch", "continuous"] = "batch"
    # Its paged KV cache in tokens; None: max_batch_size full contexts on CPU,
    # transformers' own sizing (free memory) on a GPU.
    continuous_cache_tokens: int | None = None
    prefilled: bool | None = None  # None: detect from the chat template
    think_token_ids: list[int] | None = None  # delimiters by id (special-token tags)


@dataclass
class GuardConfig:
    model: str | None = None  # local folder / hub id, or an http(s) URL (then see served_name)
    served_name: str | None = None  # model name at the guard's upstream
    api_key_env: str = "SECREASON_GUARD_API_KEY"
    input: bool = True
    output: bool = True
    allow_categories: list[str] = field(default_factory=list)
    on_error: OnError = "block"
    # The output guard reads the reasoning too, i.e. every generated character (the
    # client receives the reasoning); false: only text outside it (before <think>, the
    # answer). output_includes_reasoning is its former name (both must be true).
    screen_reasoning: bool = True
    output_includes_reasoning: bool = True
    max_tokens: int = 20
    timeout_s: float = 60.0
    refusal_message: str = (
        "I can't help with that request: it was stopped by this deployment's safety guard."
    )


@dataclass
class LimitsConfig:
    api_keys: list[str] = field(default_factory=list)
    api_keys_env: str = "SECREASON_API_KEYS"  # comma-separated keys, added to api_keys
    max_body_bytes: int = 1 << 20
    max_tokens: int = 4096  # the most a request may ask for
    default_max_tokens: int = 1024
    # name -> key: accepted like api_keys, and the audit names the key by this name
    # (other keys appear as a sha256 prefix; a key itself is never written anywhere).
    named_api_keys: dict[str, str] = field(default_factory=dict)
    max_concurrent: int = 64
    # In flight per key (per client address on an open server). None: half of
    # max_concurrent when several keys are configured, else max_concurrent.
    max_concurrent_per_key: int | None = None
    requests_per_minute_per_key: float = 0.0  # 0: no rate limit
    rate_burst: int | None = None  # requests a key may send at once; None: 10 s worth
    # /metrics, per key in buckets of its own (never the completions' slots or rate):
    # enough for any scraper (Prometheus polls every 15 s), not for a loop burning CPU.
    metrics_per_minute_per_key: float = 120.0
    metrics_burst: int | None = None  # None: 10 s worth
    metrics_concurrent_per_key: int = 2
    request_timeout_s: float = 600.0  # the model's deadline: the generation is cancelled
    body_timeout_s: float = 30.0  # the whole body must arrive within this (else 408)
    header_timeout_s: float = 10.0  # a connection's request headers, likewise (closed)
    max_header_bytes: int = 64 << 10  # a request line and its headers, else 431 (closed)
    send_timeout_s: float = 30.0  # each write of an answer must be taken by then (closed)
    drain_timeout_s: float = 30.0  # on SIGTERM: in-flight requests get this long, then cut


@dataclass
class AuditConfig:
    path: str | None = None  # None: no audit log
    redact_user: bool = False
    max_bytes: int = 100 << 20  # the live file rotates past this size
    # Retention: a rotated file is deleted only once every rule set here releases it
    # (beyond ``backups`` newer files AND older than ``retain_days``). None: keep all.
    backups: int | None = None
    retain_days: float | None = None
    fsync: bool = True


@dataclass
class SystemPromptConfig:
    text: str | None = DEFAULT_SYSTEM_PROMPT
    file: str | None = None  # read the prompt from this file instead
    version: str | None = None  # default: the built-in prompt's version, or "custom"
    mode: Mode = "replace"


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    # Addresses of reverse proxies whose X-Forwarded-For/-Proto are believed (the audit's
    # client and the per-address limits then name the client they forwarded). Empty:
    # the headers are ignored, so no client can rename itself, not even from loopback.
    trusted_proxies: list[str] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    system_prompt: SystemPromptConfig = field(default_factory=SystemPromptConfig)
    log_prompts: bool = False  # request bodies in the server log: off unless asked
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def api_keys(self) -> set[str]:
        keys = set(self.limits.api_keys) | set(self.limits.named_api_keys.values())
        keys.update(k.strip() for k in os.environ.get(self.limits.api_keys_env, "").split(","))
        keys.discard("")
        return keys


class ConfigError(ValueError):
    pass


def _coerce(value: Any, kind: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(kind, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is list:
        items = value if isinstance(value, list) else str(value).split(",")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(items)]
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind in (int, float):
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if kind is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: Any, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{where}.{key}: unknown setting (known: {known})".lstrip("."))
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}".lstrip("."))
    return cls(**kwargs)


def validate(config: ServeConfig) -> None:
    unknown = sorted(set(config.guard.allow_categories) - set(CATEGORIES))
    if unknown:
        raise ConfigError(f"guard.allow_categories: unknown category {unknown[0]!r} (S1..S14)")
    if not config.model.path and not config.model.upstream and config.model.backend != "fixed-text":
        raise ConfigError("model.path: required (a model folder or hub id), or set model.upstream")
    limits = config.limits
    if limits.default_max_tokens > limits.max_tokens:
        raise ConfigError("limits.default_max_tokens: must not exceed limits.max_tokens")
    for name in (
        "max_body_bytes",
        "max_header_bytes",
        "max_tokens",
        "max_concurrent",
        "default_max_tokens",
    ):
        if getattr(limits, name) < 1:
            raise ConfigError(f"limits.{name}: must be at least 1")
    for name in ("max_concurrent_per_key", "rate_burst", "metrics_burst"):
        if getattr(limits, name) is not None and getattr(limits, name) < 1:
            raise ConfigError(f"limits.{name}: must be at least 1")
    if limits.metrics_concurrent_per_key < 1:
        raise ConfigError("limits.metrics_concurrent_per_key: must be at least 1")
    for name in (
        "requests_per_minute_per_key",
        "metrics_per_minute_per_key",
        "request_timeout_s",
        "body_timeout_s",
        "header_timeout_s",
        "send_timeout_s",
        "drain_timeout_s",
    ):
        value = getattr(limits, name)
        if value < 0 or (value == 0 and name != "requests_per_minute_per_key"):
            raise ConfigError(f"limits.{name}: must be positive")
    audit = config.audit
    if audit.backups is not None and audit.backups < 0:
        raise ConfigError("audit.backups: must not be negative (or null: keep all)")
    if audit.retain_days is not None and audit.retain_days < 0:
        raise ConfigError("audit.retain_days: must not be negative (or null: keep all)")
    if audit.max_bytes < 1:
        raise ConfigError("audit.max_bytes: must be at least 1")
    if config.model.max_batch_size < 1:
        raise ConfigError("model.max_batch_size: must be at least 1")
    if config.model.engine == "continuous" and config.model.backend == "fixed-text":
        raise ConfigError("model.engine: continuous needs the transformers backend")
    cache_tokens = config.model.continuous_cache_tokens
    if cache_tokens is not None and cache_tokens < 1:
        raise ConfigError("model.continuous_cache_tokens: must be at least 1 (or null)")
    if config.model.upstream_context is not None and config.model.upstream_context < 2:
        raise ConfigError("model.upstream_context: must be at least 2 tokens (or null: ask)")
    for name in (
        "batch_wait_ms",
        "batch_refill_wait",
        "batch_arrival_wait_ms",
        "batch_burst_gap_ms",
    ):
        if getattr(config.model, name) < 0:
            raise ConfigError(f"model.{name}: must not be negative")
    if config.model.think_token_ids is not None and len(config.model.think_token_ids) != 2:
        raise ConfigError("model.think_token_ids: give two ids, [open, close]")
    for i, proxy in enumerate(config.trusted_proxies):
        _check_proxy(proxy, f"trusted_proxies[{i}]")


def _check_proxy(entry: str, where: str) -> None:
    """An address or a network, or ``*`` (every peer): uvicorn takes anything else as a
    literal name that no TCP peer ever matches, so a typo would silently trust nobody."""
    if entry == "*":
        return
    try:
        ipaddress.ip_network(entry)
    except ValueError as error:
        raise ConfigError(
            f"{where}: {entry!r} is not an IP address or network ({error}); e.g. 10.0.0.1 "
            "or 10.0.0.0/24"
        ) from None


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> ServeConfig:
    """Read a YAML file (optional), apply dotted overrides (``guard.model``), validate."""
    data: dict[str, Any] = {}
    tree: yaml.Node | None = None
    if path is not None:
        from secreason.configfile import ConfigFileError, read_yaml

        try:
            data, tree = read_yaml(path)  # one reader for every YAML file (secreason.configfile)
        except ConfigFileError as error:
            raise ConfigError(str(error)) from None
    for dotted, value in (overrides or {}).items():
        target = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    try:
        config = _build(ServeConfig, data, "")
        validate(config)
    except ConfigError as error:
        field_name = str(error).split(":")[0]
        line = line_of(tree, field_name)
        prefix = f"{path}:{line}: " if line else (f"{path}: " if path else "")
        raise ConfigError(prefix + str(error)) from None
    prompt = config.system_prompt
    if prompt.file:
        prompt.text = Path(prompt.file).read_text()
    if prompt.version is None:
        prompt.version = SYSTEM_PROMPT_VERSION if prompt.text == DEFAULT_SYSTEM_PROMPT else "custom"
    return config
