"""A site's operating point: exact bounds against their closed forms, their coverage with a known truth, the rules
and the band placed by rank, the promise, the simulation of the procedure that serves, and ``calibrate --scores``."""

import json

import numpy as np
import pytest
from scipy.stats import beta, betabinom

from pneumo_core.cli.main import main
from pneumo_core.operating_point.bounds import design_effect, films_to_support, population_upper_share, upper_share
from pneumo_core.operating_point.fit import fit_operating_point
from pneumo_core.operating_point.promises import FIGURES, kept, promise, realised
from pneumo_core.operating_point.rules import DEFAULT_BAND, DEFAULT_RULE, ReferralRule, Rule, shortfalls
from pneumo_core.operating_point.simulation import simulate_sites

# --- exact bounds -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("misses", "films", "lower_bound"), [(0, 140, 0.97883), (1, 140, 0.96656), (2, 140, 0.95572), (0, 8, 0.68766)]
)
def test_population_bounds_are_clopper_pearson(misses, films, lower_bound):
    """0, 1, 2 misses in 140 and 0 in 8: the one-sided 95% Clopper-Pearson lower bounds of sensitivity (a percentile
    bootstrap gives 1.0 at zero misses, and 0.978 at one)."""
    assert 1 - population_upper_share(misses, films) == pytest.approx(lower_bound, abs=1e-5)
    assert 1 - population_upper_share(misses, films) == pytest.approx(beta.ppf(0.05, films - misses, misses + 1))


@pytest.mark.parametrize(
    ("misses", "films", "next_films"), [(0, 140, 140), (1, 140, 140), (2, 140, 140), (0, 8, 8), (3, 82, 300)]
)
def test_next_film_bounds_are_beta_binomial_quantiles(misses, films, next_films):
    expected = betabinom.ppf(0.95, next_films, misses + 1, films - misses) / next_films
    assert upper_share(misses, films, next_films) == pytest.approx(expected)
    assert upper_share(misses, films, next_films) >= population_upper_share(misses, films) - 1 / next_films
    assert upper_share(films, films, next_films) == 1.0  # every sample film beyond: nothing is promised


def test_a_sample_that_cannot_support_a_target_says_what_would():
    assert upper_share(0, 140, 140) == pytest.approx(4 / 140)  # 0.971 at best from 140 pneumonia films
    needed = films_to_support(0.98)
    assert 1 - upper_share(0, needed, needed) >= 0.98 > 1 - upper_share(0, needed - 1, needed - 1)
    labels = np.repeat([0, 1], [82, 140])
    messages = shortfalls(labels, Rule.parse("sensitivity-bound:0.98"), ReferralRule.parse("band:none"))
    assert len(messages) == 1 and "supports sensitivity >= 0.971 at most" in messages[0]
    assert f"{needed - 140} more pneumonia films without a miss would support 0.98" in messages[0]


def _coverage(confidence: float, trials: int = 4000, films: int = 60, misses: int = 2, next_films: int = 60) -> float:
    """Share of trials in which the next films' share beyond an edge set by rank stayed within the bound."""
    rng = np.random.default_rng(7)
    held = 0
    for _ in range(trials):
        sample = np.sort(rng.normal(size=films))
        edge = sample[misses] - 1e-9  # just below the (misses + 1)-th lowest: the order-statistic law's own edge
        beyond = (rng.normal(size=next_films) < edge).mean()
        held += beyond <= upper_share(misses, films, next_films, confidence)
    return held / trials


def test_the_bound_covers_a_known_truth_about_95_percent_of_the_time_and_a_narrower_one_does_not():
    """Scores from a known distribution, the edge set by rank on each sample, the next films drawn fresh: the 95%
    bound holds in as many samples as the beta-binomial law says: at least 95%, and no more than the counts'
    discreteness adds (here 95.3%). A bound at 80% confidence, too narrow for a 95% promise, fails the same check."""
    exact = betabinom.cdf(upper_share(2, 60, 60) * 60, 60, 3, 58)
    assert exact >= 0.95 and _coverage(0.95) == pytest.approx(exact, abs=0.01)
    assert _coverage(0.80) < 0.9


