"""General capability (the paper's Tables 5-6) through the field's own harnesses.

Nothing here re-implements BBH, GPQA, GSM8K, MMLU, HumanEval, MATH or AlpacaEval.
lm-evaluation-harness runs its tasks and the ``alpaca-eval`` package computes the
length-controlled win rate; this module is the glue that lets both drive a secreason
:class:`Backend` and that strips the reasoning before anything is scored:

* :func:`lm_eval_model` wraps a backend as an lm-eval ``LM``. lm-eval renders its
  prompts as chat turns (``apply_chat_template=True``); the wrapper sends them through
  the backend, keeps the answer region of each completion (reasoning removed, an
  unclosed reasoning gives an empty answer) and cuts it at lm-eval's stop strings.
  Generative tasks only: log-likelihood scoring of a reasoning model is meaningless.
* :func:`run_lm_eval` runs a list of tasks (paper names or lm-eval names) and
  flattens lm-eval's result dict into ``task/metric`` numbers for the report.
* :func:`alpaca_outputs` / :func:`run_alpaca_eval`: AlpacaEval 2.0 with the judge the
  user names; :func:`judge_annotator_config` points alpaca-eval's own 2.0 annotator
  (prompt and log-prob rule) at any OpenAI-compatible server. The length-controlled
  rate needs one file from the hub (see :func:`run_alpaca_eval`); the raw rate none.
* :func:`math_equal`: math answers compared by ``math-verify``.

Both harnesses are optional (``pip install 'secreason[general]'``) and imported only
when called. HotpotQA and 2WikiMultihopQA have no lm-eval task: pass a task YAML
folder with ``include_path=`` to :func:`run_lm_eval`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from secreason.backends.base import Backend, Message, SamplingParams
from secreason.reasoning import split

#: the paper's general benchmarks -> lm-evaluation-harness generative task names
LM_EVAL_TASKS: dict[str, str] = {
    "bbh": "bbh_cot_zeroshot",
    "gpqa": "gpqa_diamond_cot_zeroshot",
    "gsm8k": "gsm8k_cot_zeroshot",
    "mmlu": "mmlu_generative",
    "humaneval": "humaneval_instruct",
    "ifeval": "ifeval",
    "math": "minerva_math",
}
MISSING_EXTRA = "install the optional extra: pip install 'secreason[general]'"


def lm_eval_task_names(names: Sequence[str]) -> list[str]:
    """Paper names (``gsm8k``) become lm-eval task names; other names pass through."""
    return [LM_EVAL_TASKS.get(name.lower(), name) for name in names]


def decode_chat(context: str) -> list[Message]:
    """The conversation the wrapper's ``apply_chat_template`` encoded as JSON."""
    try:
        messages = json.loads(context)
    except json.JSONDecodeError:
        return [{"role": "user", "content": context}]
    if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    return [{"role": "user", "content": context}]


def continuation(completion: str, until: Sequence[str] = (), *, prefilled: bool = False) -> str:
    """What lm-eval scores: the answer region, cut at the first stop string."""
    answer = split(completion, prefilled=prefilled).answer
    cuts = [answer.find(stop) for stop in until if stop and stop in answer]
    return answer[: min(cuts)] if cuts else answer


def sampling_from(gen_kwargs: dict[str, Any], default: SamplingParams) -> SamplingParams:
    """lm-eval's per-task generation arguments, mapped onto the backend's."""
    greedy = not gen_kwargs.get("do_sample", False)
    return SamplingParams(
        temperature=0.0 if greedy else float(gen_kwargs.get("temperature", default.temperature)),
        top_p=float(gen_kwargs.get("top_p", default.top_p)),
        # lm-eval's budgets (often 256) are sized for answers, not for reasoning first.
        max_tokens=max(int(gen_kwargs.get("max_gen_toks", 0)), default.max_tokens),
        seed=default.seed,
    )


