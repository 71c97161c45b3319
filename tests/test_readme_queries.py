"""Every example query of the README, on all three engines, against independently computed
answers (pandas over the base tables, not the views)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from matplat.services.query import run_query

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_queries() -> dict[str, str]:
    body = README.read_text(encoding="utf-8")
    found = re.findall(r"<!-- readme-query: (\w+) -->\s*```sql\n(.*?)```", body, flags=re.DOTALL)
    return {name: sql.strip() for name, sql in found}


def test_readme_has_the_example_queries() -> None:
    assert set(readme_queries()) == {"screening", "error_by_spacegroup", "error_by_chemistry",
                                     "compare_models", "elements_present", "leaderboard",
                                     "near_hull", "discovery"}


def frames(engine) -> dict[str, pd.DataFrame]:  # type: ignore[no-untyped-def]
    out = {}
    with engine.connect() as conn:
        for name, sql in {
            "pred": "SELECT mv.tag, p.material_id, p.property, p.value FROM predictions p "
                    "JOIN model_versions mv ON mv.id = p.model_version_id",
            "dft": "SELECT d.material_id, d.formation_energy, d.volume_per_atom, d.band_gap, "
                   "d.magnetization, d.volume_deviation, h.e_above_hull FROM dft_properties d "
                   "LEFT JOIN material_hulls h ON h.material_id = d.material_id",
            "mat": "SELECT id AS material_id, formula, spacegroup FROM materials",
            "split": "SELECT mv.tag, sm.material_id, sm.subset FROM split_members sm "
                     "JOIN model_versions mv ON mv.split_id = sm.split_id",
            "elem": "SELECT material_id, element FROM material_elements",
        }.items():
            res = conn.execute(text(sql))
            out[name] = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
    dft = out["dft"].melt(id_vars="material_id", var_name="property", value_name="dft")
    p = out["pred"].merge(dft, on=["material_id", "property"], how="left")
    p = p.merge(out["mat"], on="material_id").merge(out["split"], on=["tag", "material_id"],
                                                   how="left")
    p["dft"] = p["dft"].astype(float)
    p["abs_error"] = (p["value"] - p["dft"]).abs()
    out["p"] = p
    return out


def close(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(expected)
    a = actual.reset_index(drop=True)
    e = expected.reset_index(drop=True)
    for col in a.columns:
        if e[col].dtype.kind in "fc" or a[col].dtype.kind in "fc":
            np.testing.assert_allclose(a[col].astype(float), e[col].astype(float), rtol=1e-9,
                                       atol=1e-12, equal_nan=True)
        else:
            assert a[col].astype(str).tolist() == e[col].astype(str).tolist(), col


def test_screening(pipeline) -> None:
    f = frames(pipeline.engine)
    p = f["p"]
    bg = p[(p.tag == "v3") & (p.property == "band_gap")]
    fe = p[(p.tag == "v3") & (p.property == "formation_energy")][["material_id", "value"]]
    m = bg.merge(fe, on="material_id", suffixes=("", "_fe"))
    pb = set(f["elem"][f["elem"].element == "Pb"].material_id)
    m = m[(m.value >= 1) & (m.value <= 3) & (m.value_fe < -1) & ~m.material_id.isin(pb)]
    expected = pd.DataFrame({"material_id": m.material_id, "formula": m.formula,
                             "band_gap": m.value, "formation_energy": m.value_fe,
                             "band_gap_dft": m.dft, "band_gap_error": m.abs_error}
                            ).sort_values("material_id")
    close(run_query(pipeline.engine, readme_queries()["screening"]), expected)


def test_error_by_spacegroup(pipeline) -> None:
    p = frames(pipeline.engine)["p"]
    t = p[(p.tag == "v3") & (p.subset == "test")]
    assert t.abs_error.notna().any(), "the test split must hold materials with DFT values"
    mats = t.drop_duplicates("material_id")
    expected = mats.groupby("spacegroup", dropna=False).material_id.count().rename("n")
    expected = expected.to_frame()
    for prop in ("formation_energy", "band_gap", "magnetization"):
        g = t[t.property == prop].groupby("spacegroup", dropna=False).abs_error.mean()
        expected[f"{prop}_mae"] = g.reindex(expected.index)
    expected = expected.reset_index().sort_values("spacegroup", na_position="first")
    if pipeline.kind == "postgresql":  # PostgreSQL sorts NULL last
        expected = expected.sort_values("spacegroup", na_position="last")
    assert expected.formation_energy_mae.notna().any()
    close(run_query(pipeline.engine, readme_queries()["error_by_spacegroup"]), expected)


def test_error_by_chemistry(pipeline) -> None:
    f = frames(pipeline.engine)
    p = f["p"]
    oxides = set(f["elem"][f["elem"].element == "O"].material_id)
    t = p[(p.tag == "v3") & (p.property == "formation_energy") & p.abs_error.notna()]
    ox = t.material_id.isin(oxides)
    assert ox.any() and (~ox).any()
    expected = pd.DataFrame({"oxides": [int(ox.sum())], "oxide_mae": [t[ox].abs_error.mean()],
                             "others": [int((~ox).sum())],
                             "other_mae": [t[~ox].abs_error.mean()]})
    close(run_query(pipeline.engine, readme_queries()["error_by_chemistry"]), expected)


def test_compare_models(pipeline) -> None:
    p = frames(pipeline.engine)["p"]
    a = p[(p.tag == "v3") & p.abs_error.notna()]
    b = p[p.tag == "v4"][["material_id", "property", "abs_error"]]
    m = a.merge(b, on=["material_id", "property"], suffixes=("", "_b"))
    expected = m.groupby("property").agg(n=("abs_error", "count"), mae_v3=("abs_error", "mean"),
                                         mae_v4=("abs_error_b", "mean")).reset_index()
    closer = m.assign(c=(m.abs_error_b < m.abs_error).astype(int)).groupby("property").c.sum()
    expected["v4_closer"] = expected.property.map(closer)
    assert len(expected) == 5  # the four targets and the derived hull distance
    close(run_query(pipeline.engine, readme_queries()["compare_models"]), expected)


def test_elements_present(pipeline) -> None:
    f = frames(pipeline.engine)
    elem = f["elem"]
    by_mat = elem.groupby("material_id").element.apply(set)
    # two elements that occur together in some material
    pair = sorted(next(s for s in by_mat if len(s) >= 2))[:2]
    hit = sorted(mid for mid, s in by_mat.items() if set(pair) <= s)
    actual = run_query(pipeline.engine, readme_queries()["elements_present"],
                       {"a": pair[0], "b": pair[1]})
    assert actual.material_id.tolist() == hit and len(hit) >= 1
    dft = f["dft"].set_index("material_id")
    np.testing.assert_allclose(actual.formation_energy.astype(float),
                               dft.loc[hit, "formation_energy"].astype(float), equal_nan=True)


def test_leaderboard(pipeline) -> None:
    p = frames(pipeline.engine)["p"]
    actual = run_query(pipeline.engine, readme_queries()["leaderboard"])
    assert set(actual.model_tag) == {"v3", "v4"}
    for row in actual.itertuples():
        t = p[(p.tag == row.model_tag) & (p.property == row.property) & (p.subset == "test")
              & p.abs_error.notna()]
        assert row.n == len(t)
        assert row.mae == pytest.approx(t.abs_error.mean(), rel=1e-9)
        assert row.rmse == pytest.approx(np.sqrt(((t.value - t.dft) ** 2).mean()), rel=1e-9)
    maes = actual.groupby("property").mae.apply(list)
    assert all(v == sorted(v) for v in maes)


def test_near_hull(pipeline) -> None:
    with pipeline.engine.connect() as conn:
        hull = pd.DataFrame(conn.execute(text(
            "SELECT h.material_id, m.formula, h.formation_energy, h.e_above_hull, h.is_stable, "
            "h.chemical_system FROM material_hulls h JOIN materials m ON m.id = h.material_id"
        )).fetchall(), columns=["material_id", "formula", "formation_energy", "e_above_hull",
                                "is_stable", "system"])
        dec = pd.DataFrame(conn.execute(text(
            "SELECT material_id, position, product_formula, fraction FROM hull_decompositions"
        )).fetchall(), columns=["material_id", "position", "product_formula", "fraction"])
    # The system with the most rows (materials within 0.1 eV/atom of the hull, times their
    # decomposition products) in the small pipeline data set.
    near = hull[hull.e_above_hull <= 0.1].merge(dec, on="material_id", how="left")
    system = near.system.value_counts().index[0]
    m = near[near.system == system]
    assert len(m) >= 1
    m = m.sort_values(["e_above_hull", "material_id", "position"])
    expected = m[["material_id", "formula", "formation_energy", "e_above_hull", "is_stable",
                  "product_formula", "fraction"]].copy()
    expected["is_stable"] = expected.is_stable.astype(int)
    actual = run_query(pipeline.engine, readme_queries()["near_hull"], {"system": system})
    actual["is_stable"] = actual.is_stable.astype(int)
    close(actual, expected)


def test_discovery(pipeline) -> None:
    from sklearn.metrics import f1_score

    f = frames(pipeline.engine)
    p = f["p"]
    row = []
    for tag in ("v3", "v4"):
        t = p[(p.tag == tag) & (p.property == "e_above_hull") & (p.subset == "test")
              & p.dft.notna()]
        y, pr = t.dft.to_numpy(float), t.value.to_numpy(float)
        prevalence = (y <= 0).mean()
        precision = ((y <= 0) & (pr <= 0)).sum() / max((pr <= 0).sum(), 1)
        row.append((len(t), f1_score(y <= 0, pr <= 0, zero_division=np.nan),
                    precision / prevalence if prevalence else np.nan, np.abs(pr - y).mean()))
    (n3, f3, d3, m3), (_n4, f4, d4, m4) = row
    assert n3 > 0
    expected = pd.DataFrame({"n": [n3], "f1_v3": [f3], "f1_v4": [f4], "daf_v3": [d3],
                             "daf_v4": [d4], "mae_v3": [m3], "mae_v4": [m4]})
    close(run_query(pipeline.engine, readme_queries()["discovery"]), expected)
