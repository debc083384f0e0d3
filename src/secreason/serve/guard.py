"""Moderation by a model that speaks the Llama-Guard-3 protocol.

The paper's best safety figure (HarmBench 98.25 %) puts Llama-Guard-3-8B in front of
the reasoning model. The protocol has three parts, and each lives here once so that a
tiny test guard and the real 8B guard go through the same code:

1. The conversation handed to the guard holds only user and assistant turns, strictly
   alternating and starting with the user (Llama Guard's chat template raises on
   anything else). Every turn that reaches the model is in it: roles the format has no
   slot for (system, tool, an assistant turn before any user turn) are rendered as
   user-side content with a ``[system]``/``[tool]``/``[assistant]`` label, so a
   conversation without a ``user`` turn is still judged. Llama Guard judges only the
   LAST message it is shown, so the input check shows the whole conversation as one
   user message (:func:`input_turn`). The guard model's OWN chat
   template turns it into the prompt: we never write the guard's instructions
   ourselves, the engine applies the template (transformers locally, the upstream
   server's template remotely).
2. The verdict is parsed strictly: ``safe``, or ``unsafe`` then a newline then a
   comma-separated list of categories ``S1``..``S14``. Anything else is *unparseable*.
3. A category policy turns the verdict into allow/block. Llama Guard's S2 includes
   hacking, so a defensive-security deployment may allow S2 and still block the rest.
   Unparseable verdicts and guard errors block by default (fail closed).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from secreason.backends.base import Generation, Message, SamplingParams
from secreason.reasoning import THINK, Split, Tags
from secreason.serve.disguise import guard_view
from secreason.serve.sanitize import GENERIC_NEUTRALISER

#: Llama Guard 3's hazard taxonomy (MLCommons), by code.
CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}

VerdictStatus = Literal["safe", "unsafe", "unparseable", "error", "empty"]
OnError = Literal["block", "allow"]
Side = Literal["input", "output"]

_UNSAFE = re.compile(r"unsafe\n(S\d{1,2}(?:,S\d{1,2})*)")


@dataclass(frozen=True)
class GuardVerdict:
    """What the guard said. ``raw`` keeps its exact output for the audit trail."""

    status: VerdictStatus
    categories: tuple[str, ...] = ()
    raw: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "categories": list(self.categories),
            "raw": self.raw,
            "detail": self.detail,
        }


def parse_verdict(text: str) -> GuardVerdict:
    """Parse a guard's output strictly; only surrounding whitespace is tolerated.

    Llama Guard 3 answers ``safe`` or ``unsafe\\nS1,S2`` (its generation starts with a
    blank line, hence the strip). Unknown codes, repeated codes, missing categories,
    extra lines or any other wording are unparseable: a guard that does not speak the
    protocol must not be read as approving.
    """
    body = text.strip()
    if body == "safe":
        return GuardVerdict("safe", raw=text)
    match = _UNSAFE.fullmatch(body)
    if match is None:
        return GuardVerdict("unparseable", raw=text, detail="not 'safe' or 'unsafe\\nS<n>[,S<n>]'")
    codes = tuple(match.group(1).split(","))
    unknown = [c for c in codes if c not in CATEGORIES]
    if unknown:
        return GuardVerdict("unparseable", raw=text, detail=f"unknown category {unknown[0]}")
    if len(set(codes)) != len(codes):
        return GuardVerdict("unparseable", raw=text, detail="repeated category")
    return GuardVerdict("unsafe", codes, raw=text)


#: Roles the Llama Guard format has no slot for, rendered as labelled user-side text.
LABELS = {"system": "[system]", "tool": "[tool]", "assistant": "[assistant]"}
#: The user turn an output check starts with when nothing user-side came before it.
NO_USER_TURN = "[no user message]"


def guard_conversation(messages: Sequence[Message], reply: str | None = None) -> list[Message]:
    """The conversation in the shape Llama Guard's template accepts, with every turn.

    ``user`` turns are user turns and ``assistant`` turns are agent turns; system and
    tool turns, and assistant turns before any user-side text, become labelled user-side
    text. Empty turns are left out, consecutive turns of one side are merged, and
    ``reply`` (the model's output, for output moderation) is the final assistant turn.
    The contents are folded (:func:`~secreason.serve.disguise.guard_view`: fullwidth
    letters, invisible characters, look-alike letters of other scripts in Latin words,
    Zalgo marks, overrides) so a disguised word is judged as a reader reads it,
    then pass through the generic control-string neutraliser, so a client cannot forge
    turns of the guard's own template.
    """
    turns: list[Message] = []
    for message in messages:
        role, text = message["role"], _screened(message["content"])
        if not text:
            continue
        if role != "user" and (role != "assistant" or not turns):
            role, text = "user", f"{LABELS.get(role, f'[{role}]')}\n{text}"
        if turns and turns[-1]["role"] == role:
            turns[-1] = {"role": role, "content": f"{turns[-1]['content']}\n\n{text}"}
        else:
            turns.append({"role": role, "content": text})
    if reply:
        if not turns:
            turns.append({"role": "user", "content": NO_USER_TURN})
        reply = _screened(reply)
        if turns[-1]["role"] == "assistant":
            turns[-1] = {"role": "assistant", "content": f"{turns[-1]['content']}\n\n{reply}"}
        else:
            turns.append({"role": "assistant", "content": reply})
    return turns


def input_turn(conversation: list[Message]) -> list[Message]:
    """The input check's conversation: ONE user turn holding every turn.

    Llama Guard assesses "ONLY THE LAST" user (or agent) message of what it is shown;
    earlier turns are context. A client could otherwise put its request in an early
    turn and end with a harmless one ("continue", or an assistant's "Sure."), and the
    input check would judge only that. So the input side hands the whole conversation
    over as the message to judge, assistant turns labelled ``[assistant]``. The output
    side keeps the turns: there the last agent message is the reply, as it should be.
    """
    if len(conversation) <= 1:
        return conversation
    parts = [
        m["content"] if m["role"] == "user" else f"{LABELS['assistant']}\n{m['content']}"
        for m in conversation
    ]
    return [{"role": "user", "content": "\n\n".join(parts)}]


def _screened(text: str) -> str:
    """Text as the guard reads it: disguises undone, then control strings broken."""
    return GENERIC_NEUTRALISER(guard_view(text)).strip()


def output_text(
    text: str, result: Split, *, screen_reasoning: bool, sent: str = "", tags: Tags = THINK
) -> str:
    """What the output guard reads of a completion ``text`` (split as ``result``).

    With ``screen_reasoning`` it is every generated character (the tags aside): text
    before the opening tag, every reasoning block, the answer. Without it, everything
    but the reasoning: the leading text, the answer, and ``sent``, the content a stream
    hands the client (a malformed completion can stream as content text that the final
    split calls reasoning).
    """
    if screen_reasoning:
        pieces = text.replace(tags.open, tags.close).split(tags.close)
    else:
        pieces = [result.leading, result.answer]
        if sent.strip() and sent.strip() != result.answer:
            pieces.append(sent)
    return "\n\n".join(p.strip() for p in pieces if p.strip())


@dataclass(frozen=True)
class GuardPolicy:
    """Which verdicts block. ``allow`` lists categories this deployment accepts."""

    allow: frozenset[str] = frozenset()
    on_error: OnError = "block"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.allow) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"guard policy: unknown category {unknown[0]!r} (expected S1..S14)")

    def blocks(self, verdict: GuardVerdict) -> bool:
        if verdict.status == "safe":
            return False
        if verdict.status == "unsafe":
            return any(c not in self.allow for c in verdict.categories)
        return self.on_error == "block"


@dataclass(frozen=True)
class GuardDecision:
    side: Side
    verdict: GuardVerdict
    blocked: bool
    elapsed_s: float = 0.0

    @property
    def reason(self) -> str:
        """A short, client-safe reason for a refusal."""
        v = self.verdict
        if v.status == "unsafe":
            names = ", ".join(f"{c} {CATEGORIES[c]}" for c in v.categories)
            return f"{self.side} flagged by the safety guard ({names})"
        if v.status == "empty":
            return f"{self.side} has no text the safety guard can judge"
        return f"{self.side} could not be verified by the safety guard ({v.status})"

    def as_dict(self) -> dict[str, object]:
        return {"blocked": self.blocked, **self.verdict.as_dict()}


Complete = Callable[[list[Message], SamplingParams], Awaitable[Generation]]


class Guard:
    """Runs the protocol through any completion engine (local model or upstream)."""

    def __init__(
        self,
        complete: Complete,
        policy: GuardPolicy,
        *,
        max_tokens: int = 20,
        timeout_s: float = 60.0,
    ) -> None:
        self._complete = complete
        self.policy = policy
        self._params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
        self._timeout_s = timeout_s
        guard_view("\u00e9")  # build the folding tables now, not on the first request

    async def check(
        self, side: Side, messages: Sequence[Message], reply: str | None
    ) -> GuardDecision:
        loop = asyncio.get_running_loop()
        start = loop.time()
        if sum(len(m["content"] or "") for m in messages) + len(reply or "") > 1 << 16:
            # Folding a long hostile text takes tens of ms: off the event loop.
            conversation = await asyncio.to_thread(guard_conversation, messages, reply)
        else:
            conversation = guard_conversation(messages, reply)
        if side == "input":
            conversation = input_turn(conversation)
        if side == "output" and not (reply or "").strip():
            verdict = GuardVerdict("safe", detail="nothing was generated")
        elif not conversation:
            # Nothing the guard can judge is not "safe": refused whatever the policy.
            verdict = GuardVerdict("empty", detail="no text the guard can judge")
            return GuardDecision(side, verdict, True, loop.time() - start)
        else:
            try:
                generation = await asyncio.wait_for(
                    self._complete(conversation, self._params), self._timeout_s
                )
                verdict = parse_verdict(generation.text)
            except Exception as error:  # any guard failure is a verdict, never a crash
                verdict = GuardVerdict("error", detail=f"{type(error).__name__}: {error}"[:300])
        blocked = self.policy.blocks(verdict)
        return GuardDecision(side, verdict, blocked, loop.time() - start)
