"""Append-only generation cache: a killed run loses nothing and redoes nothing.

An evaluation of an 8B reasoning model costs GPU hours, so every generation is written
the moment it exists, one JSON line each, flushed (and fsynced) per batch. A line is
keyed by a hash of everything that determines the generation: the model id and
revision, the conversation (system prompt included), every sampling parameter, the
trial seed and the re-ask attempt. A rerun reads the file, keeps what is there and asks
the backend only for the keys that are missing; rescoring reads it and never generates.

The file format survives the usual accidents: a line cut off by a kill (no newline at
the end) is ignored on read and sealed with a newline before the next append, and a key
written twice (two processes racing) keeps its first line.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secreason.backends.base import Backend, Generation, Message, SamplingParams

CACHE_VERSION = 1


def generation_key(
    model: str,
    revision: str | None,
    messages: Sequence[Message],
    params: SamplingParams,
    *,
    system_prompt: str | None = None,
    attempt: int = 0,
) -> str:
    """A stable hash of every input that decides a generation."""
    payload = {
        "v": CACHE_VERSION,
        "model": model,
        "revision": revision,
        "system_prompt": system_prompt,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "params": {**params.as_dict(), "stop": list(params.stop)},
        "attempt": attempt,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class CacheRecord:
    """One stored generation and where it belongs."""

    key: str
    sample_id: str
    text: str
    reasoning: str | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempt: int = 0
    prefilled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_generation(
        cls, key: str, sample_id: str, gen: Generation, *, attempt: int = 0, prefilled: bool
    ) -> CacheRecord:
        return cls(
            key=key,
            sample_id=sample_id,
            text=gen.text,
            reasoning=gen.reasoning,
            finish_reason=gen.finish_reason,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            attempt=attempt,
            prefilled=prefilled,
        )

    def generation(self) -> Generation:
        return Generation(
            text=self.text,
            reasoning=self.reasoning,
            finish_reason=self.finish_reason,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )

    def to_json(self) -> str:
        data = {
            "key": self.key,
            "sample_id": self.sample_id,
            "attempt": self.attempt,
            "text": self.text,
            "reasoning": self.reasoning,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "prefilled": self.prefilled,
        }
        if self.extra:
            data["extra"] = self.extra
        return json.dumps(data, ensure_ascii=False)


class GenerationCache:
    """One JSONL file of generations, loaded into memory, appended to as they arrive."""

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.records: dict[str, CacheRecord] = {}
        self.skipped_lines = 0
        self.duplicate_lines = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    self.skipped_lines += 1  # cut off by a kill mid-write
                    continue
                try:
                    data = json.loads(line)
                    record = CacheRecord(
                        key=data["key"],
                        sample_id=data["sample_id"],
                        text=data["text"],
                        reasoning=data.get("reasoning"),
                        finish_reason=data.get("finish_reason", "stop"),
                        prompt_tokens=data.get("prompt_tokens", 0),
                        completion_tokens=data.get("completion_tokens", 0),
                        attempt=data.get("attempt", 0),
                        prefilled=data.get("prefilled", False),
                        extra=data.get("extra", {}),
                    )
                except (ValueError, KeyError, TypeError):
                    self.skipped_lines += 1
                    continue
                if record.key in self.records:
                    self.duplicate_lines += 1
                    continue
                self.records[record.key] = record

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: str) -> CacheRecord | None:
        return self.records.get(key)

    def missing(self, keys: Iterable[str]) -> list[str]:
        """Keys not stored yet, first occurrence order, each once."""
        seen: set[str] = set()
        out = []
        for key in keys:
            if key not in self.records and key not in seen:
                seen.add(key)
                out.append(key)
        return out

    def append(self, records: Sequence[CacheRecord]) -> None:
        """Write records (skipping keys already stored) and make them durable."""
        fresh = [r for r in records if r.key not in self.records]
        if not fresh:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell():
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")  # seal a line cut off by an earlier kill
            handle.write("".join(r.to_json() + "\n" for r in fresh).encode("utf-8"))
            handle.flush()
            if self.fsync:
                os.fsync(handle.fileno())
        for record in fresh:
            self.records[record.key] = record

    def __iter__(self) -> Iterator[CacheRecord]:
        return iter(self.records.values())


class CachedBackend(Backend):
    """Any backend behind a cache: used for model judges and the general harnesses, so
    rescoring is free too.

    ``backend`` may be a factory (with ``model_id``): it is then called only when a
    generation is missing, so a fully cached rerun never loads a model.
    """

    def __init__(
        self,
        backend: Backend | Callable[[], Backend],
        path: str | Path,
        *,
        revision: str | None = None,
        model_id: str | None = None,
    ):
        if model_id is None:
            if not isinstance(backend, Backend):
                raise ValueError("CachedBackend: a backend factory needs its model_id")
            model_id = backend.model_id
        self._backend = backend
        self.cache = GenerationCache(path)
        self.model_id = model_id
        self.revision = revision
        # The backend's; until a factory is called, what the cached records say.
        self.prefilled = (
            backend.prefilled
            if isinstance(backend, Backend)
            else any(record.prefilled for record in self.cache)
        )

    @property
    def backend(self) -> Backend:
        if not isinstance(self._backend, Backend):
            self._backend = self._backend()
            self.prefilled = self._backend.prefilled
        return self._backend

    def generate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        keys = [generation_key(self.model_id, self.revision, c, params) for c in conversations]
        todo = {k: c for k, c in zip(keys, conversations, strict=True) if k not in self.cache}
        if todo:
            made = self.backend.generate(list(todo.values()), params)
            self.cache.append(
                [
                    CacheRecord.from_generation(k, "judge", g, prefilled=self.prefilled)
                    for k, g in zip(todo, made, strict=True)
                ]
            )
        out = []
        for key in keys:
            record = self.cache.get(key)
            assert record is not None
            out.append(record.generation())
        return out

    def close(self) -> None:
        if isinstance(self._backend, Backend):
            self._backend.close()
