"""Structures from files against the same structures from the OQMD dump (same graphs, same
predictions), `platform predict --structures`, the Python API and the README examples, on a
trained pipeline per engine (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from matplat.cli import cli
from ml.graphs.codec import decode_graph

README = Path(__file__).resolve().parents[2] / "README.md"


def run(url: str, *args: str, ok: bool = True):  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(cli, ["--db", url, "--device", "cpu", *args], catch_exceptions=False)
    if ok:
        assert r.exit_code == 0, f"platform {' '.join(args)}:\n{r.output}"
    return r


def graph_signature(engine, material_id: int) -> tuple:  # type: ignore[no-untyped-def]
    """The v3 recipe's graph of a material up to a renumbering of its atoms: atom and edge
    counts, and per atom (sorted) its element with its in-edges' (element, distance)."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT g.natoms, g.nedges, g.atomic_numbers, g.edge_src, g.edge_dst, g.edge_image, "
            "g.edge_dist FROM crystal_graphs g JOIN structures s ON s.id = g.structure_id "
            "JOIN model_versions v ON v.recipe_id = g.recipe_id AND v.tag = 'v3' "
            "WHERE s.material_id = :m AND g.status = 'ok'"), {"m": material_id}).one()
    keys = ("atomic_numbers", "edge_src", "edge_dst", "edge_image", "edge_dist")
    g = decode_graph(row[0], row[1], {k: bytes(v) for k, v in zip(keys, row[2:], strict=True)})
    z = g.atomic_numbers
    atoms = sorted(
        (int(z[i]), tuple(sorted((int(z[s]), float(d))
                                 for s, d in zip(g.edge_src[g.edge_dst == i],
                                                 g.edge_dist[g.edge_dst == i], strict=True))))
        for i in range(g.natoms))
    return g.natoms, g.nedges, atoms


def same_graph(a: tuple, b: tuple) -> bool:
    """Equal counts, elements and neighbour elements; distances within 1e-4 Å (the file's
    cell is rotated and on a 1e-7 grid, and distances are stored as float32)."""
    if a[:2] != b[:2]:
        return False
    for (za, ea), (zb, eb) in zip(a[2], b[2], strict=True):
        if za != zb or [e[0] for e in ea] != [e[0] for e in eb]:
            return False
        if not np.allclose([e[1] for e in ea], [e[1] for e in eb], atol=1e-4):
            return False
    return True


def predictions(engine, ids: list[int]) -> dict:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {(m, p): v for m, p, v in conn.execute(text(
            "SELECT p.material_id, p.property, p.value FROM predictions p JOIN model_versions v "
            "ON v.id = p.model_version_id AND v.tag = 'v3'"))
            if m in set(ids)}


@pytest.mark.parametrize("fmt", ["cif", "poscar"])
def test_files_written_from_the_dump_give_the_same_graphs_and_predictions(
    pipeline, tmp_path: Path, fmt: str
) -> None:
    url, engine = pipeline.url, pipeline.engine
    out = tmp_path / fmt
    run(url, "export", "structures", str(out), "--format", fmt, "--source", "oqmd")
    table = tmp_path / "p.csv"
    r = run(url, "predict", "--model-tag", "v3", "--structures", str(out), "--source",
            f"from-{fmt}", "--output", str(table))
    df = pd.read_csv(table)
    with engine.connect() as conn:
        oqmd = dict(conn.execute(text("SELECT source_id, id FROM materials WHERE source = 'oqmd'"))
                    .all())
    assert len(df) == len(oqmd) > 50
    done = df[df["rejected"].isna()]
    # The synthetic dump has a few cells with atoms closer than 0.5 Å: rejected by name.
    assert len(done) >= len(df) - 5
    assert df.loc[df["rejected"].notna(), "rejected"].str.contains("overlapping").all()
    compared = 0
    for name, mid in done[["name", "material_id"]].itertuples(index=False):
        original = oqmd[name.rsplit(".", 1)[0]]
        assert same_graph(graph_signature(engine, int(mid)), graph_signature(engine, original)), name
        ours, theirs = predictions(engine, [int(mid)]), predictions(engine, [original])
        assert {p for _, p in ours} == {p for _, p in theirs} and ours
        for (_, p), v in ours.items():
            assert v == pytest.approx(theirs[(original, p)], abs=1e-5), (name, p)
        compared += 1
    assert compared == len(done)
    assert "structures predicted" in r.output


