"""Commands that hand secreason's work to other tools: ``data export`` (verl, OpenRLHF
data), ``reward-server`` (OpenRLHF remote rewards), ``export`` (vLLM, Ollama, GGUF
deployment files) and ``card`` (the model card)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from secreason.cli._errors import fail


def register(app: typer.Typer) -> None:
    from secreason.cli.data import data_app

    @data_app.command("export")
    def data_export(
        source: Path = typer.Argument(
            ..., help="RL data: a run's rl/ folder (hf/ or *.jsonl) or one JSONL file."
        ),
        format_: str = typer.Option(..., "--format", help="verl (parquet) or openrlhf (JSONL)."),
        out: Path = typer.Option(..., "--out", help="Output folder (one file per split)."),
    ) -> None:
        """Write RL prompts in another trainer's layout, rewards routed by task."""
        from secreason.integrations.verl import export_verl, read_rl_rows

        if format_ not in ("verl", "openrlhf"):
            fail(f"--format {format_!r}: expected verl or openrlhf")
        try:
            splits = read_rl_rows(source)
            if format_ == "verl":
                paths = export_verl(splits, out)
            else:
                from secreason.integrations.openrlhf import export_openrlhf

                paths = export_openrlhf(splits, out)
        except (ValueError, FileNotFoundError, KeyError) as err:
            fail(str(err))
        typer.echo(json.dumps({"format": format_, "files": [str(p) for p in paths]}))

    @app.command("reward-server")
    def reward_server(
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(5000, "--port"),
        api_key: list[str] = typer.Option(
            None, "--api-key", help="Accepted API key (repeatable; also $SECREASON_API_KEYS)."
        ),
        max_body_bytes: int = typer.Option(64 * 1024 * 1024, "--max-body-bytes"),
        max_concurrent: int = typer.Option(16, "--max-concurrent"),
        format_penalty: float = typer.Option(1.0, "--format-penalty"),
        task: str = typer.Option(
            None, "--task", help="Task of every row when labels are bare references."
        ),
    ) -> None:
        """Serve the task rewards for OpenRLHF's remote reward mode (POST /get_reward)."""
        from secreason.integrations.reward_server import RewardServerSettings, run
        from secreason.tasks import task_names

        if task is not None and task not in task_names():
            fail(f"--task {task!r}: expected one of {', '.join(task_names())}")
        settings = RewardServerSettings.with_env_keys(
            host=host,
            port=port,
            api_keys=set(api_key or []),
            max_body_bytes=max_body_bytes,
            max_concurrent=max_concurrent,
            format_penalty=format_penalty,
            default_task=task,
        )
        if not settings.api_keys:
            typer.echo("warning: no API key set; the reward server is open", err=True)
        run(settings)
