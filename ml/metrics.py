"""Regression and classification metrics in numpy (no scikit-learn at run time).

Every metric ignores pairs where the true value or the prediction is NaN.

Classification follows the CGNN paper's use of the regression outputs: the DFT value gives the
label, the predicted value is the score, and the ROC-AUC measures the ranking.

* metal/insulator: insulator when the band gap is ``> 0`` eV (OQMD stores exactly 0 for metals);
* non-magnetic/magnetic: magnetic when the magnetization is ``> 0`` μB/atom (OQMD stores 0 for
  non-spin-polarised and non-magnetic results).

Both thresholds are parameters (e.g. ``0.01`` to ignore numerical noise in spin-polarised runs).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "BAND_GAP_THRESHOLD",
    "MAGNETIZATION_THRESHOLD",
    "insulator_labels",
    "magnetic_labels",
    "mae",
    "rmse",
    "roc_auc",
]

#: eV; a band gap above this is an insulator (semiconductors included).
BAND_GAP_THRESHOLD = 0.0
#: μB/atom; an absolute magnetization above this is magnetic.
MAGNETIZATION_THRESHOLD = 0.0


def _pairs(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"shapes differ: {t.shape} vs {p.shape}")
    keep = ~(np.isnan(t) | np.isnan(p))
    return t[keep], p[keep]


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error over the known pairs (NaN when there are none)."""
    t, p = _pairs(y_true, y_pred)
    return float(np.mean(np.abs(p - t))) if t.size else float("nan")


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error over the known pairs (NaN when there are none)."""
    t, p = _pairs(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2))) if t.size else float("nan")


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # start of each run of equal values
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney U) formula; ties count 1/2.

    ``labels``: truthy for the positive class. NaN scores are dropped. Returns NaN when one
    class is absent.
    """
    y = np.asarray(labels).astype(bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"shapes differ: {y.shape} vs {s.shape}")
    keep = ~np.isnan(s)
    y, s = y[keep], s[keep]
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def insulator_labels(band_gap: ArrayLike, threshold: float = BAND_GAP_THRESHOLD) -> np.ndarray:
    """``True`` for insulators (band gap ``> threshold`` eV); NaN gives ``False``."""
    g = np.asarray(band_gap, dtype=np.float64)
    return np.greater(g, threshold, where=~np.isnan(g), out=np.zeros(g.shape, dtype=bool))


def magnetic_labels(
    magnetization: ArrayLike, threshold: float = MAGNETIZATION_THRESHOLD
) -> np.ndarray:
    """``True`` for magnetic materials (``|m| > threshold`` μB/atom); NaN gives ``False``."""
    m = np.abs(np.asarray(magnetization, dtype=np.float64))
    return np.greater(m, threshold, where=~np.isnan(m), out=np.zeros(m.shape, dtype=bool))
