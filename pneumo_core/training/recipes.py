"""The two training recipes, each a sequence of phases run by a :class:`~pneumo_core.training.trainer.Trainer`.

- transfer (pretrained base weights available): a head on cached frozen-base features of several augmented views,
  then the top of the base fine-tuned;
- from scratch (no pretrained weights): progressive resizing through ``size:epochs:batch`` phases with AdamW, a
  cosine schedule with warm-up and label smoothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf

from pneumo_core.jobs.request import TrainConfig
from pneumo_core.modeling.architectures import POOLED_LAYER, build_classifier, build_head, head_layer_names
from pneumo_core.training.pipeline import Split, make_dataset
from pneumo_core.training.tracking import TrackedRun


class PhaseRunner(Protocol):
    """What a recipe asks of the run it belongs to (:class:`~pneumo_core.training.trainer.Trainer`)."""

    config: TrainConfig
    strategy: tf.distribute.Strategy

    def phase(self, name: str, build: Callable[[], keras.Model], train: Callable[[keras.Model], None]) -> keras.Model: ...

    def fit(self, model, splits, size, batch, epochs, tracked, phase, patience, extra=()) -> None: ...

    def callbacks(self, phase: str, epochs: int, steps: int, tracked: TrackedRun | None, monitor_patience: int) -> list: ...

    def train_weights(self, train: Split) -> np.ndarray: ...

    def offsets(self, split: Split, training: bool) -> np.ndarray | None: ...

    def fitted_view(self, model: keras.Model) -> keras.Model: ...


HEAD_PATIENCE, FINE_TUNE_PATIENCE, SCRATCH_PATIENCE = 3, 2, 4
"""Epochs without a better validation AUC before a phase stops (and its best weights come back)."""
PLATEAU_FACTOR, MIN_LR = 0.2, 1e-7
"""The transfer recipe's ReduceLROnPlateau: multiply the rate by this when validation loss stalls."""
FINE_TUNE_LR_FRACTION = 0.1
"""Fine-tuning runs at this fraction of the head's learning rate."""
LATER_PHASE_PEAK_FRACTION = 0.2
"""From-scratch phases after the first start from trained weights: their peak rate is this fraction of the first's."""
FIRST_WARMUP_FRACTION, LATER_WARMUP_FRACTION = 0.1, 0.05
"""Share of a phase's steps spent warming up to its peak rate (the first phase starts from random weights)."""


