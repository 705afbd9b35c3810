"""``python -m pneumo_core predict FILE``, start to finish, as another tool runs it: whole-process wall time and the
heavy libraries it imports, against a baseline checkout of the project run in the same session.

    python -m bench.startup --baseline DIR [--runs 10]

``DIR`` is a checkout of an earlier commit (``git worktree add /tmp/base COMMIT``), answering with its own served
model; the two commands run alternately, ``--runs`` times each, after one untimed run each (file caches warm).
Goal: the command imports none of TensorFlow, Keras, pandas, scikit-learn, SciPy and MLflow.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import record_results

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "keras", "pandas", "sklearn", "scipy", "mlflow")
FILM = "examples/normal_IM-0162-0001.jpeg"


def command(checkout: Path) -> list[str]:
    return [sys.executable, "-m", "pneumo_core", "predict", str(checkout / FILM)]


def wall_seconds(checkout: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command(checkout), cwd=checkout, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise SystemExit(f"predict failed in {checkout}: {done.stderr[-500:]}")
    return time.perf_counter() - started


def heavy_imports(checkout: Path) -> list[str]:
    """The heavy top-level packages the command imports (``python -X importtime``)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command(checkout)[1:]], cwd=checkout, capture_output=True, text=True, timeout=300
    )
    names = {
        line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines() if line.startswith("import time:")
    }
    return sorted(names & set(HEAVY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout of an earlier commit")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    checkouts = {"baseline": args.baseline.resolve(), "this tree": PROJECT_ROOT}
    for checkout in checkouts.values():
        wall_seconds(checkout)  # warm the file caches
    samples: dict[str, list[float]] = {name: [] for name in checkouts}
    for _ in range(args.runs):
        for name, checkout in checkouts.items():
            samples[name].append(wall_seconds(checkout))
    medians = {name: float(np.median(values)) for name, values in samples.items()}
    rows = []
    for name, checkout in checkouts.items():
        heavy = heavy_imports(checkout)
        rows.append(
            (
                f"predict one film, whole process ({name})",
                f"median {medians[name]:.2f} s ({min(samples[name]):.2f}-{max(samples[name]):.2f}); imports "
                + (", ".join(heavy) if heavy else "none of the heavy libraries"),
                "baseline" if name == "baseline" else f"{medians[name] / medians['baseline']:.2f} ×",
                "—" if name == "baseline" else "no heavy library",
            )
        )
    print(
        record_results(
            "One film from the command line: process start to answer",
            f"python -m bench.startup --baseline {args.baseline} --runs {args.runs}",
            rows,
            f"{args.runs} alternating runs each, after one warm-up; both answer the same film with their own served model "
            "on LiteRT. Heavy libraries: " + ", ".join(HEAVY) + ".",
        )
    )


if __name__ == "__main__":
    main()
