"""Grad-CAM: the compiled fast path equals tf-keras-vis; every offered method gives a normalised map; overlays."""

import numpy as np
import pytest

from pneumo_core.explain import COLORMAPS, METHODS, Explainer, overlay
from pneumo_core.model import LAST_CONV_LAYER
from pneumo_core.preprocess import canonicalize, to_model_input

from .imaging import synthetic_xray


@pytest.fixture(scope="module")
def explainer(tiny_predictor):
    return Explainer(tiny_predictor.model, tiny_predictor.input_size)


@pytest.fixture(scope="module")
def films():
    return np.stack([canonicalize(synthetic_xray(200, seed=s)) for s in range(3)])


def test_compiled_gradcam_equals_tf_keras_vis(explainer, films, tiny_predictor):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore

    positive = [p.label == "PNEUMONIA" for p in tiny_predictor.predict_canonical(films)]
    reference = Gradcam(tiny_predictor.model, model_modifier=ReplaceToLinear(), clone=True)(
        BinaryScore(positive), to_model_input(films, explainer.input_size), penultimate_layer=LAST_CONV_LAYER,
        seek_penultimate_conv_layer=False,
    )
    fast = explainer.gradcam(films)
    assert fast.shape == (3, 64, 64)
    np.testing.assert_allclose(fast, np.asarray(reference), atol=1e-4)


@pytest.mark.parametrize("method", METHODS)
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


def test_answer_and_gradcam_from_one_pass_equal_the_separate_paths(explainer, films, tiny_predictor):
    from .imaging import encode

    payloads = [(f"film{i}.png", encode(film)) for i, film in enumerate(films)]
    plain = tiny_predictor.classify(payloads)
    explained = tiny_predictor.classify(payloads, explainer)
    np.testing.assert_allclose([c.prediction.probability for c in explained], [c.prediction.probability for c in plain], atol=1e-5)
    assert [c.warnings for c in explained] == [c.warnings for c in plain]
    np.testing.assert_allclose(np.stack([c.gradcam for c in explained]), explainer.gradcam(np.stack([c.canonical for c in plain])), atol=1e-5)
    assert all(c.gradcam is None for c in plain)


def test_sanity_check_maps_change_when_weights_are_reinitialised(tiny_predictor, films):
    from pneumo_core.sanity import STAGES, cascading_randomization

    before = [w.copy() for w in tiny_predictor.model.get_weights()]
    results = cascading_randomization(tiny_predictor.model, tiny_predictor.input_size, films, STAGES[:1])
    assert [r.layers_randomised for r in results] == [0, 1]  # the tiny model's head is one Dense layer
    assert results[0].spearman_mean == 1.0
    assert all(r.abs_spearman_mean < 0.9 for r in results[1:])  # the maps depend on the weights they explain
    assert all(np.array_equal(a, b) for a, b in zip(before, tiny_predictor.model.get_weights()))  # trained model untouched
