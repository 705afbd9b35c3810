"""The committed model: it loads safely, matches its metadata, and answers on the example X-rays."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pneumo_core.cli.main import main
from pneumo_core.modeling.architectures import to_model_input
from pneumo_core.serving.predictor import Predictor
from pneumo_core.store.model_dir import load_model_dir

from .conftest import PROJECT_ROOT, SERVED_MODEL

pytestmark = pytest.mark.skipif(not (SERVED_MODEL / "metadata.json").is_file(), reason="no served model committed")


def test_served_model_metadata_is_complete():
    _, metadata = load_model_dir(SERVED_MODEL)
    assert metadata["class_names"] == ["NORMAL", "PNEUMONIA"] and metadata["input_size"] == 224
    assert metadata["recipe"] in ("scratch", "transfer") and metadata["base_weights"]
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


@pytest.fixture(scope="module")
def example_films():
    from pneumo_core.common.preprocess import canonicalize
    from pneumo_core.serving.decode import decode_image

    return np.stack(
        [canonicalize(decode_image(path.read_bytes())) for path in sorted((PROJECT_ROOT / "examples").glob("*.jpeg"))]
    )


def _outputs(network, films: np.ndarray) -> dict[str, np.ndarray]:
    logits, pooled, blocks = network.forward_with_blocks(films)
    masks = np.random.default_rng(0).random((5, 224, 224)).astype(np.float32)
    return {
        "logit": logits,
        "pooled": pooled,
        "activations": np.stack([b.activations for b in blocks]),
        "gradient": np.stack([b.gradient for b in blocks]),
        "masked logits": network.masked_logits(films[0], masks),
    }


def test_tflite_copy_answers_and_explains_as_tensorflow_does(example_films):
    """The served TFLite graphs (LiteRT, XNNPACK) against the same graphs compiled by TensorFlow, on real X-rays;
    every method's maps for both classes."""
    from pneumo_core.serving.cams import METHODS

    lite, compiled = Predictor.load(SERVED_MODEL, runtime="tflite"), Predictor.load(SERVED_MODEL, runtime="tensorflow")
    assert (lite.runtime, compiled.runtime) == ("tflite", "tensorflow")
    lite_out, compiled_out = _outputs(lite.network, example_films), _outputs(compiled.network, example_films)
    for name in lite_out:
        assert lite_out[name].shape == compiled_out[name].shape, name
        np.testing.assert_allclose(lite_out[name], compiled_out[name], atol=1e-4, err_msg=name)
    plain = compiled.network.model.predict(to_model_input(example_films, 224), verbose=0)[:, 0]  # the Keras model itself
    np.testing.assert_allclose(
        [p.probability for p in lite._predictions(lite_out["logit"])],
        [p.probability for p in compiled._predictions(np.log(plain / (1 - plain)))],
        atol=1e-4,
    )
    for method in METHODS:
        for explained in ("NORMAL", "PNEUMONIA"):
            classes = [explained] * len(example_films)
            np.testing.assert_allclose(
                lite.explain(example_films, classes, method),
                compiled.explain(example_films, classes, method),
                atol=1e-3,
                err_msg=f"{method} {explained}",
            )


def test_served_maps_equal_tf_keras_vis_on_real_films(example_films):
    """The issue's bar on the served model itself: Grad-CAM and Grad-CAM++ within 1e-4, ScoreCAM within 1e-3."""
    from devtools.reference_cams import ReferenceExplainer
    from pneumo_core.serving.cams import METHODS

    lite = Predictor.load(SERVED_MODEL, runtime="tflite")
    reference = ReferenceExplainer(Predictor.load(SERVED_MODEL, runtime="tensorflow").network.model, 224)
    films = example_films[[0, 2]]  # a normal and a pneumonia film
    for method in METHODS:
        classes = ["PNEUMONIA", "NORMAL"]
        np.testing.assert_allclose(
            lite.explain(films, classes, method),
            reference.explain(films, classes, method),
            atol=1e-3 if method == "ScoreCAM" else 1e-4,
            err_msg=method,
        )


