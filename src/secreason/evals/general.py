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
* AlpacaEval 2.0 lives in ``alpacaeval.py`` (its inputs, judge and runs differ).
* :func:`math_equal`: math answers compared by ``math-verify``.

Both harnesses are optional (``pip install 'secreason[general]'``) and imported only
when called. HotpotQA and 2WikiMultihopQA have no lm-eval task: pass a task YAML
folder with ``include_path=`` to :func:`run_lm_eval`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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


def math_equal(completion: str, gold: str, *, prefilled: bool = False) -> bool:
    """True when the answer region states the gold value (``math-verify``'s judgement)."""
    from math_verify import parse, verify

    answer = split(completion, prefilled=prefilled).answer
    if not answer.strip():
        return False
    gold_parsed = parse(gold if "$" in gold or "\\boxed" in gold else f"${gold}$")
    return bool(verify(gold_parsed, parse(answer)))
