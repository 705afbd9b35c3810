"""How far does a device's local contrast processing move the model's scores? Measured on the training collection.

    python -m bench.processing [--model models/served] [--data ../shared/data/chest_xray]

The later films whose normals the model calls pneumonia look processed: strong local contrast, ribs and vessels
standing out (the look of a device's multi-scale enhancement). This applies such processing to the internal-test
films (patients held out of training, from the training collection) and to the site sample, and reports each
view's ROC AUC and the mean logit per class. A model invariant to the processing keeps its normal films where they
were; one that reads it as evidence of pneumonia moves them up. Views: OpenCV CLAHE (8 × 8 tiles) at clip limits
2 and 4, a large-radius unsharp mask (σ 10 px, amount 1) and its opposite, a smoothing (amount −0.5).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

from bench.common import append_results
from pneumo_core.config import default_data_dir, served_model_dir, site_sample_dir
from pneumo_core.data import load_canonical_images
from pneumo_core.predict import Predictor
from pneumo_core.scoring import internal_test_films, labelled_folder_films


def clahe(clip: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda image: cv2.createCLAHE(clip, (8, 8)).apply(image)


def unsharp(sigma: float, amount: float) -> Callable[[np.ndarray], np.ndarray]:
    """image + amount · (image − its Gaussian blur): amount > 0 enhances detail at that scale, < 0 smooths."""

    def view(image: np.ndarray) -> np.ndarray:
        values = image.astype(np.float32)
        return np.clip(values + amount * (values - cv2.GaussianBlur(values, (0, 0), sigma)), 0, 255).astype(np.uint8)

    return view


VIEWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as is": lambda image: image,
    "CLAHE clip 2": clahe(2.0),
    "CLAHE clip 4": clahe(4.0),
    "unsharp σ 10 px, amount 1": unsharp(10.0, 1.0),
    "smoothed σ 10 px, amount −0.5": unsharp(10.0, -0.5),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    model_dir, data = args.model or served_model_dir(), args.data or default_data_dir()
    predictor = Predictor.load(model_dir, operating_point="validation")
    rows = []
    for collection, films in (
        ("internal test", internal_test_films(model_dir, data)),
        ("site sample", labelled_folder_films(site_sample_dir(data))),
    ):
        canonical, labels = load_canonical_images(films["path"].tolist()), films["label"].to_numpy()
        for name, view in VIEWS.items():
            viewed = np.stack([view(image) for image in canonical])
            logits = predictor.logits_canonical(viewed)
            rows.append(
                (
                    f"{collection}, {name}",
                    f"ROC AUC {roc_auc_score(labels, logits):.4f}; mean logit normal {logits[labels == 0].mean():+.2f}, "
                    f"pneumonia {logits[labels == 1].mean():+.2f}",
                    "—",
                    "—",
                )
            )
    print(
        append_results(
            "Local contrast processing and the model's scores",
            "python -m bench.processing" + (f" --model {args.model}" if args.model else ""),
            rows,
            f"Model: {predictor.metadata.get('name')} ({predictor.runtime}). The site sample's rows are optimistic for "
            "the served model (chosen on it).",
        )
    )


if __name__ == "__main__":
    main()
