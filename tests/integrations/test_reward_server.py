"""``secreason reward-server`` as OpenRLHF's remote reward client meets it: a real
subprocess on loopback, a real HTTP client, the shared reward table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from reward_server_fixtures import RewardServer
from test_reward_table import PREFILL, PROMPT, TABLE

from secreason.integrations.openrlhf import label_for

KEY = "reward-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    srv = RewardServer(tmp_path_factory.mktemp("reward-server"), KEY, "--max-body-bytes", "20000")
    yield srv.base
    srv.stop()


def post(base: str, body: Any, key: str | None = KEY, path: str = "/get_reward") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if isinstance(body, (bytes, str)):
        return httpx.post(base + path, content=body, headers=headers, timeout=30)
    return httpx.post(base + path, json=body, headers=headers, timeout=30)


def test_the_shared_table_in_one_batch(server: str) -> None:
    prompt = PROMPT + PREFILL
    body = {
        "query": [prompt + completion + "<|end|>" for _, _, _, completion, _ in TABLE],
        "prompts": [prompt] * len(TABLE),
        "labels": [label_for(task, ref) for _, task, ref, _, _ in TABLE],
    }
    reply = post(server, body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["rewards"] == pytest.approx([row[4] for row in TABLE], abs=1e-6)
    assert len(data["scores"]) == len(TABLE)
    assert set(data["extra_logs"]) >= {"task_score", "format_ok", "reasoning_words"}
    assert post(server, body, path="/").json()["rewards"] == data["rewards"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not JSON"),
        ([1, 2], 400, "JSON object"),
        ({"query": "x", "prompts": [], "labels": []}, 400, "'query' must be a list"),
        ({"query": ["a"], "labels": ["B"]}, 400, "'prompts' must be a list"),
        ({"query": ["a", 3], "prompts": ["a", "b"], "labels": []}, 400, "'query[1]'"),
        ({"query": ["a"], "prompts": ["a", "b"], "labels": ["B"]}, 400, "differ in length"),
        ({"query": ["P x"], "prompts": ["Q"], "labels": ['{"task":"mcq","reference":"B"}']},
         400, "queries[0] does not contain"),
        ({"query": ["P x"], "prompts": ["P"], "labels": ["B"]}, 400, "labels[0]"),
        ({"query": ["x" * 30000], "prompts": ["x"], "labels": ["B"]}, 413, "exceeds 20000"),
    ],
)  # fmt: skip
def test_malformed_bodies_get_a_clear_error(
    server: str, body: Any, status: int, needle: str
) -> None:
    reply = post(server, body)
    assert reply.status_code == status, reply.text
    assert needle in reply.json()["error"]["message"]


def test_the_api_key_is_required(server: str) -> None:
    body = {"query": [], "prompts": [], "labels": []}
    assert post(server, body, key=None).status_code == 401
    assert post(server, body, key="wrong").status_code == 401
    ok = post(server, body)
    assert ok.status_code == 200 and ok.json()["rewards"] == []
