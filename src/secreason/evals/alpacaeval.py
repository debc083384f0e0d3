"""AlpacaEval 2.0 (the paper's headline general-chat number) through ``alpaca-eval``.

The win rate is alpaca-eval's: its annotator prompt, its log-probability verdict rule,
its length-controlled GLM. What secreason adds is the part a reasoning model needs and
the plumbing of a run: the instructions are answered by any secreason backend (cached
and resumable like every generation), the judge sees the answer region only (never
the reasoning), and the judge is whatever OpenAI-compatible model the user names
(alpaca-eval's own 2.0 annotator config, pointed at that server).

* :func:`load_instructions`: the instruction set from a JSON list or JSONL file (the
  805 AlpacaEval instructions, or any subset or other set with an ``instruction``).
* :func:`alpaca_outputs`: alpaca-eval's model-outputs records, reasoning removed.
* :func:`judge_annotator_config` / :func:`run_alpaca_eval`: the judge and the score.
  The length-controlled rate needs one file from the hub (see :func:`run_alpaca_eval`);
  the raw rate needs none.

alpaca-eval is optional (``pip install 'secreason[general]'``), imported when called.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secreason.evals.general import MISSING_EXTRA
from secreason.evals.sources import read_any
from secreason.reasoning import split


def load_instructions(path: str | Path) -> list[dict[str, Any]]:
    """Records with a non-empty ``instruction`` (other fields kept), from a JSON list
    (AlpacaEval's own file) or JSONL."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such AlpacaEval instructions file")
    if path.suffix.lower() not in (".json", ".jsonl"):
        raise ValueError(f"{path}: expected a .json list or a .jsonl file")
    rows = read_any(path)
    for number, row in enumerate(rows, 1):
        instruction = row.get("instruction") if isinstance(row, dict) else None
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"{path}: record {number}: 'instruction' is missing or empty")
    if not rows:
        raise ValueError(f"{path}: no instructions")
    return rows


def alpaca_outputs(
    instructions: Sequence[str],
    completions: Sequence[str],
    generator: str,
    *,
    prefilled: bool = False,
) -> list[dict[str, str]]:
    """AlpacaEval's model-outputs records; the judge sees answers, never reasoning."""
    return [
        {"instruction": i, "output": split(c, prefilled=prefilled).answer, "generator": generator}
        for i, c in zip(instructions, completions, strict=True)
    ]


#: AlpacaEval 2.0's annotator: the judge's log-probabilities of two one-letter verdicts.
ALPACA_EVAL_2_ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"


def judge_annotator_config(
    folder: str | Path,
    model: str,
    base_url: str,
    *,
    api_key: str | None = None,
    weighted: bool = True,
    max_tokens: int | None = None,
) -> Path:
    """Write an alpaca-eval annotator config whose judge is ``model`` at ``base_url``.

    It keeps AlpacaEval 2.0's own prompt template (read from the installed package,
    never copied here) and only redirects the client. ``weighted`` is the official
    rule (preference = the judge's probability of each verdict letter, which needs a
    server returning ``top_logprobs``); ``weighted=False`` reads the verdict letter
    from the reply text instead, for servers without log-probabilities and for
    reasoning judges (give them ``max_tokens`` room; the server must split the
    reasoning off). alpaca-eval caches the judge's annotations inside ``folder``.

    The judge's key: ``api_key`` if given (it is then written to ``folder``'s client
    config), else ``$OPENAI_API_KEY`` read when the judge is called (nothing secret on
    disk), else a placeholder for local servers that take none.
    """
    import yaml

    try:
        from alpaca_eval import constants
    except ImportError as error:  # pragma: no cover - optional extra
        raise ImportError(f"alpaca-eval is missing; {MISSING_EXTRA}") from error
    base_dir = Path(constants.EVALUATORS_CONFIG_DIR)
    official = yaml.safe_load((base_dir / ALPACA_EVAL_2_ANNOTATOR / "configs.yaml").read_text())
    config = dict(official[ALPACA_EVAL_2_ANNOTATOR])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clients = folder / "client_configs.yaml"
    client: dict[str, str] = {"base_url": base_url}
    if api_key or not os.environ.get("OPENAI_API_KEY"):
        client["api_key"] = api_key or "EMPTY"
    clients.write_text(yaml.safe_dump({"default": [client]}))
    config["prompt_template"] = str(base_dir / config["prompt_template"])
    kwargs = dict(config["completions_kwargs"])
    # requires_chatml: chat endpoint even when the name holds "instruct" (alpaca-eval
    # would otherwise send a raw completion prompt).
    kwargs.update(model_name=model, client_config_path=str(clients), requires_chatml=True)
    if not weighted:
        for key in ("logprobs", "top_logprobs"):
            kwargs.pop(key, None)
        kwargs.update(temperature=0, max_tokens=max_tokens or 1)
        config.pop("completion_key", None)
        config["fn_completion_parser"] = "regex_parser"
        # The template's verdict letters: "m" is output_1 (the reference), "M" output_2.
        config["completion_parser_kwargs"] = {
            "outputs_to_match": {1: r"^\s*m\s*$", 2: r"^\s*M\s*$"}
        }
    elif max_tokens:
        kwargs["max_tokens"] = max_tokens
    config["completions_kwargs"] = kwargs
    name = folder.name
    path = folder / "configs.yaml"
    path.write_text(yaml.safe_dump({name: config}, sort_keys=False))
    return path


