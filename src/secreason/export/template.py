"""A chat template reduced to its per-role pieces, learned by rendering it.

Ollama and llama.cpp do not run Jinja, so their template must be rewritten in another
language. Translating Jinja in general is out of reach; but reasoning chat templates
(the tiny model's, Llama 3's, Foundation-Sec-8B-Reasoning's) render every message as
``prefix(role) + content + suffix(role)`` after a BOS, then a generation prompt that may
open ``<think>``. Rendering the template on sentinel conversations recovers those
pieces exactly; re-rendering a test conversation from the pieces and comparing it with
the template's own output proves the reduction (or refuses the template, naming why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from secreason.reasoning import THINK

S, U, A, U2 = "\x01SYS\x01", "\x01USR\x01", "\x01AST\x01", "\x01US2\x01"
T = "\x01THK\x01"


class TemplateError(ValueError):
    """The chat template is not of the per-message form an export can rewrite."""


@dataclass(frozen=True)
class TemplateParts:
    bos: str
    system: tuple[str, str]
    user: tuple[str, str]
    assistant: tuple[str, str]
    generation: str  # the generation prompt, e.g. "<|assistant|>\n<think>\n"
    keeps_reasoning: bool  # does a history turn keep its <think> block?

    @property
    def prefilled(self) -> bool:
        return self.generation.rstrip().endswith(THINK.open)


def assistant_content(thinking: str, content: str) -> str:
    """How an assistant turn's reasoning and answer are joined into one message."""
    return f"{THINK.open}\n{thinking}{THINK.close}\n{content}" if thinking else content


def _render(tokenizer: Any, messages: list[dict[str, str]], generation: bool = False) -> str:
    return str(
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    )


def _between(text: str, left: str, right: str) -> str:
    start = text.index(left) + len(left)
    return text[start : text.index(right, start)]


def _common_suffix(*texts: str) -> str:
    n = 0
    while all(len(t) > n for t in texts) and len({t[len(t) - 1 - n] for t in texts}) == 1:
        n += 1
    return texts[0][len(texts[0]) - n :] if n else ""


def probe(tokenizer: Any) -> TemplateParts:
    """The pieces of ``tokenizer``'s chat template (TemplateError when it is not per-message)."""
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError("the tokenizer has no chat_template")
    sys_msg, usr = {"role": "system", "content": S}, {"role": "user", "content": U}
    ast, usr2 = {"role": "assistant", "content": A}, {"role": "user", "content": U2}
    try:
        su = _render(tokenizer, [sys_msg, usr])
        suau = _render(tokenizer, [sys_msg, usr, ast, usr2])
        gen = _render(tokenizer, [sys_msg, usr], generation=True)
        only_user = _render(tokenizer, [usr])
        thought = _render(
            tokenizer, [usr, {"role": "assistant", "content": assistant_content(T, A)}]
        )
    except Exception as err:
        raise TemplateError(f"the chat template failed on a probe conversation: {err}") from err
    if S not in su or not gen.startswith(su):
        raise TemplateError("the system message or the generation prompt is not appended")
    bos = su[: su.index(S)]
    bos = (
        str(tokenizer.bos_token)
        if tokenizer.bos_token and bos.startswith(tokenizer.bos_token)
        else ""
    )
    user_pre = _common_suffix(
        _between(su, S, U), _between(suau, A, U2), only_user[: only_user.index(U)]
    )
    sys_suf = _between(su, S, U)[: len(_between(su, S, U)) - len(user_pre)]
    user_suf = su[su.index(U) + len(U) :]
    asst_pre = _between(suau, U, A)[len(user_suf) :]
    asst_suf = _between(suau, A, U2)[: len(_between(suau, A, U2)) - len(user_pre)]
    parts = TemplateParts(
        bos=bos,
        system=(su[len(bos) : su.index(S)], sys_suf),
        user=(user_pre, user_suf),
        assistant=(asst_pre, asst_suf),
        generation=gen[len(su) :],
        keeps_reasoning=T in thought,
    )
    check = [sys_msg, usr, ast, usr2]
    if render(parts, check, generation=True) != _render(tokenizer, check, generation=True):
        raise TemplateError(
            "the chat template is not prefix + content + suffix per message; "
            "write the Ollama TEMPLATE by hand"
        )
    return parts


def render(parts: TemplateParts, messages: Sequence[dict[str, str]], *, generation: bool) -> str:
    """The prompt the pieces give (what the HF template gives, by construction)."""
    out = [parts.bos]
    roles = {"system": parts.system, "user": parts.user, "assistant": parts.assistant}
    for message in messages:
        pre, suf = roles[message["role"]]
        out.append(pre + message["content"] + suf)
    if generation:
        out.append(parts.generation)
    return "".join(out)