def lm_eval_model(
    backend: Backend, *, params: SamplingParams | None = None, batch_size: int = 16
) -> Any:
    """A backend as an lm-eval ``LM`` (generate_until only)."""
    try:
        from lm_eval.api.model import LM
    except ImportError as error:  # pragma: no cover - optional extra
        raise ImportError(f"lm-evaluation-harness is missing; {MISSING_EXTRA}") from error

    default = params or SamplingParams(temperature=0.0, max_tokens=4096)

    class SecreasonLM(LM):
        def __init__(self) -> None:
            super().__init__()

        @property
        def tokenizer_name(self) -> str:
            return f"secreason:{backend.model_id}"

        def chat_template(self, chat_template: bool | str = False) -> str:
            return "secreason-json"

        def apply_chat_template(
            self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
        ) -> str:
            # Keep the turns intact; the backend applies the model's own template.
            return json.dumps(chat_history)

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            # One lm-eval call mixes the requests of every task, each with its own stop
            # strings and decoding: batch only requests that decode alike.
            groups: dict[SamplingParams, list[int]] = {}
            for index, request in enumerate(requests):
                groups.setdefault(sampling_from(request.args[1], default), []).append(index)
            outputs = [""] * len(requests)
            progress = tqdm(
                total=len(requests), desc="lm-eval generate", disable=disable_tqdm or None
            )
            for sampling, indices in groups.items():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    contexts = [decode_chat(requests[i].args[0]) for i in chunk]
                    generations = backend.generate(contexts, sampling)
                    for i, generation in zip(chunk, generations, strict=True):
                        until = requests[i].args[1].get("until") or []
                        outputs[i] = continuation(
                            generation.full_text(),
                            [until] if isinstance(until, str) else list(until),
                            prefilled=backend.prefilled,
                        )
                    progress.update(len(chunk))
            progress.close()
            return outputs

        def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
            raise NotImplementedError(
                "secreason drives lm-eval with generative tasks only; pick a generative "
                "variant (e.g. mmlu_generative, gsm8k_cot_zeroshot)"
            )

        def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
            raise NotImplementedError("generative tasks only")

    return SecreasonLM()


def flatten_results(results: dict[str, Any]) -> dict[str, float]:
    """lm-eval's ``{"results": {task: {"metric,filter": value}}}`` as ``task/metric,filter``.

    Only ``metric,filter`` keys are metrics; stderrs, aliases and counts such as
    ``sample_len`` are left out so that the first key is a real headline.
    """
    flat: dict[str, float] = {}
    for task, metrics in (results.get("results") or {}).items():
        for key, value in metrics.items():
            if "," not in key or "_stderr" in key or not isinstance(value, (int, float)):
                continue
            flat[f"{task}/{key}"] = float(value)
    return flat


def _task_manager(include_path: str | None, tasks: Sequence[str]) -> Any:
    """Index only the user's folder when it holds every task (lm-eval's own index of
    thousands of YAML files takes seconds); otherwise both."""
    from lm_eval.tasks import TaskManager

    if include_path is None:
        return None
    custom = TaskManager(include_path=include_path, include_defaults=False)
    if all(name in custom.all_tasks for name in tasks):
        return custom
    return TaskManager(include_path=include_path)


def run_lm_eval(
    backend: Backend,
    tasks: Sequence[str],
    *,
    limit: int | None = None,
    params: SamplingParams | None = None,
    include_path: str | None = None,
    system_instruction: str | None = None,
    confirm_run_unsafe_code: bool = False,
    batch_size: int = 16,
) -> dict[str, float]:
    """Run lm-eval tasks on a backend; numbers come back flat, ready for the report."""
    try:
        import lm_eval
    except ImportError as error:  # pragma: no cover - optional extra
        raise ImportError(f"lm-evaluation-harness is missing; {MISSING_EXTRA}") from error
    names = lm_eval_task_names(tasks)
    results = lm_eval.simple_evaluate(
        model=lm_eval_model(backend, params=params, batch_size=batch_size),
        tasks=names,
        limit=limit,
        apply_chat_template=True,
        system_instruction=system_instruction,
        task_manager=_task_manager(include_path, names),
        confirm_run_unsafe_code=confirm_run_unsafe_code,
        log_samples=False,
    )
    return flatten_results(results or {})


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
    clients.write_text(
        yaml.safe_dump({"default": [{"api_key": api_key or "EMPTY", "base_url": base_url}]})
    )
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


def math_equal(completion: str, gold: str, *, prefilled: bool = False) -> bool:
    """True when the answer region states the gold value (``math-verify``'s judgement)."""
    from math_verify import parse, verify

    answer = split(completion, prefilled=prefilled).answer
    if not answer.strip():
        return False
    gold_parsed = parse(gold if "$" in gold or "\\boxed" in gold else f"${gold}$")
    return bool(verify(gold_parsed, parse(answer)))
