"""The compiled, batched serving path gives what the plain Keras way gives, image by image."""

import numpy as np
import pytest

from pneumo_core.model import to_model_input
from pneumo_core.preprocess import canonicalize

from .imaging import synthetic_xray


def test_batched_compiled_forward_equals_per_image_model_predict(tiny_predictor, monkeypatch):
    films = np.stack([canonicalize(synthetic_xray(180 + 10 * s, seed=s)) for s in range(5)])
    monkeypatch.setattr(tiny_predictor, "batch_size", 2)  # crosses batch boundaries, with a short last batch
    fast = [p.probability for p in tiny_predictor.predict_canonical(films)]
    plain = [float(tiny_predictor.network.model.predict(to_model_input(film[None], tiny_predictor.input_size), verbose=0)[0, 0]) for film in films]
    assert tiny_predictor.temperature == 1.0
    assert fast == pytest.approx(plain, abs=1e-5)


def test_pipelined_classify_keeps_order_and_answers_across_batches(tiny_predictor, monkeypatch):
    from .imaging import encode

    payloads = [(f"film{s}.png", encode(synthetic_xray(150 + 10 * s, seed=s))) for s in range(5)]
    payloads.insert(2, ("broken.png", b"\x89PNG broken"))
    whole = tiny_predictor.classify(payloads)
    monkeypatch.setattr(tiny_predictor, "batch_size", 2)  # three batches, the next decoded while one runs
    pipelined = tiny_predictor.classify(payloads)
    assert [c.name for c in pipelined] == [name for name, _ in payloads]
    assert pipelined[2].error and pipelined[2].prediction is None
    assert [c.prediction.probability for c in pipelined if c.prediction] == pytest.approx(
        [c.prediction.probability for c in whole if c.prediction], abs=1e-6)
    assert tiny_predictor.classify([]) == []
