"""Predicted hull distances and discovery metrics, refreshed with a model's leaderboard.

Predicted hull distance (property ``e_above_hull`` in ``predictions``), the Matbench
Discovery convention:

- a material with a DFT hull distance: ``e_above_hull_dft + (formation_energy_pred −
  formation_energy_dft)``, the DFT formation energy being the one its hull was built from
  (the model's error moves the material up or down against a fixed hull);
- a material without one (user structures, candidates, materials left out of the hull): the
  distance of its predicted formation energy to the DFT hull of its chemical system, built
  from the source with the most hull results; it may be negative (below the known hull).

Discovery metrics (``stability_metrics``), as ``matbench_discovery.metrics.stable_metrics``:
stable ⇔ hull distance ≤ threshold; over the materials with a DFT hull distance, a missing
prediction counts as predicted unstable; precision TP/(TP+FP), recall TP/(TP+FN), F1,
accuracy (TP+TN)/n, prevalence (TP+FN)/n, DAF = precision/prevalence; MAE, RMSE and R² of the
distance over materials with both values. Sums per subset come from the database; ``all`` is
their total.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from matplat.db.bulk import write_predictions

#: Stability thresholds (eV/atom) every refresh computes; others stay once requested.
DEFAULT_THRESHOLDS = (0.0, 0.1)


def derive_hull_predictions(conn: Connection, mv: int) -> int:
    """Rewrite model version ``mv``'s ``e_above_hull`` predictions from its formation-energy
    predictions; returns the rows written."""
    conn.execute(text("DELETE FROM predictions WHERE model_version_id = :mv "
                      "AND property = 'e_above_hull'"), {"mv": mv})
    n = conn.execute(text(
        "INSERT INTO predictions (model_version_id, material_id, property, value, uncertainty) "
        "SELECT p.model_version_id, p.material_id, 'e_above_hull', "
        "h.e_above_hull + (p.value - h.formation_energy), p.uncertainty "
        "FROM predictions p JOIN material_hulls h ON h.material_id = p.material_id "
        "WHERE p.model_version_id = :mv AND p.property = 'formation_energy'"),
        {"mv": mv}).rowcount
    rest = conn.execute(text(
        "SELECT p.material_id, p.value, p.uncertainty FROM predictions p "
        "WHERE p.model_version_id = :mv AND p.property = 'formation_energy' AND NOT EXISTS "
        "(SELECT 1 FROM material_hulls h WHERE h.material_id = p.material_id) "
        "ORDER BY p.material_id"), {"mv": mv}).all()
    if rest:
        n += _against_reference_hulls(conn, mv, rest)
    return int(n)


def _against_reference_hulls(conn: Connection, mv: int, rest: list) -> int:
    from ml.stability.systems import distances_to_hulls
    from workers.hull_data import read_entries, read_source

    source = conn.execute(text(
        "SELECT source FROM material_hulls GROUP BY source ORDER BY COUNT(*) DESC, source"
    )).scalar()
    if source is None:  # no hull built yet: nothing to measure against
        return 0
    ref = read_source(conn, source)
    mids = np.array([r[0] for r in rest], dtype=np.int64)
    pred = np.array([r[1] for r in rest], dtype=np.float64)
    unc = np.array([np.nan if r[2] is None else r[2] for r in rest], dtype=np.float64)
    dist = distances_to_hulls(ref.entries, read_entries(conn, mids, pred), ref.index)
    ok = np.isfinite(dist)
    return write_predictions(conn, mv, mids[ok], "e_above_hull", dist[ok],
                             None if np.isnan(unc).all() else unc[ok])


def thresholds_of(conn: Connection, mv: int, extra: tuple[float, ...] = ()) -> list[float]:
    """The defaults, the thresholds already stored for ``mv`` and ``extra``, ascending."""
    stored = [float(r[0]) for r in conn.execute(text(
        "SELECT DISTINCT threshold FROM stability_metrics WHERE model_version_id = :mv"),
        {"mv": mv})]
    return sorted({*DEFAULT_THRESHOLDS, *stored, *(float(t) for t in extra)})


def _sums(conn: Connection, mv: int, t: float) -> dict[str, list[float]]:
    """Per subset: [n, n_pred, tp, fp, tn, fn, Σ|e|, Σe², Σy, Σy²] (e = pred − dft, y = dft)."""
    pos_pred = "(w.e_above_hull IS NOT NULL AND w.e_above_hull <= :t)"
    neg_pred = "(w.e_above_hull IS NULL OR w.e_above_hull > :t)"
    both = "w.e_above_hull IS NOT NULL"
    err = "(w.e_above_hull - w.e_above_hull_dft)"
    rows = conn.execute(text(
        "SELECT COALESCE(w.split, 'none'), COUNT(*), COUNT(w.e_above_hull), "
        f"SUM(CASE WHEN w.e_above_hull_dft <= :t AND {pos_pred} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN w.e_above_hull_dft > :t AND {pos_pred} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN w.e_above_hull_dft > :t AND {neg_pred} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN w.e_above_hull_dft <= :t AND {neg_pred} THEN 1 ELSE 0 END), "
        f"SUM(ABS{err}), SUM({err} * {err}), "
        f"SUM(CASE WHEN {both} THEN w.e_above_hull_dft END), "
        f"SUM(CASE WHEN {both} THEN w.e_above_hull_dft * w.e_above_hull_dft END) "
        "FROM wide_predictions w WHERE w.model_version_id = :mv "
        "AND w.e_above_hull_dft IS NOT NULL GROUP BY COALESCE(w.split, 'none')"),
        {"mv": mv, "t": t}).all()
    out = {r[0]: [float(v or 0) for v in r[1:]] for r in rows}
    if out:
        out["all"] = [sum(v[i] for v in out.values()) for i in range(10)]
    return out


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def metric_row(mv: int, subset: str, t: float, s: list[float]) -> dict[str, Any]:
    """One ``stability_metrics`` row from the sums of :func:`_sums`."""
    n, n_pred, tp, fp, tn, fn, s_abs, s_sq, s_y, s_y2 = s
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    prevalence = _ratio(tp + fn, n)
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall else None)
    ss_tot = s_y2 - s_y * s_y / n_pred if n_pred else 0.0
    return {
        "model_version_id": mv, "subset": subset, "threshold": t, "n": int(n),
        "n_predicted": int(n_pred), "tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn),
        "precision_score": precision, "recall": recall, "f1": f1,
        "accuracy": _ratio(tp + tn, n), "prevalence": prevalence,
        "daf": (precision / prevalence if precision is not None and prevalence else None),
        "mae": _ratio(s_abs, n_pred), "rmse": math.sqrt(s_sq / n_pred) if n_pred else None,
        "r2": 1.0 - s_sq / ss_tot if n_pred and ss_tot > 0 else None}


def stability_rows(conn: Connection, mv: int, thresholds: list[float]) -> list[dict[str, Any]]:
    """Every (subset, threshold) row of model version ``mv`` from ``wide_predictions``."""
    return [metric_row(mv, subset, t, s) for t in thresholds
            for subset, s in _sums(conn, mv, t).items()]
