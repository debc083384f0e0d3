"""Teacher traces with rejection sampling, from any OpenAI-compatible endpoint.

Each item's prompt is sent ``k`` times. A completion is *kept* only when
:func:`secreason.data.trace_filter.rejection_reason` finds nothing: the item's task
verifier (``Task.judge``, the path evaluation and RL take) scores it correct with a
valid format, and none of the checks the verifier cannot make (control strings, hedged
answer lines, a reasoning that contradicts the answer or copies the prompt) fails.
Each item's pass rate grades its difficulty; items the teacher never or always solves
are marked, which is what RL selection wants.

The endpoint is asked through :mod:`secreason.data.teacher_client` (timeouts, retries,
backoff, rate and concurrency limits). Every item ends as exactly one of ``kept``,
``rejected`` (with reasons) or ``failed`` (with the error), written to an append-only
store keyed by item and teacher, so a killed run resumes without redoing or losing
work. On resume a stored ``kept`` verdict is judged again with today's filter: a store
written before a rule existed does not smuggle its traces past it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from secreason.data.dedup import exact_key
from secreason.data.store import JsonlStore
from secreason.data.teacher_client import EndpointTeacher, RequestResult
from secreason.data.trace_filter import rejection_reason
from secreason.reasoning import FormatConfig
from secreason.tasks.base import Sample

Outcome = Literal["kept", "rejected", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("kept", "rejected", "failed")


@dataclass
class TeacherConfig:
    """Where the teacher lives and how hard to push it."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "teacher"
    api_key_env: str = "OPENAI_API_KEY"
    k: int = 4
    keep_per_item: int = 1
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 4096
    concurrency: int = 16
    requests_per_second: float | None = None
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    #: the endpoint's chat template ends the prompt with ``<think>``
    prefilled: bool = False
    #: reasoning returned in a separate field (vLLM reasoning parsers) is put back in tags
    reasoning_field: str = "reasoning_content"
    min_reasoning_words: int = 5
    extra_body: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """What makes two runs' verdicts comparable (endpoint, model, sampling, k)."""
        keys = (self.base_url, self.model, self.k, self.temperature, self.top_p, self.max_tokens)
        return hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:8]


@dataclass
class ItemVerdict:
    """One item's outcome; one line of the teacher store."""

    key: str
    id: str
    task: str
    outcome: Outcome
    n_requested: int
    n_completed: int
    n_passed: int
    pass_rate: float | None
    difficulty: str
    traces: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    teacher: str = ""


def difficulty_of(n_passed: int, n_completed: int) -> str:
    """``never`` / ``always`` solved by the teacher, ``mixed`` between, ``unknown`` if none ran."""
    if n_completed == 0:
        return "unknown"
    if n_passed == 0:
        return "never"
    if n_passed == n_completed:
        return "always"
    return "mixed"


def judge_completions(
    sample: Sample,
    results: Sequence[RequestResult],
    *,
    keep_per_item: int,
    format_config: FormatConfig,
    prefilled: bool,
    teacher: str,
    max_tokens: int | None = None,
) -> ItemVerdict:
    """Turn an item's k request results into its verdict (the rejection-sampling step)."""
    reasons: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    kept: list[str] = []
    kept_keys: set[str] = set()  # traces that differ in spacing or case only are one
    n_completed = n_passed = 0
    for r in results:
        if r.text is None:
            errors[r.error or "unknown error"] += 1
            continue
        n_completed += 1
        try:
            why = rejection_reason(
                sample, r.text, r.finish_reason, format_config, prefilled, max_tokens=max_tokens
            )
        except Exception as err:  # noqa: BLE001 - one odd completion must not stop the run
            why = f"filter_error:{type(err).__name__}"
        if why is None:
            n_passed += 1
            key = exact_key(r.text)
            if key not in kept_keys and len(kept) < keep_per_item:
                kept.append(r.text)
                kept_keys.add(key)
        else:
            reasons[why] += 1
    outcome: Outcome = "kept" if kept else "rejected" if n_completed else "failed"
    return ItemVerdict(
        key=f"{sample.id}:{teacher}",
        id=sample.id,
        task=sample.task,
        outcome=outcome,
        n_requested=len(results),
        n_completed=n_completed,
        n_passed=n_passed,
        pass_rate=n_passed / n_completed if n_completed else None,
        difficulty=difficulty_of(n_passed, n_completed),
        traces=kept,
        reasons=dict(reasons),
        errors=dict(errors),
        teacher=teacher,
    )


