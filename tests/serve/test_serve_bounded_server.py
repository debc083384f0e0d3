"""Bounded work and the audit trail, against real server processes on loopback.

``slow`` is ``secreason serve`` with the fixed-text backend taking 120 s per answer,
so any generation that is not cancelled is still running when the test looks. Slow
clients are raw sockets (half the headers, half a body); a disconnect is a socket
closed mid-request; the drain is a real SIGTERM. ``proxy`` is a second server in front
of a stub upstream written here, which records when its client (the proxy) hangs up.
No test asserts a duration: each waits for a state (a count in ``/metrics``, a closed
socket, an exited process) with a bound far above what the behaviour needs.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_upstream import JSONHandler, start_fake, v1_url
from serve_fixtures import Server, free_port, read_metrics, wait_for

from secreason.serve.audit import read_audit

pytestmark = pytest.mark.slow

KEYS = {"alice": "key-alice-0001", "bob": "key-bob-0002", "carol": "key-carol-3", "dave": "k-d4"}
MONITOR = "key-monitor-5"  # the tests' /metrics poller has a key of its own
THOUGHT = "The upstream reasons first."
PARTIAL = "Partial answer, then the upstream stalls."


@pytest.fixture(scope="module")
def slow(start_server: Callable[..., Server], serve_workdir: Path) -> Server:
    config: dict[str, Any] = {
        "model": {"backend": "fixed-text", "fixed_text_delay_s": 120, "served_name": "fixed"},
        "limits": {
            "named_api_keys": {**KEYS, "monitor": MONITOR},
            "max_concurrent": 3,
            "max_concurrent_per_key": 1,
            "requests_per_minute_per_key": 6,
            "rate_burst": 3,
            # the poller below asks every 50 ms while it waits for a state
            "metrics_per_minute_per_key": 1200,
            "request_timeout_s": 300,
            "body_timeout_s": 1,
            "header_timeout_s": 1,
            "drain_timeout_s": 1,
        },
        "audit": {"path": str(serve_workdir / "slow-audit.jsonl"), "fsync": False},
    }
    return start_server(config, "slow")


def _metrics(server: Server) -> dict[str, Any]:
    return read_metrics(server, MONITOR)


def _request_bytes(key: str, body: dict[str, Any] | bytes, declared: int | None = None) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared if declared is not None else len(data)}\r\n\r\n"
    )
    return head.encode() + data


def _open(server: Server, payload: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(payload)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _records(serve_workdir: Path, name: str) -> list[dict[str, Any]]:
    return list(read_audit(serve_workdir / name))


QUESTION = {"model": "fixed", "messages": [{"role": "user", "content": "which CWE?"}]}


@pytest.mark.parametrize("after_a_request", [False, True], ids=["first", "keep-alive"])
def test_half_sent_headers_are_cut_off(slow: Server, after_a_request: bool) -> None:
    sock = socket.create_connection(("127.0.0.1", slow.port), timeout=30)
    with sock:
        if after_a_request:  # a kept-alive connection gets the same bound for its next one
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while not answer.endswith(b"}"):  # the whole JSON answer, headers first
                chunk = sock.recv(65536)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert _read_all(sock) == b"", "the server answered a request it never fully got"


NOT_HTTP = {
    "negative length": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
    "two lengths": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
    "length and chunked": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    ),
    "NUL in a header": b"GET /health HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
    "TLS to the plain port": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 32,
}


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def _client_records(serve_workdir: Path, client: str) -> list[dict[str, Any]]:
    return [r for r in _records(serve_workdir, "slow-audit.jsonl") if r["client"] == client]


@pytest.mark.parametrize("payload", NOT_HTTP.values(), ids=NOT_HTTP.keys())
def test_bytes_that_are_not_http_are_refused_and_audited(
    slow: Server, serve_workdir: Path, payload: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", slow.port), timeout=30) as sock:
        client = _address(sock)
        sock.sendall(payload)
        assert _read_all(sock).startswith(b"HTTP/1.1 400")
    wait_for(lambda: bool(_client_records(serve_workdir, client)), "the refusal was audited")
    (record,) = _client_records(serve_workdir, client)
    assert record["status"] == 400 and record["error"].startswith("invalid HTTP")
    assert record["key_id"] is None and record["request_id"]


def test_headers_that_never_finish_are_audited_an_idle_connection_is_not(
    slow: Server, serve_workdir: Path
) -> None:
    clients = []
    for payload in (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 12", b""):
        with socket.create_connection(("127.0.0.1", slow.port), timeout=30) as sock:
            clients.append(_address(sock))
            sock.sendall(payload)
            assert _read_all(sock) == b""  # closed after header_timeout_s, unanswered
    slow_headers, idle = clients
    wait_for(lambda: bool(_client_records(serve_workdir, slow_headers)), "the 408 was audited")
    (record,) = _client_records(serve_workdir, slow_headers)
    assert record["status"] == 408 and "headers not received" in record["error"]
    # the idle connection closed before the 408 was written: its record would be there too
    assert _client_records(serve_workdir, idle) == []


def test_half_sent_body_gets_408_and_its_slot_back(slow: Server, serve_workdir: Path) -> None:
    body = json.dumps(QUESTION).encode()
    with _open(slow, _request_bytes(KEYS["alice"], body[:10], declared=len(body))) as sock:
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    wait_for(lambda: _metrics(slow)["in_flight"] == 0, "the slow body gave its slot back")
    record = _records(serve_workdir, "slow-audit.jsonl")[-1]
    assert (record["status"], record["key_id"]) == (408, "alice")
    assert record["client"].startswith("127.0.0.1:")


def test_disconnect_cancels_the_generation(slow: Server, serve_workdir: Path) -> None:
    before = _metrics(slow)["cancelled"]
    sock = _open(slow, _request_bytes(KEYS["alice"], QUESTION))
    wait_for(lambda: _metrics(slow)["model_running"] == 1, "the generation started")
    sock.close()
    wait_for(lambda: _metrics(slow)["model_running"] == 0, "the generation stopped")
    assert _metrics(slow)["cancelled"] == before + 1
    wait_for(
        lambda: _records(serve_workdir, "slow-audit.jsonl")[-1]["status"] == 499,
        "the disconnect was audited",
    )
    record = _records(serve_workdir, "slow-audit.jsonl")[-1]
    assert record["error"] == "client disconnected" and record["key_id"] == "alice"
    assert record["messages"][0]["role"] == "system", "the audit must hold what the model saw"


def test_one_key_cannot_fill_the_server(slow: Server) -> None:
    holder = _open(slow, _request_bytes(KEYS["alice"], QUESTION))
    try:
        wait_for(lambda: _metrics(slow)["model_running"] == 1, "alice's generation started")
        url = slow.base_url + "/v1/chat/completions"
        alice = {"authorization": f"Bearer {KEYS['alice']}"}
        second = httpx.post(url, json=QUESTION, headers=alice)
        assert second.status_code == 429 and second.headers["retry-after"] == "1"
        assert "this key" in second.json()["error"]["message"]
        headers = {"authorization": f"Bearer {KEYS['bob']}"}
        with httpx.stream(
            "POST", url, json={**QUESTION, "stream": True}, headers=headers, timeout=30
        ) as other:
            assert other.status_code == 200, "another key was blocked by alice's request"
            first = next(other.iter_lines())
            assert first.startswith("data: ") and '"role": "assistant"' in first
    finally:
        holder.close()
    wait_for(lambda: _metrics(slow)["model_running"] == 0, "both generations stopped")


def test_rate_limit_per_key_with_retry_after(slow: Server, serve_workdir: Path) -> None:
    url = slow.base_url + "/v1/chat/completions"
    headers = {"authorization": f"Bearer {KEYS['carol']}"}
    statuses = [httpx.post(url, content=b"{", headers=headers).status_code for _ in range(3)]
    limited = httpx.post(url, content=b"{", headers=headers)
    assert statuses == [400, 400, 400] and limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "rate limit" in limited.json()["error"]["message"]

    def carol() -> list[int]:
        records = _records(serve_workdir, "slow-audit.jsonl")
        return [r["status"] for r in records if r["key_id"] == "carol"]

    wait_for(lambda: carol() == [400, 400, 400, 429], "carol's four requests were audited")


def test_every_refusal_is_audited_and_no_key_is_written(slow: Server, serve_workdir: Path) -> None:
    url = slow.base_url + "/v1/chat/completions"
    # Records of earlier tests' cancelled generations may still land: read only what
    # this test's requests added, in any order.
    before = len(_records(serve_workdir, "slow-audit.jsonl"))
    wrong = httpx.post(url, json=QUESTION, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    with _open(slow, _request_bytes(KEYS["bob"], b"", declared=10**9)) as sock:
        assert sock.recv(65536).startswith(b"HTTP/1.1 413")

    def refusals() -> set[tuple[int, str | None]]:
        records = _records(serve_workdir, "slow-audit.jsonl")[before:]
        return {(r["status"], r["key_id"]) for r in records} & {(401, None), (413, "bob")}

    wait_for(lambda: len(refusals()) == 2, "the refusals were audited")
    records = _records(serve_workdir, "slow-audit.jsonl")
    assert all(r["client"] and r["request_id"] for r in records)
    # an authenticated request the server does not serve as asked is evidence too
    bob = {"authorization": f"Bearer {KEYS['bob']}"}
    assert httpx.post(slow.base_url + "/v1/completions", json={}, headers=bob).status_code == 404
    wait_for(
        lambda: _records(serve_workdir, "slow-audit.jsonl")[-1]["status"] == 404,
        "the unknown path was audited",
    )
    assert httpx.get(slow.base_url + "/health").status_code == 200
    text = (serve_workdir / "slow-audit.jsonl").read_text()
    assert not any(key in text for key in KEYS.values()) and "nope" not in text
    assert stat.S_IMODE(os.stat(serve_workdir / "slow-audit.jsonl").st_mode) == 0o600


def test_health_is_liveness_ready_checks_the_model(slow: Server) -> None:
    assert httpx.get(slow.base_url + "/health").status_code == 200
    ready = httpx.get(slow.base_url + "/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["model"]["ready"] is True


def test_models_name_the_system_prompt_policy(slow: Server) -> None:
    from secreason.serve.system_prompt import SYSTEM_PROMPT_VERSION

    headers = {"authorization": f"Bearer {KEYS['bob']}"}
    (entry,) = httpx.get(slow.base_url + "/v1/models", headers=headers).json()["data"]
    policy = {"mode": "replace", "version": SYSTEM_PROMPT_VERSION}
    assert entry["secreason"]["system_prompt"] == policy
    assert "max_model_len" not in entry  # the fixed-text backend has no context to report


# ------------------------------------------------------------------- proxy mode


class _Stub(JSONHandler):
    """An upstream that sends PARTIAL and then stalls, noting when its client leaves."""

    closed: list[str] = []

    def do_GET(self) -> None:  # /v1/models, for /ready
        self.send_json(200, {"object": "list", "data": [{"id": "stub"}]})

    def do_POST(self) -> None:
        request = self.read_json()
        if not request.get("stream"):
            # Answer nothing; watch the socket until the client closes it.
            ready, _, _ = select.select([self.connection], [], [], 60)
            if ready and self.connection.recv(1, socket.MSG_PEEK) == b"":
                self.closed.append("complete")
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        try:
            for delta in ({"reasoning_content": THOUGHT}, {"content": PARTIAL}):
                event = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
            for _ in range(600):
                time.sleep(0.1)
                self.wfile.write(b": still thinking\n\n")
                self.wfile.flush()
        except OSError:
            self.closed.append("stream")


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    server = start_fake(_Stub, ThreadingHTTPServer)
    yield v1_url(server)
    server.shutdown()


def test_proxy_deadline_and_disconnect_close_the_upstream(
    start_server: Callable[..., Server], stub: str, serve_workdir: Path
) -> None:
    audit = serve_workdir / "stub-proxy-audit.jsonl"
    proxy = start_server(
        {
            "model": {"path": "stub", "upstream": stub},
            "system_prompt": {"mode": "off"},
            "limits": {"request_timeout_s": 2},
            "audit": {"path": str(audit), "fsync": False},
        },
        "stub-proxy",
    )
    url = proxy.base_url + "/v1/chat/completions"
    body = {"model": "stub", "messages": [{"role": "user", "content": "q"}]}
    timed_out = httpx.post(url, json=body, timeout=60)
    assert timed_out.status_code == 504
    wait_for(lambda: "complete" in _Stub.closed, "the proxy closed the upstream request")

    with _open(proxy, _request_bytes("none", {**body, "stream": True})) as sock:
        received = b""
        while PARTIAL.encode() not in received:
            chunk = sock.recv(65536)
            assert chunk, "the stream ended before its first content"
            received += chunk
        # the client leaves after the first piece of content
    wait_for(lambda: "stream" in _Stub.closed, "the proxy closed the upstream stream")
    wait_for(lambda: len(list(read_audit(audit))) == 2, "both requests were audited")
    record = list(read_audit(audit))[-1]
    assert record["error"] == "client disconnected"
    assert record["sent"] == {"reasoning": THOUGHT, "content": PARTIAL}, "what was sent is lost"

    # A stream the deadline ends: the client gets the partial text, then an error event.
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=60) as response:
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert json.loads(events[-2][6:])["error"]["code"] == "timeout"
    record = list(read_audit(audit))[-1]
    assert record["error"] == "the model timed out"
    assert record["sent"] == {"reasoning": THOUGHT, "content": PARTIAL}


def test_ready_fails_while_the_guard_is_unreachable(
    start_server: Callable[..., Server], stub: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    server = start_server(
        {"model": {"path": "stub", "upstream": stub}, "guard": {"model": dead}}, "dead-guard"
    )
    assert httpx.get(server.base_url + "/health").status_code == 200
    ready = httpx.get(server.base_url + "/ready", timeout=30)
    checks = ready.json()["checks"]
    assert ready.status_code == 503 and checks["model"]["ready"] is True
    assert checks["guard"]["ready"] is False and "unreachable" in checks["guard"]["detail"]


# ---------------------------------------------------------------------- drain (last)


def test_sigterm_drains_then_exits_during_a_long_generation(
    slow: Server, serve_workdir: Path
) -> None:
    sock = _open(slow, _request_bytes(KEYS["dave"], QUESTION))
    try:
        wait_for(lambda: _metrics(slow)["model_running"] == 1, "the generation started")
        slow.process.send_signal(signal.SIGTERM)
        slow.process.wait(60)  # the model would take 120 s: only a cancelled one ends first
    finally:
        sock.close()
    # uvicorn re-raises the signal once it has shut down: killed by SIGTERM, after the drain
    assert slow.process.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in slow.log()
    dave = [r for r in _records(serve_workdir, "slow-audit.jsonl") if r["key_id"] == "dave"]
    assert [(r["status"], r["error"][:10]) for r in dave] == [(503, "cancelled:")]
