"""Strict JSON reading of request bodies, shared by ``secreason serve`` and the reward server.

Python's parser accepts what JSON does not (``NaN``, ``Infinity``), keeps the last of
two equal keys (other parsers keep the first, so a guard and a model could read
different values), decodes ``\\ud800`` to a lone surrogate no tokenizer can encode, and
recurses as deep as the body nests. :func:`loads` parses with markers and a duplicate-key
check, and :func:`check_tree` then refuses each such body with a 400 naming the field.
Each server words a body that is not JSON at all its own way.
"""

from __future__ import annotations

import json
from typing import Any

from secreason.serve.errors import RequestError

#: Deepest JSON nesting accepted (a chat request needs 5: body.messages[i].tool_calls[j]
#: .function); deeper bodies are refused before anything walks them recursively.
MAX_DEPTH = 32


def loads(raw: bytes | str) -> Any:
    """Parse ``raw``: a key given twice raises :class:`RequestError`; ``NaN``/``Infinity``
    become markers that :func:`check_tree` refuses. Malformed JSON raises as
    ``json.loads`` does (``ValueError``, ``UnicodeDecodeError``, ``RecursionError``)."""
    return json.loads(raw, parse_constant=_Constant, object_pairs_hook=_unique_keys)


class _Constant:
    """A ``NaN``/``Infinity`` literal: not JSON (Python's parser accepts it); kept as a
    marker so that :func:`check_tree` refuses it naming the field."""

    def __init__(self, name: str) -> None:
        self.name = name


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a key given twice is refused (parsers disagree on which one wins,
    so the guard and the audit could read one value and the model the other)."""
    body = dict(pairs)
    if len(body) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = _shown(key)
                raise RequestError(400, f"the key {shown!r} appears twice in one object", shown)
            seen.add(key)
    return body


def _shown(text: str) -> str:
    """``text`` as it can be echoed in an error: lone surrogates escaped."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_tree(body: Any) -> None:
    """Refuse bodies nested past :data:`MAX_DEPTH` and strings that are not Unicode text
    (a JSON ``\\ud800`` escape decodes to a lone surrogate no tokenizer can encode)."""
    stack: list[tuple[Any, str, int]] = [(body, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise RequestError(400, f"request body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            _check_text(value, where or "body")
        elif isinstance(value, _Constant):
            where = where or "body"
            raise RequestError(400, f"{where} is {value.name}, which JSON does not allow", where)
        elif isinstance(value, dict):
            for key, item in value.items():
                path = f"{where}.{_shown(key)}".lstrip(".")
                _check_text(key, f"{path} (a key)")
                stack.append((item, path, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = f"\\u{ord(text[error.start]):04x}"
        raise RequestError(
            400,
            f"{where} is not valid Unicode text (lone surrogate {bad} at character {error.start})",
            where,
        ) from None
