"""Site profiles: the threshold rules, calibrate's contract with predict, binding to one model file, activation."""

import json
import shutil

import numpy as np
import pytest

from pneumo_core.cli.main import main
from pneumo_core.operations.calibration import cross_validated
from pneumo_core.operations.rules import Rule
from pneumo_core.serving.predictor import Predictor
from pneumo_core.store.model_dir import ModelLoadError, read_metadata
from pneumo_core.store.profiles import ProfileError, activate, active_profile, list_profiles, load_profile

from .imaging import encode, synthetic_xray


def test_rule_parsing_and_description():
    assert str(Rule.parse("sensitivity:0.97")) == "sensitivity:0.97" and str(Rule.parse("COST:5")) == "cost:5"
    assert str(Rule.parse("youden")) == "youden" and "0.97" in Rule.parse("sensitivity:0.97").describe()
    for bad in ("sensitivity", "sensitivity:2", "cost:-1", "youden:1", "accuracy:0.9", ""):
        with pytest.raises(ProfileError, match="Unknown threshold rule"):
            Rule.parse(bad)


def test_sensitivity_rule_takes_the_best_specificity_meeting_the_floor_centred_in_its_range():
    from pneumo_core.common.logits import log_odds

    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    probabilities = np.array([0.1, 0.2, 0.4, 0.7, 0.3, 0.52, 0.6, 0.65, 0.8, 0.85, 0.9, 0.92, 0.95, 0.97, 0.98, 0.99])
    threshold = Rule.parse("sensitivity:0.8").threshold(labels, probabilities)
    # 0.6 is the highest threshold catching 10 of 12 (any higher catches 9); the normal film at 0.4 is the next
    # below it, so every threshold in (0.4, 0.6] has the same single false alarm: the rule takes the centre, 0.5
    assert threshold == pytest.approx(1 / (1 + np.exp(-(log_odds(0.4) + log_odds(0.6)) / 2)))
    called = probabilities >= threshold
    assert (called & (labels == 1)).sum() == 11 and (called & (labels == 0)).sum() == 1  # 0.52 is caught too
    assert Rule.parse("sensitivity:0.8").threshold(labels[1:], probabilities[1:]) == threshold
    no_normal_below = Rule.parse("sensitivity:0.8").threshold(labels[3:], probabilities[3:])
    assert no_normal_below == 0.6  # nothing to centre on: the highest threshold meeting the floor


def test_cost_and_youden_rules_minimise_what_they_say_centred_in_their_range():
    from pneumo_core.common.logits import log_odds

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    probabilities = np.clip(rng.normal(0.35 + 0.3 * labels, 0.15), 0, 1)
    for text, loss in (
        ("cost:4", lambda t: 4 * ((probabilities < t) & (labels == 1)).sum() + ((probabilities >= t) & (labels == 0)).sum()),
        (
            "youden",
            lambda t: (
                -(
                    ((probabilities >= t) & (labels == 1)).mean() / labels.mean()
                    + ((probabilities < t) & (labels == 0)).mean() / (1 - labels.mean())
                )
            ),
        ),
    ):
        chosen = Rule.parse(text).threshold(labels, probabilities)
        assert loss(chosen) <= min(loss(t) for t in np.unique(probabilities)) + 1e-12
        # centred in log-odds between the nearest films on either side, a normal one below it
        above, below = probabilities[probabilities >= chosen].min(), probabilities[probabilities < chosen].max()
        assert labels[probabilities == below].min() == 0
        assert log_odds(chosen) == pytest.approx((log_odds(above) + log_odds(below)) / 2)


def test_rules_need_both_classes():
    with pytest.raises(ProfileError, match="both classes"):
        Rule.parse("youden").threshold(np.ones(5), np.linspace(0, 1, 5))


def test_cross_validation_calls_every_film_by_a_profile_fitted_without_it():
    """Well separated classes: every held-out film is called right. Logits without any signal: the held-out calls
    are chance (sensitivity + specificity about 1), however well the rule fits the films it sees."""
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], [60, 100])
    patients = np.arange(160) // 2  # two films per patient, of one class
    separated = cross_validated(
        labels, np.where(labels == 1, 3.0, -3.0) + rng.normal(0, 0.3, 160), patients, Rule.parse("youden")
    )
    assert separated["accuracy"] == separated["sensitivity"] == separated["specificity"] == 1.0
    assert separated["folds"] == 5 and separated["repeats"] == 20
    logits = rng.normal(0, 1, 160)
    noise = cross_validated(labels, logits, patients, Rule.parse("youden"))
    assert abs(noise["sensitivity"] + noise["specificity"] - 1.0) < 0.15
    for key in ("accuracy", "sensitivity", "specificity"):
        low, high = noise["range"][key]
        assert low <= noise[key] <= high
    assert noise == cross_validated(labels, logits, patients, Rule.parse("youden"))  # deterministic
    one_normal_patient = np.where(labels == 0, -1, patients)
    assert cross_validated(labels, logits, one_normal_patient, Rule.parse("youden")) is None


