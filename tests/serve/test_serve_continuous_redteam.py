"""The local red-team table, replayed against ``model.engine: continuous``.

The rows of ``test_serve_redteam_local`` that depend on the engine (stop strings never
leaking a partial match and cut the same way streamed or not, usage of a stopped stream,
hostile neighbours leaving greedy answers unchanged, lone surrogates refused without
hurting their batch, odd stop strings, a length cut inside the reasoning) run here
unchanged, against servers that serve the real tiny model through transformers'
continuous batching: only the ``servers`` fixture differs. Left out: the deadline row
(its stand-in is the fixed-text backend, which has no continuous mode; the engine tests
in ``test_serve_continuous`` cancel rows on a deadline instead) and the rows about the
guard and the template, which do not depend on the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import test_serve_redteam_local as local
from serve_fixtures import TEST_SYSTEM_PROMPT, Server
from test_serve_redteam_local import (  # noqa: F401  (the rows run here as they are)
    KEY,
    test_hostile_neighbours_do_not_change_a_batch,
    test_length_cut_in_reasoning_is_answered,
    test_lone_surrogate_anywhere_is_a_400_and_spares_the_batch,
    test_odd_stop_strings_are_answered,
    test_streamed_stop_still_counts_usage,
)

pytestmark = pytest.mark.slow

_STOPS = next(
    mark.args[1]
    for mark in local.test_streamed_stop_never_leaks_a_partial_match.pytestmark
    if mark.args[0] == "stop"
)


@pytest.mark.parametrize("stop", _STOPS)
def test_streamed_stop_never_leaks_a_partial_match(servers: dict[str, Server], stop: str) -> None:
    """The local table's row, once per stop string (its guarded twin is the same server)."""
    local.test_streamed_stop_never_leaks_a_partial_match(servers, stop, "bare")


@pytest.fixture(scope="module")
def servers(
    start_server: Callable[..., Server],
    chat_model_dir: Path,
) -> dict[str, Server]:
    # One server without a guard stands for both of the table's ("bare", "extend"): a
    # stream's deltas then reach the client as the engine makes them, where a stop
    # string's hold-back matters most (the guard's hold-then-release is the app's).
    config = {
        "model": {"path": str(chat_model_dir), "served_name": "tiny", "engine": "continuous"},
        "limits": {"api_keys": [KEY], "max_tokens": 64, "default_max_tokens": 24},
        "system_prompt": {"text": TEST_SYSTEM_PROMPT, "version": "cb-red", "mode": "extend"},
    }
    server = start_server(config, "cb-red")
    return {"bare": server, "extend": server}
