"""Which teacher completions may be trained on: the task's verdict, then what it cannot see.

The first gate is the one task layer: ``Task.judge`` (the reasoning contract's split
and format checks, the strict answer reader, the task's scorer), the same path that
evaluation and RL rewards take, so nothing is trained on that would be scored wrong.
General-domain items without a task go through
:func:`secreason.data.general.general_rejection`.

A trace that the verifier scores right can still teach the wrong thing, so a kept
trace must also pass these checks (each is a rejection reason in the teacher store):

* ``control:`` a chat-template control string (``<|im_end|>``, ``[INST]``, ``<s>``...,
  the serving layer's list) anywhere: trained on, it teaches the model to end turns or
  open forged ones mid-answer; likewise characters that hide text from a reader (tag
  characters, bidi overrides), control characters and U+FFFD (a body decoded wrong);
* ``length:over_max_tokens`` more words than ``max_tokens`` allowed tokens (a server
  that ignored the limit, or a finish reason that lied);
* ``format:no_words`` reasoning without enough words of two or more letters
  (punctuation, numbers or single letters pass the word count and the loop check);
* ``answer:several_lines`` another line of the answer region that the task reads as
  an answer (``Answer: A`` then ``Answer: B``: a hedge the strict reader resolves to
  the last line);
* ``reasoning:contradicts_answer`` the reasoning's last answer line, read by the task,
  is not the gold (the final line was right by luck or by copying);
* ``reasoning:copied_prompt`` the reasoning is the prompt again: outside the word
  8-grams it shares with the prompt, fewer than ``min_reasoning_words`` words remain
  (a quoted description followed by steps of its own is fine).

Prose that argues for one option and then answers another is not caught: that needs
a model to judge.
"""

from __future__ import annotations

import re

from secreason.data import ngrams
from secreason.reasoning import FormatConfig, split
from secreason.tasks import get_task, task_names
from secreason.tasks.base import Sample, Task, strict_answer

_GRAM = 8
_WORD = re.compile(r"[^\W\d_]{2,}")
#: tag characters (invisible ASCII), bidi embeddings/overrides/isolates, C0/C1 controls
#: other than tab and newlines, the replacement character, and lone surrogates (valid
#: JSON escapes that no UTF-8 writer, Arrow's included, accepts)
_HIDDEN = re.compile(
    "[\U000e0000-\U000e007f\u202a-\u202e\u2066-\u2069\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\ud800-\udfff]"
)


def _control(completion: str) -> str | None:
    from secreason.serve.sanitize import GENERIC

    # The contract's own tags are allowed (their count is the format check's business).
    text = completion.replace("<think>", " ").replace("</think>", " ")
    found = re.search("|".join(GENERIC), text)
    if found:
        return found[0]
    hidden = _HIDDEN.search(completion)
    return f"U+{ord(hidden[0]):04X}" if hidden else None


def _answer_lines(text: str, task: Task | None) -> list[int]:
    """Indices of the lines of ``text`` the task (or the strict reader) reads as an answer."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        ok = task.extract(line).ok if task is not None else strict_answer(line).ok
        if ok:
            out.append(i)
    return out


def _own_words(reasoning: str, prompt: str) -> int:
    """Words of the reasoning outside every word 8-gram it shares with the prompt."""
    words = ngrams.words(reasoning)
    p = ngrams.words(prompt)
    source = {tuple(p[i : i + _GRAM]) for i in range(len(p) - _GRAM + 1)}
    copied = [False] * len(words)
    for i in range(len(words) - _GRAM + 1):
        if tuple(words[i : i + _GRAM]) in source:
            copied[i : i + _GRAM] = [True] * _GRAM
    return copied.count(False)


def trace_problem(
    sample: Sample, completion: str, cfg: FormatConfig, prefilled: bool
) -> str | None:
    """What the task verifier cannot see in a completion it scored right (None: none)."""
    parts = split(completion, prefilled=prefilled)
    task = get_task(sample.task) if sample.task in task_names() else None
    if len(_WORD.findall(parts.reasoning)) < cfg.min_reasoning_words:
        return "format:no_words"
    if len(_answer_lines(parts.answer, task)) > 1:
        return "answer:several_lines"
    stated = _answer_lines(parts.reasoning, task)
    if task is not None and stated:
        line = parts.reasoning.splitlines()[stated[-1]]
        if task.score(task.extract(line), sample.reference).status != "correct":
            return "reasoning:contradicts_answer"
    prompt = "\n".join(m["content"] for m in sample.messages)
    if _own_words(parts.reasoning, prompt) < cfg.min_reasoning_words:
        return "reasoning:copied_prompt"
    return None


def rejection_reason(
    sample: Sample,
    completion: str,
    finish_reason: str | None,
    cfg: FormatConfig,
    prefilled: bool,
    *,
    max_tokens: int | None = None,
) -> str | None:
    """None when the completion may be trained on; else the first reason why not."""
    if finish_reason == "length":
        return "truncated"
    control = _control(completion)
    if control is not None:
        return f"control:{control}"
    if max_tokens is not None and len(completion.split()) > max_tokens:
        return "length:over_max_tokens"
    if sample.task not in task_names():
        from secreason.data.general import general_rejection

        why = general_rejection(sample, completion, cfg, prefilled)
    else:
        judgement = get_task(sample.task).judge(
            completion, sample.reference, prefilled=prefilled, format_config=cfg
        )
        if not judgement.format.ok:
            why = "format:" + "+".join(judgement.format.failed)
        elif judgement.score.status != "correct":
            why = f"verifier:{judgement.score.status}"
        else:
            why = None
    return why or trace_problem(sample, completion, cfg, prefilled)
