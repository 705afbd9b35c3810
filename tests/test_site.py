"""Site profiles: the threshold rules, calibrate's contract with predict, binding to one model file, activation."""

import json
import shutil

import numpy as np
import pytest

from pneumo_core.cli.main import main
from pneumo_core.operations.bounds import patient_lower_bounds
from pneumo_core.operations.rules import DEFAULT_BAND, DEFAULT_RULE, ReferralRule, Rule, highest_bounded_threshold
from pneumo_core.operations.simulation import simulate_next_films
from pneumo_core.serving.answers import Prediction
from pneumo_core.serving.predictor import Predictor
from pneumo_core.store.model_dir import ModelLoadError, read_metadata
from pneumo_core.store.profiles import ProfileError, activate, active_profile, list_profiles, load_profile

from .imaging import encode, synthetic_xray


def test_rule_parsing_and_description():
    assert str(Rule.parse("sensitivity:0.97")) == "sensitivity:0.97" and str(Rule.parse("COST:5")) == "cost:5"
    assert str(Rule.parse("sensitivity-bound:0.97")) == "sensitivity-bound:0.97" == DEFAULT_RULE
    assert "lower confidence bound" in Rule.parse(DEFAULT_RULE).describe() and Rule.parse(DEFAULT_RULE).target_sensitivity == 0.97
    assert str(Rule.parse("youden")) == "youden" and "0.97" in Rule.parse("sensitivity:0.97").describe()
    assert Rule.parse("youden").target_sensitivity is None
    for bad in ("sensitivity", "sensitivity:2", "sensitivity-bound:0.2", "cost:-1", "youden:1", "accuracy:0.9", ""):
        with pytest.raises(ProfileError, match="Unknown threshold rule"):
            Rule.parse(bad)
    assert str(ReferralRule.parse(DEFAULT_BAND)) == DEFAULT_BAND and str(ReferralRule.parse("band:none")) == "band:none"
    for bad in ("band", "band:0.99", "band:1/0.9", "band:0.9/0.3", "refer:0.9/0.9"):
        with pytest.raises(ProfileError, match="Unknown referral band"):
            ReferralRule.parse(bad)


