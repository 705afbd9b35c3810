"""One preprocessing path: training (tf.data) and serving (Predictor) must feed the model identical tensors."""

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from devtools.imaging import synthetic_xray
from pneumo_core.common.films import class_root, list_labelled_images
from pneumo_core.common.preprocess import (
    CANONICAL_SIZE,
    EQUALIZE,
    STRETCH,
    canonicalize,
    intensity_mode,
    model_view,
    preprocessing_spec,
)
from pneumo_core.modeling.architectures import to_model_input
from pneumo_core.serving.decode import decode_image
from pneumo_core.serving.loading import load_canonical_images
from pneumo_core.training.pipeline import Augmentation, make_dataset


def test_canonicalize_resizes_and_stretches_any_size():
    dim = (synthetic_xray(300) // 3 + 40).astype(np.uint8)  # a dull, low-contrast film
    canonical = canonicalize(dim)
    assert canonical.shape == (CANONICAL_SIZE, CANONICAL_SIZE) and canonical.dtype == np.uint8
    assert np.percentile(canonical, 0.5) <= 1 and np.percentile(canonical, 99.5) >= 254
    flat = canonicalize(np.full((50, 80), 7, np.uint8))
    assert flat.shape == (CANONICAL_SIZE, CANONICAL_SIZE) and np.all(flat == 7)


def test_exposure_changes_are_normalised_away():
    film = synthetic_xray(CANONICAL_SIZE, seed=5)
    darker = (film.astype(np.float32) * 0.6).astype(np.uint8)
    assert np.abs(canonicalize(film).astype(int) - canonicalize(darker).astype(int)).mean() < 3.0


def test_the_equalised_view_is_blind_to_any_order_keeping_change_of_grey_levels():
    film = canonicalize(synthetic_xray(CANONICAL_SIZE, seed=3)) // 2  # levels 0..127
    brighter = film * 2 + 1  # another exposure and contrast: every level moved, their order kept
    viewed, viewed_brighter = model_view(np.stack([film, brighter]), EQUALIZE)
    np.testing.assert_array_equal(viewed, viewed_brighter)
    assert viewed.dtype == np.uint8 and viewed.max() == 255 and abs(viewed.mean() - 127.5) < 8  # a flat histogram
    np.testing.assert_array_equal(model_view(film[None], STRETCH)[0], film)  # the stretch view is the film itself


def test_the_intensity_mode_is_recorded_and_read_back_and_old_models_are_stretch_models():
    assert intensity_mode({"preprocessing": preprocessing_spec(EQUALIZE)}) == EQUALIZE
    assert intensity_mode({"preprocessing": {"intensity": "per-image stretch"}}) == STRETCH  # before the modes
    assert intensity_mode({}) == STRETCH
    with pytest.raises(ValueError, match="Unknown intensity mode 'clahe'; choose stretch or equalize"):
        preprocessing_spec("clahe")


def test_model_input_is_densenet_scaled():
    batch = np.full((2, CANONICAL_SIZE, CANONICAL_SIZE), 255, np.uint8)
    out = to_model_input(batch, 128).numpy()
    assert out.shape == (2, 128, 128, 3)
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[0, 5, 5], expected, rtol=1e-5)


@pytest.mark.parametrize(("size", "intensity"), [(224, STRETCH), (128, STRETCH), (128, EQUALIZE)])
def test_training_and_serving_tensors_are_identical(real_data, size, intensity):
    listing = list_labelled_images(class_root(real_data)).iloc[::700].head(6)
    paths, labels = listing["path"].tolist(), listing["label"].to_numpy()
    # training path: parallel loader → tf.data pipeline without augmentation
    training = np.concatenate(
        [x.numpy() for x, _ in make_dataset(load_canonical_images(paths), labels, size, 4, intensity=intensity)]
    )
    # serving path: bytes → decode → canonicalize → the model's view → to_model_input, one file at a time
    serving = np.concatenate(
        [
            to_model_input(model_view(canonicalize(decode_image(Path(p).read_bytes()))[None], intensity), size).numpy()
            for p in paths
        ]
    )
    np.testing.assert_array_equal(training, serving)
    # streamed from the files (a data set over the memory budget): the same tensors
    streamed = np.concatenate([x.numpy() for x, _ in make_dataset(paths, labels, size, 4, intensity=intensity)])
    np.testing.assert_array_equal(streamed, serving)


