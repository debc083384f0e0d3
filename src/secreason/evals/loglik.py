"""Multiple choice by log-likelihood: read the option letters' probabilities, generate nothing.

Why: the standard way to score base and instruct models on multiple choice (lm-eval's
``multiple_choice`` output type, FAITH's log-likelihood mode) costs one forward pass per
question instead of a long generation, and can never be "invalid". Here the benchmark's
own conversation is rendered with the model's chat template, ``Answer:`` is appended
(after closing the reasoning block when the template opens one, so the letter is read
where a reasoning model would write its answer), and each option's continuation
(`` A``, `` B``...) is scored as the sum of its tokens' log-probabilities. Context and
continuation are tokenized separately and concatenated, as lm-eval does, so a merge
across the boundary cannot change what is scored.

The chosen letter is then judged like a completion ``Answer: X`` through the benchmark's
own ``judge`` and ``metrics``, so every MCQ measure (accuracy, per-letter F1, shuffling
consistency) reads the same for both modes. Prompts are batched with left padding and
explicit position ids, which gives the same numbers as one prompt at a time (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secreason.evals.base import Benchmark, ItemResult
from secreason.evals.loglik_server import server_choice_logprobs
from secreason.reasoning import THINK
from secreason.tasks.base import PROTOCOLS, Protocol, Sample

ANSWER_PREFIX = "Answer:"


def choice_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    choices: Sequence[str],
    *,
    batch_size: int = 8,
) -> list[dict[str, float]]:
    """Per prompt, the summed log-probability of each continuation in ``choices``."""
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    conts = {c: tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices}
    if any(not ids for ids in conts.values()):
        raise ValueError(f"a choice tokenizes to nothing: {choices!r}")
    single = all(len(ids) == 1 for ids in conts.values())
    rows = [
        (i, c, tokenizer(p, add_special_tokens=False)["input_ids"] + ([] if single else conts[c]))
        for i, p in enumerate(prompts)
        for c in ([""] if single else choices)
    ]
    out: list[dict[str, float]] = [{} for _ in prompts]
    for start in range(0, len(rows), max(1, batch_size)):
        chunk = rows[start : start + max(1, batch_size)]
        width = max(len(ids) for _, _, ids in chunk)
        ids = torch.tensor([[pad] * (width - len(r)) + r for _, _, r in chunk], device=device)
        mask = torch.tensor(
            [[0] * (width - len(r)) + [1] * len(r) for _, _, r in chunk], device=device
        )
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        keep = 1 if single else max(len(conts[c]) for _, c, _ in chunk) + 1
        with torch.no_grad():
            # Only the last ``keep`` positions are read: the vocabulary projection and the
            # softmax over every prompt position would cost more than the model itself.
            inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
            try:
                logits = model(**inputs, logits_to_keep=keep).logits[:, -keep:]
            except TypeError:  # a model class without the argument: project everything
                logits = model(**inputs).logits[:, -keep:]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for row, (index, choice, _) in enumerate(chunk):
            if single:
                last = logprobs[row, -1]
                out[index].update({c: float(last[conts[c][0]]) for c in choices})
                continue
            n = len(conts[choice])
            targets = ids[row, width - n :]
            picked = logprobs[row, keep - n - 1 : keep - 1].gather(-1, targets[:, None])
            out[index][choice] = float(picked.sum())
    return out


def answer_prompt(
    backend: Any, conversation: list[dict[str, str]], reasoning: str | None = None
) -> str:
    """The rendered conversation, then the reasoning (``think-then-loglik``: the model's
    own, else none) closed if there is a block, then 'Answer:'."""
    prompt = str(backend.render(conversation))
    prefilled = getattr(backend, "prefilled", False)
    if reasoning is not None:
        opening = "" if prefilled else backend.tags.open
        prompt += f"{opening}{reasoning}{backend.tags.close}\n"
    elif prefilled:
        prompt += f"{backend.tags.close}\n"
    return prompt + ANSWER_PREFIX


def answer_prefix(backend: Any, reasoning: str | None = None) -> str:
    """The assistant turn a server continues: the reasoning closed (if any), 'Answer:'."""
    if reasoning is None:
        return ANSWER_PREFIX
    tags = getattr(backend, "tags", THINK)
    return f"{tags.open}{reasoning}{tags.close}\n{ANSWER_PREFIX}"


def loglik_results(
    benchmark: Benchmark,
    samples: Sequence[Sample],
    backend: Any,
    protocol: Protocol = "official",
    batch_size: int = 8,
    reasoning: dict[str, str] | None = None,
) -> list[ItemResult]:
    """One :class:`ItemResult` per sample: the most likely letter, judged as 'Answer: X'
    (``reasoning``: per sample id, the model's own reasoning to put before the answer)."""
    local = hasattr(backend, "model") and hasattr(backend, "tokenizer")
    served = hasattr(backend, "base_url") and hasattr(backend, "model_id")
    if not (local or served):
        raise TypeError(
            "log-likelihood multiple choice needs the transformers backend (a local model) "
            "or an OpenAI-compatible server that returns top_logprobs (--backend openai; "
            f"vLLM: serve the model with 'vllm serve'); {type(backend).__name__} gives no "
            "token log-probabilities here"
        )
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, sample in enumerate(samples):
        letters = tuple(sample.meta.get("options") or ())
        if not letters:
            raise ValueError(f"{sample.id}: no options; log-likelihood needs multiple choice")
        groups.setdefault(letters, []).append(i)
    scores: list[dict[str, float]] = [{} for _ in samples]
    for letters, members in groups.items():
        if served and not local:
            conversations = [benchmark.messages(samples[i], protocol) for i in members]
            prefixes = [
                answer_prefix(
                    backend, None if reasoning is None else reasoning.get(samples[i].id, "")
                )
                for i in members
            ]
            got = server_choice_logprobs(backend, conversations, prefixes, letters)
            for i, values in zip(members, got, strict=True):
                scores[i] = values
            continue
        prompts = [
            answer_prompt(
                backend,
                benchmark.messages(samples[i], protocol),
                None if reasoning is None else reasoning.get(samples[i].id, ""),
            )
            for i in members
        ]
        got = choice_logprobs(
            backend.model,
            backend.tokenizer,
            prompts,
            [f" {c}" for c in letters],
            batch_size=batch_size,
        )
        for i, values in zip(members, got, strict=True):
            scores[i] = {k.strip(): v for k, v in values.items()}
    results = []
    for sample, values in zip(samples, scores, strict=True):
        # no letter among a server's top tokens: judged as no answer (invalid), not guessed
        choice = max(values, key=lambda k: values[k]) if values else ""
        judged = benchmark.judge(sample, f"{ANSWER_PREFIX} {choice}".strip(), protocol)
        results.append(ItemResult(sample.id, protocol, judged, {"logprobs": values}))
    return results


def evaluate_loglik(
    benchmark: Benchmark,
    backend: Any,
    source: str | Path | None = None,
    limit: int | None = None,
    protocols: Sequence[Protocol] = PROTOCOLS,
) -> dict[str, dict[str, float]]:
    """Metrics per protocol of a multiple-choice benchmark scored by log-likelihood."""
    samples = benchmark.load(source, limit)
    out: dict[str, dict[str, float]] = {}
    for protocol in protocols:
        results = loglik_results(benchmark, samples, backend, protocol)
        out[protocol] = benchmark.metrics(samples, results, protocol)
    return out


def loglik_run(runner: Any, benchmark: Benchmark, think: bool = False) -> Any:
    """``secreason eval --mc-mode loglik|think-then-loglik``: one benchmark, one trial.

    Same samples, protocols, per-sample logs and report entry as a generating run. With
    ``think`` the model first generates as usual (cached and resumable like any run);
    its reasoning is then closed and the letters are read after it.
    """
    import json

    from secreason.evals.runner import BenchmarkResult
    from secreason.reasoning import split

    samples = runner.load(benchmark)
    records = runner.completions(benchmark) if think else {}
    backend = runner.backend()
    tags = getattr(backend, "tags", THINK)  # a server splits reasoning with the default tags
    result = BenchmarkResult(benchmark.name, benchmark.headline, benchmark.references, len(samples))
    for protocol in runner.settings.protocols:
        reasoning = None
        if think:
            reasoning = {
                sid: split(
                    record.generation().full_text(tags),
                    prefilled=runner.prefilled_for(record.prefilled),
                    tags=tags,
                ).reasoning
                for sid, record in records[protocol].items()
            }
        results = loglik_results(
            benchmark, samples, backend, protocol, getattr(backend, "batch_size", 8), reasoning
        )
        metrics = dict(benchmark.metrics(samples, results, protocol))
        if getattr(runner.settings, "dedup", False):
            from secreason.evals.dedup import dedup_metrics

            metrics.update(dedup_metrics(benchmark, samples, results, protocol))
        result.metrics[protocol] = [metrics]
        log = runner.log_path(benchmark, 0, protocol)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w", encoding="utf-8") as handle:
            for item in results:
                mode = "think-then-loglik" if think else "loglik"
                record = {"sample_id": item.sample_id, "mode": mode, **item.extra}
                if reasoning is not None:
                    record["reasoning"] = reasoning.get(item.sample_id, "")
                record.update(item.judgement.as_dict())
                handle.write(json.dumps(record) + "\n")
        result.samples_log[f"0.{protocol}"] = str(log)
    result.generated = int(getattr(runner, "_made", 0)) if think else 0
    return result
