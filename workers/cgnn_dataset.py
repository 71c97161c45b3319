"""Interop with the reference CGNN data format (Tony-Y/cgnn): export and import.

A data set folder holds ``graph_data.npz`` (key ``graph_dict``: a pickled dict name →
(node species indices, neighbour lists)), ``config.json`` (``atomic_numbers``: the species
table; ``node_vectors``: one-hot rows), ``targets.csv`` (one row per graph; columns as the
reference's) and ``split.json`` (row indices of ``train``/``val``/``test``).

Export writes our graphs of one recipe in that format (89-species OQMD table). Import reads
such a folder (including the published one, pickled by Python 2 with bytes keys, and folders
with another species table) and stores its graphs under a recipe named after the folder,
creating graph-only materials where the database does not have them yet.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, bindparam, select, text

from matplat.db.bulk import insert_columns, insert_ignore
from matplat.db.models import DatasetSplit, GraphRecipe
from matplat.errors import InputError, NotFoundError
from ml.graphs import OQMD_SPECIES, species_index
from ml.safe_pickle import UnsafePickleError, load_npz_member
from ml.split import grouped_split

TARGET_COLUMNS = ["name", "formula", "spacegroup", "nelements", "nsites", "energy_per_atom",
                  "formation_energy_per_atom", "band_gap", "volume_per_atom",
                  "magnetization_per_atom", "atomic_volume_per_atom", "volume_deviation"]
IMPORT_SOURCE = "cgnn-dataset"


@dataclass
class DatasetSummary:
    graphs: int
    skipped: int
    directory: Path
    recipe: str = ""
    materials_created: int = 0
    materials_matched: int = 0


def _name(source: str, source_id: str) -> str:
    return f"{source}-{source_id}"


def _export_recipe(conn, recipe: str | None) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """(id, name) of the recipe to export: ``recipe``, or without one the only recipe that has
    graphs (``cgc`` when several do). The errors list the recipes that have graphs, so that a
    database of imported data-set folders (recipe ``dataset:<folder>``) says what to ask for."""
    present = conn.execute(text(
        "SELECT r.id, r.name FROM graph_recipes r WHERE EXISTS (SELECT 1 FROM crystal_graphs g "
        "WHERE g.recipe_id = r.id AND g.status = 'ok') ORDER BY r.name, r.id DESC")).all()
    names = sorted({name for _, name in present})
    listed = ", ".join(names)
    if recipe is None:
        if not present:
            raise NotFoundError("no crystal graphs to export: run `platform graphs build` first")
        if len(names) == 1 or "cgc" in names:
            recipe = names[0] if len(names) == 1 else "cgc"
        else:
            raise InputError(f"graphs of several recipes are stored ({listed}): choose one "
                             "with --recipe")
    ids = [rid for rid, name in present if name == recipe]
    if not ids:
        hint = (f"recipes with graphs: {listed}" if present
                else f"run `platform graphs build --recipe {recipe}` first")
        raise NotFoundError(f"no graphs of recipe {recipe!r}: {hint}")
    return ids[0], recipe


def export_dataset(engine: Engine, out_dir: Path, recipe: str | None = None,
                   split: str | None = None) -> DatasetSummary:
    """Write the recipe's graphs, targets, config and split in the reference format
    (``recipe`` None: the only recipe with graphs, see :func:`_export_recipe`)."""
    with engine.connect() as conn:
        rid, recipe = _export_recipe(conn, recipe)
        rows = conn.execute(text(
            "SELECT m.id, m.source, m.source_id, m.formula, m.spacegroup, g.natoms, "
            "g.atomic_numbers, g.edge_src, g.edge_dst, d.formation_energy, d.band_gap, "
            "d.volume_per_atom, d.magnetization, d.volume_deviation, "
            "(SELECT count(*) FROM material_elements e WHERE e.material_id = m.id) "
            "FROM crystal_graphs g JOIN structures s ON s.id = g.structure_id "
            "JOIN materials m ON m.id = s.material_id "
            "LEFT JOIN dft_properties d ON d.material_id = m.id "
            "WHERE g.recipe_id = :r AND g.status = 'ok' ORDER BY m.id"), {"r": rid}).all()
        split_rows: dict[int, str] = {}
        if split is not None:
            sid = conn.execute(select(DatasetSplit.id).where(DatasetSplit.name == split)).scalar()
            if sid is None:
                raise NotFoundError(f"no data split named {split!r}")
            split_rows = {int(a): b for a, b in conn.execute(text(
                "SELECT material_id, subset FROM split_members WHERE split_id = :s"), {"s": sid})}
    graphs: dict[str, tuple[list[int], list[np.ndarray]]] = {}
    records = []
    ids = []
    skipped = 0
    for (mid, source, source_id, formula, sg, natoms, z, src, dst, fe, bg, vpa, mag, vdev,
         nel) in rows:
        nodes = species_index(np.frombuffer(z, "<i2"), strict=False)
        if (np.asarray(nodes) < 0).any():
            skipped += 1
            continue
        s = np.frombuffer(src, "<i4")
        d = np.frombuffer(dst, "<i4")
        order = np.argsort(s, kind="stable")
        bounds = np.searchsorted(s[order], np.arange(natoms + 1))
        neighbors = [d[order][bounds[j]:bounds[j + 1]].astype(np.int64) for j in range(natoms)]
        name = _name(source, source_id)
        graphs[name] = (np.asarray(nodes).astype(int).tolist(), neighbors)
        avpa = vpa * (1.0 - vdev) if vpa is not None and vdev is not None else None
        records.append((name, formula, sg if sg is not None else -1, nel, natoms, None, fe, bg,
                        vpa, mag, avpa, vdev))
        ids.append(int(mid))
    out_dir.mkdir(parents=True, exist_ok=True)
    holder = np.empty((), dtype=object)
    holder[()] = graphs
    np.savez_compressed(out_dir / "graph_data.npz", graph_dict=holder)
    table = OQMD_SPECIES.tolist()
    (out_dir / "config.json").write_text(json.dumps({
        "atomic_numbers": table, "node_vectors": np.eye(len(table)).tolist()}))
    df = pd.DataFrame.from_records(records, columns=TARGET_COLUMNS)
    df.to_csv(out_dir / "targets.csv", index=False)
    if split_rows:
        labels = np.array([split_rows.get(m, "") for m in ids], dtype=object)
    else:
        labels = grouped_split(df["formula"].tolist()) if len(df) else np.array([])
    (out_dir / "split.json").write_text(json.dumps(
        {k: np.flatnonzero(labels == k).tolist() for k in ("train", "val", "test")}))
    return DatasetSummary(graphs=len(graphs), skipped=skipped, directory=out_dir, recipe=recipe)


def _load_graph_dict(path: Path) -> dict[str, tuple]:
    """The pickled dict of ``graph_data.npz``; Python 2 pickles (bytes keys) too.

    Read with :func:`ml.safe_pickle.load_npz_member`: a data set is downloaded data, and
    its pickle may name only containers, strings, numbers and numpy arrays, never code.
    """
    try:
        holder = load_npz_member(path, "graph_dict")
        graphs = holder.item() if holder.shape == () else None
    except UnsafePickleError as e:
        raise InputError(f"{path}: graph_dict is not plain data: its pickle refers to {e}, "
                         "which a CGNN data set never holds; refusing to load it") from e
    except (OSError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as e:
        raise InputError(f"{path}: not a CGNN graph_data.npz with key graph_dict ({e})") from e
    if not isinstance(graphs, dict):
        raise InputError(f"{path}: graph_dict does not hold a dict of graphs")
    return {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in graphs.items()}


def _read_json(path: Path) -> object:
    """A data-set folder's JSON file, or one :class:`InputError` line naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON ({e.msg} at line {e.lineno} column {e.colno})"
                         ) from None


