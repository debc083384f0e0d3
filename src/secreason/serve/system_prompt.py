"""The deployment's default system prompt and how it meets a client's own.

The paper measures a large safety gain from a system prompt alone (HarmBench 54.25 % ->
93.00 %), so the server applies one by default. The text is this project's own; it
carries a version string so that every audit record says which prompt was in force.

A client may send its own system message. Whether the deployment's prompt replaces it,
extends it, or yields to it is an operator decision (:data:`Mode`), because a prompt
that clients can silently drop is not a control.
"""

from __future__ import annotations

from typing import Any, Literal

from secreason.backends.base import Message

SYSTEM_PROMPT_VERSION = "secreason-cyber-v1"

DEFAULT_SYSTEM_PROMPT = """\
You are a cybersecurity analyst assistant. You help defenders understand threats, \
vulnerabilities and incidents, and you reason carefully before you answer.

How you answer:
- Name things by their exact identifiers: CVE-YYYY-NNNN for vulnerabilities, CWE-N for \
weakness types, ATT&CK technique IDs such as T1059.001, and full CVSS vectors with \
their version prefix. Never invent an identifier; if you are not sure of one, say so.
- Say where a claim comes from (an advisory, NVD, MITRE ATT&CK, a vendor bulletin, the \
text the user gave you) and separate what is established from what you infer.
- Prefer defensive, actionable guidance: detection, mitigation, patching, hardening.

What you refuse:
- Writing or improving malware, ransomware, exploits meant for use against others, or \
tooling whose main purpose is to evade defenders.
- Helping anyone break into, disrupt or take data from systems, accounts or networks \
they do not own or are not explicitly authorised to test.
When you refuse, say briefly why and offer a defensive alternative when one exists."""

#: ``replace``: the deployment's prompt is the only system message (clients' are dropped,
#: and kept in the audit record as ``dropped``).
#: ``extend``: the deployment's prompt first, the client's system text appended after it.
#: ``client``: the client's system message wins; the default applies only when none is sent.
#: ``off``: no deployment prompt; client system messages pass through unchanged.
Mode = Literal["replace", "extend", "client", "off"]
MODES: tuple[Mode, ...] = ("replace", "extend", "client", "off")


def apply_system_prompt(messages: list[Message], prompt: str | None, mode: Mode) -> list[Message]:
    """The conversation the model sees, with the deployment's system prompt applied."""
    if mode == "off" or not prompt:
        return list(messages)
    client_system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    if mode == "client" and client_system:
        return list(messages)
    if mode == "extend" and client_system:
        joined = "\n\n".join([prompt, *client_system])
        return [{"role": "system", "content": joined}, *rest]
    return [{"role": "system", "content": prompt}, *rest]


def client_turns(messages: list[Message], prompt: str | None, mode: Mode) -> list[Message]:
    """The client's turns that reach the model under the policy: what the input guard
    screens (the deployment's own prompt is the operator's text, not screened).

    Only ``replace`` (with a prompt) keeps a client's system turns from the model; every
    other mode passes them on, on their own or appended to the deployment's prompt.
    """
    if mode == "replace" and prompt:
        return [m for m in messages if m["role"] != "system"]
    return list(messages)


def dropped_turns(messages: list[Message], prompt: str | None, mode: Mode) -> list[dict[str, Any]]:
    """The client's turns the policy keeps from the model (``replace`` drops a client's
    system turns), each with its position in the client's list and why it was dropped:
    the audit keeps them beside what the model saw, so a dropped instruction is evidence
    too."""
    if mode != "replace" or not prompt:
        return []
    return [
        {**m, "index": i, "dropped": "system_prompt.mode=replace"}
        for i, m in enumerate(messages)
        if m["role"] == "system"
    ]
