"""A hostile review of ``secreason reward-server``: real subprocesses on loopback, real
HTTP clients and raw sockets (half-sent headers, half-sent bodies, clients that hang
up), a flood past the in-flight cap and a real SIGTERM while a request is in flight.

Every bad body must be a 4xx whose message names the field (and the row); the server
never answers 500 and never hangs. Waits are bounded far above what the behaviour
needs; no test asserts a timing.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reward_server_fixtures import RewardServer
from test_reward_table import PREFILL, PROMPT, WHY

from secreason.integrations.openrlhf import label_for

KEY = "hostile-key"
P = PROMPT + PREFILL
GOOD = P + f"{WHY}</think>\nAnswer: B<|end|>"
LABEL = label_for("mcq", "B")
LIMITS = [
    "--max-body-bytes",
    "300000",
    "--max-batch",
    "40",
    "--max-concurrent",
    "2",
    "--body-timeout-s",
    "1",
    "--header-timeout-s",
    "1",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RewardServer]:
    srv = RewardServer(tmp_path_factory.mktemp("hostile"), KEY, *LIMITS)
    yield srv
    srv.stop()


def post(srv: RewardServer, content: bytes, content_type: str | None = "application/json"):
    headers = {"authorization": f"Bearer {KEY}"}
    if content_type:
        headers["content-type"] = content_type
    return httpx.post(srv.base + "/get_reward", content=content, headers=headers, timeout=60)


def body(n: int = 1, **override: Any) -> bytes:
    data: dict[str, Any] = {"query": [GOOD] * n, "prompts": [P] * n, "labels": [LABEL] * n}
    data.update(override)
    return json.dumps(data).encode()


def nested(depth: int) -> bytes:
    inner = "[" * depth + "]" * depth
    return f'{{"query": [], "prompts": [], "labels": {inner}}}'.encode()


# (id, raw body, content type, status, needle in the error message)
BODIES: list[tuple[str, bytes, str | None, int, str]] = [
    ("null", b"null", "application/json", 400, "JSON object"),
    ("string", b'"query"', "application/json", 400, "JSON object"),
    ("number", b"42", "application/json", 400, "JSON object"),
    ("list-of-bodies", b"[" + body() + b"]", "application/json", 400, "JSON object"),
    ("empty", b"", "application/json", 400, "not JSON"),
    (
        "form-encoded",
        b"query=a&prompts=b",
        "application/x-www-form-urlencoded",
        415,
        "content-type",
    ),
    ("multipart", b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x", 415, "content-type"),
    ("json-as-text-plain-is-read", body(), "text/plain", 200, ""),
    ("no-content-type-is-read", body(), None, 200, ""),
    (
        "latin-1-bytes",
        b'{"query": ["\xe9"], "prompts": [], "labels": []}',
        "application/json",
        400,
        "UTF-8",
    ),
    (
        "nan-label",
        b'{"query": ["a"], "prompts": ["a"], "labels": [NaN]}',
        "application/json",
        400,
        "labels[0] is NaN",
    ),
    (
        "infinity-in-query",
        b'{"query": [Infinity], "prompts": ["a"], "labels": ["x"]}',
        "application/json",
        400,
        "query[0] is Infinity",
    ),
    (
        "lone-surrogate-query",
        body(query=[P + "\ud800"]),
        "application/json",
        400,
        "query[0] is not valid Unicode",
    ),
    (
        "lone-surrogate-key",
        b'{"query": [], "prompts": [], "labels": [], "\\udc00": 1}',
        "application/json",
        400,
        "not valid Unicode",
    ),
    (
        "lone-surrogate-label",
        body(labels=['{"task": "mcq", "reference": "\ud800"}']),
        "application/json",
        400,
        "labels[0] is not valid Unicode",
    ),
    ("deep-nesting", nested(100_000), "application/json", 400, "nested deeper"),
    ("moderate-nesting", nested(40), "application/json", 400, "nested deeper"),
    (
        "duplicate-key",
        b'{"query": [], "query": [], "prompts": [], "labels": []}',
        "application/json",
        400,
        "appears twice",
    ),
    (
        "huge-integer",
        b'{"query": [], "prompts": [], "labels": [' + b"9" * 5000 + b"]}",
        "application/json",
        400,
        "number too long",
    ),
    (
        "missing-labels",
        b'{"query": [], "prompts": []}',
        "application/json",
        400,
        "'labels' must be a list",
    ),
    (
        "queries-typo",
        b'{"queries": [], "prompts": [], "labels": []}',
        "application/json",
        400,
        "'queries'",
    ),
    ("query-null", body(query=None), "application/json", 400, "'query' must be a list"),
    ("prompts-dict", body(prompts={"0": P}), "application/json", 400, "'prompts' must be a list"),
    ("query-item-null", body(2, query=[GOOD, None]), "application/json", 400, "query[1]"),
    ("prompt-item-list", body(2, prompts=[P, [P]]), "application/json", 400, "prompts[1]"),
    (
        "short-labels",
        body(3, labels=[LABEL] * 2),
        "application/json",
        400,
        "differ in length (3, 3, 2)",
    ),
    ("short-prompts", body(3, prompts=[P]), "application/json", 400, "differ in length (3, 1, 3)"),
    (
        "bad-label-row-named",
        body(3, labels=[LABEL, "B", LABEL]),
        "application/json",
        400,
        "labels[1]",
    ),
    (
        "unknown-task-row-named",
        body(2, labels=[LABEL, label_for("ioc", "x")]),
        "application/json",
        400,
        "labels[1]: unknown task 'ioc'",
    ),
    (
        "unreachable-gold-row-named",
        body(2, labels=[LABEL, label_for("cwe", "XSS")]),
        "application/json",
        400,
        "labels[1]: gold 'XSS'",
    ),
    (
        "label-null-row-named",
        body(2, labels=[LABEL, None]),
        "application/json",
        400,
        "labels[1]: empty",
    ),
    (
        "prompt-not-in-query",
        body(2, prompts=[P, "elsewhere"]),
        "application/json",
        400,
        "queries[1] does not contain prompts[1]",
    ),
    ("batch-over-cap", body(41), "application/json", 413, "41 rows"),
    ("body-over-cap", body(query=["x" * 400_000]), "application/json", 413, "exceeds 300000"),
]


@pytest.mark.parametrize(
    ("name", "raw", "ctype", "status", "needle"), BODIES, ids=[b[0] for b in BODIES]
)
def test_bad_bodies_get_a_4xx_naming_the_field(
    server: RewardServer, name: str, raw: bytes, ctype: str | None, status: int, needle: str
) -> None:
    reply = post(server, raw, ctype)
    assert reply.status_code == status, reply.text
    if status != 200:
        assert needle in reply.json()["error"]["message"], reply.text
    else:
        assert reply.json()["rewards"] == [1.0]


def test_garbage_completions_score_and_never_fail_good_rows(server: RewardServer) -> None:
    """Completions are whatever a policy wrote: none of them fails the batch."""
    odd = [
        "",
        "\x00" * 1000,
        "<think>" * 3000,
        "</think>" * 3000,
        "<|end|>" * 2000,
        "Answer: " + "A, " * 10000,
        "\U0001f600" * 3000,
        WHY * 600 + "</think>\nAnswer: B",
    ]
    queries = [GOOD] + [P + c for c in odd] + [GOOD]
    data = {"query": queries, "prompts": [P] * len(queries), "labels": [LABEL] * len(queries)}
    reply = post(server, json.dumps(data).encode())
    assert reply.status_code == 200, reply.text
    rewards = reply.json()["rewards"]
    assert rewards[0] == rewards[-1] == 1.0 and max(rewards[1:-1]) <= 0.0


def test_wrong_key_path_and_method(server: RewardServer) -> None:
    assert httpx.post(server.base + "/get_reward", content=body(), timeout=30).status_code == 401
    bad = {"authorization": "Bearer " + "x" * 10_000}
    assert httpx.post(server.base + "/", content=body(), headers=bad, timeout=30).status_code == 401
    ok = {"authorization": f"Bearer {KEY}"}
    assert httpx.get(server.base + "/get_reward", headers=ok, timeout=30).status_code == 405
    assert (
        httpx.post(server.base + "/nope", content=body(), headers=ok, timeout=30).status_code == 404
    )


# ------------------------------------------------------------------- raw sockets


def _request(payload: bytes, declared: int | None = None) -> bytes:
    length = len(payload) if declared is None else declared
    head = (
        f"POST /get_reward HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    return head.encode() + payload


def _read_all(sock: socket.socket, until: bytes | None = None) -> bytes:
    """What the server sends until it closes the connection (or ``until`` arrived); a
    server that neither answers nor closes fails the test with the socket's timeout."""
    chunks = []
    while until is None or until not in b"".join(chunks):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _wait_for(check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def test_half_sent_headers_are_cut_off(server: RewardServer) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    with sock:
        sock.sendall(b"POST /get_reward HTTP/1.1\r\nHost: x\r\n")  # never finished
        assert _read_all(sock) == b""  # closed by the server, no answer


def test_half_sent_body_gets_408_and_frees_its_slot(server: RewardServer) -> None:
    full = body()
    holders = [socket.create_connection(("127.0.0.1", server.port), timeout=60) for _ in range(2)]
    try:
        for sock in holders:
            sock.sendall(_request(full[:10], declared=len(full)))
        # Both in-flight slots are held by half-sent bodies: a third request is refused.
        _wait_for(lambda: post(server, body()).status_code == 429, "the cap refused a third")
        for sock in holders:
            reply = _read_all(sock, until=b"arrived)")
            assert b" 408 " in reply.split(b"\r\n", 1)[0] and b"not received within" in reply
    finally:
        for sock in holders:
            sock.close()
    assert post(server, body()).status_code == 200  # slots are back


def test_a_client_that_hangs_up_leaves_the_server_serving(server: RewardServer) -> None:
    big = body(40, query=[P + WHY * 60 + "</think>\nAnswer: B"] * 40)
    for _ in range(4):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        sock.sendall(_request(big))
        sock.close()  # gone before the answer
    _wait_for(lambda: post(server, body()).status_code == 200, "the server answers again")


def test_a_flood_gets_429s_not_a_queue(server: RewardServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    heavy = body(40, query=[P + WHY * 60 + "</think>\nAnswer: B"] * 40)
    with ThreadPoolExecutor(24) as pool:
        codes = list(pool.map(lambda _: post(server, heavy).status_code, range(24)))
    assert set(codes) <= {200, 429} and 200 in codes, codes
    assert post(server, body()).status_code == 200


# ---------------------------------------------------------------------- SIGTERM


def test_sigterm_drains_the_request_in_flight_then_exits(tmp_path: Path) -> None:
    srv = RewardServer(tmp_path, KEY, "--body-timeout-s", "60", "--drain-timeout-s", "30")
    try:
        full = body()
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        with sock:
            sock.sendall(_request(full[:10], declared=len(full)))
            time.sleep(0.3)  # the request is in flight
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            sock.sendall(full[10:])  # the rest arrives during the drain
            reply = _read_all(sock)
        assert b" 200 " in reply.split(b"\r\n", 1)[0], reply[:300]
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["rewards"] == [1.0]
        assert srv.proc.wait(60) in (0, -signal.SIGTERM)
    finally:
        srv.stop()


def test_sigterm_with_a_stuck_client_exits_after_the_drain(tmp_path: Path) -> None:
    srv = RewardServer(tmp_path, KEY, "--body-timeout-s", "600", "--drain-timeout-s", "1")
    try:
        full = body()
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        with sock:
            sock.sendall(_request(full[:10], declared=len(full)))  # never finished
            time.sleep(0.3)
            srv.proc.send_signal(signal.SIGTERM)
            srv.proc.wait(60)  # raises TimeoutExpired when the drain never ends
    finally:
        srv.stop()