def train_transfer(trainer: PhaseRunner, splits: dict[str, Split], weights: str, tracked: TrackedRun | None) -> keras.Model:
    """Seed recipe: head on cached frozen-base features (several augmented views), then fine-tune the top."""
    cfg = trainer.config
    size = cfg.img_size
    build = lambda: build_classifier(size, weights, cfg.dropout, cfg.head_units, cfg.architecture)  # noqa: E731

    def train_head(model: keras.Model) -> None:
        features = keras.Model(model.input, model.get_layer(POOLED_LAYER).output)
        views = [None] + [cfg.applied_augmentation()] * (cfg.feature_views - 1) if cfg.augment else [None]
        train_x = np.concatenate(
            [
                features.predict(
                    make_dataset(
                        splits["train"].source,
                        splits["train"].labels,
                        size,
                        32,
                        aug,
                        seed=cfg.seed + i,
                        intensity=cfg.intensity,
                    ).map(lambda x, _: x),
                    verbose=0,
                )
                for i, aug in enumerate(views)
            ]
        )
        train_y = np.tile(splits["train"].labels, len(views))
        train_w = np.tile(trainer.train_weights(splits["train"]), len(views))
        val_x = features.predict(
            make_dataset(splits["val"].source, splits["val"].labels, size, 32, intensity=cfg.intensity).map(lambda x, _: x),
            verbose=0,
        )
        train_o, val_o = trainer.offsets(splits["train"], True), trainer.offsets(splits["val"], False)
        if train_o is not None:  # the offset view takes (features, offset) pairs
            train_x, val_x = (train_x, np.tile(train_o, len(views))[:, np.newaxis]), (val_x, val_o[:, np.newaxis])
        with trainer.strategy.scope():
            inputs = keras.Input(shape=(features.output.shape[-1],))
            head = keras.Model(inputs, build_head(inputs, cfg.dropout, cfg.head_units))
            fitted = trainer.fitted_view(head)
            fitted.compile(keras.optimizers.Adam(cfg.lr), "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
        steps = math.ceil(len(train_y) / cfg.batch_size)
        callbacks = trainer.callbacks("head", cfg.epochs, steps, tracked, HEAD_PATIENCE) + [
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=PLATEAU_FACTOR, patience=2, min_lr=MIN_LR)
        ]
        fitted.fit(
            train_x,
            train_y,
            batch_size=cfg.batch_size,
            epochs=cfg.epochs,
            validation_data=(val_x, splits["val"].labels),
            sample_weight=train_w,
            callbacks=callbacks,
            shuffle=True,
            verbose=0,
        )
        for name in head_layer_names(model):
            model.get_layer(name).set_weights(head.get_layer(name).get_weights())

    head_model = trainer.phase("head", build, train_head)

    def fine_tune(model: keras.Model) -> None:
        model.set_weights(head_model.get_weights())
        base_layers = model.layers[: model.layers.index(model.get_layer(POOLED_LAYER))]
        for layer in base_layers[: -cfg.fine_tune_layers] if cfg.fine_tune_layers else base_layers:
            layer.trainable = False
        for layer in base_layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False  # keep ImageNet statistics (inference mode)
        fitted = trainer.fitted_view(model)
        fitted.compile(
            keras.optimizers.Adam(cfg.lr * FINE_TUNE_LR_FRACTION),
            "binary_crossentropy",
            metrics=[keras.metrics.AUC(name="auc")],
        )
        trainer.fit(
            fitted,
            splits,
            size,
            cfg.batch_size,
            cfg.fine_tune_epochs,
            tracked,
            "fine_tune",
            patience=FINE_TUNE_PATIENCE,
            extra=[keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=PLATEAU_FACTOR, patience=1, min_lr=MIN_LR)],
        )

    if cfg.fine_tune_layers and cfg.fine_tune_epochs:
        return trainer.phase("fine_tune", build, fine_tune)
    return head_model


def train_scratch(trainer: PhaseRunner, splits: dict[str, Split], tracked: TrackedRun | None) -> keras.Model:
    """From random init: progressive resizing, AdamW, cosine decay with warm-up, label smoothing."""
    cfg = trainer.config
    previous: keras.Model | None = None
    for index, (size, epochs, batch) in enumerate(cfg.scratch_phases()):
        peak = cfg.scratch_lr if index == 0 else cfg.scratch_lr * LATER_PHASE_PEAK_FRACTION

        def train(model: keras.Model, size=size, epochs=epochs, batch=batch, peak=peak, index=index, previous=previous) -> None:
            if previous is not None:
                model.set_weights(previous.get_weights())
            steps = math.ceil(len(splits["train"]) / batch)
            schedule = keras.optimizers.schedules.CosineDecay(
                0.0,
                decay_steps=max(1, epochs * steps),
                warmup_target=peak,
                warmup_steps=max(1, int((FIRST_WARMUP_FRACTION if index == 0 else LATER_WARMUP_FRACTION) * epochs * steps)),
            )
            fitted = trainer.fitted_view(model)
            fitted.compile(
                keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
                keras.losses.BinaryCrossentropy(label_smoothing=cfg.label_smoothing),
                metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
            )
            trainer.fit(fitted, splits, size, batch, epochs, tracked, f"scratch_{size}px", patience=SCRATCH_PATIENCE)

        previous = trainer.phase(
            f"scratch_{size}px",
            lambda size=size: build_classifier(size, None, cfg.dropout, cfg.head_units, cfg.architecture),
            train,
        )
    return previous
