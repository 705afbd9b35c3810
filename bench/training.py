"""Training benchmarks: cached-feature frozen recipe vs the seed's way, and input pipeline vs bare train step.

    python -m bench.training [--images 320]

Timings use random-init weights (speed does not depend on the weights) on a
subset of real images and are extrapolated linearly to the 3,725-image train split.
"""

from __future__ import annotations

import argparse
import math
import time

import keras
import numpy as np
import tensorflow as tf

from bench.common import record_results
from pneumo_core.common.films import class_root, list_labelled_images
from pneumo_core.config import locations
from pneumo_core.modeling.architectures import POOLED_LAYER, build_classifier, build_head
from pneumo_core.serving.loading import load_canonical_images
from pneumo_core.training.pipeline import Augmentation, make_dataset

TRAIN_IMAGES, EPOCHS = 3725, 15


def fit_seconds(model: keras.Model, dataset: tf.data.Dataset, steps: int) -> float:
    """Seconds per step over ``steps`` steps, after one untimed warm-up epoch of 2 steps (graph compilation)."""
    model.fit(dataset.take(2), epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(dataset.take(steps), epochs=1, verbose=0)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=320)
    args = parser.parse_args()
    listing = list_labelled_images(class_root(locations().data_dir)).sample(args.images, random_state=0)
    images, labels = load_canonical_images(listing["path"].tolist()), listing["label"].to_numpy()
    scale = TRAIN_IMAGES / args.images
    rows = []

    # 4a. the seed's frozen recipe: every epoch through the whole frozen network at 224 px, batch 16
    model = build_classifier(224, None, head_units=256)
    for layer in model.layers[: model.layers.index(model.get_layer(POOLED_LAYER))]:
        layer.trainable = False
    model.compile(keras.optimizers.Adam(1e-4), "binary_crossentropy")
    seed_dataset = make_dataset(images, labels, 224, 16, Augmentation(), shuffle=True).repeat()
    seed_step = fit_seconds(model, seed_dataset, 10)
    seed_total = seed_step * math.ceil(TRAIN_IMAGES / 16) * EPOCHS

    # 4b. ours: features once per view (1 clean view, or 1 clean + 2 augmented), then 15 head epochs on the cached vectors
    features = keras.Model(model.input, model.get_layer(POOLED_LAYER).output)
    datasets = [make_dataset(images, labels, 224, 32, aug).map(lambda x, _: x) for aug in (None, Augmentation(), Augmentation())]
    features.predict(datasets[0].take(1), verbose=0)  # compile once, untimed: it does not grow with the data
    views, extract_seconds = [], []
    for dataset in datasets:
        started = time.perf_counter()
        views.append(features.predict(dataset, verbose=0))
        extract_seconds.append((time.perf_counter() - started) * scale)
    rows.append(
        ("seed frozen recipe, 15 epochs through the frozen network (extrapolated)", f"{seed_total / 60:.1f} min", "baseline", "—")
    )
    for count in (1, 3):
        inputs = keras.Input(shape=(views[0].shape[1],))
        head = keras.Model(inputs, build_head(inputs, 0.3, 256))
        head.compile(keras.optimizers.Adam(1e-4), "binary_crossentropy")
        x_full = np.resize(
            np.concatenate(views[:count]), (count * TRAIN_IMAGES, views[0].shape[1])
        )  # the head at full size: cheap, so real
        y_full = np.resize(np.tile(labels, count), count * TRAIN_IMAGES)
        started = time.perf_counter()
        head.fit(x_full, y_full, batch_size=16, epochs=EPOCHS, verbose=0)
        head_seconds = time.perf_counter() - started
        extract = sum(extract_seconds[:count])
        total = extract + head_seconds
        what = "1 clean view (no augmentation)" if count == 1 else f"{count} views (1 clean + {count - 1} augmented, the default)"
        rows.append(
            (
                f"cached features, {what} + 15 head epochs",
                f"{total / 60:.2f} min (features {extract:.0f} s, head {head_seconds:.0f} s)",
                f"{seed_total / total:.1f} × faster",
                "≥ 10 ×",
            )
        )

    # 4c. from-scratch: full pipeline (augmentation in tf.data) vs bare train step on cached tensors
    for size, batch in ((128, 32), (224, 16)):
        model = build_classifier(size, None, head_units=256)
        model.compile(keras.optimizers.AdamW(1e-3), "binary_crossentropy")
        bare = make_dataset(images, labels, size, batch).cache().repeat()
        for _ in bare.take(math.ceil(args.images / batch)):
            pass  # fill the cache
        bare_step = fit_seconds(model, bare, 10)
        pipeline_step = fit_seconds(
            model, make_dataset(images, labels, size, batch, Augmentation(contrast=0.2), shuffle=True).repeat(), 10
        )
        epoch = pipeline_step * math.ceil(TRAIN_IMAGES / batch)
        rows.append(
            (
                f"from scratch {size} px batch {batch}: step with augmenting pipeline",
                f"{pipeline_step:.2f} s (epoch ≈ {epoch / 60:.1f} min)",
                f"{pipeline_step / bare_step:.2f} × bare step ({bare_step:.2f} s)",
                "≤ 1.15 ×",
            )
        )
    print(
        record_results(
            "Training",
            f"python -m bench.training --images {args.images}",
            rows,
            "Extrapolated to the 3,725-image train split; random-init weights.",
        )
    )


if __name__ == "__main__":
    main()
