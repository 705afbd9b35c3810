"""The paired AUC comparison and the serving rule, on synthetic scores with known answers."""

import numpy as np
import pytest

from pneumo_core.evaluation.comparison import MAX_INTERNAL_DROP, paired_auc_difference, passes_serving_rule


def _films(seed: int = 0, films: int = 300):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, films)
    patients = np.arange(films) // 2
    labels = labels[patients * 2]  # a patient's two films share the label
    return rng, labels, patients


def test_the_same_scores_differ_by_nothing_and_do_not_pass():
    rng, labels, patients = _films()
    scores = labels + rng.normal(0, 1, len(labels))
    same = paired_auc_difference(labels, scores, scores, patients, replicates=200)
    assert same.difference == 0 and same.interval == (0, 0) and same.lower_bound == 0
    assert same.patients == 150 and same.films == 300
    assert not passes_serving_rule(same, 0.0)


def test_a_clearly_better_model_passes_and_a_noisy_copy_does_not():
    rng, labels, patients = _films(1)
    signal = labels + rng.normal(0, 1, len(labels))
    better = labels * 3 + rng.normal(0, 1, len(labels))
    clearly = paired_auc_difference(labels, better, signal, patients, replicates=500)
    assert clearly.difference > 0.1 and clearly.lower_bound > 0 and passes_serving_rule(clearly, 0.0)
    assert not passes_serving_rule(clearly, -2 * MAX_INTERNAL_DROP)  # the internal test must not pay for it
    noisy = paired_auc_difference(labels, signal + rng.normal(0, 0.05, len(labels)), signal, patients, replicates=500)
    low, high = noisy.interval
    assert low < 0 < high and noisy.lower_bound < 0 and not passes_serving_rule(noisy, 0.0)
    assert clearly == paired_auc_difference(labels, better, signal, patients, replicates=500)  # seeded


def test_mismatched_films_are_refused():
    with pytest.raises(ValueError, match="same films"):
        paired_auc_difference(np.array([0, 1]), np.array([0.1, 0.9]), np.array([0.2]), np.array([0, 1]))


def test_compare_records_the_verdict_in_the_candidates_metadata(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """``python -m pneumo_core compare``: the paired verdict against the reference, kept where the shadow's promotion
    check reads it (the scores stand in for the two models' float32 passes over the same films)."""
    import json
    import shutil

    from pneumo_core.cli.main import main
    from pneumo_core.evaluation import comparison
    from pneumo_core.store.model_dir import read_metadata

    candidate = shutil.copytree(tiny_model_dir, tmp_path / "candidate")
    rng, labels, patients = _films(2)
    files = [f"person{p}_virus_{i}.jpeg" for i, p in enumerate(patients)]
    signal = labels + rng.normal(0, 1, len(labels))
    scores = {str(tiny_model_dir): signal, str(candidate): labels * 3 + rng.normal(0, 1, len(labels))}

    def scored(model_dir, site, data):
        return {name: (labels, scores[str(model_dir)], files) for name in ("site", "internal")}

    monkeypatch.setattr(comparison, "comparison_scores", scored)
    code = main(["compare", str(candidate), "--model", str(tiny_model_dir), "--site", str(tmp_path)])
    out = capsys.readouterr().out
    recorded = read_metadata(candidate)["comparison"]
    assert code == 0 and "passes against tiny-test-model" in out and recorded["passes"]
    assert recorded["reference_sha256"] == read_metadata(tiny_model_dir)["model_sha256"] and recorded["site"]["lower_bound"] > 0
    assert recorded["site"]["patients"] == 150 and json.dumps(recorded)  # plain JSON in the metadata

    mismatched = {"site": (labels, signal, files), "internal": (labels, signal, files[::-1])}
    with pytest.raises(ValueError, match="different internal films"):
        comparison.compared(mismatched, {"site": (labels, signal, files), "internal": (labels, signal, files)})
