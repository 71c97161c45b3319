"""Refresh what the README's summary queries read, from a model version's stored predictions.

After a predict, :func:`refresh_metrics` rebuilds in one transaction:

- ``wide_predictions`` (view ``material_predictions``): one row per material with every
  predicted property, its uncertainty and its DFT value, and the material's formula, space
  group and subset of the model's split;
- ``model_metrics`` (view ``model_leaderboard``): n, MAE, RMSE per property and subset,
  ROC-AUC for band gap (metal/insulator) and magnetization (magnetic or not), and the mean
  predictor's MAE on the same rows (``baseline_mae``: predicting the training subset's mean);
- ``model_element_metrics`` (view ``model_errors_by_element``): the same on the materials that
  contain each element and on the others;
- ``model_pair_metrics`` (view ``model_comparisons``): against every other model version that
  predicted the same materials, in both directions.

Everything is aggregated by the database (sums per group, then combined here: a group's
``all`` subset is the sum of its subsets), so no prediction row travels to Python. Numbers are
snapshots of the DFT values at refresh time (``refreshed_at``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, text

from matplat.db.models.mlmodels import (
    PREDICTED_PROPERTIES,
    ModelElementMetric,
    ModelMetric,
    ModelPairMetric,
)
from matplat.db.models.stability import StabilityMetric
from ml.metrics import BAND_GAP_THRESHOLD, MAGNETIZATION_THRESHOLD

#: DFT value above which a material is an insulator (band gap, eV) or magnetic (μB/atom): the
#: named constants of ``ml.metrics`` (0: OQMD and the synthetic data store exactly 0 for
#: metals and non-magnetic results), recorded with each model's metrics at registration.
CLASS_THRESHOLDS = {"band_gap": BAND_GAP_THRESHOLD, "magnetization": MAGNETIZATION_THRESHOLD}

PROPS = PREDICTED_PROPERTIES
_SUBSET = "COALESCE(w.split, 'none')"


def _pivot_sql() -> str:
    pick = ",\n  ".join(
        f"MAX(CASE WHEN property = '{p}' THEN value END) AS {p}, "
        f"MAX(CASE WHEN property = '{p}' THEN uncertainty END) AS {p}_uncertainty"
        for p in PROPS)
    cols = ", ".join(f"{p}, {p}_uncertainty, {p}_dft" for p in PROPS)
    # The DFT hull distance lives in material_hulls, every other DFT value in dft_properties.
    vals = ", ".join(f"w.{p}, w.{p}_uncertainty, {'h' if p == 'e_above_hull' else 'd'}.{p}"
                     for p in PROPS)
    return (
        f"INSERT INTO wide_predictions (model_version_id, material_id, formula, spacegroup, "
        f"split, {cols})\n"
        f"SELECT :mv, w.material_id, m.formula, m.spacegroup, sm.subset, {vals}\n"
        f"FROM (SELECT material_id,\n  {pick}\n"
        "  FROM predictions WHERE model_version_id = :mv GROUP BY material_id) w\n"
        "JOIN materials m ON m.id = w.material_id\n"
        "LEFT JOIN dft_properties d ON d.material_id = w.material_id\n"
        "LEFT JOIN material_hulls h ON h.material_id = w.material_id\n"
        "LEFT JOIN split_members sm ON sm.split_id = :split AND sm.material_id = w.material_id")


def _error_sums(alias: str = "w") -> str:
    """Per property: count, sum of |error| and sum of error² over rows with both values."""
    return ",\n  ".join(
        f"COUNT({alias}.{p} - {alias}.{p}_dft), SUM(ABS({alias}.{p} - {alias}.{p}_dft)), "
        f"SUM(({alias}.{p} - {alias}.{p}_dft) * ({alias}.{p} - {alias}.{p}_dft))"
        for p in PROPS)


def _sums_by(conn: Connection, mv: int, group: str, join: str = "") -> dict[tuple, list]:
    """{(*group values, subset): [n, Σ|e|, Σe²] * len(PROPS)} of one model version."""
    rows = conn.execute(text(
        f"SELECT {group + ', ' if group else ''}{_SUBSET},\n  {_error_sums()}\n"
        f"FROM wide_predictions w {join} WHERE w.model_version_id = :mv\n"
        f"GROUP BY {group + ', ' if group else ''}{_SUBSET}"), {"mv": mv}).all()
    k = 1 + (1 if group else 0)
    return {tuple(r[:k]): [float(v or 0) for v in r[k:]] for r in rows}


def _with_all(sums: dict[tuple, list]) -> dict[tuple, list]:
    """Add the ``all`` subset (sum over subsets) for each group."""
    out = dict(sums)
    for key, vals in sums.items():
        total = out.setdefault((*key[:-1], "all"), [0.0] * len(vals))
        for i, v in enumerate(vals):
            total[i] += v
    return out


def _stats(n: float, s_abs: float, s_sq: float) -> tuple[int, float | None, float | None]:
    if n <= 0:
        return 0, None, None
    return int(n), s_abs / n, math.sqrt(max(s_sq, 0.0) / n)


def _baseline_sums(conn: Connection, mv: int) -> dict[tuple, list[float | None]]:
    """{(subset,): Σ|DFT − training mean| per property} over the rows that ``mae`` covers:
    the absolute errors of the mean predictor (the mean DFT value of the model's training
    subset among the predicted materials; None where that subset has no value)."""
    means = conn.execute(text(
        "SELECT " + ", ".join(f"AVG(w.{p}_dft)" for p in PROPS)
        + " FROM wide_predictions w WHERE w.model_version_id = :mv AND w.split = 'train'"),
        {"mv": mv}).one()
    known = [(p, float(m)) for p, m in zip(PROPS, means, strict=True) if m is not None]
    if not known:
        return {}
    params: dict[str, Any] = {"mv": mv, **{f"m_{p}": m for p, m in known}}
    terms = ", ".join(f"SUM(CASE WHEN w.{p} IS NOT NULL THEN ABS(w.{p}_dft - :m_{p}) END)"
                      for p, _ in known)
    rows = conn.execute(text(
        f"SELECT {_SUBSET}, {terms} FROM wide_predictions w WHERE w.model_version_id = :mv "
        f"GROUP BY {_SUBSET}"), params).all()
    at = {p: k for k, (p, _) in enumerate(known)}
    out = {(r[0],): [None if p not in at else float(r[1 + at[p]] or 0.0) for p in PROPS]
           for r in rows}
    if out:
        out[("all",)] = [None if p not in at else sum(v[k] or 0.0 for v in out.values())
                         for k, p in enumerate(PROPS)]
    return out


def _auc(conn: Connection, mv: int, prop: str) -> dict[str, float | None]:
    """ROC-AUC per subset and for ``all`` by the rank-sum formula, ranks computed in SQL.

    Ties share their average rank (RANK() plus half the other members of the tie), as
    ``ml.metrics.roc_auc`` does; one scan ranks within each subset and over all rows.
    """

    def avg_rank(part: str) -> str:
        over = f"PARTITION BY {part} " if part else ""
        return (f"RANK() OVER ({over}ORDER BY w.{prop}) + (COUNT(*) OVER (PARTITION BY "
                f"{part + ', ' if part else ''}w.{prop}) - 1) / 2.0")

    rows = conn.execute(text(
        "SELECT subset, SUM(pos * r_subset), SUM(pos * r_all), SUM(pos), COUNT(*) FROM ("
        f"SELECT {_SUBSET} AS subset, CASE WHEN w.{prop}_dft > :thr THEN 1 ELSE 0 END AS pos, "
        f"{avg_rank(_SUBSET)} AS r_subset, {avg_rank('')} AS r_all "
        f"FROM wide_predictions w WHERE w.model_version_id = :mv AND w.{prop} IS NOT NULL "
        f"AND w.{prop}_dft IS NOT NULL) t GROUP BY subset"),
        {"mv": mv, "thr": CLASS_THRESHOLDS[prop]}).all()

    def auc(rank_sum: float, n_pos: int, n: int) -> float | None:
        n_neg = n - n_pos
        if n_pos == 0 or n_neg == 0:
            return None
        return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)

    out = {r[0]: auc(float(r[1]), int(r[3]), int(r[4])) for r in rows}
    if rows:
        out["all"] = auc(sum(float(r[2]) for r in rows), sum(int(r[3]) for r in rows),
                         sum(int(r[4]) for r in rows))
    return out


def _pair_sums(conn: Connection, mv: int) -> dict[tuple, list]:
    """{(other id, subset here, subset there): per property [n, Σ|e|, Σe², Σ|e'|, Σe'²,
    n this closer, n other closer]} over materials both versions predicted, with DFT."""
    terms = []
    for p in PROPS:
        ea, eb = f"(a.{p} - a.{p}_dft)", f"(b.{p} - a.{p}_dft)"
        both = f"a.{p} IS NOT NULL AND b.{p} IS NOT NULL AND a.{p}_dft IS NOT NULL"
        terms.append(
            f"SUM(CASE WHEN {both} THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN b.{p} IS NOT NULL THEN ABS{ea} END), "
            f"SUM(CASE WHEN b.{p} IS NOT NULL THEN {ea} * {ea} END), "
            f"SUM(CASE WHEN a.{p} IS NOT NULL THEN ABS{eb} END), "
            f"SUM(CASE WHEN a.{p} IS NOT NULL THEN {eb} * {eb} END), "
            f"SUM(CASE WHEN ABS{ea} < ABS{eb} THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN ABS{eb} < ABS{ea} THEN 1 ELSE 0 END)")
    rows = conn.execute(text(
        "SELECT b.model_version_id, COALESCE(a.split, 'none'), COALESCE(b.split, 'none'),\n  "
        + ",\n  ".join(terms) +
        "\nFROM wide_predictions a JOIN wide_predictions b ON b.material_id = a.material_id"
        " AND b.model_version_id <> a.model_version_id\n"
        "WHERE a.model_version_id = :mv\n"
        "GROUP BY b.model_version_id, COALESCE(a.split, 'none'), COALESCE(b.split, 'none')"),
        {"mv": mv}).all()
    return {(int(r[0]), r[1], r[2]): [float(v or 0) for v in r[3:]] for r in rows}


def _pair_rows(mv: int, sums: dict[tuple, list]) -> Iterable[dict[str, Any]]:
    width = 7
    for direction in ("forward", "reverse"):
        grouped: dict[tuple, list] = defaultdict(lambda: [0.0] * width * len(PROPS))
        for (other, sub_a, sub_b), vals in sums.items():
            subset = sub_a if direction == "forward" else sub_b
            for key in ((other, subset), (other, "all")):
                acc = grouped[key]
                for i, v in enumerate(vals):
                    acc[i] += v
        for (other, subset), vals in grouped.items():
            for k, prop in enumerate(PROPS):
                n, sa, sq, sb, sqb, ca, cb = vals[width * k: width * (k + 1)]
                if n <= 0:
                    continue
                if direction == "reverse":
                    sa, sq, sb, sqb, ca, cb = sb, sqb, sa, sq, cb, ca
                first, second = (mv, other) if direction == "forward" else (other, mv)
                yield {"model_version_id": first, "other_model_version_id": second,
                       "property": prop, "subset": subset, "n": int(n),
                       "mae": sa / n, "rmse": math.sqrt(sq / n),
                       "other_mae": sb / n, "other_rmse": math.sqrt(sqb / n),
                       "n_closer": int(ca), "n_other_closer": int(cb)}


def refresh_metrics(engine: Engine, model_version_id: int,
                    thresholds: tuple[float, ...] = ()) -> int:
    """Rebuild the snapshot and every summary of one model version; returns metric rows.

    The predicted hull distances are derived first (``workers.stability_metrics``), and the
    discovery metrics use ``thresholds`` (eV/atom) besides the defaults and those stored.
    """
    from workers.stability_metrics import derive_hull_predictions, stability_rows, thresholds_of

    mv = model_version_id
    with engine.begin() as conn:
        split_id = conn.execute(text("SELECT split_id FROM model_versions WHERE id = :mv"),
                                {"mv": mv}).scalar_one()
        derive_hull_predictions(conn, mv)
        stability_thresholds = thresholds_of(conn, mv, thresholds)
        for table in ("wide_predictions", "model_metrics", "model_element_metrics",
                      "stability_metrics"):
            conn.execute(text(f"DELETE FROM {table} WHERE model_version_id = :mv"), {"mv": mv})
        conn.execute(text("DELETE FROM model_pair_metrics WHERE model_version_id = :mv "
                          "OR other_model_version_id = :mv"), {"mv": mv})
        conn.execute(text(_pivot_sql()), {"mv": mv, "split": split_id})

        totals = _with_all(_sums_by(conn, mv, ""))
        aucs = {p: _auc(conn, mv, p) for p in CLASS_THRESHOLDS}
        baseline = _baseline_sums(conn, mv)
        metric_rows = []
        for (subset,), vals in totals.items():
            base = baseline.get((subset,), [None] * len(PROPS))
            for k, prop in enumerate(PROPS):
                n, mae, rmse = _stats(*vals[3 * k: 3 * k + 3])
                if n:
                    metric_rows.append({
                        "model_version_id": mv, "property": prop, "subset": subset, "n": n,
                        "mae": mae, "rmse": rmse,
                        "roc_auc": aucs[prop].get(subset) if prop in aucs else None,
                        "baseline_mae": None if base[k] is None else base[k] / n})

        element_rows = []
        by_element = _with_all(_sums_by(
            conn, mv, "e.element", "JOIN material_elements e ON e.material_id = w.material_id"))
        for (element, subset), vals in by_element.items():
            total = totals[(subset,)]
            for k, prop in enumerate(PROPS):
                n, mae, rmse = _stats(*vals[3 * k: 3 * k + 3])
                if not n:
                    continue
                rest = [t - v for t, v in zip(total[3 * k: 3 * k + 3], vals[3 * k: 3 * k + 3],
                                              strict=True)]
                n_wo, mae_wo, rmse_wo = _stats(*rest)
                element_rows.append({
                    "model_version_id": mv, "property": prop, "subset": subset,
                    "element": element, "n": n, "mae": mae, "rmse": rmse, "n_without": n_wo,
                    "mae_without": mae_wo, "rmse_without": rmse_wo})

        pair_rows = list(_pair_rows(mv, _pair_sums(conn, mv)))
        stab_rows = stability_rows(conn, mv, stability_thresholds)
        for table, rows in ((ModelMetric, metric_rows), (ModelElementMetric, element_rows),
                            (ModelPairMetric, pair_rows), (StabilityMetric, stab_rows)):
            if rows:
                conn.execute(table.__table__.insert(), rows)
    return len(metric_rows)