def test_one_tflite_interpreter_serves_concurrent_sessions(example_films):
    """Streamlit runs each visitor's script in its own thread; they share one cached predictor."""
    from concurrent.futures import ThreadPoolExecutor

    lite = Predictor.load(SERVED_MODEL)
    alone = _outputs(lite.network, example_films)
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda _: _outputs(lite.network, example_films), range(8)))
    for result in together:
        for name in alone:
            np.testing.assert_array_equal(result[name], alone[name], err_msg=name)


def test_the_app_serving_path_runs_without_tensorflow():
    """Classifying and explaining by every method with the TFLite copy (what the app does) never imports TensorFlow
    or Keras: the app starts fast, and no heat map waits for TensorFlow."""
    example = str(sorted((PROJECT_ROOT / "examples").glob("*.jpeg"))[0])
    script = (
        "import sys; from pathlib import Path; import ui.resources; from pneumo_core.serving.predictor import Predictor; "
        f"p = Predictor.load(Path({str(SERVED_MODEL)!r})); "
        f"case = p.classify([('x', Path({example!r}).read_bytes())], with_maps=True)[0]; "
        "maps = [p.explain(case.canonical[None], ['NORMAL'], m, [case.block]) for m in ('Grad-CAM', 'Grad-CAM++', 'ScoreCAM')]; "
        "assert case.prediction and all(m.shape == (1, 224, 224) for m in maps), case; "
        "print(p.runtime, sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras_vis')))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [Predictor.load(SERVED_MODEL).runtime, "[]"]


def test_served_predictions_reproduce_the_recorded_evaluation(real_data):
    """Predicting internal-test files now gives the probabilities stored at training time (no train/serve skew)."""
    import pandas as pd

    from pneumo_core.common.films import class_root

    recorded = pd.read_csv(SERVED_MODEL / "evaluation" / "test_predictions.csv").iloc[::50]
    # recorded by the Keras model at the validation calibration; the int8 copy is held to float32 in test_quantize
    predictor = Predictor.load(SERVED_MODEL, runtime="tflite", operating_point="validation")
    root = class_root(real_data)
    cases = predictor.classify([(f, (root / f).read_bytes()) for f in recorded["file"]])
    for case, expected in zip(cases, recorded["probability"]):
        assert case.prediction.probability == pytest.approx(expected, abs=1e-4)


def test_committed_json_under_models_holds_no_machine_paths():
    """Metadata, profiles and results travel with the repository: no absolute path of the machine that made them."""
    found = []

    def walk(value, where):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")
        elif isinstance(value, str) and (value.startswith("/") or value[1:3] == ":\\"):
            found.append(f"{where} = {value}")

    for path in sorted((PROJECT_ROOT / "models").rglob("*.json")):
        walk(json.loads(path.read_text()), str(path.relative_to(PROJECT_ROOT)))
    assert not found


def test_the_active_site_profile_is_what_predict_gives_on_its_films(capsys):
    """The committed profile's metrics are exactly the counts predict (no options, as the app answers) gives on the
    site sample it was fitted on."""
    from pneumo_core.store.profiles import active_profile

    profile = active_profile(SERVED_MODEL)
    site = PROJECT_ROOT.parent / "shared" / "data" / "chest_xray" / "site_sample"
    if profile is None or not site.is_dir():
        pytest.skip("no active site profile, or the site sample is not available")
    main(["predict", str(site)])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == profile.n and {r["operating_point"] for r in records} == {profile.operating_point}
    truth = np.array(["/PNEUMONIA/" in r["file"] for r in records])
    called = np.array([r["label"] == "PNEUMONIA" for r in records])
    counts = {"tp": called & truth, "fp": called & ~truth, "tn": ~called & ~truth, "fn": ~called & truth}
    assert {key: int(mask.sum()) for key, mask in counts.items()} == {key: profile.metrics[key] for key in counts}
    decisions = [r["decision"] for r in records]
    assert [decisions.count(name) for name in ("NORMAL", "REFER", "PNEUMONIA")] == [
        profile.referral["normal"],
        profile.referral["refer"],
        profile.referral["pneumonia"],
    ]
