"""Site profiles: the threshold rules, calibrate's contract with predict, binding to one model file, activation."""

import json
import shutil

import numpy as np
import pytest

from devtools.imaging import encode, synthetic_xray
from pneumo_core.cli.main import main
from pneumo_core.operating_point.rules import DEFAULT_BAND, DEFAULT_RULE, ReferralRule, Rule
from pneumo_core.serving.answers import Prediction
from pneumo_core.serving.predictor import Predictor
from pneumo_core.store.model_dir import ModelLoadError, read_metadata
from pneumo_core.store.profiles import ProfileError, activate, active_profile, list_profiles, load_profile


def test_rule_parsing_and_description():
    assert str(Rule.parse("sensitivity:0.97")) == "sensitivity:0.97" and str(Rule.parse("COST:5")) == "cost:5"
    assert str(Rule.parse(DEFAULT_RULE)) == DEFAULT_RULE and DEFAULT_RULE.startswith("sensitivity-bound:")
    assert "promised sensitivity" in Rule.parse(DEFAULT_RULE).describe()
    assert str(Rule.parse("youden")) == "youden" and "0.97" in Rule.parse("sensitivity:0.97").describe()
    for bad in ("sensitivity", "sensitivity:2", "sensitivity-bound:0.2", "sensitivity-bound:1", "cost:-1", "youden:1", ""):
        with pytest.raises(ProfileError, match="Unknown threshold rule"):
            Rule.parse(bad)
    assert str(ReferralRule.parse(DEFAULT_BAND)) == DEFAULT_BAND and str(ReferralRule.parse("band:none")) == "band:none"
    for bad in ("band", "band:0.99", "band:1/0.9", "band:0.9/0.3", "refer:0.9/0.9"):
        with pytest.raises(ProfileError, match="Unknown referral band"):
            ReferralRule.parse(bad)


def test_a_prediction_decides_below_and_above_its_band_and_refers_inside():
    band = (0.3, 0.8)
    assert Prediction(0.29, 0.5, 0.0, band).decision == "NORMAL" and Prediction(0.8, 0.5, 0.0, band).decision == "PNEUMONIA"
    assert Prediction(0.3, 0.5, 0.0, band).decision == "REFER" and Prediction(0.79, 0.5, 0.0, band).referred
    assert Prediction(0.6, 0.5, 0.0, band).label == "PNEUMONIA"  # the binary verdict keeps its meaning
    low, high = Prediction(0.5, 0.5, 0.0).band  # without a fitted band: odds within a factor e of the threshold's
    assert low == pytest.approx(1 / (1 + np.e)) and high == pytest.approx(np.e / (1 + np.e))


def test_sensitivity_rule_takes_the_best_specificity_meeting_the_floor_centred_in_its_range():
    from pneumo_core.common.logits import log_odds

    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    probabilities = np.array([0.1, 0.2, 0.4, 0.7, 0.3, 0.52, 0.6, 0.65, 0.8, 0.85, 0.9, 0.92, 0.95, 0.97, 0.98, 0.99])
    scores = log_odds(probabilities)
    threshold = Rule.parse("sensitivity:0.8").fit(labels, scores).score
    # 0.6 is the highest threshold catching 10 of 12 (any higher catches 9); the nearest film below it scores 0.52,
    # so every threshold in (0.52, 0.6] makes the same calls: the rule takes their centre in log-odds
    assert threshold == pytest.approx((log_odds(0.52) + log_odds(0.6)) / 2)
    called = scores >= threshold
    assert (called & (labels == 1)).sum() == 10 and (called & (labels == 0)).sum() == 1
    assert Rule.parse("sensitivity:0.8").fit(labels[3:], scores[3:]).score == threshold  # normals below change nothing


def test_cost_and_youden_rules_minimise_what_they_say_centred_in_their_range():
    from pneumo_core.common.logits import log_odds

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    probabilities = np.clip(rng.normal(0.35 + 0.3 * labels, 0.15), 0.001, 0.999)
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
        chosen = 1 / (1 + np.exp(-Rule.parse(text).fit(labels, log_odds(probabilities)).score))
        assert loss(chosen) <= min(loss(t) for t in np.unique(probabilities)) + 1e-12
        # centred in log-odds between the nearest films on either side
        above, below = probabilities[probabilities >= chosen].min(), probabilities[probabilities < chosen].max()
        assert log_odds(chosen) == pytest.approx((log_odds(above) + log_odds(below)) / 2)


