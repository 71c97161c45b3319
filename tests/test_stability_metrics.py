"""Predicted hull distances and discovery metrics, against values computed independently
(numpy and scikit-learn on the base tables), on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import numpy as np
import pytest
from factories import make_model_version, make_split
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Element
from sklearn.metrics import accuracy_score, f1_score, precision_score, r2_score, recall_score
from sqlalchemy import insert, text
from stability_data import build, insert_rows, random_entries

from matplat.db.models import Prediction
from matplat.db.session import transaction
from workers.leaderboard import refresh_metrics


def _setup(engine):
    _, rows = random_entries(4, n=150)
    ids = insert_rows(engine, rows)
    build(engine)
    rng = np.random.default_rng(0)
    subsets = rng.choice(["train", "val", "test"], size=len(ids), p=[0.5, 0.2, 0.3])
    with transaction(engine) as s:
        split = make_split(s, {m: str(t) for m, t in zip(ids, subsets, strict=True)})
        mv = make_model_version(s, "v3", split_id=split.id).id
    preds, fe_pred = [], {}
    for mid, (_comp, e) in zip(ids, rows, strict=True):
        preds.append({"model_version_id": mv, "material_id": mid, "property": "band_gap",
                      "value": 1.0})
        if mid % 17 == 0:
            continue  # no formation-energy prediction: counts as predicted unstable
        base = e if np.isfinite(e) else -0.8
        fe_pred[mid] = float(base + rng.normal(0, 0.08))
        preds.append({"model_version_id": mv, "material_id": mid, "property": "formation_energy",
                      "value": fe_pred[mid], "uncertainty": 0.01})
    with engine.begin() as conn:
        conn.execute(insert(Prediction), preds)
    return rows, ids, mv, fe_pred, dict(zip(ids, subsets, strict=True))


def test_predicted_hull_distance_and_metrics(db) -> None:
    engine = db.engine
    rows, ids, mv, fe_pred, subset = _setup(engine)
    refresh_metrics(engine, mv)
    with engine.connect() as conn:
        hull = {r[0]: (r[1], r[2]) for r in conn.execute(text(
            "SELECT material_id, e_above_hull, formation_energy FROM material_hulls"))}
        pred = {r[0]: r[1] for r in conn.execute(text(
            "SELECT material_id, predicted FROM prediction_results "
            "WHERE model_tag = 'v3' AND property = 'e_above_hull'"))}
        wide = {r[0]: (r[1], r[2]) for r in conn.execute(text(
            "SELECT material_id, e_above_hull, e_above_hull_dft FROM material_predictions "
            "WHERE model_tag = 'v3'"))}
        metrics = {(r[0], float(r[1])): r[2:] for r in conn.execute(text(
            "SELECT split, threshold, n, n_predicted, tp, fp, tn, fn, precision_score, recall, "
            "f1, accuracy, prevalence, daf, mae, rmse, r2 FROM model_stability_metrics "
            "WHERE model_tag = 'v3'"))}
    # With a DFT hull distance: e_hull_dft + (fe_pred − fe_dft).
    for mid, (eah, fe) in hull.items():
        if mid in fe_pred:
            assert pred[mid] == pytest.approx(eah + fe_pred[mid] - fe, abs=1e-12)
            assert wide[mid] == pytest.approx((pred[mid], eah), abs=1e-12)
    # Without one (no DFT formation energy): the distance to the DFT hull, may be negative.
    for mid, (comp, e) in zip(ids, rows, strict=True):
        if np.isfinite(e) or mid not in fe_pred:
            continue
        system = set(comp)
        entries = [PDEntry(Composition({Element.from_Z(z): n for z, n in c.items()}),
                           en * sum(c.values())) for c, en in rows
                   if set(c) <= system and np.isfinite(en)]
        refs = [PDEntry(Composition(Element.from_Z(z).symbol), 0.0) for z in system]
        new = PDEntry(Composition({Element.from_Z(z): n for z, n in comp.items()}),
                      fe_pred[mid] * sum(comp.values()))
        _, ref = PhaseDiagram(entries + refs).get_decomp_and_e_above_hull(new, allow_negative=True)
        assert pred[mid] == pytest.approx(ref, abs=1e-6)
        assert wide[mid][1] is None
    # Metrics per subset and threshold, computed here with numpy and scikit-learn.
    assert {t for _, t in metrics} == {0.0, 0.1}
    for (split, t), got in metrics.items():
        mids = [m for m in hull if split == "all" or subset[m] == split]
        y = np.array([hull[m][0] for m in mids])
        p = np.array([pred.get(m, np.nan) for m in mids])
        true_pos = y <= t
        pred_pos = np.nan_to_num(p, nan=np.inf) <= t  # NaN predictions count as unstable
        has = ~np.isnan(p)
        prevalence = true_pos.mean()
        precision = precision_score(true_pos, pred_pos, zero_division=np.nan)
        expected = [
            len(mids), int(has.sum()), int((true_pos & pred_pos).sum()),
            int((~true_pos & pred_pos).sum()), int((~true_pos & ~pred_pos).sum()),
            int((true_pos & ~pred_pos).sum()), precision,
            recall_score(true_pos, pred_pos, zero_division=np.nan),
            f1_score(true_pos, pred_pos, zero_division=np.nan),
            accuracy_score(true_pos, pred_pos), prevalence, precision / prevalence,
            np.abs(p[has] - y[has]).mean(), np.sqrt(((p[has] - y[has]) ** 2).mean()),
            r2_score(y[has], p[has])]
        got = [np.nan if v is None else float(v) for v in got]
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=f"{split} {t}")
    assert metrics[("all", 0.0)][2] > 0 and metrics[("all", 0.0)][3] > 0  # tp and fp occur


def test_thresholds_are_configurable_and_kept(db) -> None:
    engine = db.engine
    *_, mv, _fe, _sub = _setup(engine)
    refresh_metrics(engine, mv, thresholds=(0.05,))
    refresh_metrics(engine, mv)  # e.g. the next predict: the requested threshold stays
    with engine.connect() as conn:
        ts = sorted(float(r[0]) for r in conn.execute(text(
            "SELECT DISTINCT threshold FROM model_stability_metrics WHERE model_tag = 'v3'")))
        n = conn.execute(text("SELECT n FROM model_leaderboard WHERE model_tag = 'v3' "
                              "AND property = 'e_above_hull' AND split = 'all'")).scalar_one()
    assert ts == [0.0, 0.05, 0.1] and n > 0
