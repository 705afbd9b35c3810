"""An ensemble served as one network: what does it cost per answer against the single model it contains?

    python -m bench.ensemble --ensemble DIR [--single models/served] [--runs 60]

Both model directories are loaded on the serving runtime (TFLite through LiteRT, as the app and the API serve) in
the same process, and each is timed on the same canonical film: the answer (``forward``, batch 1) and the answer with
its heat-map inputs (``forward_with_blocks``, what the app's Classify page runs). The goal: the ensemble at
most 2 × the single model's latency.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import p50_p95, record_results, timed
from pneumo_core.common.preprocess import CANONICAL_SIZE
from pneumo_core.config import locations
from pneumo_core.serving.predictor import Predictor

GOAL = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ensemble", type=Path, required=True)
    parser.add_argument("--single", type=Path, default=locations().model_dir)
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    film = np.random.default_rng(0).integers(0, 256, (1, CANONICAL_SIZE, CANONICAL_SIZE), dtype=np.uint8)
    models = {
        name: Predictor.load(directory, runtime="tflite")
        for name, directory in (("single", args.single), ("ensemble", args.ensemble))
    }
    rows, timings = [], {}
    for step in ("forward", "forward_with_blocks"):
        for name, predictor in models.items():
            call = getattr(predictor.network, step)
            timings[name, step] = p50_p95(timed(lambda call=call: call(film), args.runs))
        ratio = timings["ensemble", step][0] / timings["single", step][0]
        for name in models:
            p50, p95 = timings[name, step]
            rows.append(
                (
                    f"{step}, batch 1: {models[name].metadata['name']}",
                    f"p50 {1000 * p50:.1f} ms, p95 {1000 * p95:.1f} ms",
                    f"{ratio:.2f} ×" if name == "ensemble" else "1 × (baseline)",
                    f"≤ {GOAL:.0f} ×" if name == "ensemble" else "",
                )
            )
    sizes = {
        name: (directory / "model.tflite").stat().st_size / 1e6
        for name, directory in (("single", args.single), ("ensemble", args.ensemble))
    }
    print(
        record_results(
            "Ensemble serving cost",
            f"python -m bench.ensemble --ensemble {args.ensemble} --single {args.single}",
            rows,
            f"TFLite files: single {sizes['single']:.1f} MB, ensemble {sizes['ensemble']:.1f} MB. {args.runs} timed calls each "
            "after 3 untimed, on one random canonical film.",
        )
    )


if __name__ == "__main__":
    main()
