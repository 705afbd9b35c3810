"""The acquisition-style detector and what training does with its groups: balanced weights, or logit offsets."""

import keras
import numpy as np
import pytest

from devtools.imaging import synthetic_xray
from pneumo_core.common.films import class_root
from pneumo_core.common.preprocess import CANONICAL_SIZE
from pneumo_core.jobs.request import TrainConfig
from pneumo_core.modeling.architectures import LOGIT_LAYER, build_head, with_logit_offset
from pneumo_core.serving.loading import load_canonical
from pneumo_core.store.model_dir import load_model_dir
from pneumo_core.training.acquisition import (
    CORNER,
    MARKER_FILM,
    acquisition_groups,
    balanced_weights,
    carries_marker,
    group_log_odds,
    marker_template,
)
from pneumo_core.training.trainer import Trainer


def _marker() -> np.ndarray:
    """A synthetic "R"-like glyph: bright strokes on a dark ground, 30 × 18 px."""
    glyph = np.zeros((30, 18), np.float32)
    glyph[2:28, 2:6] = 255  # stem
    glyph[2:6, 2:15] = glyph[13:17, 2:15] = 255  # bowl top and middle
    glyph[2:17, 12:16] = 255  # bowl side
    for row in range(17, 28):  # leg
        glyph[row, 5 + (row - 17) : 9 + (row - 17)] = 255
    return glyph


def test_a_film_carries_the_marker_where_it_is_printed_in_the_corner_and_not_elsewhere():
    films = np.stack([synthetic_xray(CANONICAL_SIZE, seed=i) for i in range(3)])
    films[0, 20:50, 12:30] = _marker()  # in the corner
    films[1, 150:180, 150:168] = _marker()  # far from it: not the device's annotation
    assert carries_marker(films, _marker()).tolist() == [True, False, False]
    batches = [films[:2], films[2:]]
    assert acquisition_groups(batches, _marker()).tolist() == [1, 0, 0]
    assert acquisition_groups([], _marker()).shape == (0,)


def test_the_template_film_carries_its_own_marker_and_a_missing_one_is_explained(real_data, tmp_path):
    template = marker_template(class_root(real_data))
    film = load_canonical(str(class_root(real_data) / MARKER_FILM))
    blank = film.copy()
    blank[CORNER] = 0
    assert carries_marker(np.stack([film, blank]), template).tolist() == [True, False]
    with pytest.raises(FileNotFoundError, match="without --balance-acquisition"):
        marker_template(tmp_path)


def test_balanced_weights_without_groups_are_the_class_weights():
    labels = np.array([0, 1, 1, 1])
    np.testing.assert_allclose(balanced_weights(labels), [4 / 2, 4 / 6, 4 / 6, 4 / 6])


def test_balanced_weights_make_the_classes_count_alike_within_each_group_and_keep_each_groups_share():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    groups = rng.integers(0, 3, 200)
    labels[groups == 2] = 1  # a group of one class: kept at its share, nothing to balance
    weights = balanced_weights(labels, groups)
    for group in range(3):
        members = groups == group
        assert weights[members].sum() == pytest.approx(members.sum())
        if group < 2:
            assert weights[members & (labels == 0)].sum() == pytest.approx(weights[members & (labels == 1)].sum())
    np.testing.assert_allclose(weights[groups == 2], 1.0)


def test_a_balancing_run_groups_its_training_films(real_data, tmp_path):
    config = TrainConfig(
        data_dir=str(real_data), output_dir=str(tmp_path), run_name="groups", smoke=True, balance_acquisition=True
    )
    splits, _, _ = Trainer(config).load_data()
    train = splits["train"]
    template = marker_template(class_root(real_data))
    assert train.groups.tolist() == carries_marker(train.images, template).astype(int).tolist()
    assert splits["val"].groups is None  # validation and test stay unweighted


