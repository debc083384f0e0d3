"""Evaluation: one module per benchmark (loader + protocol) and a resumable runner."""

from secreason.evals.base import Benchmark, ItemResult, Reference
from secreason.evals.registry import SUITES, benchmark_names, expand, get_benchmark, suite_names

__all__ = [
    "SUITES",
    "Benchmark",
    "ItemResult",
    "Reference",
    "benchmark_names",
    "expand",
    "get_benchmark",
    "suite_names",
]
