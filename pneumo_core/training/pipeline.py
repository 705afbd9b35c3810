"""tf.data input pipelines over canonical images, in memory or streamed from files, with the seed's augmentation.

A data set that fits the memory budget (:func:`pneumo_core.training.trainer.memory_budget_bytes`) is decoded and
canonicalized once (:func:`pneumo_core.serving.loading.load_canonical_images`), so an epoch never touches the disk. A larger
one is streamed: each epoch decodes its files in parallel inside the pipeline, through the same
:func:`pneumo_core.common.preprocess.canonicalize`. Either way the pipeline shuffles, batches, augments (in parallel, on
whole batches), converts to the model input and prefetches, and the tensors are the same (a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import keras
import numpy as np
import tensorflow as tf
from keras import layers

from pneumo_core.common.preprocess import CANONICAL_SIZE, STRETCH, model_view
from pneumo_core.jobs.request import Augmentation
from pneumo_core.modeling.architectures import to_model_input
from pneumo_core.serving.loading import load_canonical, load_canonical_images

AUTOTUNE = tf.data.AUTOTUNE
COARSE_SIGMAS = (2.0, 16.0)
"""The range (px, log-uniform) of the coarse unsharp mask's Gaussian (``Augmentation.coarse_sharpness``)."""
SPECTRUM_BANDS_PER_OCTAVE = 3
"""The radial-frequency resolution of ``Augmentation.spectrum_match``: bands a third of an octave wide."""


@dataclass
class Split:
    """One split's films: file names, labels, the paths of their files, and their canonical images ``(N, 224, 224)``
    uint8 when they are kept in memory (else they are streamed from the paths)."""

    files: list[str]
    labels: np.ndarray
    images: np.ndarray | None = None
    paths: list[str] | None = None
    groups: np.ndarray | None = None  # acquisition groups (pneumo_core.training.acquisition), when training balances them

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def source(self) -> np.ndarray | list[str]:
        """What :func:`make_dataset` reads: the images in memory, else the paths."""
        return self.images if self.images is not None else self.paths

    def canonical_batches(self, size: int = 256) -> Iterator[np.ndarray]:
        """The canonical images in order, ``size`` at a time (decoded batch by batch when streamed)."""
        for start in range(0, len(self), size):
            if self.images is not None:
                yield self.images[start : start + size]
            else:
                yield load_canonical_images(self.paths[start : start + size])


def _decode(path: tf.Tensor) -> tf.Tensor:
    image = tf.numpy_function(lambda p: load_canonical(p.decode()), [path], tf.uint8, stateful=False)
    return tf.ensure_shape(image, (CANONICAL_SIZE, CANONICAL_SIZE))


def _model_view(batch: tf.Tensor, intensity: str) -> tf.Tensor:
    """:func:`~pneumo_core.common.preprocess.model_view` of a ``(N, 224, 224, 1)`` uint8 batch, inside the pipeline."""
    viewed = tf.numpy_function(lambda images: model_view(images[..., 0], intensity)[..., np.newaxis], [batch], tf.uint8)
    return tf.ensure_shape(viewed, batch.shape)


def augmentation_layers(aug: Augmentation, seed: int) -> keras.Sequential:
    """The geometric and photometric transforms as Keras 3 preprocessing layers."""
    transforms: list[layers.Layer] = [
        layers.RandomRotation(aug.rotation_deg / 360.0, fill_mode="nearest", seed=seed),
        layers.RandomTranslation(aug.shift, aug.shift, fill_mode="nearest", seed=seed + 1),
    ]
    if aug.crop:  # independent axes: a random resized crop, combined with the seed's zoom range
        zoom = (-aug.crop, aug.zoom)
        transforms.append(layers.RandomZoom(zoom, zoom, fill_mode="nearest", seed=seed + 2))
    else:
        transforms.append(layers.RandomZoom(aug.zoom, fill_mode="nearest", seed=seed + 2))
    if aug.horizontal_flip:
        transforms.append(layers.RandomFlip("horizontal", seed=seed + 3))
    if aug.contrast:
        transforms.append(layers.RandomContrast(aug.contrast, value_range=(0, 255), seed=seed + 4))
    return keras.Sequential(transforms, name="augmentation")


