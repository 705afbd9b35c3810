"""The compiled, batched serving path gives what the plain Keras way gives, image by image."""

import numpy as np
import pytest

from devtools.imaging import synthetic_xray
from pneumo_core.common.preprocess import canonicalize
from pneumo_core.modeling.architectures import to_model_input


def test_batched_compiled_forward_equals_per_image_model_predict(tiny_predictor, monkeypatch):
    films = np.stack([canonicalize(synthetic_xray(180 + 10 * s, seed=s)) for s in range(5)])
    calls = []
    forward = tiny_predictor.network._forward
    monkeypatch.setattr(tiny_predictor.network, "batch_size", 2)  # crosses batch boundaries, with a short last batch
    monkeypatch.setattr(tiny_predictor.network, "_forward", lambda batch: calls.append(len(batch)) or forward(batch))
    fast = [p.probability for p in tiny_predictor.predict_canonical(films)]
    assert calls == [2, 2, 1]  # the network really ran three batches
    plain = [
        float(tiny_predictor.network.model.predict(to_model_input(film[None], tiny_predictor.input_size), verbose=0)[0, 0])
        for film in films
    ]
    assert tiny_predictor.temperature == 1.0
    assert fast == pytest.approx(plain, abs=1e-5)


def test_pipelined_classify_keeps_order_and_answers_across_batches(tiny_predictor, monkeypatch):
    from devtools.imaging import encode

    payloads = [(f"film{s}.png", encode(synthetic_xray(150 + 10 * s, seed=s))) for s in range(5)]
    payloads.insert(2, ("broken.png", b"\x89PNG broken"))
    whole = tiny_predictor.classify(payloads)
    monkeypatch.setattr(tiny_predictor, "batch_size", 2)  # three batches, the next decoded while one runs
    pipelined = tiny_predictor.classify(payloads)
    assert [c.name for c in pipelined] == [name for name, _ in payloads]
    assert pipelined[2].error and pipelined[2].prediction is None
    assert [c.prediction.probability for c in pipelined if c.prediction] == pytest.approx(
        [c.prediction.probability for c in whole if c.prediction], abs=1e-6
    )
    assert tiny_predictor.classify([]) == []


@pytest.mark.parametrize("threshold", [0.082, 0.5, 0.9])
def test_the_default_referral_band_is_symmetric_in_log_odds_around_the_threshold(threshold):
    from pneumo_core.common.logits import log_odds
    from pneumo_core.serving.answers import DEFAULT_REFERRAL_LOG_ODDS, Prediction

    low, high = Prediction(0.5, threshold, 0.0).band
    assert low < threshold < high
    assert log_odds(high) - log_odds(threshold) == pytest.approx(DEFAULT_REFERRAL_LOG_ODDS)
    assert log_odds(threshold) - log_odds(low) == pytest.approx(DEFAULT_REFERRAL_LOG_ODDS)
    assert Prediction(threshold, threshold, 0.0).decision == "REFER"
    assert (
        Prediction(low / 2, threshold, 0.0).decision == "NORMAL"
        and Prediction((1 + high) / 2, threshold, 0.0).decision == "PNEUMONIA"
    )


def test_a_confident_normal_call_is_not_referred_at_a_low_threshold():
    """At a low threshold (0.082) a film with P = 0.003 is a clear NORMAL, not referred."""
    from pneumo_core.serving.answers import Prediction

    assert Prediction(0.0031, 0.0816, -5.8).label == "NORMAL" == Prediction(0.0031, 0.0816, -5.8).decision


def test_a_model_trained_on_equalised_films_is_served_them(tiny_model_dir, tmp_path):
    """Metadata saying ``intensity_mode: equalize`` makes every network ``Predictor.load`` builds equalise first:
    its logits, Grad-CAM blocks and ScoreCAM logits are the bare network's on the equalised films."""
    from pneumo_core.common.preprocess import EQUALIZE, model_view, preprocessing_spec
    from pneumo_core.modeling.graphs import KerasNetwork
    from pneumo_core.modeling.saving import save_model_dir
    from pneumo_core.serving.predictor import Predictor
    from pneumo_core.store.model_dir import load_model_dir

    model, metadata = load_model_dir(tiny_model_dir)
    equalizing = save_model_dir(model, tmp_path / "equalize", {**metadata, "preprocessing": preprocessing_spec(EQUALIZE)})
    films = np.stack([canonicalize(synthetic_xray(200, seed=s)) for s in range(3)])
    viewed, bare = model_view(films, EQUALIZE), KerasNetwork(model, 64)
    served = Predictor.load(equalizing, runtime="tensorflow").network
    np.testing.assert_allclose(served.forward(films)[0], bare.forward(viewed)[0], atol=1e-6)
    assert np.abs(served.forward(films)[0] - bare.forward(films)[0]).max() > 1e-4  # the view matters to this model
    np.testing.assert_allclose(served.forward_with_blocks(films)[2][1].gradient, bare.forward_with_blocks(viewed)[2][1].gradient)
    masks = np.random.default_rng(0).random((4, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(served.masked_logits(films[0], masks), bare.masked_logits(viewed[0], masks), atol=1e-6)
    assert served.runtime == "tensorflow"
    from pneumo_core.store.model_dir import ModelLoadError

    future = save_model_dir(model, tmp_path / "future", {**metadata, "preprocessing": {"intensity_mode": "clahe"}})
    with pytest.raises(ModelLoadError, match="Unknown intensity mode 'clahe'.*Update pneumo to serve this model"):
        Predictor.load(future, runtime="tensorflow")


def test_the_answer_key_changes_with_everything_that_changes_an_answer(tiny_model_dir):
    """Kept answers are keyed on it: a re-calibration that keeps the threshold or a new band must not leave stale
    answers in an open session; the same model loaded again keeps its key."""
    from pneumo_core.serving.predictor import Predictor

    predictor = Predictor.load(tiny_model_dir)
    original = predictor.answer_key
    assert Predictor.load(tiny_model_dir).answer_key == original and predictor.runtime in original
    predictor.temperature *= 2  # a new temperature, the same threshold
    with_temperature = predictor.answer_key
    predictor.fitted_band = (0.2, 0.9)  # a new band
    assert len({original, with_temperature, predictor.answer_key}) == 3
