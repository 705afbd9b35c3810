"""The acquisition-style detector and the group-balanced training weights it feeds."""

import numpy as np
import pytest

from pneumo_core.acquisition import CORNER, MARKER_FILM, acquisition_groups, carries_marker, marker_template
from pneumo_core.data import class_root, load_canonical
from pneumo_core.preprocess import CANONICAL_SIZE
from pneumo_core.train_config import TrainConfig
from pneumo_core.training import Trainer, balanced_weights

from .imaging import synthetic_xray


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