def _blurred(batch: tf.Tensor) -> tf.Tensor:
    """A 3×3 binomial blur (σ ≈ 0.7 px) of ``(N, H, W, 1)`` images, edges replicated."""
    kernel = tf.constant([1.0, 2.0, 1.0]) / 4.0
    kernel = tf.reshape(tf.tensordot(kernel, kernel, axes=0), (3, 3, 1, 1))
    padded = tf.pad(batch, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    return tf.nn.conv2d(padded, kernel, strides=1, padding="VALID")


def _equalized(batch: tf.Tensor) -> tf.Tensor:
    """Global histogram equalisation of each of ``(N, H, W, 1)`` float images in 0..255."""
    count = tf.shape(batch)[0]
    levels = tf.reshape(tf.cast(tf.clip_by_value(tf.round(batch), 0.0, 255.0), tf.int32), [count, -1])
    offsets = tf.range(count)[:, tf.newaxis] * 256  # one histogram per image in one bincount
    histograms = tf.math.bincount(levels + offsets, minlength=256 * count, maxlength=256 * count)
    cdf = tf.cast(tf.cumsum(tf.reshape(histograms, [count, 256]), axis=1), tf.float32)
    cdf = cdf / cdf[:, -1:]
    return tf.reshape(255.0 * tf.gather(cdf, levels, batch_dims=1), tf.shape(batch))


def _per_image(operation: Callable[[np.ndarray, float], np.ndarray], batch: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """``operation(image, value)`` (an OpenCV call on one 2-D image) on each of ``(N, H, W, 1)`` images, with its own
    value, inside the pipeline; the images keep their dtype."""

    def apply(images: np.ndarray, per_image: np.ndarray) -> np.ndarray:
        return np.stack([operation(image[..., 0], float(value))[..., np.newaxis] for image, value in zip(images, per_image)])

    return tf.ensure_shape(tf.numpy_function(apply, [batch, tf.reshape(values, [-1])], batch.dtype), batch.shape)


def _local_contrast(batch: tf.Tensor, clip_limits: tf.Tensor) -> tf.Tensor:
    """CLAHE (OpenCV, 8 × 8 tiles) of each of ``(N, H, W, 1)`` float images in 0..255, clip limit per image."""
    levels = tf.cast(tf.clip_by_value(tf.round(batch), 0.0, 255.0), tf.uint8)
    enhanced = _per_image(lambda image, clip: cv2.createCLAHE(clip, (8, 8)).apply(image), levels, clip_limits)
    return tf.cast(enhanced, tf.float32)


def _coarse_blurred(batch: tf.Tensor, sigmas: tf.Tensor) -> tf.Tensor:
    """OpenCV's Gaussian blur of each of ``(N, H, W, 1)`` float images, standard deviation ``sigmas`` px per image."""
    return _per_image(lambda image, sigma: cv2.GaussianBlur(image, (0, 0), sigma), batch, sigmas)


def _radial_bands(size: int) -> np.ndarray:
    """Each of a ``size`` × ``size`` FFT's coefficients' radial-frequency band: 0 for the mean, then up to
    :data:`SPECTRUM_BANDS_PER_OCTAVE` bands per octave from 1 cycle per film (the low ones merge where no frequency
    of the grid falls)."""
    frequencies = np.fft.fftfreq(size) * size  # cycles per film
    radius = np.hypot(*np.meshgrid(frequencies, frequencies, indexing="ij"))
    bands = np.zeros(radius.shape, np.int32)
    bands[radius > 0] = 1 + np.floor(np.log2(radius[radius > 0]) * SPECTRUM_BANDS_PER_OCTAVE).astype(np.int32)
    return np.unique(bands, return_inverse=True)[1].reshape(radius.shape).astype(np.int32)  # numbered without gaps


def _spectra(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, np.ndarray]:
    """The Fourier spectra of ``(N, H, W, 1)`` float images, their mean amplitude per radial band ``(N, bands)``, and
    each coefficient's band (:func:`_radial_bands`)."""
    bands = _radial_bands(batch.shape[1])
    spectra = tf.signal.fft2d(tf.cast(batch[..., 0], tf.complex64))
    amplitude = tf.reshape(tf.abs(spectra), [tf.shape(batch)[0], -1])
    means = tf.math.unsorted_segment_mean(tf.transpose(amplitude), bands.ravel(), int(bands.max()) + 1)
    return spectra, tf.transpose(means), bands


def _filtered(spectra: tf.Tensor, own: tf.Tensor, targets: tf.Tensor, powers: tf.Tensor, bands: np.ndarray) -> tf.Tensor:
    """The images of ``spectra`` through the zero-phase gain ``(target / own) ** power`` per band, band 0 kept."""
    gains = tf.pow(tf.cast(targets, tf.float32) / tf.maximum(own, 1e-6), tf.reshape(powers, [-1, 1]))
    gains = tf.concat([tf.ones_like(gains[:, :1]), gains[:, 1:]], axis=1)
    gain_map = tf.reshape(tf.gather(gains, bands.ravel(), axis=1), tf.shape(spectra))
    return tf.math.real(tf.signal.ifft2d(spectra * tf.cast(gain_map, tf.complex64)))[..., tf.newaxis]


def band_amplitudes(batch: tf.Tensor) -> tf.Tensor:
    """``(N, bands)``: each of ``(N, H, W, 1)`` float images' mean Fourier amplitude in each radial band
    (:func:`_radial_bands`; band 0 is the mean)."""
    return _spectra(batch)[1]


def matched_to_bands(batch: tf.Tensor, targets: tf.Tensor, powers: tf.Tensor) -> tf.Tensor:
    """Each of ``(N, H, W, 1)`` float images through the isotropic zero-phase filter whose gain in each radial band is
    ``(target / own) ** power`` (band amplitudes as :func:`band_amplitudes`; ``targets`` ``(N, bands)``, ``powers``
    ``(N,)``). Power 1 gives a film the target amplitude in every band; the mean (band 0) is kept."""
    spectra, own, bands = _spectra(batch)
    return _filtered(spectra, own, targets, powers, bands)


def _spectrum_matched(batch: tf.Tensor, powers: tf.Tensor) -> tf.Tensor:
    """:func:`matched_to_bands` with each film's target the band amplitudes of the film at the mirrored place of the
    batch (``Augmentation.spectrum_match``), the batch transformed once."""
    spectra, own, bands = _spectra(batch)
    return _filtered(spectra, own, tf.reverse(own, [0]), powers, bands)


def _mixup_weights(generator: tf.random.Generator, shape, concentration: float) -> tf.Tensor:
    """Per-image weights max(λ, 1 - λ), λ ~ Beta(concentration, concentration), as the ratio of two gamma draws."""
    first, second = (tf.random.stateless_gamma(shape, generator.make_seeds(1)[:, 0], concentration) for _ in range(2))
    weight = first / tf.maximum(first + second, 1e-12)
    return tf.maximum(weight, 1.0 - weight)


def batch_augmenter(aug: Augmentation, seed: int):
    """A ``tf.data`` map function: (uint8 batch, labels[, weights]) → (augmented float batch in 0..255, labels[, weights]).

    Geometry first (Keras layers), then per-image photometric changes: brightness, gamma, histogram equalisation,
    local contrast (CLAHE), blur/sharpen at the finest and at a coarse scale, noise, the amplitude spectrum moved
    towards another film's. Each is drawn independently per image.
    Last, with mixup, each film and its label are blended with the film at the mirrored place of the (shuffled)
    batch; the film keeps the larger weight, so its own class (and its own sample weight) still rules its loss.
    """
    transforms = augmentation_layers(aug, seed)
    generator = tf.random.Generator.from_seed(seed)
    low, high = aug.brightness

    def augment(batch, batch_labels, *weights):
        batch = transforms(tf.cast(batch, tf.float32), training=True)
        per_image = [tf.shape(batch)[0], 1, 1, 1]
        batch = tf.clip_by_value(batch * generator.uniform(per_image, low, high), 0.0, 255.0)
        if aug.gamma:
            batch = 255.0 * tf.pow(batch / 255.0, tf.exp(generator.uniform(per_image, -aug.gamma, aug.gamma)))
        if aug.equalize:
            weight = generator.uniform(per_image, 0.0, aug.equalize)
            batch = (1.0 - weight) * batch + weight * _equalized(batch)
        if aug.local_contrast:
            clip_limits = generator.uniform(per_image, 1.0, aug.local_contrast)
            weight = generator.uniform(per_image, 0.0, 1.0)
            batch = (1.0 - weight) * batch + weight * _local_contrast(batch, clip_limits)
        if aug.sharpness:
            amount = generator.uniform(per_image, -aug.sharpness, aug.sharpness)
            batch = tf.clip_by_value(batch + amount * (batch - _blurred(batch)), 0.0, 255.0)
        if aug.coarse_sharpness:
            sigmas = tf.exp(generator.uniform(per_image, *np.log(COARSE_SIGMAS)))
            amount = generator.uniform(per_image, -aug.coarse_sharpness, aug.coarse_sharpness)
            batch = tf.clip_by_value(batch + amount * (batch - _coarse_blurred(batch, sigmas)), 0.0, 255.0)
        if aug.noise:
            sigma = generator.uniform(per_image, 0.0, aug.noise)
            batch = tf.clip_by_value(batch + sigma * generator.normal(tf.shape(batch)), 0.0, 255.0)
        if aug.spectrum_match:
            powers = generator.uniform(per_image, 0.0, aug.spectrum_match)
            batch = tf.clip_by_value(_spectrum_matched(batch, powers), 0.0, 255.0)
        if aug.mixup:
            weight = _mixup_weights(generator, per_image, aug.mixup)
            batch = weight * batch + (1.0 - weight) * tf.reverse(batch, [0])
            weight = tf.reshape(weight, [-1])
            batch_labels = weight * batch_labels + (1.0 - weight) * tf.reverse(batch_labels, [0])
        return batch, batch_labels, *weights

    return augment


def make_dataset(
    images: np.ndarray | list[str],
    labels: np.ndarray,
    size: int,
    batch_size: int,
    augmentation: Augmentation | None = None,
    shuffle: bool = False,
    seed: int = 42,
    intensity: str = STRETCH,
    weights: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
) -> tf.data.Dataset:
    """(canonical uint8 images, or the paths to decode them from; labels) → batches of (model input, float label).

    Each batch is seen through :func:`~pneumo_core.common.preprocess.model_view` of ``intensity`` before augmentation,
    as serving sees each film before the network. With per-film ``weights``, batches are
    (model input, float label, weight), the form Keras's ``fit`` reads as sample weights. With per-film logit
    ``offsets``, the input is the pair (model input, offset ``(N, 1)``) that
    :func:`~pneumo_core.modeling.architectures.with_logit_offset` takes.
    """
    streamed = isinstance(images, list)
    source = tf.constant(images) if streamed else images[..., np.newaxis]
    extra = tuple(np.asarray(values, dtype="float32") for values in (weights, offsets) if values is not None)
    dataset = tf.data.Dataset.from_tensor_slices((source, labels.astype("float32"), *extra))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if streamed:  # decode in parallel, in order (tf.data keeps the order by default)
        dataset = dataset.map(lambda path, *rest: (_decode(path)[..., tf.newaxis], *rest), num_parallel_calls=AUTOTUNE)
    dataset = dataset.batch(batch_size)
    if intensity != STRETCH:
        dataset = dataset.map(lambda batch, *rest: (_model_view(batch, intensity), *rest), num_parallel_calls=AUTOTUNE)
    if augmentation is not None:
        dataset = dataset.map(batch_augmenter(augmentation, seed), num_parallel_calls=AUTOTUNE)
    dataset = dataset.map(lambda batch, *rest: (to_model_input(batch, size), *rest), num_parallel_calls=AUTOTUNE)
    if offsets is not None:  # the offsets rode last; they join the input
        dataset = dataset.map(lambda x, batch_labels, *rest: ((x, rest[-1][:, tf.newaxis]), batch_labels, *rest[:-1]))
    return dataset.prefetch(AUTOTUNE)
