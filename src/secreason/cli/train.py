"""``secreason sft``, ``secreason rl`` and ``secreason demo``: thin wrappers over train/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    @app.command(
        context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
        help="Supervised fine-tuning on reasoning traces (TRL SFTTrainer) from a YAML recipe. "
        "Extra key=value arguments override recipe fields. Rerun the same command to resume.",
    )
    def sft(
        recipe: Path = typer.Argument(..., help="Recipe YAML (fields of TRL's SFTConfig + ours)."),
        overrides: list[str] = typer.Argument(None, help="key=value overrides."),
    ) -> None:
        from secreason.train.config import RecipeError, SFTRecipe, load_recipe
        from secreason.train.sft import run_sft
        from secreason.train.stage import StageError

        try:
            out = run_sft(load_recipe(recipe, SFTRecipe, overrides or []))
        except (RecipeError, StageError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"sft model: {out}")

    @app.command(
        help="RL from verifiable rewards (TRL GRPOTrainer, task rewards + format penalty) from "
        "a YAML recipe. Extra key=value arguments override recipe fields. Rerun to resume."
    )
    def rl(
        recipe: Path = typer.Argument(..., help="Recipe YAML (fields of TRL's GRPOConfig + ours)."),
        overrides: list[str] = typer.Argument(None, help="key=value overrides."),
    ) -> None:
        from secreason.train.config import RecipeError, RLRecipe, load_recipe
        from secreason.train.rewards import RewardCoverageError
        from secreason.train.rl import run_rl
        from secreason.train.stage import StageError

        try:
            out = run_rl(load_recipe(recipe, RLRecipe, overrides or []))
        except (RecipeError, StageError, RewardCoverageError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"rl model: {out}")

    @app.command(
        help="The offline end-to-end demo on CPU: tiny model -> SFT -> RL -> held-out "
        "evaluation -> report folder. Rerun the same command to resume."
    )
    def demo(
        out: Path = typer.Option(
            None, help="Output folder (default runs/demo[-no-format-penalty])."
        ),
        seed: int = typer.Option(0, help="Seed for data, model and training."),
        no_format_penalty: bool = typer.Option(
            False, "--no-format-penalty", help="Ablation: RL without the format penalty."
        ),
        quick: bool = typer.Option(False, "--quick", help="The short CI variant (< 3 min)."),
        threads: int = typer.Option(
            0, help="Torch threads (0: all cores, or 1 when the machine is already busy)."
        ),
        tasks: str = typer.Option(
            "", help="Comma-separated demo tasks (default cwe,ate,mcq; cvss also available)."
        ),
    ) -> None:
        from secreason.train.demo import DemoConfig, run_demo

        make = DemoConfig.quick if quick else DemoConfig
        options: dict[str, Any] = {"threads": threads or None}
        if tasks:
            options["tasks"] = tuple(t.strip() for t in tasks.split(",") if t.strip())
        config = make(seed=seed, format_penalty=not no_format_penalty, **options)
        if out is None:
            out = Path("runs/demo" + ("-no-format-penalty" if no_format_penalty else ""))
        report = run_demo(config, out)
        typer.echo(f"report: {report / 'README.md'}")