def test_streamed_and_in_memory_training_batches_are_identical_when_shuffled(real_data):
    """The same films in the same shuffled order, pixel for pixel; augmentation then acts on identical inputs (its
    random draws are not reproducible between two pipelines even in memory, so they are not compared)."""
    listing = list_labelled_images(class_root(real_data)).iloc[::500].head(10)
    paths, labels = listing["path"].tolist(), listing["label"].to_numpy()
    batches = [
        [(x.numpy(), y.numpy()) for x, y in make_dataset(source, labels, 64, 4, shuffle=True, seed=7)]
        for source in (load_canonical_images(paths), paths)
    ]
    for (memory_x, memory_y), (stream_x, stream_y) in zip(*batches, strict=True):
        np.testing.assert_array_equal(memory_y, stream_y)
        np.testing.assert_array_equal(memory_x, stream_x)
    augmented = next(iter(make_dataset(paths, labels, 64, 4, Augmentation(crop=0.2, equalize=0.8), shuffle=True)))[0]
    assert augmented.shape == (4, 64, 64, 3)


def test_per_film_weights_stay_with_their_films_through_shuffling_and_augmentation():
    """A film's sample weight travels with it: here each weight names its film's label (mixup keeps the own one)."""
    images = np.stack([synthetic_xray(CANONICAL_SIZE, seed=i) for i in range(6)])
    labels = np.array([0, 1, 0, 1, 1, 0])
    weights = 1.0 + labels * 2.0
    for augmentation in (None, Augmentation(mixup=0.2)):
        batches = list(make_dataset(images, labels, 32, 4, augmentation, shuffle=True, seed=3, weights=weights))
        assert [len(batch) for batch in batches] == [3, 3]
        seen_labels, seen_weights = (np.concatenate([batch[k].numpy() for batch in batches]) for k in (1, 2))
        np.testing.assert_allclose(seen_weights, 1.0 + np.round(seen_labels) * 2.0)
        assert sorted(seen_weights) == sorted(weights)


def test_logit_offsets_join_the_input_and_stay_with_their_films():
    images = np.stack([synthetic_xray(CANONICAL_SIZE, seed=i) for i in range(6)])
    labels = np.array([0, 1, 0, 1, 1, 0])
    offsets = labels * 2.0 - 0.5  # each offset names its film's label
    dataset = make_dataset(images, labels, 32, 4, Augmentation(), shuffle=True, seed=3, weights=1.0 + labels, offsets=offsets)
    for (x, batch_offsets), batch_labels, batch_weights in dataset:
        assert x.shape[1:] == (32, 32, 3) and batch_offsets.shape == (len(x), 1)
        np.testing.assert_allclose(batch_offsets.numpy()[:, 0], batch_labels.numpy() * 2.0 - 0.5)
        np.testing.assert_allclose(batch_weights.numpy(), 1.0 + batch_labels.numpy())


@pytest.mark.parametrize(
    "augmentation",
    [
        Augmentation(contrast=0.2),
        Augmentation(gamma=0.4, sharpness=1.5, noise=8.0, crop=0.2, equalize=0.8, local_contrast=4.0, coarse_sharpness=1.0),
        Augmentation(spectrum_match=1.0),
    ],
)
def test_augmentation_changes_images_but_keeps_shape_and_range(augmentation):
    images = np.stack([synthetic_xray(CANONICAL_SIZE, seed=i) for i in range(4)])
    plain = next(iter(make_dataset(images, np.zeros(4), 96, 4)))[0].numpy()
    augmented = next(iter(make_dataset(images, np.zeros(4), 96, 4, augmentation, seed=1)))[0].numpy()
    assert augmented.shape == plain.shape
    assert not np.allclose(augmented, plain)
    low, high = to_model_input(np.array([[[0]], [[255]]], np.uint8), 1).numpy()[:, 0, 0, :]  # per channel
    tolerance = 1e-4  # float rounding of the area resize over saturated pixels (0.002 grey levels)
    assert np.all(augmented.min(axis=(0, 1, 2)) >= low - tolerance)
    assert np.all(augmented.max(axis=(0, 1, 2)) <= high + tolerance)
    assert tf.reduce_all(tf.math.is_finite(augmented))


