"""A training run: its data, phases, checkpoints and bookkeeping; the recipes themselves live in
:mod:`pneumo_core.training.recipes`.

``run_training(TrainConfig(...))`` does one whole reproducible run: split by
patient, load images once (or stream them when they exceed the memory budget), train in phases with per-epoch checkpoints
(``BackupAndRestore``) and ``--resume``, choose temperature and threshold on
validation, measure validation and internal test, write a candidate model
directory and log everything to MLflow. It never touches the served model;
:func:`pneumo_core.store.model_dir.promote` does that.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from pneumo_core.common.films import class_root, list_labelled_images
from pneumo_core.common.preprocess import intensity_mode
from pneumo_core.config import training_settings
from pneumo_core.jobs.progress import ProgressWriter
from pneumo_core.jobs.request import SMOKE_IMAGES_PER_CLASS, TrainConfig
from pneumo_core.modeling.architectures import (
    resolve_base_weights,
    with_logit_offset,
)
from pneumo_core.modeling.ensemble import build_ensemble
from pneumo_core.serving.loading import decoded_bytes, load_canonical_images
from pneumo_core.store.model_dir import load_model_dir, record_in_metadata
from pneumo_core.training.acquisition import acquisition_groups, balanced_weights, group_log_odds, marker_template
from pneumo_core.training.callbacks import ProgressCallback
from pneumo_core.training.cluster import cluster_role
from pneumo_core.training.distribution import distribution_strategy, fit_across_workers
from pneumo_core.training.packaging import package_candidate
from pneumo_core.training.pipeline import Split, make_dataset
from pneumo_core.training.recipes import train_scratch, train_transfer
from pneumo_core.training.split import manifest_hash, split_by_patient, write_manifest
from pneumo_core.training.tracking import MlflowEpochLogger, TrackedRun

log = logging.getLogger(__name__)


def memory_budget_bytes() -> int:
    """How much decoded training data may stay in memory: ``$PNEUMO_TRAIN_MEMORY_MB``, or a quarter of the memory
    available now (``/proc/meminfo``; 2 GiB where it cannot be read). A larger data set is streamed from its files."""
    configured = training_settings().train_memory_mb
    if configured is not None:
        return int(configured * 2**20)
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return int(fields["MemAvailable"].split()[0]) * 1024 // 4
    except (OSError, KeyError, ValueError):
        return 2 * 2**30


def resumed_config(config: TrainConfig) -> TrainConfig:
    """A resumed run keeps the settings it started with (its ``config.json``), with the caller's progress file."""
    saved = Path(config.output_dir) / config.run_name / "config.json"
    if not saved.exists():
        return config
    return TrainConfig(**{**json.loads(saved.read_text()), "progress_file": config.progress_file})


