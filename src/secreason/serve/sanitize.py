"""Client text stays text: control strings of chat templates are broken before tokenising.

A chat template marks turns with control strings (``<|start_header_id|>``, ``<|eot_id|>``,
``<|im_start|>``, ``<|system|>``...). Most are added tokens, and a tokenizer matches added
tokens anywhere in its input: a user who writes ``<|eot_id|><|start_header_id|>system``
in a message would otherwise hand the model a real turn boundary and a forged system
turn, whatever the deployment's system-prompt policy says.

Every client-supplied string (all roles, tool-call arguments, what the guard sees) goes
through :class:`Neutraliser` before it reaches a template: each occurrence of a control
string gets a WORD JOINER (U+2060, invisible) after its first character, so it tokenises
as ordinary text (a local tokenizer whose normaliser drops format characters gets a
no-break space or a space instead: :func:`breaker_for`). The strings come from two places:

* a generic pattern every deployment uses (``<|...|>``, ``[INST]``, ``<<SYS>>``, ``<s>``,
  think tags): it covers an upstream server's template (vLLM renders and tokenises there,
  out of our reach) and a guard's;
* for a local model, the tokenizer's own added tokens and the ``<...>`` literals of its
  chat template (:func:`control_strings`).

The deployment's own system prompt is never passed through it (the operator's text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from secreason.backends.base import Message

JOINER = "\u2060"

#: Control-string shapes of the common chat templates (Llama 3, ChatML/Qwen, Phi,
#: DeepSeek, Gemma, Llama 2/Mistral, the think and tool-call tags, Llama Guard's
#: conversation markers). Brackets and bars also match their fullwidth look-alikes:
#: DeepSeek's tokens are written with U+FF5C, and a tokenizer that NFKC-normalises
#: before matching added tokens reads ``＜|x|＞`` as ``<|x|>``.
_LT, _GT, _BAR = "[<\uff1c]", "[>\uff1e]", "[|\uff5c]"
GENERIC = (
    rf"{_LT}{_BAR}[^\s<>|\uff1c\uff1e\uff5c]{{1,64}}{_BAR}{_GT}",
    # Mistral's bracket tokens (Magistral reasons inside [THINK]...[/THINK]), GLM's [gMASK]
    r"[\[\uff3b]/?(?:INST|SYSTEM_PROMPT|TOOL_CALLS|AVAILABLE_TOOLS|TOOL_RESULTS|TOOL_CONTENT"
    r"|THINK|ARGS|CALL_ID|IMG|gMASK)[\]\uff3d]",
    rf"{_LT}{_LT}/?SYS{_GT}{_GT}",
    rf"{_LT}/?s{_GT}",
    rf"{_LT}/?(?i:think|tool_call|tool_response|start_of_turn|end_of_turn|bos|eos|sop|eop){_GT}",
    # Llama Guard 3's prompt frames the conversation with plain-text markers: a user who
    # writes "<END CONVERSATION>" could end it early and speak in the guard's voice.
    rf"{_LT}(?:BEGIN|END) [A-Z ]{{1,40}}{_GT}",
)
_TEMPLATE_LITERAL = re.compile(r"<\|[^\s<>|{}]{1,64}\|>|</?[A-Za-z_][\w-]{0,31}>")


def control_strings(tokenizer: object) -> tuple[str, ...]:
    """A local tokenizer's control strings: its added tokens and its template's tags."""
    found: set[str] = set()
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    for token in decoder.values():
        found.add(str(getattr(token, "content", token)))
    for name in ("all_special_tokens",):
        found.update(str(t) for t in getattr(tokenizer, name, None) or ())
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str):
        found.update(_TEMPLATE_LITERAL.findall(template))
    # A one-character token cannot be broken by a joiner; plain words are not control.
    return tuple(sorted(s for s in found if len(s) > 1 and not s.isalnum()))


#: Breakers tried in turn for a local tokenizer: the first its normaliser keeps apart
#: (a BERT-style ``clean_text`` drops format characters such as the word joiner before
#: it matches added tokens, which would rebuild ``<|system|>``).
BREAKERS = (JOINER, "\u00a0", " ")


def breaker_for(tokenizer: object) -> str:
    """The first of :data:`BREAKERS` that the tokenizer's normaliser does not remove."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    normalizer = getattr(backend, "normalizer", None)
    if normalizer is None:
        return JOINER
    for breaker in BREAKERS:
        if normalizer.normalize_str(f"<{breaker}|") != normalizer.normalize_str("<|"):
            return breaker
    return " "


class Neutraliser:
    """Breaks every control string (generic patterns + ``extra``) in a text."""

    def __init__(self, extra: Iterable[str] = (), joiner: str = JOINER) -> None:
        self.joiner = joiner
        generic = re.compile("|".join(GENERIC))
        # Strings the generic pattern already breaks are left out (Llama 3 alone has
        # 256 reserved tokens of the <|...|> shape): a short alternation stays fast.
        literals = sorted(
            {s for s in extra if len(s) > 1 and not generic.fullmatch(s)}, key=len, reverse=True
        )
        self.strings = tuple(literals)
        self._pattern = re.compile("|".join([*map(re.escape, literals), *GENERIC]))
        # Every match starts with one of these: text without them is returned untouched
        # (a substring test is ~100x faster than the regex scan on ordinary text).
        self._starts = frozenset("<[\uff1c\uff3b" + "".join(s[0] for s in literals))

    def __call__(self, text: str) -> str:
        if not any(c in text for c in self._starts):
            return text
        # Each pass breaks every match it sees; a second pass catches a string that a
        # longer overlapping match hid (bounded: each pass only adds joiners).
        for _ in range(4):
            fixed = self._pattern.sub(lambda m: m[0][0] + self.joiner + m[0][1:], text)
            if fixed == text:
                return text
            text = fixed
        return text

    def messages(self, messages: list[Message]) -> list[Message]:
        """The same turns with every content neutralised."""
        return [{**m, "content": self(m["content"])} for m in messages]


GENERIC_NEUTRALISER = Neutraliser()