def test_patient_bounds_widen_with_clustering_and_match_the_binomial():
    """10 patients of 5 films each, one patient's films all missed: resampling patients, the share is a
    Binomial(10, 0.9) / 10, whose 5% quantile is 0.7; the same 50 films as 50 patients bound far higher (about 0.82)."""
    hits = np.ones((50, 1), bool)
    hits[:5] = False
    clustered = patient_lower_bounds(hits, np.arange(50) // 5)[0]
    independent = patient_lower_bounds(hits, np.arange(50))[0]
    assert clustered == pytest.approx(0.7, abs=0.05) and independent == pytest.approx(0.82, abs=0.03)
    assert patient_lower_bounds(np.ones((8, 1), bool), np.arange(8))[0] == 1.0
    assert np.array_equal(patient_lower_bounds(hits, np.arange(50)), patient_lower_bounds(hits, np.arange(50)))  # seeded
    many = patient_lower_bounds(np.column_stack([hits[:, 0], np.ones(50, bool)]), np.arange(50) // 5)
    assert many[0] == clustered and many[1] == 1.0  # one bound per candidate column


def test_the_bound_rule_takes_the_highest_threshold_whose_patient_bound_reaches_the_target():
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], [60, 120])
    probabilities = np.where(labels == 1, rng.uniform(0.3, 1.0, 180), rng.uniform(0.0, 0.6, 180))
    patients = np.arange(180)
    rule = Rule.parse("sensitivity-bound:0.9")
    threshold = rule.threshold(labels, probabilities, patients)
    pneumonia = np.sort(probabilities[labels == 1])
    edge = highest_bounded_threshold(pneumonia, np.arange(120), 0.9)
    above = pneumonia[pneumonia > edge].min()
    bound_at = lambda t: patient_lower_bounds((pneumonia >= t)[:, None], np.arange(120))[0]  # noqa: E731
    assert bound_at(edge) >= 0.9 > bound_at(above)  # the highest pneumonia film whose bound reaches the target
    normal = probabilities[labels == 0]
    assert threshold <= edge and not ((normal >= threshold) & (normal < edge)).any()  # centred below, same normal calls
    assert (pneumonia >= threshold).mean() > 0.9  # the sample itself sits above the target, by the bound's margin
    assert threshold < Rule.parse("sensitivity:0.9").threshold(labels, probabilities)  # more cautious than the sample rule
    # the same films as 12 patients of 10 films: fewer independent units, a lower (more cautious) threshold
    assert rule.threshold(labels, probabilities, np.arange(180) // 10) <= threshold
    # a target no threshold's bound reaches calls every pneumonia film of the sample
    unreachable = Rule.parse("sensitivity-bound:1").threshold(labels, probabilities, patients)
    assert (probabilities[labels == 1] >= unreachable).all()


def test_the_referral_band_holds_the_threshold_and_refers_between_its_edges():
    labels = np.array([0] * 10 + [1] * 10)
    probabilities = np.array(
        [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.62, 0.9] + [0.45, 0.5, 0.55, 0.6, 0.7, 0.75, 0.8, 0.85, 0.92, 0.95]
    )
    band = ReferralRule.parse("band:0.9/0.9")  # NORMAL calls may miss 1 of 10 pneumonia, PNEUMONIA calls take 1 normal
    low, high = band.band(labels, probabilities, threshold=0.58)
    # low: the sensitivity:0.9 rule's threshold (0.5, the 9th pneumonia film), centred in log-odds down to 0.4 (the
    # highest normal below it), which also keeps the pneumonia film at 0.45 out of the NORMAL calls
    assert low == pytest.approx(1 / (1 + np.sqrt(1.5)), rel=1e-6) and (probabilities[labels == 1] < low).sum() == 0
    # high: above the second-highest normal film (0.62), centred below the next pneumonia film (0.7)
    assert 0.62 < high < 0.7 and (probabilities[labels == 0] >= high).sum() == 1
    assert band.band(labels, probabilities, threshold=0.3) == (0.3, high)  # the band always holds the threshold
    assert ReferralRule.parse("band:none").band(labels, probabilities, 0.58) == (0.58, 0.58)


def test_a_prediction_decides_below_and_above_its_band_and_refers_inside():
    band = (0.3, 0.8)
    assert Prediction(0.29, 0.5, 0.0, band).decision == "NORMAL" and Prediction(0.8, 0.5, 0.0, band).decision == "PNEUMONIA"
    assert Prediction(0.3, 0.5, 0.0, band).decision == "REFER" and Prediction(0.79, 0.5, 0.0, band).referred
    assert Prediction(0.6, 0.5, 0.0, band).label == "PNEUMONIA"  # the binary verdict keeps its meaning
    low, high = Prediction(0.5, 0.5, 0.0).band  # without a fitted band: odds within a factor e of the threshold's
    assert low == pytest.approx(1 / (1 + np.e)) and high == pytest.approx(np.e / (1 + np.e))


def test_the_simulation_of_next_films_knows_separated_from_noise():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], [60, 100])
    patients = np.arange(160) // 2  # two films per patient, of one class
    rule, band = Rule.parse("sensitivity-bound:0.9"), ReferralRule.parse("band:0.95/0.95")
    separated = simulate_next_films(labels, np.where(labels == 1, 3.0, -3.0) + rng.normal(0, 0.3, 160), patients, rule, band, 40)
    assert separated["sensitivity"]["mean"] == separated["specificity"]["mean"] == 1.0 and separated["below_target"] == 0
    assert separated["referral"]["referred"]["mean"] < 0.05 and separated["splits"] == 40
    logits = rng.normal(0, 1, 160)
    noise = simulate_next_films(labels, logits, patients, Rule.parse("youden"), band, 40)
    assert abs(noise["sensitivity"]["mean"] + noise["specificity"]["mean"] - 1.0) < 0.2 and "below_target" not in noise
    for key in ("accuracy", "sensitivity", "specificity"):
        low, high = noise[key]["range"]
        assert low <= noise[key]["mean"] <= high
    assert noise == simulate_next_films(labels, logits, patients, Rule.parse("youden"), band, 40)  # deterministic
    one_normal_patient = np.where(labels == 0, -1, patients)
    assert simulate_next_films(labels, logits, one_normal_patient, rule, band, 40) is None


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
    assert profile["next_films"]["splits"] > 0 and "Expected on the site's next films" in out
    low, high = profile["referral_band"]
    assert low <= profile["threshold"] <= high and profile["band"] == DEFAULT_BAND and "referral band" in out

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
