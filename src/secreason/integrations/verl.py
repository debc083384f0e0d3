"""secreason's rewards as a verl custom reward function, and RL data in verl's layout.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` for
every response its reward manager decoded, and logs every key of a returned dict. Point
verl at this module::

    custom_reward_function.path=$(python -m secreason.integrations.verl)
    custom_reward_function.name=compute_score
    +custom_reward_function.reward_kwargs.prefilled=true      # template ends with <think>

``reward_kwargs`` (all optional): ``prefilled``, ``format_penalty`` (1.0, as the TRL
recipes), ``format`` (a dict of :class:`~secreason.reasoning.FormatConfig` fields) and
``task_options``. ``extra_info['prefilled']`` per row is honoured too. verl's reward
managers decode with ``skip_special_tokens=True``: keep the think tags ordinary tokens,
or the format check sees no reasoning (see :mod:`secreason.integrations.scoring`).
The ``batch`` reward manager's plural keywords (``data_sources``, ``solution_strs``,
``ground_truths``, ``extra_infos``) get one result per row from the same function (or
name ``compute_score_batch``). Odd shapes are read or refused by name: a ground truth
may be a list or numpy array (joined), a ``{"reference": ...}`` dict or the OpenRLHF
label string; a row whose gold no answer can earn raises instead of scoring zero.

The export writes what verl's RL dataset reads: a parquet file per split whose rows are
``data_source`` (``secreason/<task>``, the router's key), ``prompt`` (chat turns),
``ability``, ``reward_model: {style: rule, ground_truth}`` and ``extra_info``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from secreason.integrations.inputs import (
    as_flag,
    as_text,
    check_penalty,
    format_config,
    reference_text,
    unpack_label,
)
from secreason.integrations.scoring import RewardConfig, RoutingError, Scorer, route

_OPTIONS = ("prefilled", "format_penalty", "format", "task_options")
_SCORERS: dict[str, Scorer] = {}


def _scorer(kwargs: Mapping[str, Any]) -> Scorer:
    unknown = sorted(set(kwargs) - set(_OPTIONS))
    if unknown:
        warnings.warn(
            f"secreason compute_score ignores {unknown}; it reads {list(_OPTIONS)}",
            stacklevel=3,
        )
    options = {k: kwargs[k] for k in _OPTIONS if k in kwargs}
    key = json.dumps(options, sort_keys=True, default=str)
    if key not in _SCORERS:
        fmt = format_config(options.get("format") or {}, "reward_kwargs.format")
        task_options = options.get("task_options") or {}
        if not isinstance(task_options, Mapping) or not all(
            isinstance(v, Mapping) for v in task_options.values()
        ):
            raise TypeError(
                "reward_kwargs.task_options: expected {task: {option: value}}, "
                f"got {task_options!r}"
            )
        _SCORERS[key] = Scorer(
            RewardConfig(
                format_config=fmt,
                format_penalty=check_penalty(
                    options.get("format_penalty", 1.0), "reward_kwargs.format_penalty"
                ),
                prefilled=as_flag(options.get("prefilled", False), "reward_kwargs.prefilled"),
                task_options=dict(task_options),
            )
        )
    return _SCORERS[key]


_BATCH = ("data_sources", "solution_strs", "ground_truths", "extra_infos")


def compute_score(
    data_source: Any = None,
    solution_str: Any = None,
    ground_truth: Any = None,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """verl's reward: ``score`` (task score minus the format penalty) plus per-check
    details (``task_score``, ``format_ok``, ``reasoning_words``, ...), all numbers. Called
    with the batch reward manager's plural keywords, a list of those dicts."""
    if any(name in kwargs for name in _BATCH):
        columns = [kwargs.pop(name, None) for name in _BATCH]
        return compute_score_batch(*columns, **kwargs)
    scorer = _scorer(kwargs)
    if extra_info is not None and not isinstance(extra_info, Mapping):
        raise TypeError(f"extra_info: expected a dict or None, got {type(extra_info).__name__}")
    prefilled = None
    if "prefilled" not in kwargs and extra_info and "prefilled" in extra_info:
        prefilled = as_flag(extra_info["prefilled"], "extra_info['prefilled']")
    text = as_text(solution_str, "solution_str")
    task = route(data_source, extra_info)
    label_task, reference = unpack_label(ground_truth, "ground_truth")
    if label_task is not None and label_task != task:
        raise RoutingError(f"ground_truth names task {label_task!r} but the row routes to {task!r}")
    return scorer.score(text, reference, task, prefilled=prefilled).metrics()