@dataclass
class TeacherReport:
    counts: dict[str, int]
    total: int
    skipped_existing: int
    store: str

    def adds_up(self) -> bool:
        return sum(self.counts.values()) == self.total


async def _run_async(
    samples: Sequence[Sample],
    teacher: EndpointTeacher,
    store: JsonlStore,
    keys: dict[str, str],
    *,
    fmt: FormatConfig,
    progress: Callable[[int], None] | None,
) -> None:
    cfg = teacher.config
    queue: asyncio.Queue[Sample] = asyncio.Queue()
    for s in samples:
        queue.put_nowait(s)

    async def worker() -> None:
        while True:
            try:
                sample = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            results = await asyncio.gather(*(teacher.request(sample) for _ in range(cfg.k)))
            verdict = judge_completions(
                sample,
                results,
                keep_per_item=cfg.keep_per_item,
                format_config=fmt,
                prefilled=cfg.prefilled,
                teacher=teacher.name,
                max_tokens=cfg.max_tokens,
            )
            verdict.key = keys[sample.id]
            store.append(asdict(verdict))
            if progress:
                progress(1)

    n_workers = max(1, min(len(samples), -(-cfg.concurrency // max(1, cfg.k)) * 2))
    try:
        await asyncio.gather(*(worker() for _ in range(n_workers)))
    finally:
        await teacher.close()


def run_teacher(
    samples: Sequence[Sample],
    out: str | Path,
    *,
    config: TeacherConfig | None = None,
    template: bool = False,
    show_progress: bool = True,
    retry_failed: bool = True,
) -> TeacherReport:
    """Judge teacher completions for every sample into ``out`` (JSONL); resumable.

    An item already judged by this teacher is skipped, unless its latest verdict is
    ``failed`` (the endpoint never answered) and ``retry_failed`` is set, or is
    ``kept`` with a trace today's filter rejects: then it is asked again and the new
    verdict is appended under a new key (the latest wins).
    ``template=True`` uses the offline :class:`TemplateTeacher` instead of an endpoint.
    """
    from tqdm.auto import tqdm

    cfg = config or TeacherConfig()
    fmt = FormatConfig(min_reasoning_words=cfg.min_reasoning_words)
    samples = list({s.id: s for s in samples}.values())
    store = JsonlStore(out)
    name = "template" if template else f"{cfg.model}@{cfg.fingerprint()}"
    latest: dict[str, dict[str, Any]] = {}
    tries: Counter[str] = Counter()
    for row in store.records():
        if row.get("teacher") == name:
            latest[row["id"]] = row
            tries[row["id"]] += 1
    max_tokens = None if template else cfg.max_tokens

    def redo(s: Sample) -> bool:
        row = latest.get(s.id)
        if row is None:
            return True
        if row["outcome"] == "failed":
            return retry_failed
        if row["outcome"] != "kept":
            return False
        prefilled = False if template else cfg.prefilled
        traces = row.get("traces") or []
        return not traces or any(
            not isinstance(t, str)
            or rejection_reason(s, t, "stop", fmt, prefilled, max_tokens=max_tokens) is not None
            for t in traces
        )

    todo = [s for s in samples if redo(s)]
    keys = {s.id: f"{s.id}:{name}" + (f":{tries[s.id]}" if tries[s.id] else "") for s in todo}
    skipped = len(samples) - len(todo)
    bar = tqdm(total=len(todo), desc=f"teacher {name}", disable=not show_progress)
    try:
        if template:
            from secreason.data.template_teacher import TemplateTeacher

            tt = TemplateTeacher()
            for s in todo:
                try:
                    texts = tt.complete(s, cfg.k)
                except ValueError as err:  # no facts: not an item synthesis made
                    results = [RequestResult(None, error=str(err), attempts=1)]
                else:
                    results = [RequestResult(t, "stop", attempts=1) for t in texts]
                verdict = judge_completions(
                    s, results, keep_per_item=1, format_config=fmt, prefilled=False, teacher=name
                )
                verdict.key = keys[s.id]
                store.append(asdict(verdict))
                bar.update(1)
        elif todo:
            asyncio.run(
                _run_async(todo, EndpointTeacher(cfg), store, keys, fmt=fmt, progress=bar.update)
            )
    finally:
        bar.close()
    ids = {s.id for s in samples}
    final: dict[str, str] = {}
    for row in store.records():
        if row["id"] in ids and row["teacher"] == name:
            final[row["id"]] = row["outcome"]
    store.close()
    counts = Counter(final.values())
    return TeacherReport(
        counts={o: counts.get(o, 0) for o in OUTCOMES},
        total=len(samples),
        skipped_existing=skipped,
        store=str(out),
    )
