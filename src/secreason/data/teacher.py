"""Teacher traces with rejection sampling, from any OpenAI-compatible endpoint.

Each item's prompt is sent ``k`` times. A completion is *kept* only when the item's task
verifier scores it correct and its format passes the reasoning contract (one closed
think block, enough non-degenerate reasoning, an answer line): the same
``Task.judge`` that evaluation and RL use, so nothing is trained on that would be
scored wrong. Each item's pass rate grades its difficulty; items the teacher never or
always solves are marked, which is what RL selection wants.

Endpoints misbehave, so the client is deliberately defensive: bounded concurrency, a
rate limit, a timeout per request, retries with exponential backoff (and
``Retry-After``) on timeouts, connection errors, HTTP 429/5xx, unparsable bodies and
empty choices. Every item ends as exactly one of ``kept``, ``rejected`` (with reasons)
or ``failed`` (with the error), written to an append-only store keyed by item and
teacher, so a killed run resumes without redoing or losing work.

The ``openai`` client is used directly (its own retries off) because the per-request
failure classification above is what the counts are made of.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from secreason.backends.retry import backoff_delay
from secreason.data.store import JsonlStore
from secreason.reasoning import FormatConfig
from secreason.tasks import get_task, task_names
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


class RetryableError(Exception):
    """A response worth asking again for (timeout, 429, 5xx, garbage body, no choices)."""


class FatalError(Exception):
    """A response that retrying will not fix (bad request, auth, unknown model)."""


@dataclass
class RequestResult:
    text: str | None
    finish_reason: str | None = None
    error: str | None = None
    attempts: int = 0


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


def rejection_reason(
    sample: Sample,
    completion: str,
    finish_reason: str | None,
    cfg: FormatConfig,
    prefilled: bool,
) -> str | None:
    """None when the completion is kept; else why not (format checks first, then the verifier).

    Items of a registered task go through ``Task.judge``; general-domain items without
    one (chat, safety, ...) through :func:`secreason.data.general.general_rejection`.
    """
    if finish_reason == "length":
        return "truncated"
    if sample.task not in task_names():
        from secreason.data.general import general_rejection

        return general_rejection(sample, completion, cfg, prefilled)
    judgement = get_task(sample.task).judge(
        completion, sample.reference, prefilled=prefilled, format_config=cfg
    )
    if not judgement.format.ok:
        return "format:" + "+".join(judgement.format.failed)
    if judgement.score.status != "correct":
        return f"verifier:{judgement.score.status}"
    return None


def judge_completions(
    sample: Sample,
    results: Sequence[RequestResult],
    *,
    keep_per_item: int,
    format_config: FormatConfig,
    prefilled: bool,
    teacher: str,
) -> ItemVerdict:
    """Turn an item's k request results into its verdict (the rejection-sampling step)."""
    reasons: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    kept: list[str] = []
    n_completed = n_passed = 0
    for r in results:
        if r.text is None:
            errors[r.error or "unknown error"] += 1
            continue
        n_completed += 1
        why = rejection_reason(sample, r.text, r.finish_reason, format_config, prefilled)
        if why is None:
            n_passed += 1
            if r.text not in kept and len(kept) < keep_per_item:
                kept.append(r.text)
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


class _RateLimiter:
    """Spaces request starts at least ``1/rps`` apart (None: no limit)."""

    def __init__(self, rps: float | None) -> None:
        self.interval = 1.0 / rps if rps else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


