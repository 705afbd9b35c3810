"""Heat maps: every method's closed form on the serving graph equals tf-keras-vis, for either class; overlays."""

import numpy as np
import pytest

from devtools.imaging import encode, synthetic_xray
from devtools.reference_cams import ReferenceExplainer, two_class_equivalent
from pneumo_core import CLASS_NAMES
from pneumo_core.common.preprocess import canonicalize
from pneumo_core.modeling.architectures import LAST_CONV_LAYER, to_model_input
from pneumo_core.modeling.graphs import KerasNetwork
from pneumo_core.serving.cams import GRADCAM, METHODS, SCORECAM, corner_aligned_upsampling
from pneumo_core.serving.overlay import COLORMAPS, overlay
from pneumo_core.serving.predictor import Predictor

TOLERANCE = {"Grad-CAM": 1e-4, "Grad-CAM++": 1e-4, "ScoreCAM": 1e-3}
"""What the issue asks of each method against tf-keras-vis."""


@pytest.fixture(scope="module")
def hidden_layer_model(films):
    """A tiny classifier whose head has a ReLU layer (as the served model's has), so the closed form meets its mask;
    its logit bias is moved so the films get both labels (each class's map is explained)."""
    import keras

    from pneumo_core.modeling.architectures import LOGIT_LAYER, build_classifier

    keras.utils.set_random_seed(3)
    model = build_classifier(64, None, dropout=0.3, head_units=8)
    logits = np.sort(KerasNetwork(model, 64).forward(films)[0])
    logit_layer = model.get_layer(LOGIT_LAYER)
    logit_layer.bias.assign(logit_layer.bias.numpy() - (logits[0] + logits[1]) / 2)
    return model


@pytest.fixture(scope="module")
def films():
    return np.stack([canonicalize(synthetic_xray(200, seed=s)) for s in range(3)])


@pytest.fixture(scope="module")
def hidden_predictor(hidden_layer_model):
    return Predictor(KerasNetwork(hidden_layer_model, 64, batch_size=2), {"input_size": 64, "threshold": 0.5})


def test_the_serving_graph_is_the_model(films, hidden_layer_model):
    logits, _, blocks = KerasNetwork(hidden_layer_model, 64).forward_with_blocks(films)
    plain = hidden_layer_model.predict(to_model_input(films, 64), verbose=0)[:, 0]
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), plain, atol=1e-5)  # the closed-form head is the model's head
    assert len({z >= 0 for z in logits}) == 2  # both classes are answered, so both signs are exercised
    assert blocks[0].activations.shape == (2, 2, 1024) and blocks[0].gradient.shape == (1024,)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("explained", ["answer", "other class"])
def test_every_method_on_the_serving_graph_equals_tf_keras_vis(films, hidden_layer_model, hidden_predictor, method, explained):
    logits = hidden_predictor.forward(films)[0]
    classes = [CLASS_NAMES[int((z >= 0) == (explained == "answer"))] for z in logits]
    served = hidden_predictor.explain(films, classes, method)
    reference = ReferenceExplainer(hidden_layer_model, 64).explain(films, classes, method)
    assert served.shape == (len(films), 64, 64) and served.min() >= 0 and served.max() <= 1 + 1e-6
    assert np.ptp(reference) > 0.5  # a map with content, not two flat maps agreeing
    np.testing.assert_allclose(served, reference, atol=TOLERANCE[method])


def test_scorecam_weights_are_the_class_probability_of_each_masked_input(films, hidden_layer_model):
    """tf-keras-vis on the one-unit head takes a softmax over one value: every weight 1, masked passes ignored.
    Its two-class equivalent is the same model (same probabilities), and its ScoreCAM does use them."""
    plain = hidden_layer_model.predict(to_model_input(films, 64), verbose=0)[:, 0]
    equivalent = two_class_equivalent(hidden_layer_model).predict(to_model_input(films, 64), verbose=0)
    np.testing.assert_allclose(equivalent[:, 1], plain, atol=1e-6)
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore

    one_unit = Scorecam(hidden_layer_model, model_modifier=ReplaceToLinear(), clone=True)
    options = {"penultimate_layer": LAST_CONV_LAYER, "seek_penultimate_conv_layer": False, "max_N": 4}
    pneumonia, normal = (one_unit(BinaryScore([flag]), to_model_input(films[:1], 64), **options) for flag in (True, False))
    assert np.ptp(pneumonia) > 0 and np.ptp(normal) == 0  # NORMAL's weights are all -1: a flat, empty map