def import_dataset(engine: Engine, directory: Path) -> DatasetSummary:
    """Store a reference-format folder's graphs under recipe ``dataset:<folder name>``."""
    directory = directory.resolve()
    for f in ("graph_data.npz", "config.json", "targets.csv"):
        if not (directory / f).is_file():
            raise InputError(f"{directory}: not a CGNN data set folder (missing {f})")
    config = _read_json(directory / "config.json")
    try:
        species_table = np.asarray((config.get("atomic_numbers") if isinstance(config, dict)
                                    else None) or [], dtype=np.int64).ravel()
    except (TypeError, ValueError, OverflowError):
        species_table = np.zeros(0, dtype=np.int64)
    if species_table.size == 0:
        raise InputError(f"{directory / 'config.json'}: no atomic_numbers list of integers")
    graphs = _load_graph_dict(directory / "graph_data.npz")
    try:
        targets = pd.read_csv(directory / "targets.csv")
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError) as e:
        raise InputError(f"{directory / 'targets.csv'}: not a CSV table "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if "name" not in targets.columns:
        raise InputError(f"{directory / 'targets.csv'}: no 'name' column")
    digest = hashlib.sha256((directory / "graph_data.npz").read_bytes()).hexdigest()
    recipe_name = f"dataset:{directory.name}"
    params = {"imported_from": directory.name, "graph_data_sha256": digest,
              "species_table": species_table.tolist()}
    params_hash = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    summary = DatasetSummary(graphs=0, skipped=0, directory=directory, recipe=recipe_name)
    with engine.begin() as conn:
        insert_ignore(conn, GraphRecipe.__table__, [{
            "name": recipe_name, "params": params, "code_version": "import",
            "params_hash": params_hash}])
        rid = conn.execute(select(GraphRecipe.id).where(
            GraphRecipe.params_hash == params_hash)).scalar_one()
        names = targets["name"].astype(str).tolist()
        keys = []
        for name in names:
            source, _, sid = name.partition("-")
            keys.append(("oqmd", sid) if source == "oqmd" and sid else (IMPORT_SOURCE, name))
        existing: dict[tuple[str, str], int] = {}
        for src in {k[0] for k in keys}:
            wanted = [k[1] for k in keys if k[0] == src]
            stmt = text("SELECT source_id, id FROM materials WHERE source = :s AND source_id IN "
                        ":ids").bindparams(bindparam("ids", expanding=True))
            for i in range(0, len(wanted), 2000):
                for sid, mid in conn.execute(stmt, {"s": src, "ids": wanted[i:i + 2000]}):
                    existing[(src, sid)] = int(mid)
        next_id = int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM materials"))
                      .scalar_one()) + 1
        new_m: dict[str, list] = {k: [] for k in ("id", "source", "source_id", "formula",
                                                  "composition", "natoms", "spacegroup",
                                                  "content_hash")}
        new_s: dict[str, list] = {k: [] for k in ("id", "material_id", "natoms", "volume",
                                                  "lattice", "frac_coords", "atomic_numbers")}
        new_d: dict[str, list] = {k: [] for k in ("material_id", "formation_energy", "band_gap",
                                                  "magnetization", "volume_per_atom",
                                                  "volume_deviation", "selection_rule")}
        g_rows: dict[str, list] = {k: [] for k in ("structure_id", "recipe_id", "status",
                                                   "natoms", "nedges", "n_isolated",
                                                   "atomic_numbers", "edge_src", "edge_dst")}
        row_material: list[int | None] = []
        col = {c: targets[c] if c in targets.columns else pd.Series([np.nan] * len(targets))
               for c in TARGET_COLUMNS}
        for i, (name, key) in enumerate(zip(names, keys, strict=True)):
            g = graphs.get(name)
            if g is None:
                summary.skipped += 1
                row_material.append(None)
                continue
            nodes = np.asarray(g[0], dtype=np.int64)
            neighbors = [np.asarray(n, dtype=np.int64).ravel() for n in g[1]]
            if nodes.size and (nodes.max() >= species_table.size or nodes.min() < 0):
                raise InputError(f"{directory}: graph {name!r} uses species index "
                                 f"{int(nodes.max())} outside config.json atomic_numbers")
            z = species_table[nodes].astype("<i2")
            n = len(nodes)
            src = np.repeat(np.arange(n), [len(x) for x in neighbors]).astype("<i4")
            dst = (np.concatenate(neighbors) if neighbors else np.zeros(0)).astype("<i4")
            mid = existing.get(key)
            if mid is None:
                mid = next_id
                next_id += 1
                existing[key] = mid
                vpa = float(col["volume_per_atom"][i])
                new_m["id"].append(mid)
                new_m["source"].append(key[0])
                new_m["source_id"].append(key[1])
                formula = str(col["formula"][i]) if pd.notna(col["formula"][i]) else "?"
                new_m["formula"].append(formula)
                new_m["composition"].append(formula)
                new_m["natoms"].append(n)
                sg = col["spacegroup"][i]
                new_m["spacegroup"].append(int(sg) if pd.notna(sg) and int(sg) > 0 else None)
                new_m["content_hash"].append(hashlib.sha256(
                    f"{digest}:{name}".encode()).hexdigest())
                # Graph-only material: the folder has no lattice or coordinates.
                new_s["id"].append(mid)
                new_s["material_id"].append(mid)
                new_s["natoms"].append(n)
                new_s["volume"].append(vpa * n if np.isfinite(vpa) else 0.0)
                new_s["lattice"].append(b"")
                new_s["frac_coords"].append(b"")
                new_s["atomic_numbers"].append(z.tobytes())
                for c, t in (("formation_energy", "formation_energy_per_atom"),
                             ("band_gap", "band_gap"), ("magnetization", "magnetization_per_atom"),
                             ("volume_per_atom", "volume_per_atom"),
                             ("volume_deviation", "volume_deviation")):
                    v = col[t][i]
                    new_d[c].append(float(v) if pd.notna(v) else None)
                new_d["material_id"].append(mid)
                new_d["selection_rule"].append(IMPORT_SOURCE)
                summary.materials_created += 1
            else:
                summary.materials_matched += 1
            row_material.append(mid)
            g_rows["structure_id"].append(mid)
            g_rows["recipe_id"].append(rid)
            g_rows["status"].append("ok")
            g_rows["natoms"].append(n)
            g_rows["nedges"].append(len(dst))
            g_rows["n_isolated"].append(int((np.bincount(src, minlength=n) == 0).sum()))
            g_rows["atomic_numbers"].append(z.tobytes())
            g_rows["edge_src"].append(src.tobytes())
            g_rows["edge_dst"].append(dst.tobytes())
        insert_columns(conn, "materials", new_m)
        insert_columns(conn, "structures", new_s)
        insert_columns(conn, "dft_properties", new_d)
        # Matched materials keep their structure; the graph hangs on that structure id.
        created = set(new_s["id"])
        matched = [m for m in g_rows["structure_id"] if m not in created]
        if matched:
            stmt = text("SELECT material_id, id FROM structures WHERE material_id IN :ids"
                        ).bindparams(bindparam("ids", expanding=True))
            sid_of = dict(conn.execute(stmt, {"ids": matched}).all())
            g_rows["structure_id"] = [sid_of.get(m, m) for m in g_rows["structure_id"]]
        conn.execute(text("DELETE FROM crystal_graphs WHERE recipe_id = :r"), {"r": rid})
        insert_columns(conn, "crystal_graphs", g_rows)
        summary.graphs = len(g_rows["structure_id"])
        split_path = directory / "split.json"
        if split_path.is_file():
            split = _read_json(split_path)
            if not isinstance(split, dict):
                raise InputError(f"{split_path}: expected an object with train, val, test lists")
            sname = recipe_name
            conn.execute(text("DELETE FROM split_members WHERE split_id IN (SELECT id FROM "
                              "dataset_splits WHERE name = :n)"), {"n": sname})
            conn.execute(text("DELETE FROM dataset_splits WHERE name = :n"), {"n": sname})
            counts = {k: len(split.get(k, [])) for k in ("train", "val", "test")}
            conn.execute(DatasetSplit.__table__.insert().values(
                name=sname, method="imported split.json", seed=0,
                fractions={k: v / max(1, len(names)) for k, v in counts.items()}, counts=counts))
            split_id = conn.execute(select(DatasetSplit.id).where(
                DatasetSplit.name == sname)).scalar_one()
            members: dict[int, str] = {}
            for subset in ("train", "val", "test"):
                for idx in split.get(subset, []):
                    m = row_material[int(idx)] if int(idx) < len(row_material) else None
                    if m is not None:
                        members[m] = subset
            insert_columns(conn, "split_members", {
                "split_id": [split_id] * len(members), "material_id": list(members),
                "subset": list(members.values())})
    return summary