def _float_preference_annotator() -> Any:
    """alpaca-eval's pairwise annotator, its cached preferences read back as floats.

    alpaca-eval 0.6.6 reloads its annotation cache with ``pandas.read_json``, which
    types whole-number preferences (1, 2: every text verdict, and confident log-prob
    verdicts) as int64; its next step writes 1.5 (tie) into that column, which pandas
    3 refuses. So a rerun from the cache, its resume path, would crash.
    """
    from alpaca_eval.annotators import PairwiseAnnotator

    class FloatPreferenceAnnotator(PairwiseAnnotator):
        def load_(self, path: Any = None) -> None:
            super().load_(path)
            frame = getattr(self, "df_annotations", None)
            if frame is not None and self.annotation_key in frame:
                frame[self.annotation_key] = frame[self.annotation_key].astype(float)

    return FloatPreferenceAnnotator


def run_alpaca_eval(
    outputs: list[dict[str, str]],
    *,
    reference_outputs: list[dict[str, str]] | str | Path | None = None,
    annotators_config: str | Path = ALPACA_EVAL_2_ANNOTATOR,
    output_path: str | Path | None = None,
    length_controlled: bool = True,
) -> dict[str, float]:
    """AlpacaEval 2.0 on ``outputs`` against ``reference_outputs`` (default: the
    official GPT-4-turbo outputs, fetched by alpaca-eval from the hub).

    The judge comes from ``annotators_config`` (see :func:`judge_annotator_config`).
    The length-controlled win rate fits alpaca-eval's GLM together with precomputed
    annotations and instruction difficulties of the 805 official instructions, which
    alpaca-eval fetches from the hub (``tatsu-lab/alpaca_eval``, ``df_gamed.csv``):
    offline it needs that file in the hub cache. ``length_controlled=False`` gives the
    raw win rate only, with nothing downloaded.
    Nothing is written into alpaca-eval's package folder (leaderboards, GLM weights).
    """
    try:
        from alpaca_eval import evaluate
    except ImportError as error:  # pragma: no cover - optional extra
        raise ImportError(f"alpaca-eval is missing; {MISSING_EXTRA}") from error
    generators = {o.get("generator", "") for o in outputs}
    if len(generators) != 1 or "" in generators:
        raise ValueError(f"outputs need one shared non-empty 'generator', got {sorted(generators)}")
    name = generators.pop()
    extra = {} if reference_outputs is None else {"reference_outputs": reference_outputs}
    metric: dict[str, Any] = (
        # save_weights_dir=None: alpaca-eval would write the GLM fit into its package.
        {"metric_kwargs": {"save_weights_dir": None}}
        if length_controlled
        else {"fn_metric": "get_winrate", "sort_by": "win_rate"}
    )
    try:
        leaderboard, _ = evaluate(
            Annotator=_float_preference_annotator(),
            model_outputs=outputs,
            annotators_config=str(annotators_config),
            name=name,
            output_path=str(output_path) if output_path else None,
            precomputed_leaderboard=None,
            is_cache_leaderboard=False,
            is_return_instead_of_print=True,
            **metric,
            **extra,
        )
    except Exception as error:
        if type(error).__name__ in {"LocalEntryNotFoundError", "OfflineModeIsEnabled"}:
            raise RuntimeError(
                "AlpacaEval's length-controlled win rate needs tatsu-lab/alpaca_eval "
                f"df_gamed.csv from the Hugging Face hub ({error}); fetch it once with the hub "
                "reachable (the judge's annotations are cached, rerunning asks it nothing), "
                "or pass length_controlled=False for the raw win rate"
            ) from error
        raise
    row = leaderboard.loc[name]
    return {
        key: float(row[key])
        for key in (
            "length_controlled_winrate",
            "lc_standard_error",
            "win_rate",
            "standard_error",
            "n_wins",
            "n_total",
            "avg_length",
        )
        if key in row
    }
