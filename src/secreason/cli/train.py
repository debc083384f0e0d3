"""``secreason sft``, ``secreason rl`` and ``secreason demo``: thin wrappers over train/."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer


def _overrides(recipe: Path, positional: list[str] | None, set_: list[str]) -> list[str]:
    """--set pairs, after the deprecated positional key=value pairs (--set wins).

    The file and the pairs are read here first, before TRL is imported (seconds), so a
    mistake in them is reported at once."""
    from secreason.cli._errors import fail, jsonl_problem, model_problem
    from secreason.configfile import ConfigFileError, parse_set, read_yaml

    if positional:
        typer.echo(
            "warning: positional key=value overrides are deprecated; use --set key=value",
            err=True,
        )
    pairs = [*(positional or []), *set_]
    try:
        data, _ = read_yaml(recipe)
        data.update(parse_set(pair) for pair in pairs)
    except ConfigFileError as error:
        fail(str(error))
    model = data.get("model_name_or_path")
    problem = model_problem(model) if isinstance(model, str) and model else None
    if problem:
        fail(f"{recipe}: {problem}")
    for field in ("dataset_path", "eval_dataset_path"):
        value = data.get(field)
        if isinstance(value, str) and value and (problem := jsonl_problem(Path(value))):
            fail(f"{recipe}: {field}: {problem}")
    return pairs


def _interrupted(stop: Any) -> NoReturn:
    """A stage stopped by Ctrl-C or SIGTERM after saving: say where, exit 128 + signal."""
    typer.echo(f"interrupted: {stop}", err=True)
    raise typer.Exit(stop.exit_code)


def register(app: typer.Typer) -> None:
    @app.command(
        context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
        help="Supervised fine-tuning on reasoning traces (TRL SFTTrainer) from a YAML recipe. "
        "--set key=value overrides a recipe field (python -m secreason.train.sft --help lists "
        "them). Rerun the same command to resume.",
    )
    def sft(
        recipe: Path = typer.Argument(..., help="Recipe YAML (fields of TRL's SFTConfig + ours)."),
        overrides: list[str] = typer.Argument(
            None, help="Deprecated: key=value overrides (use --set).", show_default=False
        ),
        set_: list[str] = typer.Option(
            [], "--set", help="Override a recipe field: key=value. Repeatable."
        ),
    ) -> None:
        pairs = _overrides(recipe, overrides, set_)
        from secreason.train.config import RecipeError, SFTRecipe, load_recipe
        from secreason.train.interrupt import StageInterrupted
        from secreason.train.sft import run_sft
        from secreason.train.stage import StageError

        try:
            out = run_sft(load_recipe(recipe, SFTRecipe, pairs))
        except (RecipeError, StageError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        except StageInterrupted as stop:
            _interrupted(stop)
        typer.echo(f"sft model: {out}")

    @app.command(
        help="RL from verifiable rewards (TRL GRPOTrainer, task rewards + format penalty) from "
        "a YAML recipe. --set key=value overrides a recipe field (python -m "
        "secreason.train.rl --help lists them). Rerun to resume."
    )
    def rl(
        recipe: Path = typer.Argument(..., help="Recipe YAML (fields of TRL's GRPOConfig + ours)."),
        overrides: list[str] = typer.Argument(
            None, help="Deprecated: key=value overrides (use --set).", show_default=False
        ),
        set_: list[str] = typer.Option(
            [], "--set", help="Override a recipe field: key=value. Repeatable."
        ),
    ) -> None:
        pairs = _overrides(recipe, overrides, set_)
        from secreason.train.config import RecipeError, RLRecipe, load_recipe
        from secreason.train.interrupt import StageInterrupted
        from secreason.train.rewards import RewardCoverageError
        from secreason.train.rl import run_rl
        from secreason.train.stage import StageError

        try:
            out = run_rl(load_recipe(recipe, RLRecipe, pairs))
        except (RecipeError, StageError, RewardCoverageError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        except StageInterrupted as stop:
            _interrupted(stop)
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
        from secreason.train.demo_folder import DemoError
        from secreason.train.interrupt import StageInterrupted
        from secreason.train.stage import StageError

        make = DemoConfig.quick if quick else DemoConfig
        options: dict[str, Any] = {"threads": threads or None}
        if tasks:
            options["tasks"] = tuple(t.strip() for t in tasks.split(",") if t.strip())
        config = make(seed=seed, format_penalty=not no_format_penalty, **options)
        if out is None:
            out = Path("runs/demo" + ("-no-format-penalty" if no_format_penalty else ""))
        try:
            report = run_demo(config, out)
        except (DemoError, StageError) as err:
            typer.echo(f"error: {err}", err=True)  # every line: a refusal lists fields
            raise typer.Exit(2) from None
        except StageInterrupted as stop:
            _interrupted(stop)
        typer.echo(f"report: {report / 'README.md'}")