def _parse_completion(response: Any, reasoning_field: str) -> tuple[str, str | None]:
    """Text and finish reason from a chat completion, or RetryableError on a bad body."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list):
        raise RetryableError(f"unparsable response body ({type(response).__name__})")
    if not choices:
        raise RetryableError("empty choices")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if not isinstance(content, str):
        raise RetryableError("choice has no message content")
    reasoning = getattr(message, reasoning_field, None) or (
        (getattr(message, "model_extra", None) or {}).get(reasoning_field)
    )
    if reasoning and "<think>" not in content:
        content = f"<think>\n{reasoning}\n</think>\n{content}"
    return content, getattr(choices[0], "finish_reason", None)


def _classify(err: Exception) -> Exception:
    import openai

    if isinstance(err, (RetryableError, FatalError)):
        return err
    if isinstance(err, (openai.APITimeoutError, openai.APIConnectionError, asyncio.TimeoutError)):
        return RetryableError(f"timeout or connection error ({type(err).__name__})")
    if isinstance(err, openai.APIStatusError):
        code = err.status_code
        if code == 429 or code >= 500 or code == 408:
            return RetryableError(f"HTTP {code}")
        return FatalError(f"HTTP {code}: {str(err)[:200]}")
    if isinstance(err, (json.JSONDecodeError, ValueError, openai.APIResponseValidationError)):
        return RetryableError(f"unparsable response body ({type(err).__name__})")
    return RetryableError(f"{type(err).__name__}: {str(err)[:200]}")


class EndpointTeacher:
    """Sends prompts to an OpenAI-compatible endpoint with retries and limits."""

    def __init__(self, config: TeacherConfig) -> None:
        import openai

        self.config = config
        self.name = f"{config.model}@{config.fingerprint()}"
        self.client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=os.environ.get(config.api_key_env) or "EMPTY",
            max_retries=0,
            timeout=config.timeout_s,
        )
        self._sem = asyncio.Semaphore(config.concurrency)
        self._limiter = _RateLimiter(config.requests_per_second)

    async def request(self, sample: Sample) -> RequestResult:
        cfg = self.config
        last = "no attempt"
        previous: Exception | None = None
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                # The shared policy: exponential backoff with jitter, or Retry-After.
                wait = backoff_delay(
                    attempt - 1, previous, base=cfg.backoff_base_s, cap=cfg.backoff_max_s
                )
                await asyncio.sleep(wait)
            try:
                async with self._sem:
                    await self._limiter.wait()
                    response = await asyncio.wait_for(
                        self.client.chat.completions.create(
                            model=cfg.model,
                            messages=sample.messages,  # type: ignore[arg-type]
                            temperature=cfg.temperature,
                            top_p=cfg.top_p,
                            max_tokens=cfg.max_tokens,
                            extra_body=cfg.extra_body or None,
                        ),
                        timeout=cfg.timeout_s * 1.5,
                    )
                text, finish = _parse_completion(response, cfg.reasoning_field)
                return RequestResult(text, finish, attempts=attempt + 1)
            except Exception as raw:  # noqa: BLE001 - every failure is classified below
                err = _classify(raw)
                last = str(err)
                if isinstance(err, FatalError):
                    return RequestResult(None, error=last, attempts=attempt + 1)
                previous = raw
        return RequestResult(
            None,
            error=f"gave up after {cfg.max_retries + 1} attempts: {last}",
            attempts=cfg.max_retries + 1,
        )

    async def close(self) -> None:
        await self.client.close()


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
    ``failed`` (the endpoint never answered) and ``retry_failed`` is set: then it is
    asked again and the new verdict is appended under a new key (the latest wins).
    ``template=True`` uses the offline :class:`TemplateTeacher` instead of an endpoint.
    """
    from tqdm.auto import tqdm

    cfg = config or TeacherConfig()
    fmt = FormatConfig(min_reasoning_words=cfg.min_reasoning_words)
    samples = list({s.id: s for s in samples}.values())
    store = JsonlStore(out)
    name = "template" if template else f"{cfg.model}@{cfg.fingerprint()}"
    latest: dict[str, str] = {}
    tries: Counter[str] = Counter()
    for row in store.records():
        if row.get("teacher") == name:
            latest[row["id"]] = row["outcome"]
            tries[row["id"]] += 1
    todo = [s for s in samples if s.id not in latest or (retry_failed and latest[s.id] == "failed")]
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