def test_predict_structures_prints_a_row_each_and_reruns_predict_nothing(
    pipeline, tmp_path: Path
) -> None:
    import structfiles as sf

    url, engine = pipeline.url, pipeline.engine
    sf.write_good(tmp_path / "mine")
    sf.write_bad(tmp_path / "mine" / "bad")
    r = run(url, "predict", "--model-tag", "v3", "--structures", str(tmp_path / "mine" / "*.cif"),
            str(tmp_path / "mine" / "bad"), "--source", "printed")
    lines = r.output.splitlines()
    for name in ("nacl.cif", "two.cif#rutile", "bad/mixed.cif", "partial occupancy"):
        assert any(name in line for line in lines), name
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM predictions")).scalar_one()
    out = tmp_path / "again.parquet"
    run(url, "predict", "--model-tag", "v3", "--structures", str(tmp_path / "mine" / "*.cif"),
        "--source", "printed", "--output", str(out))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM predictions")).scalar_one() == n
    df = pd.read_parquet(out)
    assert list(df["name"]) == ["nacl.cif", "two.cif#bcc_fe", "two.cif#rutile"]
    assert df["formation_energy"].notna().all() and df["rejected"].isna().all()
    # the rows equal what prediction_results says about these materials
    ids = ", ".join(str(int(i)) for i in df["material_id"])
    with engine.connect() as conn:
        pr = dict(conn.execute(text(
            "SELECT material_id, predicted FROM prediction_results WHERE model_tag = 'v3' "
            f"AND property = 'formation_energy' AND material_id IN ({ids})")).all())
    assert [pr[int(i)] for i in df["material_id"]] == pytest.approx(list(df["formation_energy"]))
    # usage errors
    r = run(url, "predict", "--model-tag", "v3", str(tmp_path), ok=False)
    assert r.exit_code == 2 and "--structures" in r.output
    r = run(url, "predict", "--model-tag", "v3", "--structures", str(tmp_path / "mine"),
            "--output", str(tmp_path / "x.txt"), ok=False)
    assert r.exit_code == 1 and ".csv or .parquet" in r.output


def test_python_api_takes_paths_and_objects(pipeline, tmp_path: Path) -> None:
    from ase.build import bulk
    from pymatgen.core import Structure
    from pymatgen.entries.computed_entries import ComputedStructureEntry
    from structfiles import FE, NACL, TIO2

    from matplat import Platform

    p = Platform(pipeline.url, device="cpu")
    s = p.ingest({"salt": NACL, "iron": FE}, source="api")
    assert set(s.material_ids) == {"salt", "iron"} and s.load.added == 2
    again = p.ingest({"salt": NACL, "iron": FE}, source="api")
    assert again.load.unchanged == 2 and again.load.added == 0
    entry = ComputedStructureEntry(TIO2, -1.0, data={"formation_energy_per_atom": -3.3})
    df = p.predict([NACL, bulk("Cu", "fcc", a=3.6), entry], model="v3")
    assert len(df) == 3 and df["rejected"].isna().all()
    assert list(df["formula"]) == ["NaCl", "Cu", "TiO2"]
    assert df.loc[2, "formation_energy_dft"] == -3.3
    # unnamed objects are named by formula and content: predicting again adds nothing
    with p.engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM materials")).scalar_one()
    df2 = p.predict([NACL], model="v3")
    with p.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM materials")).scalar_one() == n
    assert df2.loc[0, "formation_energy"] == df.loc[0, "formation_energy"]
    # stored materials by id, the same numbers as the table
    ids = [int(s.material_ids["salt"])]
    by_id = p.predict(ids, model="v3")
    assert by_id.loc[0, "name"] == "api:salt"
    assert by_id.loc[0, "formation_energy"] == pytest.approx(df.loc[0, "formation_energy"],
                                                             abs=1e-5)
    # an element outside the model's 89 species: stored, but no graph and so no prediction
    from pymatgen.core import Lattice

    po = p.predict({"polonium": Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]])}, model="v3")
    assert po.loc[0, "name"] == "polonium" and pd.isna(po.loc[0, "formation_energy"])
    assert po.loc[0, "rejected"].startswith("no usable graph")
    got = p.structures(source="api", where="m.natoms <= 4")
    assert [x.composition.reduced_formula for x in got] == ["Fe"]
    assert isinstance(got[0], Structure) and got[0].properties["source_id"] == "iron"
    q = p.query("SELECT count(*) AS n FROM materials WHERE source = :s", s="api")
    assert int(q["n"][0]) == 2
    assert "v3" in set(p.models()["tag"])


def test_import_matplat_stays_light() -> None:
    code = ("import sys, matplat; from matplat import Platform; "
            "print(sorted(m for m in ('torch', 'pymatgen', 'ase', 'ml', 'workers', 'sqlalchemy')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def readme_blocks() -> dict[str, str]:
    body = README.read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- readme-structures: (\w+) -->\s*```\w+\n(.*?)```", body,
                           flags=re.DOTALL))


def test_readme_examples_run(pipeline, tmp_path: Path, monkeypatch) -> None:
    blocks = readme_blocks()
    assert set(blocks) == {"cli", "python"}
    url = pipeline.url
    monkeypatch.chdir(tmp_path)
    run(url, "export", "structures", "my_cifs", "--format", "cif", "--where", "m.natoms <= 6",
        "--source", "oqmd")
    for line in blocks["cli"].strip().splitlines():
        args = shlex.split(line)
        assert args[0] == "platform"
        run(url, *args[1:])
    assert Path("predictions.csv").exists() and Path("rejects.csv").exists()
    assert len(pd.read_csv("predictions.csv")) == len(list(Path("my_cifs").glob("*.cif")))
    assert len(list(Path("exported").glob("*.vasp"))) > 0
    monkeypatch.setenv("PLATFORM_DATABASE_URL", url)
    monkeypatch.setenv("PLATFORM_DEVICE", "cpu")
    scope: dict = {}
    exec(compile(blocks["python"], "README.md", "exec"), scope)  # noqa: S102
    assert len(scope["df"]) == 1 and np.isfinite(scope["df"]["formation_energy"][0])
    assert all(len(s) <= 4 for s in scope["small"])
