"""Benchmarks: ``python -m bench.NAME`` from the project root; each writes its own section of ``bench/RESULTS.md``."""