def test_a_film_answered_with_its_maps_needs_no_second_pass(films, hidden_predictor):
    payloads = [(f"film{i}.png", encode(film)) for i, film in enumerate(films)]
    plain = hidden_predictor.classify(payloads)
    answered = hidden_predictor.classify(payloads, with_maps=True)
    np.testing.assert_allclose([c.prediction.logit for c in answered], [c.prediction.logit for c in plain], atol=1e-5)
    assert all(c.block is None for c in plain)
    canonical = np.stack([c.canonical for c in answered])
    classes = [c.prediction.label for c in answered]
    for method in METHODS:
        np.testing.assert_allclose(
            hidden_predictor.explain(canonical, classes, method, [c.block for c in answered]),
            hidden_predictor.explain(canonical, classes, method),
            atol=1e-6,
        )


def test_scorecam_masked_passes_cross_batch_boundaries(films, hidden_layer_model):
    """32 masks through a network whose batch is 5: seven calls, the same logits as one big call."""
    small, large = KerasNetwork(hidden_layer_model, 64, batch_size=5), KerasNetwork(hidden_layer_model, 64, batch_size=64)
    masks = np.random.default_rng(0).random((32, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(small.masked_logits(films[0], masks), large.masked_logits(films[0], masks), atol=1e-5)
    reference = hidden_layer_model.predict(to_model_input(films[:1], 64) * masks[..., None], verbose=0)[:, 0]
    np.testing.assert_allclose(1 / (1 + np.exp(-small.masked_logits(films[0], masks))), reference, atol=1e-5)


def test_explain_refuses_unknown_methods_and_classes(films, hidden_predictor):
    with pytest.raises(ValueError, match="Unknown method"):
        hidden_predictor.explain(films[:1], ["NORMAL"], "LIME")
    with pytest.raises(ValueError, match="Unknown class"):
        hidden_predictor.explain(films[:1], ["normal"], GRADCAM)
    with pytest.raises(ValueError, match="1 images but 2 classes"):
        hidden_predictor.explain(films[:1], ["NORMAL", "NORMAL"], SCORECAM)


def test_closed_form_refuses_a_head_it_cannot_differentiate():
    import keras

    from pneumo_core.modeling.architectures import LOGIT_LAYER

    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(keras.layers.Activation("relu", name=LAST_CONV_LAYER)(inputs))
    hidden = keras.layers.Dense(4, activation="tanh", name="head_dense")(pooled)
    model = keras.Model(inputs, keras.layers.Dense(1, name=LOGIT_LAYER)(hidden))
    with pytest.raises(ValueError, match="ReLU or linear"):
        KerasNetwork(model, 32)


@pytest.mark.parametrize("colormap", list(COLORMAPS))
def test_overlay_blends_at_the_image_size(films, colormap):
    cam = np.zeros((7, 7))
    cam[3, 3] = 1.0
    blended = overlay(films[0], cam, 0.5, colormap)
    assert blended.shape == (224, 224, 3) and blended.dtype == np.uint8
    np.testing.assert_array_equal(overlay(films[0], cam, 0.0, colormap)[..., 0], films[0])  # opacity 0: the film itself


def test_sanity_check_maps_change_when_weights_are_reinitialised(tiny_predictor, films):
    from pneumo_core.evaluation.saliency_sanity import STAGES, cascading_randomization

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

    cam = np.random.default_rng(source).random((source, source)).astype(np.float32)
    matrix = corner_aligned_upsampling(source, target)
    np.testing.assert_allclose(matrix @ cam @ matrix.T, zoom(cam, target / source, order=1, grid_mode=False), atol=1e-5)
