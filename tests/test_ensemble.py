"""An ensemble of different architectures is one classifier: the mean of its members' logits, explained on its
concatenated last block exactly as tf-keras-vis explains it."""

import numpy as np
import pytest

from devtools.imaging import synthetic_xray
from devtools.reference_cams import ReferenceExplainer
from pneumo_core import CLASS_NAMES
from pneumo_core.common.preprocess import canonicalize
from pneumo_core.modeling.graphs import KerasNetwork
from pneumo_core.serving.cams import METHODS
from pneumo_core.serving.predictor import Predictor

from .test_explain import TOLERANCE


@pytest.fixture(scope="module")
def films():
    return np.stack([canonicalize(synthetic_xray(200, seed=s)) for s in range(3)])


@pytest.fixture(scope="module")
def members():
    import keras

    from pneumo_core.modeling.architectures import build_classifier

    keras.utils.set_random_seed(5)
    return [build_classifier(64, None, head_units=8, architecture=name) for name in ("densenet121", "efficientnetv2b0")]


@pytest.fixture(scope="module")
def ensemble(members, films):
    from pneumo_core.modeling.architectures import LOGIT_LAYER
    from pneumo_core.modeling.ensemble import build_ensemble

    model = build_ensemble(members)
    logits = np.sort(KerasNetwork(model, 64).forward(films)[0])  # centre the logits so both classes are answered
    layer = model.get_layer(LOGIT_LAYER)
    layer.bias.assign(layer.bias.numpy() - (logits[0] + logits[1]) / 2)
    for member in members:
        member_layer = member.get_layer(LOGIT_LAYER)
        member_layer.bias.assign(member_layer.bias.numpy() - (logits[0] + logits[1]) / 2)
    return model


def test_the_ensemble_logit_is_the_mean_of_its_members(members, ensemble, films):
    from pneumo_core.modeling.architectures import ENSEMBLE, architecture_of

    logits, features, blocks = KerasNetwork(ensemble, 64).forward_with_blocks(films)
    member_logits = np.stack([KerasNetwork(member, 64).forward(films)[0] for member in members])
    np.testing.assert_allclose(logits, member_logits.mean(axis=0), atol=1e-5)
    assert architecture_of(ensemble) == ENSEMBLE
    assert features.shape == (3, 5 * (1024 + 1280)) and blocks[0].activations.shape == (2, 2, 1024 + 1280)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_on_the_ensemble_equals_tf_keras_vis(ensemble, films, method):
    predictor = Predictor(KerasNetwork(ensemble, 64, batch_size=2), {"input_size": 64, "threshold": 0.5})
    logits = predictor.forward(films)[0]
    classes = [CLASS_NAMES[int(z >= 0)] for z in logits]
    served = predictor.explain(films, classes, method)
    reference = ReferenceExplainer(ensemble, 64).explain(films, classes, method)
    assert np.ptp(reference) > 0.5
    np.testing.assert_allclose(served, reference, atol=TOLERANCE[method])


def test_the_ensemble_survives_saving_and_loading(ensemble, films, tmp_path):
    import keras

    path = tmp_path / "ensemble.keras"
    ensemble.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    np.testing.assert_allclose(
        KerasNetwork(loaded, 64).forward(films)[0], KerasNetwork(ensemble, 64).forward(films)[0], atol=1e-6
    )


def test_members_that_cannot_be_combined_are_refused(members):
    from pneumo_core.modeling.architectures import build_classifier
    from pneumo_core.modeling.ensemble import build_ensemble

    with pytest.raises(ValueError, match="at least two"):
        build_ensemble(members[:1])
    with pytest.raises(ValueError, match="one input size"):
        build_ensemble([members[0], build_classifier(96, None, head_units=8)])
    with pytest.raises(ValueError, match="same depth"):
        build_ensemble([members[0], build_classifier(64, None, head_units=0)])
