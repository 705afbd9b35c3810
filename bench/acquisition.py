"""Measure one acquisition style's share of the site sample's false alarms, and how it is labelled in training.

    python -m bench.acquisition [--model models/served] [--data ../shared/data/chest_xray]

Some films carry a bold "R" marker in the top-left corner with a "KV59"-like caption (one device's annotation),
recognised by :mod:`pneumo_core.training.acquisition` (from a training film's marker; nothing of the site sample defines it).
The script counts the style per class in the training split and in the site sample, and asks where the served
configuration's false alarms on the site sample (normal films called pneumonia, at its operating point) come from.
Last, it removes the training split's prior for the style after the fact: each styled film's logit less the style's
log-odds of pneumonia against all training films' (:func:`pneumo_core.training.acquisition.group_log_odds`; post-hoc logit
adjustment, Menon et al. 2021), which is what ``train.py --acquisition-offset`` builds into training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from bench.common import record_results
from pneumo_core.common.films import class_root, list_labelled_images
from pneumo_core.config import locations, site_sample_dir
from pneumo_core.evaluation.scoring import labelled_folder_films
from pneumo_core.serving.loading import load_canonical_images
from pneumo_core.serving.predictor import Predictor
from pneumo_core.training.acquisition import CORNER, MARKER_FILM, MATCH, carries_marker, group_log_odds, marker_template


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    data = args.data or locations().data_dir
    train_root = class_root(data, "train")
    template = marker_template(train_root)

    training = list_labelled_images(train_root)
    train_style = carries_marker(load_canonical_images(training["path"].tolist()), template)
    train_labels = training["label"].to_numpy()

    predictor = Predictor.load(args.model or locations().model_dir)
    films = labelled_folder_films(site_sample_dir(data))
    canonical, labels = load_canonical_images(films["path"].tolist()), films["label"].to_numpy()
    site_style = carries_marker(canonical, template)
    masked = canonical.copy()
    masked[(slice(None), *CORNER)] = 0  # the marker's corner blacked out on every film
    predictions, masked_predictions = (predictor.predict_canonical(images) for images in (canonical, masked))
    probability, masked_probability = (np.asarray([p.probability for p in found]) for found in (predictions, masked_predictions))
    offsets = group_log_odds(train_labels, train_style)
    style_offset = offsets[train_style][0] - offsets[~train_style][0]  # a shift of the others would change no ranking
    adjusted_logits = np.asarray([p.logit for p in predictions]) - style_offset * site_style
    false_alarms, masked_false_alarms = ((p >= predictor.threshold) & (labels == 0) for p in (probability, masked_probability))

    def counts(style: np.ndarray, classes: np.ndarray) -> str:
        return ", ".join(
            f"{name} {int((style & (classes == k)).sum())} of {int((classes == k).sum())}"
            for k, name in ((0, "normal"), (1, "pneumonia"))
        )

    plain = ~site_style
    rows = [
        ("training films with the style", counts(train_style, train_labels), "—", "—"),
        ("site-sample films with the style", counts(site_style, labels), "—", "—"),
        (
            f"false alarms at the served operating point ({predictor.operating_point}, {predictor.threshold:.3f})",
            f"{int(false_alarms.sum())}, of which {int((false_alarms & site_style).sum())} carry the style",
            "—",
            "—",
        ),
        (
            "false-alarm rate among normal films",
            f"with the style {(false_alarms & site_style).sum()}/{(site_style & (labels == 0)).sum()}, "
            f"without {(false_alarms & plain).sum()}/{(plain & (labels == 0)).sum()}",
            "—",
            "—",
        ),
        (
            "with the marker's corner blacked out",
            f"false alarms with the style {(masked_false_alarms & site_style).sum()}/{(site_style & (labels == 0)).sum()}, "
            f"without {(masked_false_alarms & plain).sum()}/{(plain & (labels == 0)).sum()}; "
            f"ROC AUC {roc_auc_score(labels, masked_probability):.4f}",
            "—",
            "—",
        ),
        (
            "site-sample ROC AUC",
            f"all films {roc_auc_score(labels, probability):.4f}; "
            f"without the style {roc_auc_score(labels[plain], probability[plain]):.4f}",
            "—",
            "—",
        ),
        (
            "site-sample ROC AUC, the style's training prior removed",
            f"{roc_auc_score(labels, adjusted_logits):.4f} (styled films' logits less {style_offset:.2f}, the style's "
            "training log-odds against the other films')",
            "—",
            "—",
        ),
    ]
    print(
        record_results(
            "One acquisition style and the site sample's false alarms",
            "python -m bench.acquisition",
            rows,
            f"Model: {predictor.metadata.get('name')}. Style: the top-left marker of training film {MARKER_FILM} "
            f"(normalised correlation ≥ {MATCH}). The site numbers are optimistic: the operating point was fitted on "
            "those films.",
        )
    )


if __name__ == "__main__":
    main()
