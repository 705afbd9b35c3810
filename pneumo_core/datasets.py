"""tf.data input pipelines over canonical images held in memory, with the seed's augmentation.

Images are decoded and canonicalized once (:func:`pneumo_core.data.load_canonical_images`),
so an epoch never touches the disk: the pipeline shuffles, batches, augments
(in parallel, on whole batches), converts to the model input and prefetches.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from .model import to_model_input
from .train_config import Augmentation

AUTOTUNE = tf.data.AUTOTUNE


def augmentation_layers(aug: Augmentation, seed: int) -> keras.Sequential:
    """The geometric and photometric transforms as Keras 3 preprocessing layers."""
    transforms: list[layers.Layer] = [
        layers.RandomRotation(aug.rotation_deg / 360.0, fill_mode="nearest", seed=seed),
        layers.RandomTranslation(aug.shift, aug.shift, fill_mode="nearest", seed=seed + 1),
        layers.RandomZoom(aug.zoom, fill_mode="nearest", seed=seed + 2),
    ]
    if aug.horizontal_flip:
        transforms.append(layers.RandomFlip("horizontal", seed=seed + 3))
    if aug.contrast:
        transforms.append(layers.RandomContrast(aug.contrast, value_range=(0, 255), seed=seed + 4))
    return keras.Sequential(transforms, name="augmentation")


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    size: int,
    batch_size: int,
    augmentation: Augmentation | None = None,
    shuffle: bool = False,
    seed: int = 42,
) -> tf.data.Dataset:
    """(canonical uint8 images, labels) → batches of (model input, float label)."""
    dataset = tf.data.Dataset.from_tensor_slices((images[..., np.newaxis], labels.astype("float32")))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augmentation is not None:
        transforms = augmentation_layers(augmentation, seed)
        low, high = augmentation.brightness
        generator = tf.random.Generator.from_seed(seed)

        def augment(batch, batch_labels):
            batch = transforms(tf.cast(batch, tf.float32), training=True)
            factor = generator.uniform([tf.shape(batch)[0], 1, 1, 1], low, high)
            return tf.clip_by_value(batch * factor, 0.0, 255.0), batch_labels

        dataset = dataset.map(augment, num_parallel_calls=AUTOTUNE)
    dataset = dataset.map(lambda batch, batch_labels: (to_model_input(batch, size), batch_labels), num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)
