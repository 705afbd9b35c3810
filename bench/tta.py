"""Test-time augmentation on the site sample: does a mean over transformed views separate the later films better?

    python -m bench.tta [--model models/served] [--site ../shared/data/chest_xray/site_sample] [--runtime auto]

Scores every site-sample film through the serving path (:meth:`Predictor.logits_canonical`) as it is and under
small changes of framing and exposure (zoom in or out about the centre, vertical shifts, gamma), then the mean
logit over a few sets of views. Ranking is what a view can change (the threshold is refitted per site anyway), so
the measure is ROC AUC. The rule: serve TTA only if it gains ≥ 0.005 AUC over the film alone, the same
margin an ensemble must show, within the ensemble's budget of 2 × the compute. Selection on the site sample makes
any gain optimistic.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

from bench.common import record_results
from pneumo_core.config import locations, site_sample_dir
from pneumo_core.evaluation.scoring import labelled_folder_films
from pneumo_core.serving.loading import load_canonical_images
from pneumo_core.serving.predictor import Predictor

GAIN_GOAL, COMPUTE_BUDGET = 0.005, 2


def zoom(image: np.ndarray, factor: float) -> np.ndarray:
    """Zoom about the centre: ``factor`` > 1 crops and enlarges, < 1 shrinks and pads with the edge pixels."""
    size = image.shape[0]
    if factor > 1:
        crop = int(round(size / factor))
        start = (size - crop) // 2
        return cv2.resize(image[start : start + crop, start : start + crop], (size, size), interpolation=cv2.INTER_AREA)
    small = cv2.resize(image, (int(size * factor),) * 2, interpolation=cv2.INTER_AREA)
    before = (size - small.shape[0]) // 2
    after = size - small.shape[0] - before
    return cv2.copyMakeBorder(small, before, after, before, after, cv2.BORDER_REPLICATE)


def shift(image: np.ndarray, rows: int) -> np.ndarray:
    matrix = np.float32([[1, 0, 0], [0, 1, rows]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], borderMode=cv2.BORDER_REPLICATE)


def gamma(image: np.ndarray, exponent: float) -> np.ndarray:
    return (255.0 * (image / 255.0) ** exponent).round().astype(np.uint8)


VIEWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "film": lambda image: image,
    "zoom in 10%": lambda image: zoom(image, 1.1),
    "zoom out 10%": lambda image: zoom(image, 1 / 1.1),
    "zoom in 20%": lambda image: zoom(image, 1.2),
    "zoom out 20%": lambda image: zoom(image, 1 / 1.2),
    "shift up 8 px": lambda image: shift(image, -8),
    "shift down 8 px": lambda image: shift(image, 8),
    "gamma 0.8": lambda image: gamma(image, 0.8),
    "gamma 1.25": lambda image: gamma(image, 1.25),
}
MEANS = (
    ("film", "zoom out 10%"),
    ("film", "zoom in 10%", "zoom out 10%"),
    ("film", "shift up 8 px", "shift down 8 px"),
    ("film", "gamma 0.8", "gamma 1.25"),
    tuple(VIEWS),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--site", type=Path, default=None)
    parser.add_argument("--runtime", default="auto")
    args = parser.parse_args()
    predictor = Predictor.load(args.model or locations().model_dir, runtime=args.runtime)
    films = labelled_folder_films(args.site or site_sample_dir())
    canonical, labels = load_canonical_images(films["path"].tolist()), films["label"].to_numpy()
    logits = {name: predictor.logits_canonical(np.stack([view(image) for image in canonical])) for name, view in VIEWS.items()}
    alone = roc_auc_score(labels, logits["film"])
    alone_aucs = ", ".join(f"{name} {roc_auc_score(labels, values):.4f}" for name, values in logits.items())
    rows = [("each view alone", f"ROC AUC: {alone_aucs}", "1 × the compute", "—")]
    for views in MEANS:
        auc = roc_auc_score(labels, np.mean([logits[view] for view in views], axis=0))
        rows.append(
            (
                "mean logit: " + ", ".join(views),
                f"ROC AUC {auc:.4f} ({auc - alone:+.4f})",
                f"{len(views)} × the compute",
                f"≥ +{GAIN_GOAL} for ≤ {COMPUTE_BUDGET} ×",
            )
        )
    print(
        record_results(
            "Test-time augmentation on the site sample",
            "python -m bench.tta",
            rows,
            f"Model: {predictor.metadata['name']}, runtime {predictor.runtime}; {len(labels)} site-sample films.",
        )
    )


if __name__ == "__main__":
    main()
