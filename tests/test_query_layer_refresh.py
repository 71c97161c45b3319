"""The snapshots and summaries of revision 0003, refreshed in SQL, against pandas and
``ml.metrics.roc_auc`` over the base tables; and deleting a model version leaves nothing behind.

Hand-made data on all three engines: tied scores, materials without DFT values, without a
split subset, and a second model that predicted only some of the materials.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from factories import make_material, make_model_version, make_prediction, make_split
from sqlalchemy import text
from sqlalchemy.orm import Session

from matplat.db.session import transaction
from matplat.services import registry
from ml.metrics import roc_auc
from workers.leaderboard import refresh_metrics

PROPS = ["formation_energy", "band_gap", "magnetization"]
ELEMENTS = [{"Fe": 2, "O": 3}, {"Na": 1, "Cl": 1}, {"Fe": 1, "Si": 1}, {"Mg": 1, "O": 1},
            {"Pb": 1, "Te": 1}, {"Li": 2, "O": 1}]
SUBSETS = ["train", "train", "val", "test", "test", None]


def build(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """12 materials, v1 (with a split) predicting all three properties of all materials,
    v2 (no split) predicting two properties of the even-numbered ones."""
    rng = np.random.default_rng(3)
    with transaction(engine) as s:
        for i in range(1, 13):
            els = ELEMENTS[i % len(ELEMENTS)]
            dft = {"formation_energy": float(rng.normal(-1, 1)),
                   "band_gap": [0.0, 0.0, 1.5, 3.0][i % 4],
                   "magnetization": None if i % 5 == 0 else [0.0, 2.0][i % 2]}
            make_material(s, i, formula="".join(els), elements=els,
                          spacegroup=[225, 62, None][i % 3], dft=dft)
        split = make_split(s, {i: SUBSETS[i % 6] for i in range(1, 13) if SUBSETS[i % 6]})
        v1 = make_model_version(s, "v1", split_id=split.id, targets=PROPS)
        v2 = make_model_version(s, "v2", targets=PROPS[:2])
        for i in range(1, 13):
            for prop in PROPS:
                # rounded so that band gaps tie across metals and insulators
                make_prediction(s, v1.id, i, prop, round(float(rng.normal(0.5, 1)), 1),
                                uncertainty=0.1 * i)
                if i % 2 == 0 and prop != "magnetization":
                    make_prediction(s, v2.id, i, prop, float(rng.normal(0.5, 1)))
        ids = {"v1": v1.id, "v2": v2.id}
    refresh_metrics(engine, ids["v1"])
    refresh_metrics(engine, ids["v2"])
    return ids


def frame(engine, sql: str) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        res = conn.execute(text(sql))
        return pd.DataFrame([tuple(r) for r in res], columns=list(res.keys()))


def long_rows(engine) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Predictions with DFT value, subset ('none' without one) and error, from base tables."""
    p = frame(engine, "SELECT mv.tag, p.material_id, p.property, p.value, p.uncertainty "
                      "FROM predictions p JOIN model_versions mv ON mv.id = p.model_version_id")
    d = frame(engine, "SELECT material_id, formation_energy, band_gap, magnetization "
                      "FROM dft_properties").melt(id_vars="material_id", var_name="property",
                                                  value_name="dft")
    sm = frame(engine, "SELECT mv.tag, sm.material_id, sm.subset FROM split_members sm "
                       "JOIN model_versions mv ON mv.split_id = sm.split_id")
    out = p.merge(d, on=["material_id", "property"], how="left").merge(
        sm, on=["tag", "material_id"], how="left")
    out["subset"] = out["subset"].fillna("none")
    out["dft"] = out["dft"].astype(float)
    out["err"] = out["value"] - out["dft"]
    return out


def null(x: object) -> bool:
    return x is None or bool(pd.isna(x))


def with_all(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df.assign(subset="all")], ignore_index=True)


def stats(g: pd.DataFrame) -> dict[str, float]:
    e = g["err"].dropna()
    return {"n": len(e), "mae": e.abs().mean(), "rmse": float(np.sqrt((e ** 2).mean()))}


