"""Just enough of Go's text/template to render an Ollama TEMPLATE in a test.

Covers what Ollama templates use: trim markers, string constants, field and variable
access, ``if / else if / else``, ``range $i, $_ := .Messages``, ``:=`` and the
functions ``eq ne and or not len slice``. Anything else raises, so a template the
exporter writes outside this subset fails the test rather than rendering wrongly.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_TOKEN = re.compile(r'\(|\)|"(?:\\.|[^"\\])*"|[^\s()]+')


def _lex(source: str) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for m in _ACTION.finditer(source):
        text = source[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        items.append(("text", text))
        items.append(("action", m.group(2)))
        pos, trim_next = m.end(), bool(m.group(3))
    tail = source[pos:]
    items.append(("text", tail.lstrip() if trim_next else tail))
    return items


def _parse(items: list[tuple[str, str]], i: int = 0, stop: tuple[str, ...] = ()) -> Any:
    body: list[Any] = []
    while i < len(items):
        kind, value = items[i]
        if kind == "text":
            body.append(("text", value))
            i += 1
            continue
        word = value.split(" ", 1)[0]
        if word in stop or value.startswith("else"):
            return body, i
        if word == "if":
            branches, otherwise = [], []
            cond = value[3:]
            while True:
                sub, i = _parse(items, i + 1, ("end",))
                branches.append((cond, sub))
                head = items[i][1]
                if head.startswith("else if "):
                    cond = head[len("else if ") :]
                elif head == "else":
                    otherwise, i = _parse(items, i + 1, ("end",))
                    break
                else:
                    break
            body.append(("if", branches, otherwise))
            i += 1
        elif word == "range":
            m = re.fullmatch(r"range \$(\w+), \$(\w+) := (\S+)", value)
            if not m:
                raise ValueError(f"unsupported range: {value}")
            sub, i = _parse(items, i + 1, ("end",))
            body.append(("range", m.groups(), sub))
            i += 1
        elif re.fullmatch(r"\$\w+ := .+", value):
            name, expr = value.split(" := ", 1)
            body.append(("set", name[1:], expr))
            i += 1
        else:
            body.append(("print", value))
            i += 1
    return body, i


def _eval(expr: str, scope: dict[str, Any], dot: Any) -> Any:
    tokens = _TOKEN.findall(expr)

    def atom(tok: str) -> Any:
        if tok.startswith('"'):
            return json.loads(tok)
        if tok.isdigit():
            return int(tok)
        if tok.startswith("$."):
            return scope["$root"][tok[2:]]
        if tok.startswith("$"):
            return scope[tok[1:]]
        if tok.startswith("."):
            return dot[tok[1:]] if isinstance(dot, dict) else getattr(dot, tok[1:])
        raise ValueError(f"unsupported token {tok!r}")

    def call(args: list[Any]) -> Any:
        if not args:
            raise ValueError("empty command")
        head = args[0]
        if isinstance(head, str) and head in FUNCS:
            return FUNCS[head](*args[1:])
        if len(args) == 1:
            return head
        raise ValueError(f"unsupported command {args!r}")

    def parse(pos: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        while pos < len(tokens) and tokens[pos] != ")":
            tok = tokens[pos]
            if tok == "(":
                inner, pos = parse(pos + 1)
                out.append(call(inner))
            elif tok in FUNCS:
                out.append(tok)
            else:
                out.append(atom(tok))
            pos += 1
        return out, pos

    args, _ = parse(0)
    return call(args)


def _truthy(value: Any) -> bool:
    return bool(value)


FUNCS: dict[str, Any] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "and": lambda *a: next((x for x in a if not _truthy(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truthy(x)), a[-1]),
    "not": lambda a: not _truthy(a),
    "len": len,
    "slice": lambda seq, start: seq[start:],
}


def _run(body: list[Any], scope: dict[str, Any], dot: Any, out: list[str]) -> None:
    for node in body:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "print":
            value = _eval(node[1], scope, dot)
            out.append("" if value is None else str(value))
        elif node[0] == "set":
            scope[node[1]] = _eval(node[2], scope, dot)
        elif node[0] == "if":
            for cond, sub in node[1]:
                if _truthy(_eval(cond, scope, dot)):
                    _run(sub, scope, dot, out)
                    break
            else:
                _run(node[2], scope, dot, out)
        elif node[0] == "range":
            (index_var, value_var, source) = node[1]
            for n, item in enumerate(_eval(source, scope, dot)):
                _run(node[2], {**scope, index_var: n, value_var: item}, item, out)


def render(source: str, data: dict[str, Any]) -> str:
    """Render ``source`` with ``data`` as the root (``.Messages``, ``.System``...)."""
    body, end = _parse(_lex(source))
    out: list[str] = []
    _run(body, {"$root": data}, data, out)
    return "".join(out)
