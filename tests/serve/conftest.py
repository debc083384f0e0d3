"""Session fixtures of the serving tests (models trained once, servers killed at the end)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_fixtures import Server, build_chat_model, build_guard_model


@pytest.fixture(scope="session")
def serve_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="session")
def guard_model_dir(serve_workdir: Path) -> Path:
    return build_guard_model(serve_workdir / "guard-model")


@pytest.fixture(scope="session")
def chat_model_dir(serve_workdir: Path) -> Path:
    return build_chat_model(serve_workdir / "chat-model")


@pytest.fixture(scope="session")
def start_server(serve_workdir: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(
        config: dict[str, Any], name: str, wait: bool = True, env: dict[str, str] | None = None
    ) -> Server:
        server = Server(config, serve_workdir, name, env)
        servers.append(server)
        return server.wait_ready() if wait else server

    yield start
    for server in servers:
        server.kill()
