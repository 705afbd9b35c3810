"""How far does a device's local contrast processing move the model's scores? Measured on the training collection.

    python -m bench.processing [--model models/served] [--data ../shared/data/chest_xray]

The later films whose normals the model calls pneumonia look processed: strong local contrast, ribs and vessels
standing out (the look of a device's multi-scale enhancement). This applies such processing to the internal-test
films (patients held out of training, from the training collection) and to the site sample, and reports each
view's ROC AUC and the mean logit per class. A model invariant to the processing keeps its normal films where they
were; one that reads it as evidence of pneumonia moves them up. Views: OpenCV CLAHE (8 × 8 tiles) at clip limits
2 and 4, a large-radius unsharp mask (σ 10 px, amount 1) and its opposite, a smoothing (amount −0.5), and two
spectral views (:func:`pneumo_core.training.pipeline.matched_to_bands`): each film filtered to the mean Fourier amplitude per
radial band of the device-marked films of the model's training part (:mod:`pneumo_core.training.acquisition`), and, as the
control, to that of its unmarked training films. Sharpening, smoothing and noise level are in that spectrum; anatomy
and disease are mostly in the phase, which the filter keeps. Last, framing: each film zoomed about its centre (in by
20% and 40%, as a tighter collimation frames the chest; out by 1/1.2), which no disease changes either.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from bench.common import record_results
from bench.tta import zoom
from pneumo_core.common.films import class_root
from pneumo_core.config import locations, site_sample_dir
from pneumo_core.evaluation.scoring import internal_test_films, labelled_folder_films, manifest_films
from pneumo_core.serving.loading import load_canonical_images
from pneumo_core.serving.predictor import Predictor
from pneumo_core.training.acquisition import carries_marker, marker_template
from pneumo_core.training.pipeline import band_amplitudes, matched_to_bands

UNMARKED_SAMPLE = 400
"""Unmarked training films averaged for the control spectrum (a random sample; the marked ones are all used)."""


def clahe(clip: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda image: cv2.createCLAHE(clip, (8, 8)).apply(image)


def unsharp(sigma: float, amount: float) -> Callable[[np.ndarray], np.ndarray]:
    """image + amount · (image − its Gaussian blur): amount > 0 enhances detail at that scale, < 0 smooths."""

    def view(image: np.ndarray) -> np.ndarray:
        values = image.astype(np.float32)
        return np.clip(values + amount * (values - cv2.GaussianBlur(values, (0, 0), sigma)), 0, 255).astype(np.uint8)

    return view


def spectrum(target: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The film filtered to the band amplitudes ``target`` (its mean kept)."""

    def view(image: np.ndarray) -> np.ndarray:
        batch = tf.constant(image[np.newaxis, ..., np.newaxis], tf.float32)
        filtered = matched_to_bands(batch, tf.constant(target[np.newaxis]), tf.constant([1.0])).numpy()[0, ..., 0]
        return np.clip(np.round(filtered), 0, 255).astype(np.uint8)

    return view


def training_spectra(model_dir: Path, data: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """The geometric-mean band amplitudes of the model's marked training films and of a sample of its unmarked ones,
    and how many films are marked."""
    films = manifest_films(model_dir, data, "train")
    canonical = load_canonical_images(films["path"].tolist())
    marked = carries_marker(canonical, marker_template(class_root(data, "train")))
    unmarked = np.random.default_rng(0).choice(np.flatnonzero(~marked), UNMARKED_SAMPLE, replace=False)

    def mean_bands(images: np.ndarray) -> np.ndarray:
        amplitudes = band_amplitudes(tf.constant(images[..., np.newaxis], tf.float32)).numpy()
        return np.exp(np.log(np.maximum(amplitudes, 1e-6)).mean(axis=0))

    return mean_bands(canonical[marked]), mean_bands(canonical[unmarked]), int(marked.sum())


VIEWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as is": lambda image: image,
    "CLAHE clip 2": clahe(2.0),
    "CLAHE clip 4": clahe(4.0),
    "unsharp σ 10 px, amount 1": unsharp(10.0, 1.0),
    "smoothed σ 10 px, amount −0.5": unsharp(10.0, -0.5),
    "zoomed in 20%": lambda image: zoom(image, 1.2),
    "zoomed in 40%": lambda image: zoom(image, 1.4),
    "zoomed out to 1/1.2": lambda image: zoom(image, 1 / 1.2),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    model_dir, data = args.model or locations().model_dir, args.data or locations().data_dir
    predictor = Predictor.load(model_dir, operating_point="validation")
    device, control, marked = training_spectra(model_dir, data)
    views = VIEWS | {"the marked training films' spectrum": spectrum(device), "the unmarked ones' spectrum": spectrum(control)}
    rows = []
    for collection, films in (
        ("internal test", internal_test_films(model_dir, data)),
        ("site sample", labelled_folder_films(site_sample_dir(data))),
    ):
        canonical, labels = load_canonical_images(films["path"].tolist()), films["label"].to_numpy()
        for name, view in views.items():
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
        record_results(
            "Processing, spectrum and framing, and the model's scores",
            "python -m bench.processing" + (f" --model {args.model}" if args.model else ""),
            rows,
            f"Model: {predictor.metadata.get('name')} ({predictor.runtime}). Spectra: {marked} marked training films, "
            f"{UNMARKED_SAMPLE} unmarked. The site sample's rows are optimistic for the served model (chosen on it).",
        )
    )


if __name__ == "__main__":
    main()
