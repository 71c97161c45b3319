"""Load crystal graphs and DFT targets from the database into ``ml.data.GraphSet`` (CSR).

Rows are streamed once and packed into contiguous arrays; the result is cached on disk
(memory-mapped ``.npy`` files) under a key derived from the database's graph fingerprint, so
the next training run on the same data skips the database entirely.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, text

TARGET_COLUMNS = {
    "formation_energy": "formation_energy",
    "band_gap": "band_gap",
    "magnetization": "magnetization",
    "volume_per_atom": "volume_per_atom",
    "volume_deviation": "volume_deviation",
}


def cache_root() -> Path:
    base = os.environ.get("PLATFORM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "matplat")
    return Path(base) / "graphsets"


@dataclass
class GraphData:
    """Graphs of materials (CSR, in ``ml.data.GraphSet``) with their formulas and targets."""

    graphs: object  # ml.data.GraphSet
    material_ids: np.ndarray
    formulas: list[str]
    snapshot_hash: str
    skipped: int = 0


def decode_graph_rows(z_blobs: list[bytes], src_blobs: list[bytes], dst_blobs: list[bytes]
                      ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Decode stored graphs: (usable mask (G,), species, edge_src, edge_dst of usable graphs).

    A graph is unusable when an atom lies outside the 89-species table. The species lookup
    runs once over all atoms of the batch, not per graph.
    """
    from ml.graphs import species_index

    zs = [np.frombuffer(b, "<i2") for b in z_blobs]
    if not zs:
        return np.zeros(0, bool), [], [], []
    counts = np.fromiter((len(z) for z in zs), dtype=np.int64, count=len(zs))
    species = np.asarray(species_index(np.concatenate(zs), strict=False), dtype=np.int16)
    usable = np.ones(len(zs), dtype=bool)
    usable[np.repeat(np.arange(len(zs)), counts)[species < 0]] = False
    per_graph = np.split(species, np.cumsum(counts)[:-1])
    keep = np.flatnonzero(usable)
    return (usable, [per_graph[i] for i in keep],
            [np.frombuffer(src_blobs[i], "<i4") for i in keep],
            [np.frombuffer(dst_blobs[i], "<i4") for i in keep])


def check_targets(targets: list[str]) -> list[str]:
    from matplat.errors import InputError

    bad = [t for t in targets if t not in TARGET_COLUMNS]
    if bad or not targets:
        raise InputError(f"unknown target(s) {', '.join(bad) or '(none)'}: choose from "
                         f"{', '.join(TARGET_COLUMNS)}")
    return targets


def _fingerprint(engine: Engine, recipe_id: int, where: str) -> str:
    sql = text(
        "SELECT count(*), COALESCE(SUM(g.structure_id), 0), COALESCE(MAX(g.structure_id), 0), "
        "COALESCE(SUM(g.nedges), 0), COALESCE(CAST(MAX(m.updated_at) AS CHAR(40)), '') FROM crystal_graphs g "
        f"JOIN structures s ON s.id = g.structure_id JOIN materials m ON m.id = s.material_id "
        f"WHERE g.recipe_id = :r AND g.status = 'ok' {where}")
    with engine.connect() as conn:
        row = conn.execute(sql, {"r": recipe_id}).one()
    key = json.dumps([engine.url.render_as_string(hide_password=True), recipe_id, where,
                      [str(v) for v in row]])
    return hashlib.sha256(key.encode()).hexdigest()


def load_graph_data(engine: Engine, recipe_id: int, *, where: str = "",
                    use_cache: bool = True) -> GraphData:
    """Every ok graph of the recipe (joined to its material and DFT values), ordered by material.

    The graph set holds one target column per entry of :data:`TARGET_COLUMNS` (NaN where the
    database has no value); training picks its targets by name. ``where`` is an extra SQL
    condition on ``m`` (materials) / ``d`` (dft_properties). Graphs with species outside the
    89-species table are skipped (counted in ``skipped``).
    """
    from ml.data import GraphSet

    fp = _fingerprint(engine, recipe_id, f"AND ({where})" if where else "")
    cache = cache_root() / fp[:32]
    if use_cache and (cache / "meta.json").is_file():
        meta = json.loads((cache / "meta.json").read_text())
        gs = GraphSet.load(cache / "graphs", mmap=True)
        return GraphData(gs, np.load(cache / "material_ids.npy"), meta["formulas"],
                         meta["snapshot_hash"], meta["skipped"])
    cols = ", ".join(f"d.{c}" for c in TARGET_COLUMNS.values())
    sql = text(
        f"SELECT m.id, m.formula, g.atomic_numbers, g.edge_src, g.edge_dst, {cols} "
        "FROM crystal_graphs g JOIN structures s ON s.id = g.structure_id "
        "JOIN materials m ON m.id = s.material_id "
        "LEFT JOIN dft_properties d ON d.material_id = m.id "
        "WHERE g.recipe_id = :r AND g.status = 'ok' "
        f"{'AND (' + where + ')' if where else ''} ORDER BY m.id")
    ids: list[int] = []
    formulas: list[str] = []
    species: list[np.ndarray] = []
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    values: list[list[float]] = []
    skipped = 0
    h = hashlib.sha256()
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(sql, {"r": recipe_id})
        for part in result.partitions(20_000):  # streamed: memory stays per partition
            usable, sp, s, d = decode_graph_rows([r[2] for r in part], [r[3] for r in part],
                                                 [r[4] for r in part])
            skipped += int((~usable).sum())
            species += sp
            src += s
            dst += d
            for r in (r for r, ok in zip(part, usable, strict=True) if ok):
                ids.append(int(r[0]))
                formulas.append(r[1])
                values.append([np.nan if v is None else float(v) for v in r[5:]])
                h.update(r[2])
                h.update(r[3])
                h.update(r[4])
    all_targets = list(TARGET_COLUMNS)
    tarr = np.asarray(values, dtype=np.float64).reshape(len(ids), len(all_targets))
    mids = np.asarray(ids, dtype=np.int64)
    h.update(tarr.astype("<f8").tobytes())
    h.update(mids.tobytes())
    tarr = tarr.astype(np.float32)
    gs = GraphSet.from_lists(mids, species, src, dst, tarr, target_names=all_targets)
    snapshot = h.hexdigest()
    if use_cache and len(mids):
        tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        gs.save(tmp / "graphs")
        np.save(tmp / "material_ids.npy", mids)
        (tmp / "meta.json").write_text(json.dumps({
            "targets": all_targets, "formulas": formulas, "snapshot_hash": snapshot,
            "skipped": skipped}))
        try:
            tmp.rename(cache)
        except OSError:  # another process cached it first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return GraphData(gs, mids, formulas, snapshot, skipped)
