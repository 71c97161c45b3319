"""Pipeline step: predict properties with a registered model and write them back.

Loads the model version from the database, builds graphs of its recipe that are missing for
the selected materials, runs batched inference (ensembles: mean and standard deviation), and
writes predictions chunk by chunk with the engine's bulk path. Each chunk commits on its own
and only materials without predictions are selected, so a rerun writes nothing new and a
killed run resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, bindparam, text

from matplat.db.bulk import write_predictions
from matplat.errors import InputError
from matplat.services import registry
from matplat.services.query import check_read_only


@dataclass
class PredictSummary:
    tag: str
    targets: list[str]
    selected: int = 0
    already: int = 0
    predicted: int = 0
    rows_written: int = 0
    graphs_built: int = 0
    graphs_failed: int = 0
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.rows_written / self.seconds if self.seconds else 0.0


def _validate_where(engine: Engine, where: str | None) -> str:
    if not where:
        return ""
    check_read_only(f"SELECT m.id FROM materials m WHERE {where}")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"SELECT m.id FROM materials m WHERE {where} LIMIT 1"))
    except Exception as e:  # noqa: BLE001 - report the database's own message
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0]
        raise InputError(f"--where {where!r} is not a valid condition on materials m: {reason}") from e
    return f"AND ({where})"


def _load_models(blob: bytes):  # type: ignore[no-untyped-def]
    from ml.serialize import model_from_bytes
    from workers.training import unpack_ensemble

    return [model_from_bytes(b)[0] for b in unpack_ensemble(blob)]


def _graph_rows(engine: Engine, recipe_id: int, ids: list[int]):  # type: ignore[no-untyped-def]
    from ml.data import GraphSet
    from workers.datasets import decode_graph_rows

    stmt = text(
        "SELECT m.id, g.atomic_numbers, g.edge_src, g.edge_dst FROM materials m "
        "JOIN structures s ON s.material_id = m.id "
        "JOIN crystal_graphs g ON g.structure_id = s.id AND g.recipe_id = :r AND g.status = 'ok' "
        "WHERE m.id IN :ids ORDER BY m.id").bindparams(bindparam("ids", expanding=True))
    with engine.connect() as conn:
        rows = conn.execute(stmt, {"r": recipe_id, "ids": ids}).all()
    usable, species, src, dst = decode_graph_rows([r[1] for r in rows], [r[2] for r in rows],
                                                  [r[3] for r in rows])
    mids = np.asarray([r[0] for r in rows], dtype=np.int64)[usable]
    gs = GraphSet.from_lists(mids, species, src, dst, np.full((len(mids), 1), np.nan, np.float32))
    return mids, gs, int((~usable).sum())


def predict_and_store(
    engine: Engine,
    *,
    tag: str | None = None,
    alias: str | None = None,
    where: str | None = None,
    batch_size: int = 2048,
    chunk_size: int = 20_000,
    device: str = "auto",
    build_graphs: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> PredictSummary:
    from ml.train import ensemble_predict
    from workers.graphs import build_graphs as build_missing
    from workers.graphs import recipe_name

    mv_id, mv_tag, blob, meta = registry.artifact_bytes(engine, tag, alias)
    targets = list(meta["targets"])
    summary = PredictSummary(tag=mv_tag, targets=targets)
    recipe_id = meta["recipe_id"]
    if recipe_id is None:
        raise InputError(f"model {mv_tag!r} records no graph recipe; cannot build its inputs")
    cond = _validate_where(engine, where)
    t0 = time.perf_counter()
    with engine.connect() as conn:
        selected = [int(r[0]) for r in conn.execute(text(
            f"SELECT m.id FROM materials m WHERE 1 = 1 {cond} ORDER BY m.id"))]
        todo = [int(r[0]) for r in conn.execute(text(
            f"SELECT m.id FROM materials m WHERE 1 = 1 {cond} AND NOT EXISTS (SELECT 1 FROM "
            "predictions p WHERE p.model_version_id = :mv AND p.material_id = m.id) "
            "ORDER BY m.id"), {"mv": mv_id})]
    summary.selected = len(selected)
    summary.already = len(selected) - len(todo)
    if not todo:
        summary.seconds = time.perf_counter() - t0
        return summary
    if build_graphs:
        with engine.connect() as conn:
            sids = np.array([int(r[0]) for r in conn.execute(text(
                "SELECT s.id FROM structures s JOIN materials m ON m.id = s.material_id "
                f"WHERE 1 = 1 {cond}"))], dtype=np.int64)
        b = build_missing(engine, recipe_name(engine, recipe_id), ids=sids)
        summary.graphs_built, summary.graphs_failed = b.built, b.failed
    models = _load_models(blob)
    done = 0
    if progress:
        progress(0, len(todo))
    for i in range(0, len(todo), chunk_size):
        part = todo[i:i + chunk_size]
        mids, gs, _unusable = _graph_rows(engine, recipe_id, part)
        if len(mids):
            mean, std = ensemble_predict(models, gs, batch_size=batch_size, device=device)
            with engine.begin() as conn:
                for k, target in enumerate(targets):
                    unc = std[:, k] if len(models) > 1 else None
                    summary.rows_written += write_predictions(conn, mv_id, mids, target,
                                                              mean[:, k], unc)
            summary.predicted += len(mids)
        done += len(part)
        if progress:
            progress(done, len(todo))
    summary.seconds = time.perf_counter() - t0
    from workers.leaderboard import refresh_metrics

    refresh_metrics(engine, mv_id)
    return summary