def test_group_log_odds_are_each_groups_log_odds_against_all_films_and_finite_for_a_one_class_group():
    labels = np.array([1] * 30 + [0] * 10 + [1] * 9 + [0] * 1 + [1] * 5)
    groups = np.array([0] * 40 + [1] * 10 + [2] * 5)
    offsets = group_log_odds(labels, groups)
    overall = np.log(44.5 / 11.5)
    np.testing.assert_allclose(offsets[groups == 0], np.log(30.5 / 10.5) - overall)
    np.testing.assert_allclose(offsets[groups == 1], np.log(9.5 / 1.5) - overall)
    np.testing.assert_allclose(offsets[groups == 2], np.log(5.5 / 0.5) - overall)  # no normal film: large, finite
    np.testing.assert_allclose(group_log_odds(labels, np.zeros_like(labels)), 0.0)  # one group: nothing to explain


def test_the_offset_view_is_the_classifiers_logit_plus_the_offset_through_the_same_layers():
    inputs = keras.Input(shape=(3,))
    classifier = keras.Model(inputs, build_head(inputs, dropout=0.0, head_units=4))
    view = with_logit_offset(classifier)
    features = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    offsets = np.array([[-2.0], [0.0], [0.5], [1.0], [3.0]], "float32")
    logits = keras.Model(classifier.input, classifier.get_layer(LOGIT_LAYER).output).predict(features, verbose=0)
    expected = 1 / (1 + np.exp(-(logits + offsets)))
    np.testing.assert_allclose(view.predict((features, offsets), verbose=0), expected, rtol=1e-5)
    assert {id(w) for w in view.weights} == {id(w) for w in classifier.weights}  # training the view trains the classifier


def test_trained_with_offsets_a_classifier_stops_reading_a_group_that_tells_the_class():
    """A product of experts on a toy problem: feature 0 is the group (pneumonia 95% of the time in group 1, half the
    time in group 0), feature 1 the disease signal. Trained plainly the classifier leans on the group; trained through
    the offset view with the groups' log-odds it reads the signal alone, as the offset explains the group."""
    rng = np.random.default_rng(0)
    groups = (rng.random(3000) < 0.3).astype(int)
    labels = (rng.random(3000) < np.where(groups == 1, 0.95, 0.5)).astype(int)
    features = np.stack([groups, rng.normal(2.0 * labels - 1.0, 1.0)], axis=1).astype("float32")

    def fitted_weights(offsets: np.ndarray | None) -> np.ndarray:
        keras.utils.set_random_seed(0)
        inputs = keras.Input(shape=(2,))
        classifier = keras.Model(inputs, build_head(inputs, dropout=0.0, head_units=0))
        model = classifier if offsets is None else with_logit_offset(classifier)
        model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy")
        x = features if offsets is None else (features, offsets[:, np.newaxis].astype("float32"))
        model.fit(x, labels, batch_size=100, epochs=30, verbose=0)
        return classifier.get_layer(LOGIT_LAYER).get_weights()[0][:, 0]

    plain = fitted_weights(None)
    offset = fitted_weights(group_log_odds(labels, groups))
    assert plain[0] > 2.0  # the group itself counted as evidence: log(0.95 / 0.05) ≈ 2.9
    assert abs(offset[0]) < 0.3  # explained by the offset
    assert offset[1] == pytest.approx(plain[1], rel=0.15) and offset[1] > 1.5  # the signal still read


def test_an_offset_run_computes_the_groups_and_saves_the_classifier_alone(real_data, tmp_path):
    with pytest.raises(ValueError, match="Choose one way"):
        TrainConfig(balance_acquisition=True, acquisition_offset=True)
    config = TrainConfig(
        data_dir=str(real_data),
        base_weights="none",
        output_dir=str(tmp_path),
        run_name="offset",
        smoke=True,
        acquisition_offset=True,
        scratch_schedule="48:1:8",
        img_size=48,
    )
    trainer = Trainer(config)
    assert trainer.load_data()[0]["train"].groups is not None
    model, _ = load_model_dir(trainer.run())
    assert len(model.inputs) == 1 and model.output.shape == (None, 1)  # served as it always was: film → probability
