"""Evaluation: one module per benchmark (loader + protocol) and a resumable runner."""

from secreason.evals.base import Benchmark, ItemResult, Reference

__all__ = ["Benchmark", "ItemResult", "Reference"]
