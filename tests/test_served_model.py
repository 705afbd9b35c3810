"""The committed model: it loads safely, matches its metadata, and answers on the example X-rays."""

import json

import pytest

from pneumo_core.cli import main
from pneumo_core.predict import Predictor
from pneumo_core.registry import load_model_dir

from .conftest import PROJECT_ROOT, SERVED_MODEL

pytestmark = pytest.mark.skipif(not (SERVED_MODEL / "metadata.json").is_file(), reason="no served model committed")


def test_served_model_metadata_is_complete():
    _, metadata = load_model_dir(SERVED_MODEL)
    assert metadata["class_names"] == ["NORMAL", "PNEUMONIA"] and metadata["input_size"] == 224
    assert metadata["base_weights"].startswith("none") and metadata["recipe"] == "scratch"
    assert 0 < metadata["threshold"] < 1 and metadata["temperature"] > 0
    for split in ("val", "test"):
        assert set(metadata["confidence_intervals"][split]) >= {"accuracy", "sensitivity", "specificity", "roc_auc"}
    assert (SERVED_MODEL / "ood.npz").is_file() and (SERVED_MODEL / "evaluation" / "test_predictions.csv").is_file()


def test_examples_are_classified_as_their_file_names_say(capsys):
    """The four examples are internal-test images (never trained or tuned on); their names carry the truth."""
    code = main(["predict", "--model", str(SERVED_MODEL), str(PROJECT_ROOT / "examples")])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(records) == 4
    for record in records:
        truth = "PNEUMONIA" if "pneumonia_" in record["file"] else "NORMAL"
        assert record["label"] == truth, record
        assert "warnings" not in record  # real chest X-rays do not trip the out-of-distribution checks


def test_served_predictions_reproduce_the_recorded_evaluation(real_data):
    """Predicting internal-test files now gives the probabilities stored at training time (no train/serve skew)."""
    import pandas as pd

    from pneumo_core.data import class_root

    recorded = pd.read_csv(SERVED_MODEL / "evaluation" / "test_predictions.csv").iloc[::50]
    predictor = Predictor.load(SERVED_MODEL)
    root = class_root(real_data)
    cases = predictor.classify([(f, (root / f).read_bytes()) for f in recorded["file"]])
    for case, expected in zip(cases, recorded["probability"]):
        assert case.prediction.probability == pytest.approx(expected, abs=1e-4)
