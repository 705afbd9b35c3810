"""The classifier's structure and the base-weights options, including loading a weights file by path."""

import keras
import numpy as np
import pytest
from keras.applications import DenseNet121

from pneumo_core.jobs.request import ARCHITECTURE_NAMES
from pneumo_core.modeling.architectures import (
    ARCHITECTURES,
    LAST_CONV_LAYER,
    LOGIT_LAYER,
    POOLED_LAYER,
    BaseWeightsError,
    architecture_of,
    build_classifier,
    head_layer_names,
    last_block_layer,
    resolve_base_weights,
)


@pytest.fixture(scope="module")
def base_weights_file(tmp_path_factory):
    """A DenseNet121 base with random weights saved the way a user's local weights file would be."""
    base = DenseNet121(include_top=False, weights=None, input_shape=(64, 64, 3))
    path = tmp_path_factory.mktemp("weights") / "densenet121_notop.weights.h5"
    base.save_weights(path)
    return path, base


def test_classifier_is_flat_with_reachable_conv_layer_and_logit():
    model = build_classifier(64, None, head_units=16)
    names = [layer.name for layer in model.layers]
    assert LAST_CONV_LAYER in names and LOGIT_LAYER in names and "conv5_block16_concat" in names
    assert head_layer_names(model) == ["head_dropout", "head_dense", "head_dropout_2", LOGIT_LAYER, "probability"]
    probabilities = model.predict(np.zeros((2, 64, 64, 3), np.float32), verbose=0)
    assert probabilities.shape == (2, 1) and np.all((probabilities > 0) & (probabilities < 1))


def test_base_weights_load_from_a_file_path(base_weights_file):
    path, base = base_weights_file
    weights, description = resolve_base_weights(str(path))
    assert weights == str(path) and description == f"file:{path.name}"
    model = build_classifier(64, weights, head_units=0)
    for name in ("conv1_conv", "conv5_block16_2_conv", "bn"):
        for loaded, saved in zip(model.get_layer(name).get_weights(), base.get_layer(name).get_weights()):
            np.testing.assert_array_equal(loaded, saved)
    assert sum(np.prod(w.shape) for w in base.weights) == 7_037_504


def test_auto_prefers_a_configured_local_file(base_weights_file, monkeypatch):
    path, _ = base_weights_file
    monkeypatch.setenv("PNEUMO_BASE_WEIGHTS_FILE", str(path))
    assert resolve_base_weights("auto") == (str(path), f"file:{path.name}")


def test_auto_falls_back_to_random_init_when_imagenet_is_unreachable(monkeypatch, tmp_path):
    monkeypatch.delenv("PNEUMO_BASE_WEIGHTS_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no cached Keras weights

    def offline(*args, **kwargs):
        raise BaseWeightsError("ImageNet weights could not be downloaded (offline)")

    monkeypatch.setattr("pneumo_core.modeling.architectures._fetch_imagenet", offline)
    weights, description = resolve_base_weights("auto")
    assert weights is None and "random init" in description
    with pytest.raises(BaseWeightsError, match="could not be downloaded"):
        resolve_base_weights("imagenet")


def test_none_and_missing_file():
    assert resolve_base_weights("none") == (None, "none (random init)")
    with pytest.raises(BaseWeightsError, match="not found"):
        resolve_base_weights("/nonexistent/weights.h5")


@pytest.mark.parametrize("architecture", ARCHITECTURE_NAMES)
def test_every_architecture_builds_with_its_grad_cam_layer_feeding_the_pooling(architecture):
    model = build_classifier(64, None, head_units=0, architecture=architecture)
    assert architecture_of(model) == architecture
    block = model.get_layer(last_block_layer(model)).output
    assert block.shape[1:3] == (2, 2)  # stride 32, like the 7 × 7 grid at 224 px
    pooled = keras.Model(model.inputs, [block, model.get_layer(POOLED_LAYER).output])
    activations, features = pooled.predict(np.random.default_rng(0).uniform(-2, 2, (2, 64, 64, 3)), verbose=0)
    np.testing.assert_allclose(activations.mean(axis=(1, 2)), features, rtol=1e-5, atol=1e-6)


def test_architectures_are_named_in_one_place():
    assert tuple(ARCHITECTURES) == ARCHITECTURE_NAMES
    with pytest.raises(ValueError, match="Unknown architecture"):
        build_classifier(64, None, architecture="vgg16")
