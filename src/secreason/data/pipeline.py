"""The whole data pipeline, one recipe: items -> traces -> dedup -> decontaminate -> mix -> disk.

Each step writes into the recipe's ``out_dir``. The two expensive steps (synthesis and
teacher calls) append to JSONL stores keyed by content hash, so a killed run resumes
where it stopped; dedup, decontamination and mixing are deterministic functions of
those stores and fast (see ``benchmarks/dedup_decontam.py``), so they are recomputed.

Outputs::

    out_dir/items.jsonl        every synthesized item (Sample records)
    out_dir/teacher.jsonl      one verdict per (item, teacher): kept / rejected / failed
    out_dir/sft/hf, sft/train.jsonl         conversational SFT rows (messages)
    out_dir/rl/hf, rl/train.jsonl           RL prompt rows (prompt, task, reference)
    out_dir/heldout/hf, heldout/train.jsonl held-out items (entity-disjoint), for evaluation
    out_dir/summary.json, out_dir/card.md   figures of every step, and the data card
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from secreason.data.export import domain_of, rl_row, save_rows, sft_row
from secreason.data.recipe import DataRecipe
from secreason.data.store import JsonlStore, read_samples, sample_to_dict
from secreason.tasks.base import Sample

CONTENT_KEYS = ("description", "question", "options", "text")


def item_content(sample: Sample) -> str:
    """An item's own content, without its task's fixed instruction text."""
    parts: list[str] = []
    for key in CONTENT_KEYS:
        value = sample.meta.get(key)
        if isinstance(value, dict):
            parts.extend(f"{k} {v}" for k, v in sorted(value.items()))
        elif value:
            parts.append(str(value))
    if parts:
        return "\n".join(parts)
    return prompt_text(sample)


def dedup_content(sample: Sample) -> str:
    """What dedup compares: :func:`item_content` with the options as a set (shuffled or
    relabelled options are the same question)."""
    options = sample.meta.get("options")
    if not isinstance(options, dict):
        return item_content(sample)
    meta = {k: v for k, v in sample.meta.items() if k != "options"}
    rest = item_content(Sample(sample.id, sample.task, sample.messages, sample.reference, meta))
    return "\n".join([rest, *sorted(str(v) for v in options.values())])


def prompt_text(sample: Sample) -> str:
    return "\n".join(m["content"] for m in sample.messages if m["role"] != "assistant")


def kb_texts() -> list[str]:
    """The knowledge bases' own names and definitions (CWE entries, ATT&CK techniques and
    tactics): quoting them is learning the KB, not leaking a benchmark item."""
    from secreason.kb import load_attack, load_cwe

    texts = [f"{w.name}\n{w.description}" for w in load_cwe().all(categories=True)]
    attack = load_attack()
    texts += [f"{t.name}\n{t.description}" for t in attack.techniques()]
    texts += [f"{t.name}\n{t.description}" for t in attack.tactics()]
    return texts


def make_items(recipe: DataRecipe) -> Iterable[Sample]:
    if recipe.source == "demo":
        from secreason.data.demo import make_demo_items

        d = recipe.demo
        train, heldout = make_demo_items(
            d.n_per_task,
            recipe.seed,
            tasks=d.tasks,
            teacher_share=d.teacher_share,
            heldout_fraction=d.heldout_fraction,
        )
        yield from train
        yield from heldout
    elif recipe.source == "kb":
        from secreason.data.synthesize import synthesize

        recipe.synthesis.seed = recipe.seed
        yield from synthesize(recipe.synthesis)
    else:
        raise ValueError(f"recipe.source must be 'kb' or 'demo', got {recipe.source!r}")
    if recipe.general:
        from secreason.data.general import general_items

        for source in recipe.general:
            yield from general_items(source, seed=recipe.seed)


def step_items(recipe: DataRecipe, out: Path) -> list[Sample]:
    from tqdm.auto import tqdm

    path = out / "items.jsonl"
    with JsonlStore(path, key_field="id") as store:
        for sample in tqdm(make_items(recipe), desc="synthesize", unit="item"):
            store.append(sample_to_dict(sample))
    return read_samples(path)


def step_teacher(recipe: DataRecipe, out: Path, train: list[Sample]) -> dict[str, Any]:
    from secreason.data.teacher import run_teacher

    kind = recipe.teacher.kind
    if kind not in ("template", "endpoint"):
        raise ValueError(f"teacher.kind must be 'template' or 'endpoint', got {kind!r}")
    report = run_teacher(
        train, out / "teacher.jsonl", config=recipe.teacher, template=kind == "template"
    )
    if not report.adds_up():
        raise RuntimeError(f"teacher outcomes do not add up: {report}")
    return asdict(report)


def _verdicts(path: Path, teacher: str | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    with JsonlStore(path) as store:
        for row in store.records():
            if teacher is None or row["teacher"] == teacher:
                out[row["id"]] = row
    return out


def run_pipeline(recipe: DataRecipe) -> dict[str, Any]:
    """Run every step; return the summary that the data card is written from."""
    from secreason.data.card import write_card
    from secreason.data.decontaminate import (
        ContaminationIndex,
        benchmark_texts,
        decontaminate,
        sample_texts,
    )
    from secreason.data.dedup import dedup
    from secreason.data.mix import mix

    out = Path(recipe.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {"recipe": asdict(recipe)}

    t = time.perf_counter()
    items = step_items(recipe, out)
    timings["synthesize"] = time.perf_counter() - t
    from secreason.data.consistency import cross_split_near_duplicates, one_gold_per_prompt

    items, consistency = one_gold_per_prompt(items)
    summary["consistency"] = consistency.as_dict()
    train = [s for s in items if s.meta.get("split", "train") == "train"]
    heldout = [s for s in items if s.meta.get("split") == "heldout"]
    summary["items"] = {
        "train": dict(Counter(s.task for s in train)),
        "heldout": dict(Counter(s.task for s in heldout)),
    }

    t = time.perf_counter()
    summary["teacher"] = step_teacher(recipe, out, train)
    timings["teacher"] = time.perf_counter() - t
    if recipe.teacher.kind == "template":
        teacher_name = "template"
    else:
        teacher_name = f"{recipe.teacher.model}@{recipe.teacher.fingerprint()}"
    verdicts = _verdicts(out / "teacher.jsonl", teacher_name)

    # Dedup within and across splits (held-out wins over its training twin).
    t = time.perf_counter()
    pool = train + heldout
    on = recipe.dedup.compare
    if on not in ("content", "prompt", "prompt+response"):
        raise ValueError(f"dedup.compare must be content, prompt or prompt+response, got {on!r}")

    def dedup_text(s: Sample) -> str:
        base = dedup_content(s) if on == "content" else prompt_text(s)
        if on == "prompt+response":
            traces = verdicts.get(s.id, {}).get("traces") or [""]
            base += "\n" + traces[0]
        return base

    keep, dedup_report = dedup(
        [s.id for s in pool],
        [dedup_text(s) for s in pool],
        [str(s.meta.get("split", "train")) for s in pool],
        recipe.dedup,
        labels=[f"{s.task}\t{s.reference}" for s in pool],
    )
    n_train = len(train)
    train = [s for s, k in zip(train, keep[:n_train], strict=True) if k]
    heldout = [s for s, k in zip(heldout, keep[n_train:], strict=True) if k]
    summary["dedup"] = asdict(dedup_report)
    timings["dedup"] = time.perf_counter() - t

    # Decontaminate the training pool against every benchmark.
    t = time.perf_counter()
    dc = recipe.decontaminate
    folder = Path(dc.benchmarks) if dc.benchmarks else None
    if folder is not None and folder.is_dir():
        allowed = kb_texts() if dc.ignore_kb_text else []
        index = ContaminationIndex(
            benchmark_texts(folder, harness=dc.harness_loaders), dc, allowed=allowed
        )
        texts = [sample_texts(s, verdicts.get(s.id, {}).get("traces") or []) for s in train]
        cves = [[str(c) for c in (s.meta.get("cves") or [])] for s in train]
        flags, dc_report = decontaminate(
            [s.id for s in train],
            [p for p, _ in texts],
            [a for _, a in texts],
            index,
            extra_cves=cves,
        )
        train = [s for s, k in zip(train, flags, strict=True) if k]
        summary["decontaminate"] = dc_report.as_dict()
        summary["decontaminate"]["benchmarks_folder"] = str(folder)
    else:
        if dc.required:
            raise FileNotFoundError(
                f"decontaminate.benchmarks={dc.benchmarks!r} is not a folder; point it at the "
                "benchmark files or set decontaminate.required: false"
            )
        summary["decontaminate"] = {"skipped": f"no benchmark folder at {dc.benchmarks!r}"}
    timings["decontaminate"] = time.perf_counter() - t

    # Mix and split.
    t = time.perf_counter()
    rows = []
    for s in train:
        v = verdicts.get(s.id, {})
        traces = v.get("traces") or []
        rows.append(
            {
                "sample": s,
                "domain": domain_of(s),
                "difficulty": v.get("difficulty", "unknown"),
                "pass_rate": v.get("pass_rate"),
                "trace": traces[0] if traces else None,
            }
        )
    recipe.mix.seed = recipe.seed
    sft, rl, sft_mix, rl_mix = mix(rows, recipe.mix)
    summary["mix"] = {"sft": asdict(sft_mix), "rl": asdict(rl_mix)}
    timings["mix"] = time.perf_counter() - t

    t = time.perf_counter()
    sft_rows = [sft_row(r["sample"], r["trace"]) for r in sft]
    rl_rows = [rl_row(r["sample"]) for r in rl]
    held_rows = [rl_row(s) for s in heldout]
    outputs = {}
    for name, data in (("sft", sft_rows), ("rl", rl_rows), ("heldout", held_rows)):
        if data:
            save_rows(data, out / name)
            outputs[name] = {"path": str(out / name / "hf"), "rows": len(data)}
    summary["outputs"] = outputs
    summary["stats"] = _stats(sft, rl, heldout, verdicts)
    from secreason.data.lengths import length_stats

    lim = recipe.lengths
    summary["lengths"] = length_stats(
        {
            "sft": ([_row_text(r["messages"]) for r in sft_rows], lim.sft_max_length),
            "rl": ([_row_text(r["prompt"]) for r in rl_rows], lim.rl_max_prompt_length),
            "heldout": ([_row_text(r["prompt"]) for r in held_rows], lim.rl_max_prompt_length),
        },
        lim,
    )
    summary["consistency"]["cross_split_near_duplicates"] = cross_split_near_duplicates(
        [dedup_content(r["sample"]) for r in [*sft, *rl]],
        [dedup_content(s) for s in heldout],
        recipe.dedup,
    )
    timings["export"] = time.perf_counter() - t

    # Shortcut audit: can the gold be read off the prompt? (the card shows it either way)
    t = time.perf_counter()
    from secreason.data.audit import audit, check

    summary["audit"] = audit(
        {
            "sft": [r["sample"] for r in sft],
            "rl": [r["sample"] for r in rl],
            "heldout": heldout,
        },
        recipe.audit,
    )
    timings["audit"] = time.perf_counter() - t
    summary["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    write_card(summary, out / "card.md")
    check(summary["audit"], recipe.audit)
    return summary


def _row_text(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


def _stats(
    sft: list[dict[str, Any]],
    rl: list[dict[str, Any]],
    heldout: list[Sample],
    verdicts: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    def words(text: str) -> int:
        return len(text.split())

    per_task: dict[str, dict[str, Any]] = {}
    for r in sft:
        s: Sample = r["sample"]
        entry = per_task.setdefault(s.task, {"sft": 0, "rl": 0, "heldout": 0, "trace_words": []})
        entry["sft"] += 1
        entry["trace_words"].append(words(r["trace"]))
    for r in rl:
        per_task.setdefault(r["sample"].task, {"sft": 0, "rl": 0, "heldout": 0, "trace_words": []})[
            "rl"
        ] += 1
    for s in heldout:
        per_task.setdefault(s.task, {"sft": 0, "rl": 0, "heldout": 0, "trace_words": []})[
            "heldout"
        ] += 1
    pass_rates: dict[str, list[float]] = {}
    difficulty: dict[str, Counter[str]] = {}
    for v in verdicts.values():
        if v.get("pass_rate") is not None:
            pass_rates.setdefault(v["task"], []).append(float(v["pass_rate"]))
        difficulty.setdefault(v["task"], Counter())[v["difficulty"]] += 1
    for task, entry in per_task.items():
        lengths = sorted(entry.pop("trace_words"))
        entry["trace_words_median"] = lengths[len(lengths) // 2] if lengths else None
        entry["trace_words_max"] = lengths[-1] if lengths else None
        rates = pass_rates.get(task, [])
        entry["teacher_pass_rate"] = round(sum(rates) / len(rates), 4) if rates else None
        entry["difficulty"] = dict(difficulty.get(task, {}))
    domains = Counter(r["domain"] for r in sft)
    return {"per_task": per_task, "sft_domains": dict(domains)}