def test_snapshot_equals_base_tables(db) -> None:
    build(db.engine)
    rows = long_rows(db.engine)
    wide = frame(db.engine, "SELECT * FROM material_predictions")
    mats = frame(db.engine, "SELECT id AS material_id, formula, spacegroup FROM materials")
    assert len(wide) == rows.groupby(["tag", "material_id"]).ngroups == 12 + 6
    for r in wide.itertuples():
        mine = rows[(rows.tag == r.model_tag) & (rows.material_id == r.material_id)]
        m = mats[mats.material_id == r.material_id].iloc[0]
        assert r.formula == m.formula
        assert (null(r.spacegroup) and null(m.spacegroup)) or r.spacegroup == m.spacegroup
        assert ("none" if null(r.split) else r.split) == mine.subset.iloc[0]
        for prop in PROPS:
            got = mine[mine.property == prop]
            if got.empty:
                assert null(getattr(r, prop))
                continue
            for col, want in ((prop, got.value.iloc[0]),
                              (f"{prop}_uncertainty", got.uncertainty.iloc[0]),
                              (f"{prop}_dft", got.dft.iloc[0])):
                have = getattr(r, col)
                assert (null(have) and null(want)) or have == pytest.approx(want), col


def test_leaderboard_and_auc(db) -> None:
    build(db.engine)
    rows = with_all(long_rows(db.engine))
    board = frame(db.engine, "SELECT model_tag, property, split, n, mae, rmse, roc_auc, "
                             "baseline_mae FROM model_leaderboard")
    expected = 0
    # the mean predictor: the mean DFT value of the model's training subset (v2 has no split)
    train = rows[(rows.subset == "train")].dropna(subset=["dft"])
    train_mean = train.groupby(["tag", "property"]).dft.mean()
    for (tag, prop, subset), g in rows.groupby(["tag", "property", "subset"]):
        want = stats(g)
        if want["n"] == 0:
            continue
        expected += 1
        got = board[(board.model_tag == tag) & (board.property == prop) & (board.split == subset)]
        assert len(got) == 1, (tag, prop, subset)
        got = got.iloc[0]
        assert got.n == want["n"]
        assert got.mae == pytest.approx(want["mae"], rel=1e-9)
        assert got.rmse == pytest.approx(want["rmse"], rel=1e-9)
        if (tag, prop) in train_mean.index:
            known = g.dropna(subset=["err"])
            base = (known.dft - train_mean[(tag, prop)]).abs().mean()
            assert got.baseline_mae == pytest.approx(base, rel=1e-9)
            assert tag == "v1"
        else:
            assert null(got.baseline_mae)
        if prop in ("band_gap", "magnetization"):
            g = g[g.dft.notna()]
            auc = roc_auc(g.dft.to_numpy() > 0, g.value.to_numpy())
            if np.isnan(auc):
                assert null(got.roc_auc)
            else:
                assert got.roc_auc == pytest.approx(auc, rel=1e-12)
        else:
            assert null(got.roc_auc)
    assert len(board) == expected
    # the tied band gaps really exercise the average-rank path
    v1 = rows[(rows.tag == "v1") & (rows.property == "band_gap") & (rows.subset == "all")]
    assert v1.value.duplicated().any()


def test_errors_by_element(db) -> None:
    build(db.engine)
    rows = with_all(long_rows(db.engine))
    elem = frame(db.engine, "SELECT material_id, element FROM material_elements")
    got = frame(db.engine, "SELECT * FROM model_errors_by_element")
    n_rows = 0
    for element, members in elem.groupby("element").material_id:
        inside = rows.material_id.isin(set(members))
        for (tag, prop, subset), g in rows.groupby(["tag", "property", "subset"]):
            w, wo = stats(g[inside.loc[g.index]]), stats(g[~inside.loc[g.index]])
            sel = got[(got.model_tag == tag) & (got.property == prop) & (got.split == subset)
                      & (got.element == element)]
            if w["n"] == 0:
                assert sel.empty
                continue
            n_rows += 1
            r = sel.iloc[0]
            assert (r.n, r.n_without) == (w["n"], wo["n"])
            assert r.mae == pytest.approx(w["mae"], rel=1e-9)
            assert r.rmse == pytest.approx(w["rmse"], rel=1e-9)
            if wo["n"]:
                assert r.mae_without == pytest.approx(wo["mae"], rel=1e-9)
                assert r.rmse_without == pytest.approx(wo["rmse"], rel=1e-9)
            else:
                assert null(r.mae_without)
    assert len(got) == n_rows > 0


