"""``secreason serve``: the guarded OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        model: str = typer.Option(
            None, "--model", help="Model folder or hub id (or the model's name at --upstream)."
        ),
        upstream: str = typer.Option(
            None, "--upstream", help="Base URL of an OpenAI-compatible server, e.g. vllm serve's."
        ),
        served_model_name: str = typer.Option(
            None,
            "--served-model-name",
            help="The model id clients send (default: the folder, e.g. runs/demo/rl/final "
            "-> demo-rl).",
        ),
        guard: str = typer.Option(
            None, "--guard", help="Llama-Guard-3-protocol model: folder, hub id or http(s) URL."
        ),
        guard_allow: list[str] = typer.Option(
            None, "--guard-allow", help="Guard category this deployment accepts (e.g. S2)."
        ),
        config: Path = typer.Option(None, "--config", help="YAML deployment file."),
        host: str = typer.Option(None, "--host", help="Default: 127.0.0.1 (or --config's)."),
        port: int = typer.Option(None, "--port", help="Default: 8000 (or --config's)."),
        api_key: list[str] = typer.Option(
            None, "--api-key", help="Accepted API key (repeatable; also $SECREASON_API_KEYS)."
        ),
        audit_log: str = typer.Option(None, "--audit-log", help="Append-only JSONL audit file."),
        system_prompt: Path = typer.Option(
            None, "--system-prompt", help="File with the deployment's system prompt."
        ),
        no_system_prompt: bool = typer.Option(
            False, "--no-system-prompt", help="system_prompt.mode=off: client prompts unchanged."
        ),
        max_concurrent: int = typer.Option(
            None, "--max-concurrent", help="Requests in flight, all keys (default 64); more: 429."
        ),
        set_: list[str] = typer.Option(
            None, "--set", help="Any setting as dotted.key=value, e.g. limits.max_tokens=2048."
        ),
    ) -> None:
        """Serve a model behind an OpenAI-compatible API with a system prompt and a guard."""
        from secreason.cli._errors import model_problem, port_problem
        from secreason.serve.config import ConfigError, load_config

        overrides: dict[str, Any] = {}
        for item in set_ or []:
            key, sep, value = item.partition("=")
            if not sep:
                typer.echo(f"error: --set {item!r}: expected dotted.key=value", err=True)
                raise typer.Exit(2)
            overrides[key.strip()] = value
        flags = {
            "model.path": model,
            "model.upstream": upstream,
            "model.served_name": served_model_name,
            "guard.model": guard,
            "guard.allow_categories": guard_allow or None,
            "host": host,
            "port": port,
            "limits.api_keys": api_key or None,
            "audit.path": audit_log,
            "system_prompt.file": str(system_prompt) if system_prompt else None,
            "system_prompt.mode": "off" if no_system_prompt else None,
            "limits.max_concurrent": max_concurrent,
        }
        overrides.update({k: v for k, v in flags.items() if v is not None})
        try:
            settings = load_config(config, overrides)
        except ConfigError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        except OSError as error:
            # the prompt file (--system-prompt or system_prompt.file) is read here
            name = error.filename or "the system prompt file"
            if isinstance(error, IsADirectoryError):
                what = "a folder, not a file; give a text file holding the system prompt"
            else:
                what = f"{(error.strerror or str(error)).lower()}; check the path"
            typer.echo(f"error: system prompt {name}: {what}", err=True)
            raise typer.Exit(2) from None
        problem = model_problem(settings.model.path) if settings.model.path else None
        if problem and not settings.model.upstream:
            typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(2)
        problem = port_problem(settings.host, settings.port)
        if problem:
            typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(2)
        from secreason.serve.server import run

        run(settings)
