"""Benchmarks: the file format (``format``: ``load_benchmark``), building one by training a
study's every class (``build``), and search strategies replayed on one (``replay``)."""
from .format import Benchmark, BenchmarkError, load_benchmark

__all__ = ["Benchmark", "BenchmarkError", "load_benchmark"]
