"""``benchmarks/gpu_step.py``'s own logic, on CPU: arm names, the MFU conventions against
the figures the README reports, the decode floor, and a table that survives arms that
stopped part-way (a budget stop keeps what was measured). The arms themselves need a GPU
(``--shape tiny`` runs them on CPU by hand; too slow for the suite)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_step.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_step_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("arm", "expected"),
    [
        ("sft-dense", (False, False, "true", 1, 1)),
        ("sft-dense-liger", (False, True, "true", 1, 1)),
        ("sft-packed-liger-noac", (True, True, "false", 1, 1)),
        ("sft-dense-liger-auto", (False, True, "auto", 1, 1)),
        ("sft-dense-liger-ac-mb2", (False, True, "true", 2, 1)),
        ("sft-packed-auto-mb2-ga4", (True, False, "auto", 2, 4)),
        ("sft-dense-noliger", None),
        ("sft-dense-auto-liger", None),  # order matters: liger before checkpointing
        ("sft-sparse", None),
        ("decode", None),
    ],
)
def test_arm_names(bench: ModuleType, arm: str, expected: tuple[Any, ...] | None) -> None:
    options = bench.sft_options(arm)
    if expected is None:
        assert options is None
        return
    keys = ("packed", "liger", "checkpointing", "rows", "accumulation")
    assert tuple(options[k] for k in keys) == expected


@pytest.mark.parametrize(
    ("arm", "known"),
    [("decode", True), ("grpo", True), ("grpo-cb", True), ("sft-dense-ga0", False)]
    + [("sft-dense-mb0", False), ("grpo-liger", False), ("sft-packed-liger-auto", True)],
)
def test_known_arms(bench: ModuleType, arm: str, known: bool) -> None:
    assert bench.known_arm(arm) is known


def test_every_default_arm_is_known(bench: ModuleType) -> None:
    assert all(bench.known_arm(a) for a in bench.DEFAULT_ORDER)
    assert len(set(bench.DEFAULT_ORDER)) == len(bench.DEFAULT_ORDER)


def test_mfu_conventions_reproduce_the_reported_figures(bench: ModuleType) -> None:
    shape = bench.SHAPES["llama-3.1-8b"]
    causal = bench.flops_per_token(shape, 8192)
    palm = bench.flops_per_token(shape, 8192, causal_half=False)
    # The H200 run: 8,272 tokens/s was printed as 426 TFLOP/s, MFU 53.9 % of 790.
    assert 8272 * causal / 1e12 == pytest.approx(426, abs=1)
    assert 8272 * causal / 790e12 == pytest.approx(0.539, abs=0.001)
    # PaLM's convention counts the whole attention square: 6 x layers x hidden x seq more.
    assert palm - causal == pytest.approx(6 * 32 * 4096 * 8192)
    assert 8272 * palm / 790e12 == pytest.approx(0.607, abs=0.001)
    # 6N: the matmul parameters are Llama-3.1-8B's minus its embedding table and norms.
    assert bench.flops_per_token(shape, 0) / 6 == pytest.approx(8.03e9 - 128256 * 4096, rel=1e-3)


def test_decode_floor_is_the_reported_one(bench: ModuleType) -> None:
    shape = bench.SHAPES["llama-3.1-8b"]
    # 15.0 GB of weights (embedding table aside) read once per step at 4.8 TB/s ...
    assert bench.decode_floor_ms(shape, 1, 0, 4.8) == pytest.approx(3.13, abs=0.01)
    # ... plus each row's K and V: 64 rows x ~216 positions gives the 3.5 ms reported.
    assert bench.decode_floor_ms(shape, 64, 216, 4.8) == pytest.approx(3.5, abs=0.01)


def args() -> argparse.Namespace:
    return argparse.Namespace(decode_tokens=128)


def test_the_table_keeps_partial_arms(bench: ModuleType) -> None:
    step = {"steps": 128, "seconds": 2.0, "ms_per_step": 17.1, "samples_per_s": 32.0}
    results: dict[str, Any] = {
        "sft-dense-liger-auto": "stopped at the budget",
        "sft-dense-auto": {
            "attention": "sdpa",
            "liger": False,
            "checkpointing": True,
            "every_n_layers": 2,
            "tokens_per_step": 8192,
            "tokens_per_s": 9000.0,
            "tflops": 460.0,
            "mfu": 0.58,
            "mfu_datasheet": 0.46,
            "mfu_palm": 0.65,
            "peak_gib": 101.0,
            "profile": {
                "wall_ms": 900.0,
                "busy_ms": 850.0,
                "busy_share": 0.94,
                "top": [{"op": "aten::mm", "ms": 500.0, "calls": 400}],
            },
        },
        "decode": {
            "batch": 64,
            "floor_ms": 3.5,
            "dynamic": step,
            "static_compiled": step,
            "continuous_batching": "failed: RuntimeError: no",
            "compile_counters": {
                "unique_graphs": 3,
                "graph_breaks": 64,
                "break_reasons": ["call to a Triton kernel"],
                "cudagraph_skips": 1,
            },
            "stopped": "stopped after 260 s (budget or the arm's cap)",
        },
        "grpo": "failed (exit 1)",
    }
    text = "\n".join(bench.table(results, args()))
    assert "stopped at the budget" in text and "failed (exit 1)" in text
    assert "1 layer in 2" in text and "PaLM 65.0 %" in text and "aten::mm 500 ms" in text
    assert "**17.1 ms/step**" in text and "failed: RuntimeError" in text
    assert "stopped after 260 s" in text  # the decode arm says it was cut short
    assert "64 graph breaks (call to a Triton kernel), 1 CUDA-graph skips" in text
    assert text.count("not run") >= 4  # the decode parts it never reached
    assert "grpo-cb" not in text  # an arm not asked for is not listed
