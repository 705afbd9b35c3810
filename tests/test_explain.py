"""Grad-CAM: the serving graph's closed form equals tf-keras-vis; every offered method gives a normalised map; overlays."""

import numpy as np
import pytest

from pneumo_core.explain import TF_KERAS_VIS_METHODS, Explainer
from pneumo_core.model import LAST_CONV_LAYER, to_model_input
from pneumo_core.network import KerasNetwork
from pneumo_core.preprocess import canonicalize
from pneumo_core.saliency import COLORMAPS, overlay

from .imaging import synthetic_xray


@pytest.fixture(scope="module")
def explainer(tiny_predictor):
    return Explainer(tiny_predictor.network.model, tiny_predictor.input_size)


@pytest.fixture(scope="module")
def hidden_layer_model(films):
    """A tiny classifier whose head has a ReLU layer (as the served model's has), so the closed form meets its mask;
    its logit bias is moved so the films get both labels (each class's map is explained)."""
    import keras

    from pneumo_core.model import LOGIT_LAYER, build_classifier

    keras.utils.set_random_seed(3)
    model = build_classifier(64, None, dropout=0.3, head_units=8)
    logits = np.sort(KerasNetwork(model, 64).forward(films)[0])
    logit_layer = model.get_layer(LOGIT_LAYER)
    logit_layer.bias.assign(logit_layer.bias.numpy() - (logits[0] + logits[1]) / 2)
    return model


@pytest.fixture(scope="module")
def films():
    return np.stack([canonicalize(synthetic_xray(200, seed=s)) for s in range(3)])


@pytest.mark.parametrize("head", ["logit only", "ReLU hidden layer"])
def test_serving_graph_gradcam_equals_tf_keras_vis(films, tiny_predictor, hidden_layer_model, head):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore

    model = tiny_predictor.network.model if head == "logit only" else hidden_layer_model
    logits, _, fast = KerasNetwork(model, 64).forward_with_gradcam(films)
    plain = model.predict(to_model_input(films, 64), verbose=0)[:, 0]
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), plain, atol=1e-5)  # the closed-form head is the model's head
    positive = list(logits >= 0)
    assert head == "logit only" or len(set(positive)) == 2
    reference = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)(
        BinaryScore(positive),
        to_model_input(films, 64),
        penultimate_layer=LAST_CONV_LAYER,
        seek_penultimate_conv_layer=False,
    )
    assert fast.shape == (len(films), 64, 64)
    np.testing.assert_allclose(fast, np.asarray(reference), atol=1e-4)


def test_closed_form_refuses_a_head_it_cannot_differentiate():
    import keras

    from pneumo_core.model import LOGIT_LAYER

    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(keras.layers.Activation("relu", name=LAST_CONV_LAYER)(inputs))
    hidden = keras.layers.Dense(4, activation="tanh", name="head_dense")(pooled)
    model = keras.Model(inputs, keras.layers.Dense(1, name=LOGIT_LAYER)(hidden))
    with pytest.raises(ValueError, match="ReLU or linear"):
        KerasNetwork(model, 32)


@pytest.mark.parametrize("method", TF_KERAS_VIS_METHODS)
def test_every_method_gives_normalised_maps(explainer, films, method):
    maps = explainer.explain(films[:1], method, [True])
    assert maps.shape == (1, 64, 64) and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6


@pytest.mark.parametrize("colormap", list(COLORMAPS))
def test_overlay_blends_at_the_image_size(films, colormap):
    cam = np.zeros((7, 7))
    cam[3, 3] = 1.0
    blended = overlay(films[0], cam, 0.5, colormap)
    assert blended.shape == (224, 224, 3) and blended.dtype == np.uint8
    np.testing.assert_array_equal(overlay(films[0], cam, 0.0, colormap)[..., 0], films[0])  # opacity 0: the film itself


def test_answer_and_gradcam_from_one_pass_equal_the_separate_paths(films, tiny_predictor):
    from .imaging import encode

    payloads = [(f"film{i}.png", encode(film)) for i, film in enumerate(films)]
    plain = tiny_predictor.classify(payloads)
    explained = tiny_predictor.classify(payloads, with_gradcam=True)
    np.testing.assert_allclose(
        [c.prediction.probability for c in explained], [c.prediction.probability for c in plain], atol=1e-5
    )
    assert [c.warnings for c in explained] == [c.warnings for c in plain]
    from pneumo_core.explain import TF_KERAS_VIS_METHODS, Explainer

    # the maps that come with the answers are tf-keras-vis's Grad-CAM of each film's predicted class
    reference = Explainer(tiny_predictor.network.model, tiny_predictor.input_size).explain(
        np.stack([c.canonical for c in plain]), TF_KERAS_VIS_METHODS[0], [c.prediction.label == "PNEUMONIA" for c in plain]
    )
    np.testing.assert_allclose(np.stack([c.gradcam for c in explained]), reference, atol=1e-4)
    assert all(c.gradcam is None for c in plain)


def test_sanity_check_maps_change_when_weights_are_reinitialised(tiny_predictor, films):
    from pneumo_core.sanity import STAGES, cascading_randomization

    model = tiny_predictor.network.model
    before = [w.copy() for w in model.get_weights()]
    results = cascading_randomization(model, tiny_predictor.input_size, films, STAGES[:1])
    assert [r.layers_randomised for r in results] == [0, 1]  # the tiny model's head is one Dense layer
    assert results[0].spearman_mean == 1.0
    assert all(r.abs_spearman_mean < 0.9 for r in results[1:])  # the maps depend on the weights they explain
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # trained model untouched


@pytest.mark.parametrize("source,target", [(7, 224), (2, 64), (1, 5), (5, 5)])
def test_corner_aligned_upsampling_is_scipy_zoom_order_1(source, target):
    from scipy.ndimage import zoom

    from pneumo_core.network import corner_aligned_upsampling

    cam = np.random.default_rng(source).random((source, source)).astype(np.float32)
    matrix = corner_aligned_upsampling(source, target)
    np.testing.assert_allclose(matrix @ cam @ matrix.T, zoom(cam, target / source, order=1, grid_mode=False), atol=1e-5)