def test_the_design_effect_counts_a_childs_alike_films_once():
    rng = np.random.default_rng(0)
    independent = rng.normal(size=120)
    assert design_effect(independent, np.arange(120)) == 1.0
    per_child = np.repeat(rng.normal(size=40), 3)  # three identical films per child
    assert design_effect(per_child, np.arange(120) // 3) == pytest.approx(3.0)
    assert 1.0 <= design_effect(independent, np.arange(120) // 3) < 1.5  # grouped but unrelated films
    assert upper_share(1, 120, 120, design=3.0) > upper_share(1, 120, 120)  # fewer effective films, a wider bound


# --- rules, band and promise ------------------------------------------------------------------------------------


def _separated(rng: np.random.Generator, normal: int = 80, pneumonia: int = 140) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat([0, 1], [normal, pneumonia])
    return labels, np.where(labels == 1, rng.normal(2.5, 1.2, len(labels)), rng.normal(-1.5, 1.2, len(labels)))


def test_the_bound_rule_sets_the_threshold_by_rank_below_the_pneumonia_film_its_promise_allows():
    labels, logits = _separated(np.random.default_rng(3))
    pneumonia = np.sort(logits[labels == 1])
    edge = Rule.parse("sensitivity-bound:0.95").fit(labels, logits)
    allowed = max(m for m in range(140) if 1 - upper_share(m, 140, 140) >= 0.95)
    assert edge.beyond == allowed == (pneumonia < edge.score).sum() and edge.supported
    assert pneumonia[allowed - 1] < edge.score < pneumonia[allowed]  # midway to the nearest sample score below
    assert not ((logits > edge.score) & (logits < pneumonia[allowed])).any()
    unreachable = Rule.parse("sensitivity-bound:0.99").fit(labels, logits)
    assert unreachable.score < pneumonia[0] and not unreachable.supported  # calls every pneumonia film, says so


def test_the_band_refers_what_scores_like_missed_pneumonias_and_like_false_alarms():
    labels, logits = _separated(np.random.default_rng(4))
    threshold = Rule.parse("sensitivity-bound:0.93").fit(labels, logits).score
    low, high = ReferralRule.parse("band:0.96/0.9").fit(labels, logits, threshold)
    pneumonia, normal = logits[labels == 1], logits[labels == 0]
    assert low.score < threshold < high.score  # both sides of the threshold are referred
    assert (pneumonia < low.score).sum() == low.beyond == max(m for m in range(140) if upper_share(m, 140, 140) <= 0.04)
    assert (normal >= high.score).sum() == high.beyond == max(k for k in range(80) if upper_share(k, 80, 80) <= 0.1)
    none = ReferralRule.parse("band:none").fit(labels, logits, threshold)
    assert none[0].score == none[1].score == threshold
    unreachable = ReferralRule.parse("band:0.99/0.99").fit(labels, logits, threshold)  # 140 and 80 films support neither
    assert unreachable[0].score < pneumonia.min() and unreachable[1].score > normal.max()  # refers every film between
    assert not unreachable[0].supported and not unreachable[1].supported
    loose = ReferralRule.parse("band:0.5/0.5").fit(labels, logits, threshold)  # both edges would cross the threshold
    assert loose[0].score == loose[1].score == threshold and loose[0].supported and loose[1].supported


def test_the_promise_is_each_figures_exact_bound():
    labels, logits = _separated(np.random.default_rng(5))
    threshold, low, high = 0.0, -0.5, 1.0
    made = promise(labels, logits, threshold, low, high)
    pneumonia, normal = logits[labels == 1], logits[labels == 0]
    assert made.next_films == 220 and (made.next_pneumonia, made.next_normal) == (140, 80)
    assert made.sensitivity == 1 - upper_share(int((pneumonia < threshold).sum()), 140, 140)
    assert made.normal_called_pneumonia == upper_share(int((normal >= high).sum()), 80, 80)
    decided = pneumonia[(pneumonia < low) | (pneumonia >= high)]
    assert made.decided_sensitivity == 1 - upper_share(int((decided < low).sum()), len(decided), len(decided))
    inside = ((logits >= low) & (logits < high)).sum()
    assert made.referred == upper_share(int(inside), 220, 220)
    got = realised(labels, logits, threshold, low, high)
    assert got["referred"] == inside / 220 and all(kept(made.figures(), {name: got[name] for name in FIGURES}).values())


def test_the_fit_reports_probabilities_and_its_promise():
    labels, logits = _separated(np.random.default_rng(6))
    point = fit_operating_point(labels, logits, Rule.parse(DEFAULT_RULE), ReferralRule.parse(DEFAULT_BAND))
    low, high = point.band
    assert 0 < low <= point.threshold <= high < 1 and point.temperature > 0
    answer = point.as_json()
    assert set(answer) == {"threshold", "temperature", "referral_band", "promise", "next_films", "confidence"}
    assert set(answer["promise"]) == set(FIGURES) and answer["next_films"] == 220 and answer["confidence"] == 0.95
    twice = fit_operating_point(
        labels, logits, Rule.parse(DEFAULT_RULE), ReferralRule.parse(DEFAULT_BAND), patients=np.arange(220) // 2
    )
    assert twice.designs[1] >= 1.0 and twice.promise.sensitivity <= point.promise.sensitivity + 1e-12


# --- the simulation of the procedure that serves ----------------------------------------------------------------


def test_the_simulation_keeps_promises_at_about_their_confidence_and_is_deterministic():
    labels, logits = _separated(np.random.default_rng(8))
    patients = np.arange(220)
    rule, band = Rule.parse(DEFAULT_RULE), ReferralRule.parse(DEFAULT_BAND)
    summary = simulate_sites(labels, logits, patients, rule, band, sites=300)
    assert summary["sites"] == 300 and summary["patients"] == {"NORMAL": 80, "PNEUMONIA": 140}
    for name, figure in summary["figures"].items():
        assert figure["kept"] >= 0.9, name  # 95% each, give or take the noise of 300 sites
    assert summary == simulate_sites(labels, logits, patients, rule, band, sites=300)
    with pytest.raises(ValueError, match="two patients of each class"):
        simulate_sites(labels, logits, np.where(labels == 0, -1, patients), rule, band, sites=10)


def test_the_simulation_detects_promises_that_do_not_hold():
    """A 'promise' fitted at 60% confidence breaks far more often than 5% of the time, and the simulation says so."""
    labels, logits = _separated(np.random.default_rng(9))
    summary = simulate_sites(labels, logits, np.arange(220), Rule.parse(DEFAULT_RULE), ReferralRule.parse(DEFAULT_BAND), 300, 0.6)
    assert min(figure["kept"] for figure in summary["figures"].values()) < 0.8


# --- calibrate --scores ----------------------------------------------------------------------------------------


def _records(rng: np.random.Generator) -> list[dict]:
    labels, logits = _separated(rng)
    return [
        {
            "file": f"person{i // 2}_bacteria_{i}.jpeg" if y else f"IM-{i:04d}-0001.jpeg",
            "truth": ["NORMAL", "PNEUMONIA"][y],
            "logit": float(z),
        }
        for i, (y, z) in enumerate(zip(labels, logits))
    ]


def test_calibrate_scores_prints_the_operating_point_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scores = tmp_path / "scores.jsonl"
    scores.write_text("\n".join(json.dumps(r) for r in _records(np.random.default_rng(10))) + "\n")
    before = sorted(tmp_path.rglob("*"))
    assert main(["calibrate", "--scores", str(scores), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written without --site
    assert set(answer) == {"threshold", "temperature", "referral_band", "promise", "next_films", "confidence"}
    for always in ("sensitivity", "decided_sensitivity", "decided_specificity", "referred"):
        assert isinstance(answer["promise"][always], float)
    probabilities = 1 / (1 + np.exp(-np.array([r["logit"] for r in _records(np.random.default_rng(10))]) / answer["temperature"]))
    truth = np.array([r["truth"] == "PNEUMONIA" for r in _records(np.random.default_rng(10))])
    low, high = answer["referral_band"]
    called = probabilities >= answer["threshold"]
    assert low <= answer["threshold"] <= high
    assert called[truth].mean() >= answer["promise"]["sensitivity"]  # the sample itself, at least the promise
    assert answer["promise"]["sensitivity"] >= Rule.parse(DEFAULT_RULE).value  # the rule's target is promised
    assert main(["calibrate", "--scores", str(scores), "--json", "--next-films", "1000"]) == 0
    larger = json.loads(capsys.readouterr().out)  # about more next films: tighter bounds, a higher threshold allowed
    assert larger["next_films"] == 1000 and larger["threshold"] >= answer["threshold"]
    assert larger["promise"]["sensitivity"] >= Rule.parse(DEFAULT_RULE).value


def test_calibrate_scores_takes_patients_from_records_or_a_manifest(tmp_path, capsys):
    """Four alike films per child count as far fewer independent films than four children: a lower promise. A
    sample without patient structure is told so."""
    rng = np.random.default_rng(11)
    labels, logits = _separated(rng)
    logits = np.repeat(logits[::4], 4) + rng.normal(0, 0.05, len(logits))  # four alike films per child, one class each
    records = [
        {"file": f"film{i}.png", "truth": ["NORMAL", "PNEUMONIA"][y], "logit": float(z)}
        for i, (y, z) in enumerate(zip(labels, logits))
    ]
    alone, grouped, manifest = (tmp_path / name for name in ("alone.jsonl", "grouped.jsonl", "patients.csv"))
    alone.write_text("\n".join(json.dumps(r) for r in records))
    grouped.write_text("\n".join(json.dumps({**r, "patient": f"child{i // 4}"}) for i, r in enumerate(records)))
    manifest.write_text("file,patient\n" + "".join(f"film{i}.png,child{i // 4}\n" for i in range(len(records))))
    answers = {}
    for name, args in (("alone", [alone]), ("grouped", [grouped]), ("manifest", [alone, "--patients", manifest])):
        assert main(["calibrate", "--scores", *map(str, args), "--json"]) == 0
        answers[name] = json.loads(capsys.readouterr().out)["promise"]
    assert answers["grouped"] == answers["manifest"]
    assert answers["grouped"]["sensitivity"] < answers["alone"]["sensitivity"]
    assert main(["calibrate", "--scores", str(alone)]) == 0
    assert "No patient structure found" in capsys.readouterr().out


def test_calibrate_scores_counts_withheld_and_unreadable_records_and_refuses_bad_ones(tmp_path, capsys):
    records = _records(np.random.default_rng(12))
    records[:2] = [{"file": "gone.png", "error": "The file cannot be read."}, {"file": "photo.png", "label": None, "logit": None}]
    path = tmp_path / "scores.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    assert main(["calibrate", "--scores", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["next_films"] == 218  # the two without a logit are not fitted on
    bad = tmp_path / "bad.jsonl"
    for text, message in (
        ('{"logit": 1.0, "truth": "MAYBE"}', 'Line 1 of the scores needs "truth"'),
        ('{"truth": "NORMAL"}', 'Line 1 of the scores has no finite "logit"'),
        ("not json", "Line 1 of the scores is not JSON"),
        ('{"logit": NaN, "truth": "NORMAL"}', 'Line 1 of the scores has no finite "logit"'),
        ('{"logit": 1.0, "truth": "NORMAL"}', "both classes"),
    ):
        bad.write_text(text + "\n")
        assert main(["calibrate", "--scores", str(bad)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert main(["calibrate", "--scores", str(bad), str(tmp_path)]) == 2  # both a folder and scores
    assert "one of them" in capsys.readouterr().err