class Trainer:
    """One run's state: data, model phases, checkpoints and bookkeeping."""

    def __init__(self, config: TrainConfig, resume: bool = False):
        if resume:
            config = resumed_config(config)
        config = config.effective()  # a quick check shrinks whatever the caller left at its default
        self.config = config
        self.role = cluster_role()
        self.run_dir = Path(config.output_dir) / config.run_name
        if not self.role.is_chief:  # a worker keeps its own checkpoints and progress beside the chief's run
            self.run_dir = self.run_dir / f"worker-{self.role.index}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.run_dir / "state.json"
        self.state = json.loads(self.state_path.read_text()) if resume and self.state_path.exists() else {"completed": []}
        self.progress = ProgressWriter(Path(config.progress_file) if config.progress_file else self.run_dir / "progress.jsonl")
        self.strategy = distribution_strategy(self.role)
        self.global_epoch = 0

    # ----- bookkeeping -------------------------------------------------------------
    def _save_state(self) -> None:
        self.state_path.write_text(json.dumps(self.state, indent=2))

    def callbacks(self, phase: str, epochs: int, steps: int, tracked: TrackedRun | None, monitor_patience: int) -> list:
        return [
            keras.callbacks.BackupAndRestore(str(self.run_dir / f"backup_{phase}")),
            keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=monitor_patience, restore_best_weights=True),
            ProgressCallback(self.progress, phase, epochs, steps),
            *([MlflowEpochLogger(tracked, phase, self)] if tracked else []),
        ]

    # ----- data ----------------------------------------------------------------------
    def load_data(self) -> tuple[dict[str, Split], str, Path]:
        cfg = self.config
        root = class_root(Path(cfg.data_dir), "train")
        manifest = split_by_patient(list_labelled_images(root), cfg.val_fraction, cfg.test_fraction, cfg.seed)
        if cfg.smoke:
            manifest = pd.concat(
                manifest[manifest["split"] == split].groupby("label").head(count)
                for split, count in SMOKE_IMAGES_PER_CLASS.items()
            )
        manifest_path = self.run_dir / "manifest.csv"
        write_manifest(manifest, manifest_path)
        streamed = decoded_bytes(len(manifest)) > memory_budget_bytes()
        self.progress.emit("phase", phase="loading", films=int(len(manifest)), streamed=streamed)
        started = time.time()
        loaded = lambda done, films: self.progress.emit("loading", done=done, films=films)  # noqa: E731
        images = None if streamed else load_canonical_images(manifest["path"].tolist(), progress=loaded)
        log.info(
            "%d films %s in %.1f s",
            len(manifest),
            "streamed from their files (over the memory budget)" if streamed else "decoded into memory",
            time.time() - started,
        )
        splits = {}
        for name in ("train", "val", "test"):
            mask = (manifest["split"] == name).to_numpy()
            rows = manifest.loc[mask]
            splits[name] = Split(
                rows["file"].tolist(),
                rows["label"].to_numpy(),
                None if streamed else images[mask],
                rows["path"].tolist(),  # kept in memory or not, the not-an-X-ray reference re-reads the files
            )
        if cfg.balance_acquisition or cfg.acquisition_offset:
            train = splits["train"]
            train.groups = acquisition_groups(train.canonical_batches(), marker_template(root))
            log.info(
                "acquisition groups: %d of %d training films carry the marker (%d normal)",
                train.groups.sum(),
                len(train),
                (train.groups & (train.labels == 0)).sum(),
            )
        return splits, manifest_hash(manifest), manifest_path

    def train_weights(self, train: Split) -> np.ndarray:
        """Classes weighted alike over the training films, or within each acquisition group (--balance-acquisition)."""
        return balanced_weights(train.labels, train.groups if self.config.balance_acquisition else None)

    def offsets(self, split: Split, training: bool) -> np.ndarray | None:
        """With --acquisition-offset, what the fitted view adds to the logit: each training film's group's log-odds;
        0 on validation, where the classifier is judged alone, as it serves. Otherwise ``None``."""
        if not self.config.acquisition_offset:
            return None
        return group_log_odds(split.labels, split.groups) if training else np.zeros(len(split))

    def fitted_view(self, model: keras.Model) -> keras.Model:
        """What ``fit`` trains: the classifier, or with --acquisition-offset its offset view (the same layers)."""
        return with_logit_offset(model) if self.config.acquisition_offset else model

    # ----- phases --------------------------------------------------------------------
    def phase(self, name: str, build, train) -> keras.Model:
        """Build the phase's model; skip training if a resumed run finished it already."""
        self.progress.emit("building", phase=name)
        with self.strategy.scope():
            model = build()
        weights_path = self.run_dir / f"{name}.weights.h5"
        if name in self.state["completed"]:
            model.load_weights(weights_path)
            log.info("phase %s already done: weights loaded", name)
            return model
        self.progress.emit("phase", phase=name, stage="compiling the training graph, then the first step")
        started = time.time()
        with self.strategy.scope():  # the optimizer too is the strategy's
            train(model)
        model.save_weights(weights_path)
        self.state["completed"].append(name)
        self.state["train_seconds"] = self.state.get("train_seconds", 0.0) + time.time() - started
        self._save_state()
        return model

    def fit(self, model, splits, size, batch, epochs, tracked, phase, patience, extra=()) -> None:
        """``model.fit`` on the training split (augmented, weighted, offset as the run asks) against validation."""
        cfg = self.config
        train = make_dataset(
            splits["train"].source,
            splits["train"].labels,
            size,
            batch,
            cfg.applied_augmentation(),
            shuffle=True,
            seed=cfg.seed,
            intensity=cfg.intensity,
            weights=self.train_weights(splits["train"]),
            offsets=self.offsets(splits["train"], True),
        )
        val = make_dataset(
            splits["val"].source,
            splits["val"].labels,
            size,
            32,
            intensity=cfg.intensity,
            offsets=self.offsets(splits["val"], False),
        )
        steps = math.ceil(len(splits["train"]) / batch)
        if self.role.distributed:
            fit_across_workers(model)
        model.fit(
            train,
            validation_data=val,
            epochs=epochs,
            callbacks=self.callbacks(phase, epochs, steps, tracked, patience) + list(extra),
            verbose=0,
        )

    def ensemble_members(self, data_hash: str) -> list[tuple[keras.Model, dict]]:
        """The ``--ensemble-of`` models with their metadata, each checked to have been trained on this run's split.

        The ensemble is calibrated on validation and measured on the internal test, so every member must have been
        trained on exactly this run's training films (the same manifest hash), never on those.
        """
        members = []
        for directory in (part.strip() for part in self.config.ensemble_of.split(",") if part.strip()):
            model, metadata = load_model_dir(Path(directory))
            if metadata.get("data_manifest_sha256") != data_hash:
                raise ValueError(
                    f"Ensemble member {directory} was trained on another split (manifest "
                    f"{metadata.get('data_manifest_sha256')}, this run's is {data_hash}): train every member on the "
                    "same data with the same --seed, --val-fraction and --test-fraction, so none has seen the films the "
                    "ensemble is calibrated and tested on."
                )
            if metadata["input_size"] != self.config.img_size:
                raise ValueError(
                    f"Ensemble member {directory} takes {metadata['input_size']} px; this run --img-size {self.config.img_size}."
                )
            member_intensity = intensity_mode(metadata)
            if member_intensity != self.config.intensity:
                raise ValueError(
                    f"Ensemble member {directory} sees its films with --intensity {member_intensity}; this run "
                    f"--intensity {self.config.intensity}. One network sees one view: combine members trained alike."
                )
            members.append((model, metadata))
        return members

    def train(self, splits: dict[str, Split], weights: str | None, tracked: TrackedRun | None) -> keras.Model:
        """The recipe the base weights call for: transfer with pretrained weights, else from scratch."""
        return train_transfer(self, splits, weights, tracked) if weights else train_scratch(self, splits, tracked)

    def train_as_worker(self, splits: dict[str, Split], weights: str | None) -> Path:
        """A non-chief worker: the same phases, in step with the chief; the chief keeps the books and the model."""
        self.train(splits, weights, None)
        self.progress.emit("done", worker=self.role.index, workers=self.role.workers)
        return self.run_dir

    # ----- the whole run -------------------------------------------------------------
    def run(self) -> Path:
        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        self.progress.emit("start", run=cfg.run_name, run_dir=str(self.run_dir), config=asdict(cfg), workers=self.role.workers)
        (self.run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        splits, data_hash, manifest_path = self.load_data()
        if cfg.ensemble_of and not self.role.is_chief:
            raise ValueError("An ensemble is combined, not trained: run --ensemble-of on one process, without TF_CONFIG.")
        members = self.ensemble_members(data_hash) if cfg.ensemble_of else []
        if members:
            weights, weights_used, recipe = None, "members: " + ", ".join(m["name"] for _, m in members), "ensemble"
        else:
            weights, weights_used = resolve_base_weights(cfg.base_weights, cfg.architecture)
            recipe = "transfer" if weights else "scratch"
        if not self.role.is_chief:
            return self.train_as_worker(splits, weights)
        with TrackedRun(cfg.experiment, cfg.run_name, self.state) as tracked:
            self._save_state()
            tracked.log_params(
                {
                    **{k: v for k, v in asdict(cfg).items() if k not in ("progress_file", "output_dir", "augmentation")},
                    **(cfg.augmentation.as_params() if cfg.augment else {"aug": "off"}),
                    "recipe": recipe,
                    "base_weights_used": weights_used,
                    "data_manifest_sha256": data_hash,
                    **{f"n_{name}": len(split.labels) for name, split in splits.items()},
                }
            )
            tracked.log_artifact(manifest_path)
            if members:
                self.progress.emit("phase", phase="ensemble", members=[m["name"] for _, m in members])
                model = build_ensemble([member for member, _ in members])
            else:
                model = self.train(splits, weights, tracked)
            self.progress.emit("phase", phase="evaluate")
            train_seconds = self.state.get("train_seconds", 0.0)  # training phases only, summed over resumes
            candidate = package_candidate(
                model, splits, cfg, self.run_dir, train_seconds, recipe, weights_used, data_hash, tracked
            )
            if members:
                record_in_metadata(candidate, members=[_member_record(metadata) for _, metadata in members])
            version = tracked.log_model_dir(candidate)
            if version:
                record_in_metadata(candidate, registry_version=version)
        self.progress.emit(
            "done", model_dir=str(candidate), metrics=json.loads((candidate / "metadata.json").read_text())["metrics"]
        )
        return candidate


def _member_record(metadata: dict) -> dict:
    """What an ensemble's metadata keeps of each member: enough to find and verify it."""
    keys = ("name", "architecture", "model_sha256", "registry_version", "mlflow_run_id", "train_seconds")
    return {key: metadata[key] for key in keys if key in metadata}


def run_training(config: TrainConfig, resume: bool = False) -> Path:
    """Train, evaluate and save a candidate model directory; returns its path."""
    return Trainer(config, resume).run()