def test_model_comparisons_both_directions(db) -> None:
    build(db.engine)
    rows = long_rows(db.engine)
    got = frame(db.engine, "SELECT * FROM model_comparisons")
    n_rows = 0
    for first, second in (("v1", "v2"), ("v2", "v1")):
        a = rows[(rows.tag == first) & rows.err.notna()]
        b = rows[rows.tag == second][["material_id", "property", "err"]]
        m = with_all(a.merge(b, on=["material_id", "property"], suffixes=("", "_b")))
        for (prop, subset), g in m.groupby(["property", "subset"]):
            sel = got[(got.model_tag == first) & (got.other_tag == second)
                      & (got.property == prop) & (got.split == subset)]
            assert len(sel) == 1, (first, prop, subset)
            n_rows += 1
            r = sel.iloc[0]
            assert r.n == len(g)
            assert r.mae == pytest.approx(g.err.abs().mean(), rel=1e-9)
            assert r.other_mae == pytest.approx(g.err_b.abs().mean(), rel=1e-9)
            assert r.rmse == pytest.approx(np.sqrt((g.err ** 2).mean()), rel=1e-9)
            assert r.other_rmse == pytest.approx(np.sqrt((g.err_b ** 2).mean()), rel=1e-9)
            assert r.n_closer == int((g.err.abs() < g.err_b.abs()).sum())
            assert r.n_other_closer == int((g.err_b.abs() < g.err.abs()).sum())
    assert len(got) == n_rows
    assert set(got.split[got.model_tag == "v2"]) == {"none", "all"}  # v2 has no split


def _counts(engine, mv_id: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        out = {t: conn.execute(text(f"SELECT count(*) FROM {t} WHERE model_version_id = :m"),
                               {"m": mv_id}).scalar_one()
               for t in ("predictions", "wide_predictions", "model_metrics",
                         "model_element_metrics", "model_aliases", "model_pair_metrics")}
        out["model_pair_metrics (other)"] = conn.execute(text(
            "SELECT count(*) FROM model_pair_metrics WHERE other_model_version_id = :m"),
            {"m": mv_id}).scalar_one()
    return out


def test_delete_version_leaves_no_orphans(db) -> None:
    ids = build(db.engine)
    registry.set_alias(db.engine, "v1", "production")
    before = _counts(db.engine, ids["v1"])
    assert all(before.values()), before
    kept = _counts(db.engine, ids["v2"])
    assert registry.delete_version(db.engine, "v1") == 36
    assert set(_counts(db.engine, ids["v1"]).values()) == {0}
    after = _counts(db.engine, ids["v2"])
    assert after["model_pair_metrics"] == after["model_pair_metrics (other)"] == 0
    assert {k: v for k, v in after.items() if "pair" not in k} == {
        k: v for k, v in kept.items() if "pair" not in k}
    with db.engine.connect() as conn:
        orphans = conn.execute(text(
            "SELECT count(*) FROM predictions p WHERE NOT EXISTS "
            "(SELECT 1 FROM model_versions mv WHERE mv.id = p.model_version_id)")).scalar_one()
    assert orphans == 0


def test_delete_version_is_one_transaction(db, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after the predictions were deleted keeps them: all or nothing."""
    ids = build(db.engine)
    before = _counts(db.engine, ids["v1"])

    def boom(self: Session, instance: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(Session, "delete", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        registry.delete_version(db.engine, "v1")
    assert _counts(db.engine, ids["v1"]) == before
