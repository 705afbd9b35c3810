"""Benchmarks: ``python -m bench.NAME`` from the project root; each appends its table to ``bench/RESULTS.md``."""
