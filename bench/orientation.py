"""Films upside down: how the orientation check (``pneumo_core.serving.ood``) splits the site sample as stored and
turned 180°, and what the extra pass costs.

    python -m bench.orientation [--model DIR]

Each site-sample film is classified as stored and turned 180° through the whole serving path; reported: the share
withheld as upside down either way, the smallest ratio of the turned to the stored feature distance (the margin the
rule has on upright films), and one upload's time with and without the check (the check's extra forward pass),
median of 20 runs each in this process. Goal: no upright film withheld, every turned one withheld.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import record_results
from pneumo_core.config import locations, site_sample_dir
from pneumo_core.serving.decode import decode_image
from pneumo_core.serving.ood import UPSIDE_DOWN
from pneumo_core.serving.predictor import Predictor


def _png(gray: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    predictor = Predictor.load(args.model or locations().model_dir)
    files = sorted(path for path in site_sample_dir().glob("*/*") if path.is_file())
    stored = [(path.name, path.read_bytes()) for path in files]
    turned = [(name, _png(np.rot90(decode_image(data), 2).copy())) for name, data in stored]
    upright_cases, turned_cases = predictor.classify(stored), predictor.classify(turned)
    flagged = lambda cases: np.mean([case.withheld == UPSIDE_DOWN for case in cases])  # noqa: E731
    ratios = [t.distance / s.distance for s, t in zip(upright_cases, turned_cases) if s.distance and t.distance]
    one = stored[:1]
    with_check, without_check = [], []
    density = predictor.density
    for _ in range(20):
        started = time.perf_counter()
        predictor.classify(one)
        with_check.append(time.perf_counter() - started)
        predictor.density = None  # the same path without the feature checks
        started = time.perf_counter()
        predictor.classify(one)
        without_check.append(time.perf_counter() - started)
        predictor.density = density
    rows = [
        ("site-sample films as stored, withheld as upside down", f"{flagged(upright_cases):.1%} of {len(stored)}", "", "0%"),
        ("the same films turned 180°, withheld as upside down", f"{flagged(turned_cases):.1%} of {len(stored)}", "", "100%"),
        ("turned / stored feature distance, smallest over the films", f"{min(ratios):.2f}", "", "> 1"),
        (
            "one upload, with the feature checks (both passes) / without",
            f"{np.median(with_check) * 1e3:.0f} / {np.median(without_check) * 1e3:.0f} ms",
            f"{np.median(with_check) / np.median(without_check):.2f} x",
            "",
        ),
    ]
    print(
        record_results(
            "Films upside down",
            "python -m bench.orientation",
            rows,
            f"Model: {predictor.metadata.get('name')} ({predictor.runtime}). The rule was set looking at this sample: "
            "its rates here are not independent.",
        )
    )


if __name__ == "__main__":
    main()