def compute_score_batch(
    data_sources: Sequence[Any] | None,
    solution_strs: Sequence[Any] | None,
    ground_truths: Sequence[Any] | None,
    extra_infos: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[dict[str, float]]:
    """verl's ``batch`` reward manager: one :func:`compute_score` dict per row; an error
    names the row."""
    if solution_strs is None or ground_truths is None:
        raise TypeError("compute_score_batch needs solution_strs and ground_truths")
    n = len(solution_strs)
    sources = [None] * n if data_sources is None else list(data_sources)
    infos = [None] * n if extra_infos is None else list(extra_infos)
    lengths = (len(sources), n, len(ground_truths), len(infos))
    if len(set(lengths)) > 1:
        raise ValueError(
            "data_sources, solution_strs, ground_truths and extra_infos differ in length "
            f"({', '.join(map(str, lengths))})"
        )
    out = []
    for i, (source, text, truth, info) in enumerate(
        zip(sources, solution_strs, ground_truths, infos, strict=True)
    ):
        try:
            out.append(compute_score(source, text, truth, info, **kwargs))
        except (TypeError, ValueError) as err:
            kind = type(err) if isinstance(err, (RoutingError, TypeError)) else ValueError
            raise kind(f"row {i}: {err}") from None
    return out


# ------------------------------------------------------------------------------ export


_EXPORT_SCORER = Scorer()  # the tasks' default options, as `data run` writes the rows


def verl_row(row: Mapping[str, Any], index: int, split: str) -> dict[str, Any]:
    """One secreason RL row (``prompt``, ``task``, ``reference``...) in verl's layout.
    A row the reward could not score at training time is refused here, named."""
    if not isinstance(row, Mapping):
        raise ValueError(f"row {index}: a {type(row).__name__}, not an object")
    ident = f"row {index}" + (f" (id={row['id']!r})" if row.get("id") else "")
    missing = [k for k in ("prompt", "task", "reference") if not row.get(k)]
    if missing:
        raise ValueError(f"{ident}: missing {', '.join(missing)}; is this an RL split?")
    task = row["task"]
    if not isinstance(task, str):
        raise ValueError(f"{ident}: task {task!r} is not a task name")
    try:
        route(f"secreason/{task}")  # refuses a task no reward can score, before training
        reference = reference_text(row["reference"], "reference")
        _EXPORT_SCORER.check_gold(task, reference)
    except ValueError as err:
        raise ValueError(f"{ident}: {err}") from None
    return {
        "data_source": f"secreason/{task}",
        "prompt": _turns(row["prompt"], ident),
        "ability": str(row.get("domain") or "cyber"),
        "reward_model": {"style": "rule", "ground_truth": reference},
        "extra_info": {
            "split": split,
            "index": index,
            "id": str(row.get("id", index)),
            "task": task,
            "source": str(row.get("source") or ""),
        },
    }


def _turns(prompt: Any, ident: str) -> list[dict[str, str]]:
    """The prompt's chat turns, each ``{"role": text, "content": text}``."""
    if not isinstance(prompt, list):
        raise ValueError(
            f"{ident}: prompt must be a list of chat turns, got {type(prompt).__name__}"
        )
    turns = []
    for i, turn in enumerate(prompt):
        ok = isinstance(turn, Mapping) and all(
            isinstance(turn.get(k), str) for k in ("role", "content")
        )
        if not ok:
            raise ValueError(f"{ident}: prompt[{i}] must be {{'role': text, 'content': text}}")
        turns.append({"role": turn["role"], "content": turn["content"]})
    return turns


def read_rl_rows(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """RL rows by split from a ``save_rows`` folder (``hf/`` or ``*.jsonl``) or a JSONL."""
    p = Path(path)
    if p.is_file():
        return {p.stem: _jsonl(p)}
    if (p / "hf").is_dir():
        from datasets import load_from_disk

        loaded = load_from_disk(str(p / "hf"))
        if not hasattr(loaded, "items"):  # a single Dataset, not a DatasetDict
            return {"train": [dict(r) for r in loaded]}
        return {name: [dict(r) for r in ds] for name, ds in loaded.items()}
    if not p.exists():
        raise FileNotFoundError(
            f"{p} does not exist: give a data run's rl/ folder (e.g. runs/data-offline/rl "
            "after `secreason data run recipes/data/offline.yaml`) or an RL JSONL file"
        )
    files = sorted(p.glob("*.jsonl")) if p.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{p}: expected an RL JSONL file or a folder with hf/ or *.jsonl")
    return {f.stem: _jsonl(f) for f in files}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not JSON ({err.msg})") from None
    return rows


def export_verl(
    splits: Mapping[str, Iterable[Mapping[str, Any]]], out_dir: str | Path
) -> list[Path]:
    """Write ``<out_dir>/<split>.parquet`` per split; return the paths."""
    from datasets import Dataset

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, rows in splits.items():
        converted = [verl_row(r, i, split) for i, r in enumerate(rows)]
        if not converted:
            raise ValueError(f"split {split!r} is empty")
        path = out / f"{split}.parquet"
        Dataset.from_list(converted).to_parquet(str(path))
        paths.append(path)
    return paths


if __name__ == "__main__":
    print(__file__)  # the path verl's custom_reward_function.path wants