@pytest.fixture
def model_dir(tiny_model_dir, tmp_path):
    """A private copy of the tiny model: profiles are written into it."""
    return shutil.copytree(tiny_model_dir, tmp_path / "model")


@pytest.fixture(scope="module")
def site_folder(tmp_path_factory):
    """A small labelled site sample (synthetic films) plus one unreadable file."""
    root = tmp_path_factory.mktemp("site")
    for label, count in (("NORMAL", 7), ("PNEUMONIA", 9)):
        (root / label).mkdir()
        for i in range(count):
            (root / label / f"{label.lower()}_{i}.png").write_bytes(
                encode(synthetic_xray(120 + 7 * i, seed=100 * len(label) + i))
            )
    (root / "NORMAL" / "broken.jpeg").write_bytes(b"\xff\xd8\xff not really")
    return root


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_calibrate_writes_a_profile_whose_metrics_predict_reproduces(capsys, model_dir, site_folder):
    code, out, err = run_cli(capsys, "calibrate", site_folder, "--site", "north", "--model", model_dir, "--rule", "youden")
    assert code == 1 and "broken.jpeg" in err  # one unreadable film: reported, the rest calibrated
    assert "optimistic" in out and "site: north" in out
    profile = json.loads((model_dir / "site_profiles" / "north.json").read_text())
    required = {"name", "threshold", "temperature", "rule", "n", "data_sha256", "created", "metrics", "intervals"}
    assert required <= set(profile) and profile["n"] == 16 and profile["rule"] == "youden"
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc"):
        assert isinstance(profile["metrics"][key], float) and len(profile["intervals"][key]) == 2
    assert profile["model_sha256"] == read_metadata(model_dir)["model_sha256"] and profile["unreadable"] == 1
    assert list_profiles(model_dir) == ["north"] and active_profile(model_dir) is None  # saved, not active
    assert profile["cross_validated"]["folds"] >= 2 and "Cross-validated on the sample" in out

    code, out, _ = run_cli(capsys, "predict", "--model", model_dir, "--operating-point", "site:north", site_folder)
    records = [json.loads(line) for line in out.splitlines()]
    answered = [r for r in records if "label" in r]
    assert len(answered) == 16 and {r["operating_point"] for r in answered} == {"site:north"}
    truth = np.array([r["file"].split("/")[-2] == "PNEUMONIA" for r in answered])
    called = np.array([r["label"] == "PNEUMONIA" for r in answered])
    metrics = profile["metrics"]
    assert (called & truth).sum() == metrics["tp"] and (called & ~truth).sum() == metrics["fp"]
    assert (~called & ~truth).sum() == metrics["tn"] and (~called & truth).sum() == metrics["fn"]
    assert metrics["accuracy"] == (called == truth).mean()


def test_activation_changes_every_default_and_can_be_undone(capsys, model_dir, site_folder):
    assert Predictor.load(model_dir).operating_point == "validation"
    run_cli(capsys, "calibrate", site_folder, "--site", "north", "--model", model_dir, "--activate")
    predictor = Predictor.load(model_dir)
    profile = load_profile(model_dir, "north")
    assert predictor.operating_point == "site:north"
    assert (predictor.threshold, predictor.temperature) == (profile.threshold, profile.temperature)
    _, out, _ = run_cli(capsys, "predict", "--model", model_dir, site_folder / "PNEUMONIA" / "pneumonia_0.png")
    assert json.loads(out)["operating_point"] == "site:north" and json.loads(out)["threshold"] == round(profile.threshold, 6)
    assert Predictor.load(model_dir, operating_point="validation").operating_point == "validation"
    assert Predictor.load(model_dir, threshold=0.3).operating_point == "manual"
    activate(model_dir, None)
    assert Predictor.load(model_dir).operating_point == "validation"


def test_a_profile_for_another_model_is_refused(capsys, model_dir, site_folder, tmp_path):
    run_cli(capsys, "calibrate", site_folder, "--site", "north", "--model", model_dir, "--activate")
    other = shutil.copytree(model_dir, tmp_path / "other")
    metadata = json.loads((other / "metadata.json").read_text())
    metadata["model_sha256"] = "0" * 64  # stands for a different model file
    (other / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ProfileError, match="fitted for another model"):
        load_profile(other, "north")
    with pytest.raises(ProfileError, match="fitted for another model"):
        activate(other, "north")
    with pytest.raises(ModelLoadError, match="active site profile cannot be used"):
        Predictor.load(other)  # never served at an operating point nobody chose for it
    code, _, err = run_cli(capsys, "predict", "--model", other, site_folder / "NORMAL" / "normal_0.png")
    assert code == 3 and "fitted for another model" in err  # the model cannot be loaded at that operating point


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 65])
def test_bad_site_names_are_refused(capsys, model_dir, site_folder, name):
    code, _, err = run_cli(capsys, "calibrate", site_folder, "--site", name, "--model", model_dir)
    assert code == 2 and "site name" in err
