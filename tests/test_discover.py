"""``platform discover`` end to end on SQLite, PostgreSQL and MariaDB: candidates stored with
their lineage, graphs rebuilt, cells scaled to the predicted volume, hull distances equal to
pymatgen's, the ranking view, idempotent reruns, resumed jobs, and bad input that writes
nothing."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from dbutil import ENGINES, TestDatabase, create_database
from sqlalchemy import text

from matplat.cli import cli
from matplat.db.session import dispose_engines

TABLES = ("materials", "structures", "sites", "material_elements", "predictions",
          "discovery_runs", "candidates", "jobs", "job_tasks")


def run(url: str, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--db", url, "--device", "cpu", *args],
                              catch_exceptions=False)


def ok(url: str, *args: str) -> str:
    result = run(url, *args)
    assert result.exit_code == 0, f"platform {' '.join(args)}:\n{result.output}"
    return result.output


@pytest.fixture(scope="module", params=ENGINES)
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[TestDatabase]:
    """Ingested sample dump with graphs, model v3 (four targets) and bg (band gap only), and
    its hulls; ``db.before_hulls`` is what discover said before any hull was built. The dump
    (120 entries, seed 13) holds Fe and FeO, the system the tests explore."""
    from pipeline_fixture import make_dump

    db = create_database(request.param, tmp_path_factory.mktemp(f"discover-{request.param}"))
    dump = make_dump(tmp_path_factory.mktemp("feo-dump"), 120, seed=13)
    try:
        ok(db.url, "db", "upgrade")
        ok(db.url, "ingest", str(dump))
        ok(db.url, "graphs", "build", "--workers", "1")
        ok(db.url, "train", "--model-tag", "v3", "--epochs", "3", "--batch-size", "32")
        ok(db.url, "train", "--model-tag", "bg", "--targets", "band_gap", "--epochs", "1",
           "--batch-size", "64")
        before = counts(db)
        db.before_hulls = (run(db.url, "discover", "--model-tag", "v3", "--elements", "Mg,O"),
                           before == counts(db))  # type: ignore[attr-defined]
        ok(db.url, "hull", "build")
        yield db
    finally:
        dispose_engines()
        db.drop()


def counts(db: TestDatabase) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {t: int(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one())
                for t in TABLES}


def rows(db: TestDatabase, sql: str, **params: object) -> list:
    with db.engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def test_discover_stores_ranked_candidates_with_lineage(trained: TestDatabase) -> None:
    from matplat.ingest.formulas import Formulas
    from ml.data import GraphSet
    from ml.graphs import build_crystal_graph
    from ml.train import ensemble_predict
    from workers.predict import load_models

    out = ok(trained.url, "discover", "--model-tag", "v3", "--elements", "Mg,O", "--name", "mgo")
    assert "stored" in out and "rank" in out
    cands = rows(trained, "SELECT c.material_id, c.parent_material_id, c.species_map, "
                 "c.probability, c.e_above_hull, c.model_version_id, m.source, m.formula, "
                 "m.natoms FROM candidates c JOIN materials m ON m.id = c.material_id "
                 "ORDER BY c.material_id")
    assert len(cands) >= 2
    assert {r.source for r in cands} == {"candidates:mgo"}
    mv = rows(trained, "SELECT id, targets FROM model_versions WHERE tag = 'v3'")[0]
    targets = json.loads(mv.targets) if isinstance(mv.targets, str) else list(mv.targets)
    models = load_models(trained.engine, int(mv.id))
    formulas = Formulas()
    structures = {}
    for c in cands:
        assert c.model_version_id == mv.id and 0 < c.probability <= 1
        (lat, frac, z, vol), = rows(trained, "SELECT lattice, frac_coords, atomic_numbers, "
                                    "volume FROM structures WHERE material_id = :m",
                                    m=c.material_id)
        lat = np.frombuffer(lat, "<f8").reshape(3, 3)
        frac = np.frombuffer(frac, "<f8").reshape(-1, 3)
        z = np.frombuffer(z, "<i2").astype(int)
        assert set(z.tolist()) == {8, 12} and len(z) == c.natoms
        # lineage: the parent's sites, its species replaced as the species map says
        (plat, pfrac, pz), = rows(trained, "SELECT lattice, frac_coords, atomic_numbers FROM "
                                  "structures WHERE material_id = :m", m=c.parent_material_id)
        assert np.array_equal(np.frombuffer(pfrac, "<f8").reshape(-1, 3), frac)
        smap = json.loads(c.species_map)
        assert len(smap) == 2
        pz = np.frombuffer(pz, "<i2").astype(int)
        assert len(np.unique(pz)) == 2 and (pz[:, None] == pz[None, :]).tolist() == \
            (z[:, None] == z[None, :]).tolist()
        # predictions of every target; the cell is the parent's scaled to the predicted volume
        pred = {p: v for p, v in rows(trained, "SELECT property, value FROM predictions "
                                      "WHERE material_id = :m AND model_version_id = :v",
                                      m=c.material_id, v=mv.id)}
        assert set(pred) == {*targets, "e_above_hull"}
        assert pred["e_above_hull"] == pytest.approx(c.e_above_hull)
        values, n = np.unique(z, return_counts=True)
        formula, _cell, v_atoms = formulas.get(tuple(zip(values.tolist(), n.tolist(),
                                                         strict=True)))
        assert formula == c.formula
        assert vol / len(z) == pytest.approx(v_atoms / (1 - pred["volume_deviation"]), rel=1e-9)
        parent_lat = np.frombuffer(plat, "<f8").reshape(3, 3)
        ratio = lat / np.where(parent_lat == 0, 1, parent_lat)
        assert np.allclose(ratio[parent_lat != 0], ratio[parent_lat != 0][0])
        structures[c.material_id] = (lat, frac, z, pred)
    # the graph of the stored (scaled) cell predicts what was stored: graphs were rebuilt
    graphs = [build_crystal_graph(lat, frac, z) for lat, frac, z, _ in structures.values()]
    gs = GraphSet.from_lists(np.arange(len(graphs)), [g.species for g in graphs],
                             [g.edge_src for g in graphs], [g.edge_dst for g in graphs],
                             np.full((len(graphs), 1), np.nan, np.float32))
    mean, _ = ensemble_predict(models, gs, device="cpu")
    for k, (*_, pred) in enumerate(structures.values()):
        assert mean[k, targets.index("formation_energy")] == pytest.approx(
            pred["formation_energy"], abs=1e-5)
    # hull distances: pymatgen on the DFT materials of Mg-O, built here independently
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    dft = rows(trained, "SELECT m.composition, d.formation_energy FROM materials m "
               "JOIN dft_properties d ON d.material_id = m.id WHERE d.formation_energy IS NOT "
               "NULL AND m.source NOT LIKE 'candidates:%'")
    entries = [PDEntry(Composition(el), 0.0) for el in ("Mg", "O")]
    for comp, e in dft:
        c = Composition(comp)
        if set(c.chemical_system.split("-")) <= {"Mg", "O"}:
            entries.append(PDEntry(c, e * c.num_atoms))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd_ = PhaseDiagram(entries)
        for c in cands:
            comp = Composition(c.formula)
            e = structures[c.material_id][3]["formation_energy"]
            _, want = pd_.get_decomp_and_e_above_hull(PDEntry(comp, e * comp.num_atoms),
                                                      allow_negative=True, check_stable=False)
            assert c.e_above_hull == pytest.approx(want, abs=1e-6)
    # the ranking view: ranks 1..n by predicted hull distance
    ranked = rows(trained, "SELECT rank, material_id, e_above_hull, formation_energy, "
                  "formation_energy_uncertainty, decomposition, parent_formula, probability "
                  "FROM candidate_ranking WHERE run = 'mgo' ORDER BY rank")
    assert [r.rank for r in ranked] == list(range(1, len(cands) + 1))
    assert [r.e_above_hull for r in ranked] == sorted(c.e_above_hull for c in cands)
    assert all(r.decomposition and r.parent_formula for r in ranked)


def test_rerun_adds_nothing_and_resumes_an_interrupted_job(
        trained: TestDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import discover, discover_plan, jobs

    ok(trained.url, "discover", "--model-tag", "v3", "--elements", "Mg,O", "--name", "mgo-a")
    before = counts(trained)
    out = ok(trained.url, "discover", "--model-tag", "v3", "--elements", "Mg,O", "--name", "mgo-a")
    assert " 0 to make" in out
    assert counts(trained) == before
    full = rows(trained, "SELECT m.formula, c.parent_material_id FROM candidates c JOIN "
                "discovery_runs r ON r.id = c.run_id JOIN materials m ON m.id = c.material_id "
                "WHERE r.name = 'mgo-a' ORDER BY 1, 2")
    # interrupted: one task of a one-candidate-per-task job ran, then the command again
    monkeypatch.setattr(discover_plan, "TASK_CANDIDATES", 1)
    plan, job_id = discover.plan_discover(trained.engine, discover.DiscoverRequest(
        tag="v3", elements=["Mg", "O"], name="mgo-b"))
    assert job_id is not None and plan.planned == len(full)
    first = jobs.get_tasks(trained.engine, job_id)[0]
    assert jobs.execute(trained.engine, first.id, device="cpu")[0].startswith("done")
    jobs.cancel(trained.engine, job_id)
    out = ok(trained.url, "discover", "--model-tag", "v3", "--elements", "Mg,O", "--name", "mgo-b")
    assert f"{len(full) - 1} to make" in out
    resumed = rows(trained, "SELECT m.formula, c.parent_material_id FROM candidates c JOIN "
                   "discovery_runs r ON r.id = c.run_id JOIN materials m ON m.id = c.material_id "
                   "WHERE r.name = 'mgo-b' ORDER BY 1, 2")
    assert resumed == full


def test_a_run_name_keeps_its_targets(trained: TestDatabase) -> None:
    ok(trained.url, "discover", "--model-tag", "v3", "--elements", "Mg,O", "--name", "mgo")
    before = counts(trained)
    result = run(trained.url, "discover", "--model-tag", "v3", "--elements", "Ca,O", "--name",
                 "mgo")
    assert result.exit_code == 1 and "choose another --name" in result.stderr
    assert counts(trained) == before


def test_no_hull_built_is_an_error(trained: TestDatabase) -> None:
    result, unchanged = trained.before_hulls  # type: ignore[attr-defined]
    assert result.exit_code == 1 and unchanged
    assert result.stderr.strip() == (
        "error: no DFT hull has been built: run `platform hull build` first")


@pytest.mark.parametrize("args, message", [
    (["--model-tag", "v3", "--elements", "Fe,Xx"], "unknown element 'Xx'"),
    (["--model-tag", "v3", "--compositions", "Mg9O7"], "no parent structure reaches Mg9O7"),
    (["--model-tag", "bg", "--elements", "Mg,O"], "does not predict formation_energy"),
    (["--model-tag", "v3", "--elements", "Np,Pu"], "no DFT hull for the Np-Pu system"),
    (["--model-tag", "v3", "--elements", "Mg,O", "--name", "x" * 22], "a run name has"),
    (["--model-tag", "nope", "--elements", "Mg,O"], "nope"),
    (["--model-tag", "v3", "--elements", "Mg,O", "--min-probability", "2"], "min-probability"),
])
def test_bad_input_is_one_line_and_writes_nothing(trained: TestDatabase, args: list[str],
                                                  message: str) -> None:
    before = counts(trained)
    result = run(trained.url, "discover", *args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert "Traceback" not in result.output
    assert counts(trained) == before


def test_python_api_and_cif_export(trained: TestDatabase, tmp_path: Path) -> None:
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Lattice, Structure

    from matplat import Platform
    from workers.discover import ranking

    p = Platform(trained.url, device="cpu")
    df = p.discover("v3", elements="Mg,O", name="mgo-py")
    assert len(df) >= 2 and list(df["rank"]) == list(range(1, len(df) + 1))
    assert {"formula", "parent_formula", "probability", "formation_energy",
            "formation_energy_uncertainty", "e_above_hull", "decomposition"} <= set(df.columns)
    assert df.equals(ranking(trained.engine, "mgo-py"))
    before = counts(trained)
    again = p.discover("v3", elements=["Mg", "O"], name="mgo-py")
    assert again.equals(df) and counts(trained) == before

    out = tmp_path / "cifs"
    ok(trained.url, "export", "structures", str(out), "--format", "cif", "--source",
       "candidates:mgo-py")
    stored = rows(trained, "SELECT m.source_id, m.formula, s.lattice, s.frac_coords, "
                  "s.atomic_numbers FROM materials m JOIN structures s ON s.material_id = m.id "
                  "WHERE m.source = 'candidates:mgo-py'")
    assert len(stored) == len(df)
    matcher = StructureMatcher(primitive_cell=False, scale=False, attempt_supercell=False)
    for sid, formula, lat, frac, z in stored:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = Structure.from_file(out / f"{sid}.cif")
        want = Structure(Lattice(np.frombuffer(lat, "<f8").reshape(3, 3)),
                         np.frombuffer(z, "<i2").astype(int).tolist(),
                         np.frombuffer(frac, "<f8").reshape(-1, 3))
        assert parsed.composition.reduced_formula == formula
        assert parsed.volume == pytest.approx(want.volume, rel=1e-5)
        assert matcher.fit(parsed, want)


def readme_blocks() -> dict[str, str]:
    import re

    body = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- readme-discover: (\w+) -->\s*```\w+\n(.*?)```", body,
                           flags=re.DOTALL))


def test_readme_examples(trained: TestDatabase, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib
    import io
    import shlex

    blocks = readme_blocks()
    assert set(blocks) == {"cli", "query", "python"}
    monkeypatch.chdir(tmp_path)
    for line in blocks["cli"].strip().splitlines():
        args = shlex.split(line)
        assert args[0] == "platform"
        ok(trained.url, *args[1:])
    assert len(list((tmp_path / "mgo_cifs").glob("*.cif"))) == rows(
        trained, "SELECT COUNT(*) FROM materials WHERE source = 'candidates:mgo'")[0][0] > 0
    got = rows(trained, blocks["query"])
    want = rows(trained, "SELECT c.material_id, c.e_above_hull FROM candidates c JOIN "
                "discovery_runs r ON r.id = c.run_id WHERE r.name = 'mgo' "
                "ORDER BY c.e_above_hull")
    assert [r.e_above_hull for r in got] == [w.e_above_hull for w in want
                                             if w.e_above_hull <= 0.05]
    monkeypatch.setenv("PLATFORM_DATABASE_URL", trained.url)
    monkeypatch.setenv("PLATFORM_DEVICE", "cpu")
    before = counts(trained)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks["python"], "README.md", "exec"), {})  # noqa: S102
    assert "formula" in out.getvalue() and counts(trained) == before  # the run exists: no-op