def test_site_shift_transforms_act_per_image():
    """Each site-shift transform alone (no other geometry, no brightness): each film gets its own draw."""
    from pneumo_core.training.pipeline import batch_augmenter

    still = Augmentation(rotation_deg=0, shift=0, zoom=0, horizontal_flip=False, brightness=(1.0, 1.0))
    image = synthetic_xray(CANONICAL_SIZE, seed=3)
    batch = tf.constant(np.stack([image] * 4)[..., np.newaxis])
    unchanged, _ = batch_augmenter(still, seed=0)(batch, tf.zeros(4))
    np.testing.assert_allclose(unchanged.numpy()[..., 0], np.stack([image] * 4), atol=1e-3)
    site_shifts = {"zoom": 0.4, "gamma": 0.5, "sharpness": 2.0, "noise": 10.0, "equalize": 1.0, "crop": 0.3}
    site_shifts |= {"local_contrast": 4.0, "coarse_sharpness": 1.0, "spectrum_match": 1.0}
    others = np.stack([image, synthetic_xray(CANONICAL_SIZE, seed=4), synthetic_xray(CANONICAL_SIZE, seed=5), image])
    for name, value in site_shifts.items():
        source = batch if name != "spectrum_match" else tf.constant(others[..., np.newaxis])  # needs other films
        out, _ = batch_augmenter(replace(still, **{name: value}), seed=0)(source, tf.zeros(4))
        out = out.numpy()[..., 0]
        assert out.min() >= 0 and out.max() <= 255
        assert not np.allclose(out[0], out[1], atol=0.5), name  # different draws for identical inputs


def test_equalisation_flattens_the_histogram():
    from pneumo_core.training.pipeline import _equalized

    image = synthetic_xray(CANONICAL_SIZE, seed=5)
    dark = (image.astype(np.float32) * 0.4)[np.newaxis, ..., np.newaxis]  # a film crowded into 0..102
    equalized = _equalized(tf.constant(dark)).numpy()
    assert equalized.max() == pytest.approx(255.0)
    # the cumulative share of pixels up to each level approaches the level's share of 0..255
    levels = np.sort(equalized.ravel())
    quantiles = levels[(np.array([0.25, 0.5, 0.75]) * levels.size).astype(int)]
    np.testing.assert_allclose(quantiles, [0.25 * 255, 0.5 * 255, 0.75 * 255], atol=20)
    order = np.argsort(dark.ravel(), kind="stable")
    assert np.all(np.diff(equalized.ravel()[order]) >= 0)  # monotone: the order of intensities is kept


def test_local_contrast_is_opencv_clahe_per_image_and_needs_a_clip_limit_above_one():
    from pneumo_core.training.pipeline import _local_contrast

    images = np.stack([synthetic_xray(CANONICAL_SIZE, seed=i) for i in range(2)])
    enhanced = _local_contrast(tf.constant(images[..., np.newaxis], tf.float32), tf.constant([1.5, 4.0])).numpy()
    for image, clip, out in zip(images, (1.5, 4.0), enhanced[..., 0]):
        np.testing.assert_array_equal(out, cv2.createCLAHE(clip, (8, 8)).apply(image))
    # a higher clip limit enhances local contrast more: a larger spread of each tile's grey levels
    assert np.std(enhanced[1] - cv2.blur(enhanced[1], (25, 25))) > np.std(
        images[1].astype(np.float32) - cv2.blur(images[1].astype(np.float32), (25, 25))
    )
    with pytest.raises(ValueError, match="CLAHE clip limit above 1"):
        Augmentation(local_contrast=0.5)


def test_coarse_blur_is_opencv_gaussian_per_image_and_the_amount_is_at_most_one():
    from pneumo_core.training.pipeline import _coarse_blurred

    images = np.stack([synthetic_xray(CANONICAL_SIZE, seed=i) for i in range(2)]).astype(np.float32)
    blurred = _coarse_blurred(tf.constant(images[..., np.newaxis]), tf.constant([2.0, 16.0])).numpy()[..., 0]
    for image, sigma, out in zip(images, (2.0, 16.0), blurred):
        np.testing.assert_allclose(out, cv2.GaussianBlur(image, (0, 0), sigma), atol=1e-4)
    assert np.std(np.diff(blurred[1], axis=1)) < np.std(np.diff(blurred[0], axis=1)) < np.std(np.diff(images[0], axis=1))
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="unsharp-mask amount in 0..1"):
            Augmentation(coarse_sharpness=bad)


