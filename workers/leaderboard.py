"""Refresh ``model_metrics`` (the ``model_leaderboard`` view) from stored predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from matplat.db.bulk import insert_columns

#: DFT value above which a material is an insulator (band gap, eV) or magnetic (μB/atom).
CLASS_THRESHOLDS = {"band_gap": 0.0, "magnetization": 0.0}


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from ml.metrics import roc_auc

    if labels.all() or not labels.any():
        return None
    return float(roc_auc(labels, scores))


def refresh_metrics(engine: Engine, model_version_id: int) -> int:
    """Recompute n, MAE, RMSE (and ROC-AUC) per property and subset; returns rows written."""
    sql = text(
        "SELECT property, predicted, dft, split FROM prediction_results pr "
        "JOIN model_versions mv ON mv.tag = pr.model_tag WHERE mv.id = :mv AND dft IS NOT NULL")
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(sql, {"mv": model_version_id}).all(),
                          columns=["property", "predicted", "dft", "split"])
    rows: dict[str, list] = {k: [] for k in ("model_version_id", "property", "subset", "n", "mae",
                                             "rmse", "roc_auc")}
    if not df.empty:
        df["split"] = df["split"].fillna("none")
        groups = [(prop, "all", g) for prop, g in df.groupby("property")]
        groups += [(prop, sub, g) for (prop, sub), g in df.groupby(["property", "split"])]
        for prop, sub, g in groups:
            err = g["predicted"].to_numpy(float) - g["dft"].to_numpy(float)
            auc = None
            if prop in CLASS_THRESHOLDS:
                auc = _auc(g["dft"].to_numpy(float) > CLASS_THRESHOLDS[prop],
                           g["predicted"].to_numpy(float))
            for key, value in (("model_version_id", model_version_id), ("property", prop),
                               ("subset", sub), ("n", len(g)),
                               ("mae", float(np.abs(err).mean())),
                               ("rmse", float(np.sqrt((err ** 2).mean()))), ("roc_auc", auc)):
                rows[key].append(value)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM model_metrics WHERE model_version_id = :mv"),
                     {"mv": model_version_id})
        insert_columns(conn, "model_metrics", {
            k: (np.asarray(v, dtype=float) if k in ("mae", "rmse") else v)
            for k, v in rows.items()})
    return len(rows["n"])
