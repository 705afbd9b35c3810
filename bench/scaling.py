"""Cost as the data grows: time and peak memory of every folder command, and of training input, at N films.

    python -m bench.scaling [--sizes 624,6240,31200] [--steps 20] [--runtime auto]

Builds labelled folders of N films by hard-linking training films under unique names (no copies), then runs each
as its own process and reads its peak RSS from ``wait4``: ``predict`` and ``evaluate`` over the folder, and a fixed
number of 128-px DenseNet121 training steps fed in memory and streamed from the files. The table gives each
figure's growth against the smallest N. Goals: ``evaluate`` on 10 × the films: memory ≤ 1.5 × (goal
≤ 1.1 ×), time ≤ 12 ×; streaming training steps ≥ 0.9 × the in-memory rate, peak RSS independent of N.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import record_results
from devtools.harness import PROJECT_ROOT
from pneumo_core.common.films import class_root, list_labelled_images
from pneumo_core.config import locations
from pneumo_core.serving.predictor import Predictor
from pneumo_core.serving.runtimes import RUNTIMES

TRAIN_STEPS = """
import sys, time, numpy as np
from pneumo_core.common.films import list_labelled_images
from pneumo_core.serving.loading import load_canonical_images
from pneumo_core.training.pipeline import make_dataset
from pneumo_core.modeling.architectures import build_classifier
import keras
folder, mode, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
listing = list_labelled_images(folder)
paths, labels = listing["path"].tolist(), listing["label"].to_numpy()
source = load_canonical_images(paths) if mode == "in memory" else paths
model = build_classifier(128, None, 0.3, 256)
model.compile(keras.optimizers.AdamW(1e-3), "binary_crossentropy")
data = make_dataset(source, labels, 128, 32, shuffle=True).repeat()
model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # compile and warm up
started = time.perf_counter()
model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
print(steps / (time.perf_counter() - started))
"""


def linked_folder(root: Path, films: list[tuple[Path, str]], count: int) -> Path:
    """``root/NORMAL``, ``root/PNEUMONIA`` holding ``count`` hard links to the films, cycled, with unique names."""
    for label in ("NORMAL", "PNEUMONIA"):
        (root / label).mkdir(parents=True)
    for index in range(count):
        source, label = films[index % len(films)]
        os.link(source, root / label / f"{index:06d}_{source.name}")
    return root


def measured(command: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of a command run as its own process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command[:4])}… exited {process.returncode}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="624,6240,31200")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto", help="predict's and evaluate's, resolved once")
    args = parser.parse_args()
    runtime = Predictor.load(runtime=args.runtime).runtime  # every size on the same one, whatever is served meanwhile
    sizes = [int(size) for size in args.sizes.split(",")]
    listing = list_labelled_images(class_root(locations().data_dir, "train"))
    films = [(Path(path), label) for path, label in zip(listing["path"], listing["label"].map({0: "NORMAL", 1: "PNEUMONIA"}))]
    results: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(dir=PROJECT_ROOT / "bench") as scratch:  # hard links need the same file system
        for size in sizes:
            folder = linked_folder(Path(scratch) / f"n{size}", films, size)
            python = [sys.executable, "-m", "pneumo_core"]
            runs = {
                "predict": python + ["predict", "--runtime", runtime, str(folder)],
                "evaluate": python
                + ["evaluate", str(folder), "--runtime", runtime, "--out", str(Path(scratch) / f"eval{size}"), "--quiet"],
            }
            for name, command in runs.items():
                seconds, peak, _ = measured(command)
                results.setdefault(name, []).append((seconds, peak))
            for mode in ("in memory", "streamed"):
                seconds, peak, out = measured([sys.executable, "-c", TRAIN_STEPS, str(folder), mode, str(args.steps)])
                results.setdefault(f"{args.steps} training steps, {mode}", []).append((float(out.split()[-1]), peak))
    rows = []
    for name, values in results.items():
        training = name.endswith(("in memory", "streamed"))
        base_value, base_peak = values[0]
        for size, (value, peak) in zip(sizes, values):
            shown = f"{value:.2f} steps/s" if training else f"{value:.1f} s"
            rows.append(
                (
                    f"{name}, N = {size:,}",
                    f"{shown}, peak RSS {peak:.0f} MB",
                    f"{'rate' if training else 'time'} {value / base_value:.2f} ×, memory {peak / base_peak:.2f} ×",
                    "memory ≤ 1.1 ×, time linear" if name == "evaluate" else "—",
                )
            )
    memory_rates = [rate for rate, _ in results[f"{args.steps} training steps, in memory"]]
    streamed_rates = [rate for rate, _ in results[f"{args.steps} training steps, streamed"]]
    rows.append(
        (
            "streamed / in-memory training rate (128 px, batch 32)",
            ", ".join(f"{s / m:.2f}" for s, m in zip(streamed_rates, memory_rates)),
            "per N",
            "≥ 0.9",
        )
    )
    print(
        record_results(
            "Scaling with the number of films",
            f"python -m bench.scaling --sizes {args.sizes} --steps {args.steps} --runtime {args.runtime}",
            rows,
            f"predict and evaluate on the {runtime} runtime; each command is its own process (start-up included), peak "
            "RSS from wait4. Training: 128-px DenseNet121 from random init, batch 32, after 3 warm-up steps.",
        )
    )


if __name__ == "__main__":
    main()
