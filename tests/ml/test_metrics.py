"""Metrics: MAE/RMSE with NaN, rank-based ROC-AUC, classification labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.metrics import insulator_labels, mae, magnetic_labels, rmse, roc_auc


def test_mae_and_rmse_ignore_unknown_pairs() -> None:
    t = [1.0, 2.0, np.nan, 4.0]
    p = [1.5, 1.0, 3.0, np.nan]
    assert mae(t, p) == pytest.approx(0.75)
    assert rmse(t, p) == pytest.approx(math.sqrt((0.25 + 1.0) / 2))
    assert math.isnan(mae([np.nan], [1.0]))
    with pytest.raises(ValueError):
        mae([1.0, 2.0], [1.0])


@pytest.mark.parametrize(
    ("labels", "scores", "expected"),
    [
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),  # the classic example: 3 of 4 pairs ordered
        ([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1], 1.0),
        ([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], 0.0),
        ([0, 1], [0.5, 0.5], 0.5),  # a tie counts one half
        # pairs (pos, neg): (.5,.5) tie=.5, (.5,.2)=1, (.9,.5)=1, (.9,.2)=1, (.5,.5)... -> 3.5/4
        ([1, 1, 0, 0], [0.5, 0.9, 0.5, 0.2], 0.875),
        ([0, 0, 1], [0.0, 0.0, 0.0], 0.5),  # all tied
    ],
)
def test_roc_auc_matches_hand_computed_values(labels, scores, expected) -> None:
    assert roc_auc(labels, scores) == pytest.approx(expected)


def test_roc_auc_equals_pair_counting_on_random_data_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    s = np.round(rng.random(300), 1)  # many ties
    pos, neg = s[y], s[~y]
    diff = pos[:, None] - neg[None, :]
    expected = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    assert roc_auc(y, s) == pytest.approx(expected)


def test_roc_auc_edge_cases() -> None:
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))
    assert roc_auc([0, 1, 1], [0.1, np.nan, 0.9]) == 1.0


def test_classification_labels() -> None:
    assert insulator_labels([0.0, 0.2, np.nan, 1e-4]).tolist() == [False, True, False, True]
    assert insulator_labels([0.0, 0.2], threshold=0.5).tolist() == [False, False]
    assert magnetic_labels([0.0, -0.3, 0.005, np.nan]).tolist() == [False, True, True, False]
    assert magnetic_labels([0.0, -0.3, 0.005], threshold=0.01).tolist() == [False, True, False]
