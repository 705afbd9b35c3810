"""A trained model becomes a candidate: calibrated, thresholded and measured on validation, measured once on the
internal test, and written as a model directory that :func:`pneumo_core.store.model_dir.promote` can serve."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np

from pneumo_core import CLASS_NAMES
from pneumo_core.common.films import patient_id
from pneumo_core.common.logits import sigmoid
from pneumo_core.common.preprocess import preprocessing_spec
from pneumo_core.config import portable_path
from pneumo_core.evaluation.metrics import (
    THRESHOLD_RULE,
    choose_threshold,
    classification_metrics,
    fit_temperature,
    patient_intervals,
)
from pneumo_core.evaluation.reports import predictions_frame, write_evaluation
from pneumo_core.jobs.request import TrainConfig
from pneumo_core.modeling.architectures import architecture_of
from pneumo_core.modeling.graphs import KerasNetwork
from pneumo_core.modeling.saving import save_model_dir
from pneumo_core.serving.ood import COMPONENTS, FeatureDensity, reference_features
from pneumo_core.serving.predictor import Predictor
from pneumo_core.serving.runtimes import with_model_view
from pneumo_core.store.model_dir import EVALUATION_DIR, git_commit
from pneumo_core.training.pipeline import Split
from pneumo_core.training.tracking import TrackedRun


def package_candidate(
    model: keras.Model,
    splits: dict[str, Split],
    cfg: TrainConfig,
    run_dir: Path,
    train_seconds: float,
    recipe: str,
    weights_used: str,
    data_hash: str,
    tracked: TrackedRun,
) -> Path:
    """Calibrate and choose the threshold on validation, measure validation and internal test, and write the
    candidate model directory ``run_dir/model`` (model files, metadata, feature density, evaluation)."""
    network = with_model_view(KerasNetwork(model, cfg.img_size), cfg.intensity)  # the serving graph, fed as in serving
    serving = Predictor(network, {"input_size": cfg.img_size, "threshold": 0.5})
    logits = {}
    for name in ("train", "val", "test"):
        outputs = [serving.forward(batch) for batch in splits[name].canonical_batches()]  # streamed or in memory
        logits[name] = np.concatenate([z for z, _ in outputs])
    temperature = fit_temperature(splits["val"].labels, logits["val"])
    threshold = choose_threshold(splits["val"].labels, sigmoid(logits["val"] / temperature), cfg.target_sensitivity)
    candidate = run_dir / "model"
    metrics, uncalibrated, intervals = {}, {}, {}
    for name in ("val", "test"):
        frame = predictions_frame(splits[name].files, splits[name].labels, logits[name], temperature, threshold)
        metrics[name] = write_evaluation(frame, threshold, candidate / EVALUATION_DIR, name)
        uncalibrated[name] = classification_metrics(splits[name].labels, sigmoid(logits[name]), 0.5)
        patients = [patient_id(Path(file).name) for file in splits[name].files]
        intervals[name] = patient_intervals(splits[name].labels, frame["probability"].to_numpy(), threshold, patients)
    metadata = {
        "name": f"pneumo-{architecture_of(model)}-{cfg.run_name}",
        "architecture": architecture_of(model),
        "class_names": list(CLASS_NAMES),
        "input_size": cfg.img_size,
        "preprocessing": preprocessing_spec(cfg.intensity),
        "threshold": threshold,
        "threshold_rule": THRESHOLD_RULE.format(target=cfg.target_sensitivity),
        "temperature": temperature,
        "recipe": recipe,
        "base_weights": weights_used,
        "data_manifest_sha256": data_hash,
        "split_sizes": {name: int(len(split.labels)) for name, split in splits.items()},
        "metrics": metrics,
        "confidence_intervals": intervals,
        "uncalibrated_at_0.5": uncalibrated,
        "train_seconds": round(train_seconds, 1),
        "mlflow_run_id": tracked.run_id,
        "config": {
            **asdict(cfg),
            **{key: portable_path(getattr(cfg, key)) for key in ("data_dir", "output_dir", "progress_file")},
        },
        "git_commit": git_commit(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": cfg.smoke,
    }
    save_model_dir(model, candidate, metadata)
    reference = {name: reference_features(splits[name].paths, serving.forward) for name in ("train", "val")}
    FeatureDensity.fit(reference["train"], reference["val"], components=COMPONENTS).save(candidate)
    shutil.copy(run_dir / "manifest.csv", candidate / EVALUATION_DIR / "manifest.csv")
    tracked.log_final(metrics, uncalibrated, temperature, threshold, candidate / EVALUATION_DIR)
    return candidate