def test_spectrum_match_moves_each_films_amplitude_per_band_towards_the_mirrored_films_with_a_zero_phase_filter():
    from pneumo_core.training.pipeline import _radial_bands, _spectrum_matched

    sharp = synthetic_xray(CANONICAL_SIZE, seed=0).astype(np.float32)
    smooth = cv2.GaussianBlur(synthetic_xray(CANONICAL_SIZE, seed=1).astype(np.float32), (0, 0), 3.0)
    batch = tf.constant(np.stack([sharp, smooth])[..., np.newaxis])  # each film's mirror is the other
    bands = _radial_bands(CANONICAL_SIZE)
    assert bands[0, 0] == 0 and np.array_equal(np.unique(bands), np.arange(bands.max() + 1))  # the mean, then bands

    def band_means(image: np.ndarray) -> np.ndarray:
        amplitude = np.abs(np.fft.fft2(image))
        return np.array([amplitude[bands == band].mean() for band in range(bands.max() + 1)])

    unchanged = _spectrum_matched(batch, tf.constant([0.0, 0.0])).numpy()[..., 0]
    np.testing.assert_allclose(unchanged, batch.numpy()[..., 0], atol=0.05)  # power 0: the films themselves
    matched = _spectrum_matched(batch, tf.constant([1.0, 0.5])).numpy()[..., 0]
    # power 1: the other film's amplitude in every band; power 0.5: the geometric mean of the two; the mean kept
    np.testing.assert_allclose(band_means(matched[0])[1:], band_means(smooth)[1:], rtol=1e-3)
    np.testing.assert_allclose(band_means(matched[1])[1:], np.sqrt(band_means(sharp) * band_means(smooth))[1:], rtol=1e-3)
    np.testing.assert_allclose(matched.mean(axis=(1, 2)), [sharp.mean(), smooth.mean()], atol=0.01)
    spectrum, source = np.fft.fft2(matched[1]), np.fft.fft2(smooth)  # zero phase: each coefficient keeps its angle
    strong = np.abs(source) > 100.0  # where float32 rounding leaves the angle measurable
    np.testing.assert_allclose(np.angle(spectrum[strong] * np.conj(source[strong])), 0.0, atol=1e-2)
    assert np.std(np.diff(matched[0], axis=1)) < np.std(np.diff(sharp, axis=1))  # the sharp film smoothed
    assert np.std(np.diff(matched[1], axis=1)) > np.std(np.diff(smooth, axis=1))  # the smooth one sharpened
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="spectrum_match is the largest power"):
            Augmentation(spectrum_match=bad)


def test_mixup_blends_films_and_labels_alike_keeping_each_films_own_label_dominant():
    from pneumo_core.training.pipeline import batch_augmenter

    still = Augmentation(rotation_deg=0, shift=0, zoom=0, horizontal_flip=False, brightness=(1.0, 1.0), mixup=0.4)
    images = np.stack([synthetic_xray(CANONICAL_SIZE, seed=i) for i in range(6)]).astype(np.float32)
    labels = np.array([0, 1, 1, 0, 1, 0], np.float32)
    mixed, mixed_labels = batch_augmenter(still, seed=0)(tf.constant(images[..., np.newaxis]), tf.constant(labels))
    mixed, mixed_labels = mixed.numpy()[..., 0], mixed_labels.numpy()
    partner = labels[::-1]
    # the label's weight, recovered where the two labels differ, is the image's weight too
    weight = np.where(labels != partner, np.abs(mixed_labels - partner), 1.0)
    differ = labels != partner
    assert differ.any() and np.all(weight[differ] >= 0.5) and np.all(weight[differ] < 1.0)
    expected = weight[:, None, None] * images + (1 - weight[:, None, None]) * images[::-1]
    np.testing.assert_allclose(mixed[differ], expected[differ], atol=1e-2)
    np.testing.assert_array_equal(np.round(mixed_labels), labels)  # Keras's class weight reads the film's own class