def test_rules_need_both_classes():
    with pytest.raises(ProfileError, match="both classes"):
        Rule.parse("youden").fit(np.ones(5), np.linspace(0, 1, 5))


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
    colour = np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)  # not an X-ray: withheld
    (root / "PNEUMONIA" / "photo.png").write_bytes(encode(colour))
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
    assert profile["withheld"] == 1 and "withheld as not an X-ray: 1" in out  # counted apart, not scored
    assert set(profile["promise"]) >= {"sensitivity", "referred", "next_films"} and "promise for the site's next" in out
    low, high = profile["referral_band"]
    assert low <= profile["threshold"] <= high and profile["band_rule"] == DEFAULT_BAND and "referral band" in out

    code, out, _ = run_cli(capsys, "predict", "--model", model_dir, "--operating-point", "site:north", site_folder)
    records = [json.loads(line) for line in out.splitlines()]
    answered = [r for r in records if r.get("label")]
    assert len(answered) == 16 and {r["operating_point"] for r in answered} == {"site:north"}
    assert [r["file"] for r in records if "label" in r and r["label"] is None] == [str(site_folder / "PNEUMONIA" / "photo.png")]
    truth = np.array([r["file"].split("/")[-2] == "PNEUMONIA" for r in answered])
    called = np.array([r["label"] == "PNEUMONIA" for r in answered])
    metrics = profile["metrics"]
    assert (called & truth).sum() == metrics["tp"] and (called & ~truth).sum() == metrics["fp"]
    assert (~called & ~truth).sum() == metrics["tn"] and (~called & truth).sum() == metrics["fn"]
    assert metrics["accuracy"] == (called == truth).mean()
    decisions = [r["decision"] for r in answered]
    referral = profile["referral"]
    assert [decisions.count(name) for name in ("NORMAL", "REFER", "PNEUMONIA")] == [
        referral["normal"],
        referral["refer"],
        referral["pneumonia"],
    ]
    assert all(r["referral_band"] == [round(low, 6), round(high, 6)] for r in answered)

    # predict's records with their truth are score records: calibrate --scores fits the same operating point
    assert all(isinstance(r["logit"], float) for r in answered)
    scores = site_folder.parent / "north-scores.jsonl"
    scores.write_text("\n".join(json.dumps({**r, "truth": r["file"].split("/")[-2]}) for r in records if "label" in r))
    code, out, _ = run_cli(capsys, "calibrate", "--scores", scores, "--json", "--rule", "youden")
    fitted = json.loads(out)
    assert code == 0 and fitted["threshold"] == pytest.approx(profile["threshold"], abs=1e-5)
    assert fitted["referral_band"] == pytest.approx([low, high], abs=1e-5) and fitted["promise"] == pytest.approx(
        {key: profile["promise"][key] for key in fitted["promise"]}
    )


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


def test_a_read_only_model_keeps_its_profiles_in_the_profiles_folder(capsys, model_dir, site_folder, tmp_path, monkeypatch):
    run_cli(capsys, "calibrate", site_folder, "--site", "shipped", "--model", model_dir, "--activate")
    model_dir.chmod(0o555)  # as in the container image: the model directory cannot be written
    (model_dir / "site_profiles").chmod(0o555)
    try:
        monkeypatch.setenv("PNEUMO_PROFILES_DIR", str(tmp_path / "profiles"))
        assert Predictor.load(model_dir).operating_point == "site:shipped"  # the shipped profiles come along
        run_cli(capsys, "calibrate", site_folder, "--site", "north", "--model", model_dir, "--activate")
        assert Predictor.load(model_dir).operating_point == "site:north" and list_profiles(model_dir) == ["north", "shipped"]
        sha = read_metadata(model_dir)["model_sha256"]
        assert (tmp_path / "profiles" / sha[:16] / "north.json").is_file()
        assert not (model_dir / "site_profiles" / "north.json").exists()
    finally:
        (model_dir / "site_profiles").chmod(0o755)
        model_dir.chmod(0o755)
