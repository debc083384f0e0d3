"""``/metrics``: bounded summaries, authenticated, and limited per key without starving anyone.

The summaries are checked against exact quantiles of the same samples (a table of
distributions, interval quantiles included); the limits against a real server on
loopback where one key hammers ``/metrics`` while another key asks for completions
and a third (the monitor) keeps reading.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_fixtures import Server, read_metrics

from secreason.serve.audit import read_audit
from secreason.serve.limits import KeyLimits
from secreason.serve.metrics import EDGES, WINDOW, LatencySeries, ServerStats, quantile_between


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def test_window_quantiles_are_exact_and_the_window_is_bounded() -> None:
    series = LatencySeries()
    values = [float(v) for v in range(1, 1001)]
    random.Random(0).shuffle(values)
    for value in values:
        series.add(value)
    summary = series.summary()
    assert (summary["p50"], summary["p90"], summary["p99"], summary["max"]) == (500, 900, 990, 1000)
    for value in range(5000):
        series.add(float(value))
    summary = series.summary()
    assert summary["count"] == 6000 and summary["window"] == WINDOW
    assert summary["max"] == 4999 and summary["p50"] == _exact(list(range(5000 - WINDOW, 5000)), 50)


def test_an_empty_series_has_no_quantiles() -> None:
    summary = LatencySeries().summary()
    assert summary["count"] == 0 and summary["p50"] is None and summary["buckets"] == []


def test_the_response_size_does_not_grow_with_traffic() -> None:
    stats = ServerStats()
    rng = random.Random(1)
    for _ in range(200_000):  # the old endpoint listed every one of these
        stats.observe(10 ** rng.uniform(-4, 7), 10 ** rng.uniform(-4, 7))
    snapshot = stats.snapshot()
    size = len(json.dumps(snapshot))
    assert size < 12_000, size
    assert len(snapshot["overhead_ms"]["buckets"]) <= len(EDGES) + 1
    assert snapshot["overhead_ms"]["count"] == 200_000


DISTRIBUTIONS: dict[str, Callable[[random.Random], float]] = {
    "constant": lambda r: 0.25,
    "log-uniform": lambda r: 10 ** r.uniform(-2, 4),
    "bimodal": lambda r: r.choice([0.3, 0.31, 250.0]) * r.uniform(1, 1.05),
    "zeros": lambda r: 0.0,
    "negative clamps to 0": lambda r: -r.uniform(0, 5),
    "exactly on edges": lambda r: r.choice(EDGES[40:80]),
}


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_interval_quantiles_are_within_one_bucket(name: str) -> None:
    rng = random.Random(2)
    draw = DISTRIBUTIONS[name]
    series = LatencySeries()
    for _ in range(3000):  # before the interval: other traffic, far away
        series.add(5e5)
    before = series.summary()
    added = [max(0.0, draw(rng)) for _ in range(2500)]
    for value in added:
        series.add(value)
    after = series.summary()
    for q in (50, 90, 99, 100):
        true = _exact(added, q)
        estimate = quantile_between(before, after, q)
        floor = EDGES[0] if true <= EDGES[0] else true
        assert floor <= estimate <= max(floor, true) * 10 ** (1 / 20) + 1e-12, (q, true, estimate)


def test_interval_quantiles_beyond_the_edges_and_of_nothing() -> None:
    series = LatencySeries()
    before = series.summary()
    assert math.isnan(quantile_between(before, series.summary(), 50))
    series.add(5e9)  # beyond the last edge (1000 s)
    assert quantile_between(before, series.summary(), 50) == math.inf


def test_key_limits_name_what_they_limit() -> None:
    limits = KeyLimits(1, 60.0, burst=1, what="/metrics calls")
    assert limits.take("k", 0.0) is None
    message, wait = limits.take("k", 0.0) or ("", 0)
    assert "1 /metrics calls in flight" in message and wait == 1
    limits.release("k")
    message, wait = limits.take("k", 0.0) or ("", 0)
    assert "60 /metrics calls per minute" in message and wait == 1


# ----------------------------------------------------------------- a real server

KEYS = {
    "mallory": "key-mallory-1",
    "bob": "key-bob-2",
    "monitor": "key-monitor-3",
    # its own rate bucket: the module-scoped server keeps what bob spent in earlier tests
    "carol": "key-carol-4",
}


@pytest.fixture(scope="module")
def metered(start_server: Callable[..., Server], serve_workdir: Path) -> Server:
    config: dict[str, Any] = {
        "model": {"backend": "fixed-text", "served_name": "fixed"},
        "limits": {
            "named_api_keys": KEYS,
            "requests_per_minute_per_key": 60,
            "rate_burst": 10,
            "metrics_per_minute_per_key": 60,
            "metrics_burst": 4,
        },
        # fsync on, as deployed: a flood of refusals must not queue flushes ahead of others
        "audit": {"path": str(serve_workdir / "metered-audit.jsonl"), "fsync": True},
    }
    return start_server(config, "metered")


def _auth(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[name]}"}


QUESTION = {"model": "fixed", "messages": [{"role": "user", "content": "which CWE?"}]}


def test_metrics_needs_a_key(metered: Server) -> None:
    assert httpx.get(metered.base_url + "/metrics").status_code == 401
    wrong = httpx.get(metered.base_url + "/metrics", headers={"authorization": "Bearer no"})
    assert wrong.status_code == 401


def test_a_key_hammering_metrics_gets_429_and_starves_nobody(
    metered: Server, serve_workdir: Path
) -> None:
    url = metered.base_url
    with ThreadPoolExecutor(8) as pool:
        hammer = [
            pool.submit(httpx.get, url + "/metrics", headers=_auth("mallory"), timeout=30)
            for _ in range(40)
        ]
        completions = [
            pool.submit(
                httpx.post, url + "/v1/chat/completions", json=QUESTION, headers=_auth("bob")
            )
            for _ in range(6)
        ]
        answers = [f.result() for f in completions]
        hammered = [f.result() for f in hammer]
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert all(a.json()["choices"][0]["message"]["content"] for a in answers)
    limited = [r for r in hammered if r.status_code == 429]
    # a burst of 4, then one a second: most of the 40 are refused (however slow the box)
    assert len(limited) >= 20, [r.status_code for r in hammered]
    assert {r.status_code for r in hammered} <= {200, 429}
    for response in limited:
        assert int(response.headers["retry-after"]) >= 1
        assert "/metrics calls" in response.json()["error"]["message"]
    # The metrics budget is not the completion budget, and one key's is not another's.
    mine = httpx.post(url + "/v1/chat/completions", json=QUESTION, headers=_auth("mallory"))
    assert mine.status_code == 200
    body = read_metrics(metered, KEYS["monitor"])
    assert body["overhead_ms"]["count"] >= 7 and len(json.dumps(body)) < 12_000
    assert body["by_status"]["429"] >= len(limited)
    assert body["audit_failures"] == 0
    # the refusals are evidence like any other (written just after each answer)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = list(read_audit(serve_workdir / "metered-audit.jsonl"))
        refused = [r for r in records if r["key_id"] == "mallory" and r["status"] == 429]
        if len(refused) >= len(limited):
            break
        time.sleep(0.1)
    assert len(refused) == len(limited)


def test_a_monitor_that_honours_retry_after_keeps_reading(metered: Server) -> None:
    statuses = []
    for _ in range(6):  # past the burst: the monitor waits instead of failing
        statuses.append(read_metrics(metered, KEYS["monitor"])["in_flight"])
    assert statuses == [0] * 6


def test_a_flood_of_refusals_does_not_hold_up_another_keys_answers(metered: Server) -> None:
    """Every refusal is audited (and flushed); the flood must not queue ahead of carol."""
    url = metered.base_url
    stop = threading.Event()
    refused = []

    def flood(headers: dict[str, str]) -> None:
        with httpx.Client(headers=headers, timeout=60) as client:
            while not stop.is_set():
                refused.append(client.get(url + "/metrics").status_code)

    floods = [
        threading.Thread(target=flood, args=(headers,))
        for headers in [_auth("mallory"), {"authorization": "Bearer wrong"}] * 3
    ]
    for thread in floods:
        thread.start()
    try:
        while len(refused) < 200:  # the flood is on
            time.sleep(0.01)
        with httpx.Client(headers=_auth("carol"), timeout=60) as client:
            answers = [client.post(url + "/v1/chat/completions", json=QUESTION) for _ in range(8)]
    finally:
        stop.set()
        for thread in floods:
            thread.join()
    assert [a.status_code for a in answers] == [200] * 8
    assert {401, 429} <= set(refused)
