"""Shared benchmark helpers: timing statistics, machine facts, writing results into bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def timed(function: Callable[[], object], runs: int, warmup: int = 3) -> np.ndarray:
    """Seconds per call over ``runs`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return np.array(samples)


def p50_p95(samples: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 95))


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if status.parent.name == str(pid) or fields.get("PPid", "").strip() == str(pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


def machine() -> str:
    import keras
    import tensorflow as tf

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), Python {platform.python_version()}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}"
    )


RESULTS_HEADER = (
    "# Benchmark results\n\nThe latest result of each `bench/` script, one section each (git keeps the history); ratios "
    "compare against a\nbaseline run in the same process.\n"
)


def record_results(title: str, command: str, rows: list[tuple[str, str, str, str]], notes: str = "") -> str:
    """Write a table (measure, value, ratio, goal) into RESULTS.md as the section ``title`` (replacing that section's
    previous result: git keeps the history) and return it as text."""
    lines = [
        f"## {title} — {datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
        "",
        f"Machine: {machine()}  ",
        f"Command: `{command}`",
        "",
        "| measure | value | ratio | goal |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    if notes:
        lines += ["", notes]
    section = "\n".join(lines) + "\n"
    text = RESULTS.read_text() if RESULTS.exists() else RESULTS_HEADER
    previous = re.compile(rf"(?ms)^## {re.escape(title)} — .*?(?=^## |\Z)")
    if previous.search(text):
        text = previous.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")
    return section
