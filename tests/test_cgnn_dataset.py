"""Export to the reference CGNN data format and import back, on all three engines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner
from sqlalchemy import text

from matplat.cli import cli
from ml.graphs import OQMD_SPECIES


def run(url: str, *args: str):  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(cli, ["--db", url, *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def graphs_by_source_id(engine, recipe: str) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT m.source_id, g.atomic_numbers, g.edge_src, g.edge_dst FROM crystal_graphs g "
            "JOIN graph_recipes r ON r.id = g.recipe_id JOIN structures s ON s.id = g.structure_id"
            " JOIN materials m ON m.id = s.material_id WHERE r.name = :r AND g.status = 'ok'"),
            {"r": recipe}).all()
    out = {}
    for sid, z, s, d in rows:
        edges = sorted(zip(np.frombuffer(s, "<i4").tolist(), np.frombuffer(d, "<i4").tolist(),
                           strict=True))
        out[sid] = (np.frombuffer(z, "<i2").tolist(), edges)
    return out


def test_export_loads_with_reference_rules_and_reimports_identically(db, sample_dump: Path,
                                                                      tmp_path: Path) -> None:
    run(db.url, "ingest", str(sample_dump))
    run(db.url, "graphs", "build", "--workers", "1")
    out = tmp_path / "oqmd_export"
    run(db.url, "export", "cgnn-dataset", str(out))
    # the reference's reading rules: pickled dict under graph_dict, names from targets.csv,
    # node indices into the config's one-hot node_vectors
    graphs = np.load(out / "graph_data.npz", allow_pickle=True)["graph_dict"].item()
    config = json.loads((out / "config.json").read_text())
    targets = pd.read_csv(out / "targets.csv")
    split = json.loads((out / "split.json").read_text())
    assert config["atomic_numbers"] == OQMD_SPECIES.tolist() and len(config["node_vectors"]) == 89
    assert np.array_equal(np.array(config["node_vectors"]), np.eye(89))
    assert set(targets["name"]) == set(graphs)
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(len(targets)))
    for col in ("formation_energy_per_atom", "band_gap", "volume_per_atom",
                "magnetization_per_atom", "volume_deviation"):
        assert col in targets.columns
    ours = graphs_by_source_id(db.engine, "cgc")
    for name, (nodes, neighbors) in graphs.items():
        z = [config["atomic_numbers"][i] for i in nodes]
        edges = sorted((j, int(i)) for j, nb in enumerate(neighbors) for i in nb)
        assert (z, edges) == ours[name.split("-", 1)[1]]
    # import back: graphs attach to the same materials under recipe dataset:oqmd_export
    r = run(db.url, "ingest", str(out))
    assert f"{len(graphs)} graphs" in r.output and "0 new graph-only" in r.output
    assert graphs_by_source_id(db.engine, "dataset:oqmd_export") == ours
    # two recipes now: cgc stays the default, an unknown one lists those present
    assert "graphs of recipe cgc" in run(db.url, "export", "cgnn-dataset",
                                         str(tmp_path / "again")).output
    bad = CliRunner().invoke(cli, ["--db", db.url, "export", "cgnn-dataset",
                                   str(tmp_path / "none"), "--recipe", "cgc-reference27"])
    assert bad.exit_code == 1
    assert "recipes with graphs: cgc, dataset:oqmd_export" in bad.output


def test_import_python2_pickle_and_other_species_table(db, tmp_path: Path) -> None:
    folder = tmp_path / "tiny_set"
    folder.mkdir()
    table = [8, 11, 17, 26]  # not the 89-species table
    graphs = {b"hold-1": ([1, 2], [np.array([1]), np.array([0, 0])]),
              b"hold-2": ([3, 3, 0], [np.array([2]), np.array([2]), np.array([0, 1])])}
    holder = np.empty((), dtype=object)
    holder[()] = graphs
    np.savez_compressed(folder / "graph_data.npz", graph_dict=holder)
    (folder / "config.json").write_text(json.dumps(
        {"atomic_numbers": table, "node_vectors": np.eye(4).tolist()}))
    pd.DataFrame({"name": ["hold-1", "hold-2"], "formula": ["NaCl", "Fe2O"],
                  "spacegroup": [225, 1], "formation_energy_per_atom": [-2.0, -0.5],
                  "band_gap": [5.0, 0.0], "volume_per_atom": [20.0, 10.0],
                  "magnetization_per_atom": [0.0, 1.5], "volume_deviation": [0.1, 0.2]}
                 ).to_csv(folder / "targets.csv", index=False)
    (folder / "split.json").write_text(json.dumps({"train": [0], "val": [], "test": [1]}))
    r = run(db.url, "ingest", str(folder))
    assert "2 new graph-only materials" in r.output
    got = graphs_by_source_id(db.engine, "dataset:tiny_set")
    assert got["hold-1"] == ([11, 17], [(0, 1), (1, 0), (1, 0)])
    assert got["hold-2"] == ([26, 26, 8], [(0, 2), (1, 2), (2, 0), (2, 1)])
    with db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT source_id, formation_energy, band_gap, magnetization FROM material_properties"
            " ORDER BY source_id")).all()
        split = conn.execute(text(
            "SELECT m.source_id, sm.subset FROM split_members sm JOIN materials m "
            "ON m.id = sm.material_id ORDER BY m.source_id")).all()
    assert rows == [("hold-1", -2.0, 5.0, 0.0), ("hold-2", -0.5, 0.0, 1.5)]
    assert split == [("hold-1", "train"), ("hold-2", "test")]
    # importing the same folder again replaces, never duplicates
    run(db.url, "ingest", str(folder))
    assert len(graphs_by_source_id(db.engine, "dataset:tiny_set")) == 2
    # graph-only materials: the export takes the only recipe present, no --recipe needed
    r = run(db.url, "export", "cgnn-dataset", str(tmp_path / "back"))
    assert "wrote 2 graphs of recipe dataset:tiny_set" in r.output
    assert set(pd.read_csv(tmp_path / "back" / "targets.csv")["formula"]) == {"NaCl", "Fe2O"}
