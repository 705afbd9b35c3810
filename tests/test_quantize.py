"""The int8 serving copy: the rule that decides whether it serves, the committed model's check, and the command."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from pneumo_core.cli.main import main
from pneumo_core.evaluation.int8_check import AGREEMENT_RULE, compare
from pneumo_core.evaluation.scoring import FolderScores
from pneumo_core.serving.predictor import Predictor
from pneumo_core.store.model_dir import EVALUATION_DIR, LITE_COPIES, METADATA_FILE, MODEL_FILE, ModelLoadError, file_sha256

from .conftest import PROJECT_ROOT, SERVED_MODEL

INT8_FILE, INT8_KEY = LITE_COPIES["tflite-int8"]


def _scores(logits, labels) -> FolderScores:
    count = len(labels)
    return FolderScores(
        [f"film{i}" for i in range(count)],
        np.asarray(labels),
        np.asarray(logits, np.float32),
        np.zeros(count),
        np.zeros(count, bool),
        np.zeros(count, bool),
        {},
        "digest",
    )


def test_the_rule_counts_flipped_verdicts_and_auc():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 200)
    logits = rng.normal(labels * 3.0 - 1.5, 1.0)
    same = compare(_scores(logits, labels), _scores(logits + 1e-4, labels), 1.0, 0.5)
    assert same.verdict_agreement == 1.0 and abs(same.auc_change) < 1e-3 and same.holds
    flipped = logits.copy()
    near = np.argsort(np.abs(logits))[:3]  # three films near the threshold change sides: 99.25% < 99.5%
    flipped[near] = -flipped[near]
    moved = compare(_scores(logits, labels), _scores(flipped, labels), 1.0, 0.5)
    assert moved.verdict_agreement == pytest.approx(1 - 3 / 400) and moved.verdict_agreement < AGREEMENT_RULE
    assert not moved.holds
    with pytest.raises(ValueError, match="different films"):
        compare(_scores(logits, labels), _scores(logits[:-1], labels[:-1]), 1.0, 0.5)


needs_int8_copy = pytest.mark.skipif(not (SERVED_MODEL / INT8_FILE).is_file(), reason="no int8 copy committed")


@needs_int8_copy
def test_the_served_int8_copy_passed_its_check_and_serves():
    metadata = json.loads((SERVED_MODEL / METADATA_FILE).read_text())
    check = metadata["int8_check"]
    assert metadata[INT8_KEY] == file_sha256(SERVED_MODEL / INT8_FILE)
    assert check["serves"] and {"internal test", "site site_sample"} <= set(check["sets"])
    for values in check["sets"].values():
        assert values["verdict_agreement"] >= AGREEMENT_RULE and abs(values["auc_change"]) <= 0.002
    assert Predictor.load(SERVED_MODEL).runtime == "tflite-int8"


@needs_int8_copy
def test_int8_answers_and_maps_follow_float32_on_real_films():
    """Verdicts equal on the example films, probabilities within 0.02, and every method's maps (either class) within
    0.1 of the float32 copy's and correlated above 0.99 with them (the float32 maps are held to tf-keras-vis)."""
    from pneumo_core.common.preprocess import canonicalize
    from pneumo_core.serving.cams import METHODS
    from pneumo_core.serving.decode import decode_image

    films = np.stack([canonicalize(decode_image(p.read_bytes())) for p in sorted((PROJECT_ROOT / "examples").glob("*.jpeg"))])
    float32, int8 = (Predictor.load(SERVED_MODEL, runtime=runtime) for runtime in ("tflite", "tflite-int8"))
    expected, answered = float32.predict_canonical(films), int8.predict_canonical(films)
    assert [p.label for p in answered] == [p.label for p in expected]
    np.testing.assert_allclose([p.probability for p in answered], [p.probability for p in expected], atol=0.02)
    for method in METHODS:
        for explained in ("NORMAL", "PNEUMONIA"):
            classes = [explained] * len(films)
            for ours, reference in zip(int8.explain(films, classes, method), float32.explain(films, classes, method)):
                assert np.abs(ours - reference).max() <= 0.1, (method, explained)
                if reference.std() > 0:  # a map can be all zero (no evidence for that class): then both are
                    assert np.corrcoef(ours.ravel(), reference.ravel())[0, 1] > 0.99, (method, explained)


@needs_int8_copy
def test_a_changed_int8_copy_is_refused(tmp_path):
    copy = tmp_path / "served"
    shutil.copytree(SERVED_MODEL, copy, ignore=shutil.ignore_patterns(MODEL_FILE, "evaluation"))
    with open(copy / INT8_FILE, "ab") as handle:
        handle.write(b"\0")
    for runtime in ("tflite-int8", "auto"):  # no silent fall-back to float32 either
        with pytest.raises(ModelLoadError, match="model_int8.tflite .* does not match its metadata"):
            Predictor.load(copy, runtime=runtime)


@pytest.mark.slow
def test_quantize_makes_checks_and_records_the_int8_copy(real_data, tmp_path, capsys):
    """The command on a copy of the served model whose manifest keeps 8 internal-test films, plus a site folder of
    8 films: the copy is written and bound by SHA-256, both sets are compared, and it serves exactly if the rule held."""
    copy = tmp_path / "model"
    shutil.copytree(SERVED_MODEL, copy, ignore=shutil.ignore_patterns(INT8_FILE))
    metadata = json.loads((copy / METADATA_FILE).read_text())
    for key in (INT8_KEY, "int8_check"):
        metadata.pop(key, None)
    (copy / METADATA_FILE).write_text(json.dumps(metadata))
    manifest_file = copy / EVALUATION_DIR / "manifest.csv"
    manifest = pd.read_csv(manifest_file)
    test = manifest[manifest["split"] == "test"]
    pd.concat([manifest[manifest["split"] != "test"], test.iloc[::95]]).to_csv(manifest_file, index=False)
    site = tmp_path / "site"
    for label in ("NORMAL", "PNEUMONIA"):
        (site / label).mkdir(parents=True)
        for path in sorted((real_data / "site_sample" / label).iterdir())[:4]:
            shutil.copy(path, site / label / path.name)
    assert Predictor.load(copy).runtime == "tflite"

    code = main(["quantize", "--model", str(copy), "--data-dir", str(real_data), "--site", str(site), "--quiet"])
    out = capsys.readouterr().out
    check = json.loads((copy / METADATA_FILE).read_text())["int8_check"]
    assert code == 0 and set(check["sets"]) == {"internal test", "site site"}, out
    assert [values["films"] for values in check["sets"].values()] == [len(test.iloc[::95]), 8]
    holds = all(v["verdict_agreement"] >= AGREEMENT_RULE and abs(v["auc_change"]) <= 0.002 for v in check["sets"].values())
    assert check["serves"] == holds and ("the int8 copy serves" in out) == holds
    assert json.loads((copy / METADATA_FILE).read_text())[INT8_KEY] == file_sha256(copy / INT8_FILE)
    assert Predictor.load(copy).runtime == ("tflite-int8" if holds else "tflite")


def test_the_check_is_described_with_both_aucs_never_a_rounded_signed_zero():
    from pneumo_core.evaluation.int8_check import describe_check

    metadata = {
        "int8_check": {
            "sets": {
                "internal test": {
                    "verdict_agreement": 0.9987,
                    "films": 746,
                    "auc_float32": 0.99585,
                    "auc_int8": 0.99583,
                    "auc_change": -2e-5,
                }
            }
        }
    }
    line = describe_check(metadata)
    assert "0.9959 → 0.9958" in line and "-0.0000" not in line and "99.9% of 746 films" in line
