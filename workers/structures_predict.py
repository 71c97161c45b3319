"""Pipeline step: structures in, predictions out (``platform predict --structures``, the API).

One call runs the steps every other path runs, in this process: the structure ingest
(:func:`matplat.ingest.structures.ingest.ingest_structures`), then the prediction step of
``platform predict`` (:func:`workers.predict.predict_ids`: missing graphs of the model's
recipe, ensemble inference, bulk write of the predictions) for exactly those materials,
then the refresh of the model's summary tables, and returns one row per structure in input
order: name, formula, each predicted property with its ensemble uncertainty and any DFT
value, or the reason it has no prediction (rejected, or no usable graph).

Structures already predicted by the model (same content: re-ingest changed nothing) are
not predicted again; their stored predictions are returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, bindparam, text

from matplat.services import registry

__all__ = ["StructurePredictions", "predict_structures", "prediction_table"]


@dataclass
class StructurePredictions:
    table: pd.DataFrame
    tag: str
    targets: list[str]
    ingest: Any = None  # FileIngestSummary
    predicted: int = 0
    #: seconds per step: parse (reading files, in the ingest), ingest (writing materials),
    #: graphs, predict (inference), write (predictions and the model's summary tables)
    seconds: dict[str, float] = field(default_factory=dict)


def predict_structures(
    engine: Engine,
    *,
    tag: str | None = None,
    alias: str | None = None,
    paths: Iterable[str] = (),
    objects: Iterable[tuple[str | None, Any]] = (),
    ids: Iterable[int] | None = None,
    source: str | None = None,
    properties: str | None = None,
    device: str = "auto",
    batch_size: int = 2048,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StructurePredictions:
    """Ingest ``paths``/``objects`` and predict them with model ``tag`` (or ``alias``); or,
    with ``ids``, predict stored materials (rows named ``source:source_id``)."""
    from matplat.ingest.structures.ingest import ingest_structures
    from workers.graphs import recipe_name
    from workers.leaderboard import refresh_metrics
    from workers.predict import PredictPlan, load_models, predict_ids

    t0 = time.perf_counter()
    mv_id, mv_tag, _blob, meta = registry.artifact_bytes(engine, tag, alias)
    if meta["recipe_id"] is None:
        from matplat.errors import InputError

        raise InputError(f"model {mv_tag!r} records no graph recipe; cannot build its inputs")
    if ids is not None:
        summary = _stored(engine, list(ids))
    else:
        summary = ingest_structures(engine, paths, objects=objects, source=source,
                                    properties=properties, workers=workers, progress=progress)
    seconds = {"parse": summary.parse_seconds,
               "ingest": summary.seconds - summary.parse_seconds}
    ids = [summary.material_ids[n] for n in summary.names if n in summary.material_ids]
    todo = sorted(set(ids) - _predicted(engine, mv_id, ids))
    targets = list(meta["targets"])
    result = StructurePredictions(pd.DataFrame(), mv_tag, targets, summary, seconds=seconds)
    if todo:
        plan = PredictPlan(mv_id=mv_id, tag=mv_tag, targets=targets,
                           recipe_id=int(meta["recipe_id"]),
                           recipe=recipe_name(engine, int(meta["recipe_id"])), where=None,
                           selected=ids, todo=todo)
        clock: dict[str, float] = {}
        c = predict_ids(engine, plan, todo, load_models(engine, mv_id), batch_size=batch_size,
                        device=device, timings=clock)
        result.predicted = c.predicted
        t = time.perf_counter()
        refresh_metrics(engine, mv_id)
        seconds.update(clock)
        seconds["write"] += time.perf_counter() - t
    t = time.perf_counter()
    result.table = prediction_table(engine, mv_id, targets, summary)
    seconds["table"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    return result


def _stored(engine: Engine, ids: list[int]) -> Any:
    """An ingest summary naming stored materials, for :func:`prediction_table`."""
    from matplat.errors import NotFoundError
    from matplat.ingest.structures.ingest import FileIngestSummary

    stmt = text("SELECT id, source, source_id FROM materials WHERE id IN :ids").bindparams(
        bindparam("ids", expanding=True))
    found: dict[int, str] = {}
    with engine.connect() as conn:
        for i in range(0, len(ids), 2000):
            for mid, src, sid in conn.execute(stmt, {"ids": ids[i : i + 2000]}):
                found[int(mid)] = f"{src}:{sid}"
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(f"no material with id {missing[0]}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    s = FileIngestSummary(source="")
    s.names = [found[i] for i in ids]
    s.material_ids = {found[i]: i for i in ids}
    return s


def _predicted(engine: Engine, mv_id: int, ids: list[int]) -> set[int]:
    stmt = text("SELECT DISTINCT material_id FROM predictions WHERE model_version_id = :mv "
                "AND material_id IN :ids").bindparams(bindparam("ids", expanding=True))
    out: set[int] = set()
    with engine.connect() as conn:
        for i in range(0, len(ids), 2000):
            out.update(int(r[0]) for r in conn.execute(stmt, {"mv": mv_id,
                                                              "ids": ids[i : i + 2000]}))
    return out


def prediction_table(engine: Engine, mv_id: int, targets: list[str], summary: Any) -> pd.DataFrame:
    """One row per structure of ``summary`` (accepted, in input order, then rejected)."""
    ids = [summary.material_ids.get(n) for n in summary.names]
    known = [i for i in ids if i is not None]
    pred: dict[tuple[int, str], tuple[float, float | None]] = {}
    info: dict[int, tuple[str, dict[str, float | None]]] = {}
    dft_cols = ", ".join(f"d.{t}" for t in targets)
    q_pred = text("SELECT material_id, property, value, uncertainty FROM predictions "
                  "WHERE model_version_id = :mv AND material_id IN :ids"
                  ).bindparams(bindparam("ids", expanding=True))
    q_mat = text(f"SELECT m.id, m.formula, {dft_cols} FROM materials m LEFT JOIN dft_properties d "
                 "ON d.material_id = m.id WHERE m.id IN :ids"
                 ).bindparams(bindparam("ids", expanding=True))
    q_fail = text("SELECT s.material_id, g.status, g.error FROM structures s JOIN crystal_graphs g "
                  "ON g.structure_id = s.id JOIN model_versions v "
                  "ON v.recipe_id = g.recipe_id AND v.id = :mv WHERE s.material_id IN :ids"
                  ).bindparams(bindparam("ids", expanding=True))
    failed: dict[int, str] = {}
    with engine.connect() as conn:
        for i in range(0, len(known), 2000):
            part = known[i : i + 2000]
            for mid, prop, value, unc in conn.execute(q_pred, {"mv": mv_id, "ids": part}):
                pred[(int(mid), prop)] = (value, unc)
            for mid, formula, *dft in conn.execute(q_mat, {"ids": part}):
                info[int(mid)] = (formula, dict(zip(targets, dft, strict=True)))
            for mid, status, err in conn.execute(q_fail, {"mv": mv_id, "ids": part}):
                failed[int(mid)] = (
                    f"no usable graph: {err}" if status == "failed" else
                    "no usable graph: an element outside the model's species table")
    records: list[dict[str, Any]] = []
    for name, mid in zip(summary.names, ids, strict=True):
        formula, dft = info.get(mid, ("", {})) if mid is not None else ("", {})
        row: dict[str, Any] = {"name": name, "material_id": mid, "formula": formula}
        for t in targets:
            value, unc = pred.get((mid, t), (None, None)) if mid is not None else (None, None)
            row[t], row[f"{t}_uncertainty"], row[f"{t}_dft"] = value, unc, dft.get(t)
        has = mid is not None and any((mid, t) in pred for t in targets)
        row["rejected"] = None if has else failed.get(mid or -1, "no prediction")
        records.append(row)
    for r in summary.rejects:
        records.append({"name": r.name, "material_id": None, "formula": None,
                        "rejected": r.reason})
    cols = ["name", "material_id", "formula",
            *[c for t in targets for c in (t, f"{t}_uncertainty", f"{t}_dft")], "rejected"]
    df = pd.DataFrame(records, columns=cols)
    df["material_id"] = df["material_id"].astype("Int64")
    for c in cols[3:-1]:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(np.float64)
    return df
