"""Pipeline step: predict properties with a registered model and write them back.

Loads the model version from the database, builds graphs of its recipe that are missing for
the selected materials, runs batched inference (ensembles: mean and standard deviation), and
writes predictions chunk by chunk with the engine's bulk path. Each chunk commits on its own
and only materials without predictions are selected, so a rerun writes nothing new and a
killed run resumes where it stopped.
"""

from __future__ import annotations

import base64
import hashlib
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, bindparam, select, text

from matplat.config import DEFAULT_QUERY_TIMEOUT
from matplat.db.bulk import write_predictions
from matplat.errors import InputError
from matplat.services import registry
from matplat.services.query import select_ids


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


def _encode_ids(ids: np.ndarray) -> str:
    """Ascending ids as base64 of zlib-compressed deltas (a task's selection in its JSON)."""
    deltas = np.diff(np.asarray(ids, dtype=np.int64), prepend=0)
    return base64.b64encode(zlib.compress(deltas.astype("<i8").tobytes())).decode()


def _decode_ids(blob: str) -> np.ndarray:
    return np.cumsum(np.frombuffer(zlib.decompress(base64.b64decode(blob)), "<i8"))


def _predicted(conn, mv_id: int, lo: int | None = None,  # type: ignore[no-untyped-def]
               hi: int | None = None) -> np.ndarray:
    """Material ids that already have predictions of ``mv_id`` (in ``lo..hi`` when given)."""
    rng = " AND material_id BETWEEN :lo AND :hi" if lo is not None else ""
    return np.fromiter((int(r[0]) for r in conn.execute(text(
        f"SELECT DISTINCT material_id FROM predictions WHERE model_version_id = :mv{rng}"),
        {"mv": mv_id, "lo": lo, "hi": hi})), dtype=np.int64)


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
    if len(mids) == 0:  # every graph of the chunk failed (e.g. species outside the model's)
        return mids, None, int((~usable).sum())
    gs = GraphSet.from_lists(mids, species, src, dst, np.full((len(mids), 1), np.nan, np.float32))
    return mids, gs, int((~usable).sum())


@dataclass
class PredictPlan:
    """What a prediction run needs, resolved once: the model version and the selection."""

    mv_id: int
    tag: str
    targets: list[str]
    recipe_id: int
    recipe: str
    where: str | None
    selected: list[int]
    todo: list[int]


def select_materials(engine: Engine, where: str | None, *, query_engine: Engine | None = None,
                     lo: int | None = None, hi: int | None = None,
                     timeout: float = DEFAULT_QUERY_TIMEOUT) -> np.ndarray:
    """Ids of the materials a ``--where`` condition selects (every material without one).

    The user's condition is evaluated only inside a read-only transaction on
    ``query_engine`` (the user-SQL connection; default ``engine``), and only its ids are
    used afterwards: it never becomes part of a statement that writes.
    """
    if where:
        ids = select_ids(query_engine or engine, where, lo=lo, hi=hi, timeout=timeout)
        return np.asarray(ids, dtype=np.int64)
    rng = " WHERE id BETWEEN :lo AND :hi" if lo is not None else ""
    with engine.connect() as conn:
        return np.fromiter((int(r[0]) for r in conn.execute(text(
            f"SELECT id FROM materials{rng} ORDER BY id"), {"lo": lo, "hi": hi})),
            dtype=np.int64)


def plan_predict(engine: Engine, *, tag: str | None = None, alias: str | None = None,
                 where: str | None = None, query_engine: Engine | None = None,
                 timeout: float = DEFAULT_QUERY_TIMEOUT) -> PredictPlan:
    """Resolve the model (tag or alias) and the materials still lacking its predictions."""
    from workers.graphs import recipe_name

    mv_id, mv_tag, _blob, meta = registry.artifact_bytes(engine, tag, alias)
    recipe_id = meta["recipe_id"]
    if recipe_id is None:
        raise InputError(f"model {mv_tag!r} records no graph recipe; cannot build its inputs")
    selected = select_materials(engine, where, query_engine=query_engine, timeout=timeout)
    with engine.connect() as conn:
        done = _predicted(conn, mv_id)
    todo = selected[~np.isin(selected, done)]
    return PredictPlan(mv_id=mv_id, tag=mv_tag, targets=list(meta["targets"]),
                       recipe_id=int(recipe_id), recipe=recipe_name(engine, int(recipe_id)),
                       where=where, selected=selected.tolist(), todo=todo.tolist())


_MODELS: dict[tuple[int, str], list] = {}


def load_models(engine: Engine, mv_id: int):  # type: ignore[no-untyped-def]
    """The ensemble members of a model version, cached per process (workers predict many
    ranges with the same model)."""
    from matplat.db.models import ModelVersion

    with engine.connect() as conn:
        sha = conn.execute(select(ModelVersion.artifact_sha256).where(
            ModelVersion.id == mv_id)).scalar()
    if sha is None:
        raise InputError(f"model version {mv_id} no longer exists")
    key = (mv_id, sha)
    if key not in _MODELS:
        with engine.connect() as conn:
            blob = conn.execute(select(ModelVersion.artifact).where(
                ModelVersion.id == mv_id)).scalar() or b""
        if hashlib.sha256(blob).hexdigest() != sha:
            raise InputError(f"model version {mv_id}: stored weights do not match their sha256")
        _MODELS.clear()
        _MODELS[key] = _load_models(blob)
    return _MODELS[key]


def _model_meta(engine: Engine, mv_id: int) -> tuple[str, list[str], int]:
    """(tag, targets, recipe id) of a model version."""
    from matplat.db.models import ModelVersion

    with engine.connect() as conn:
        row = conn.execute(select(ModelVersion.tag, ModelVersion.targets, ModelVersion.recipe_id)
                           .where(ModelVersion.id == mv_id)).first()
    if row is None:
        raise InputError(f"model version {mv_id} no longer exists")
    return str(row[0]), list(row[1]), int(row[2])


@dataclass
class RangeCounts:
    predicted: int = 0
    rows_written: int = 0
    graphs_built: int = 0
    graphs_failed: int = 0


def predict_ids(engine: Engine, plan: PredictPlan, todo: list[int], models: list, *,
                batch_size: int = 2048, chunk_size: int = 20_000, device: str = "auto",
                build_graphs: bool = True,
                progress: Callable[[int, int], None] | None = None,
                timings: dict[str, float] | None = None) -> RangeCounts:
    """Build missing graphs of ``todo`` materials, predict and write them chunk by chunk.

    ``timings`` (if given) accumulates the seconds spent on ``graphs`` (building), ``predict``
    (reading graphs and inference) and ``write`` (storing predictions)."""
    clock = timings if timings is not None else {}
    for k in ("graphs", "predict", "write"):
        clock.setdefault(k, 0.0)
    from ml.train import ensemble_predict
    from workers.graphs import build_graphs as build_missing

    counts = RangeCounts()
    if not todo:
        return counts
    if build_graphs:
        with engine.connect() as conn:
            pairs = np.array(conn.execute(text(
                "SELECT s.id, s.material_id FROM structures s "
                "WHERE s.material_id BETWEEN :lo AND :hi"), {"lo": todo[0], "hi": todo[-1]}).all(),
                dtype=np.int64).reshape(-1, 2)
        sids = pairs[np.isin(pairs[:, 1], np.asarray(todo, dtype=np.int64)), 0]
        t = time.perf_counter()
        b = build_missing(engine, plan.recipe, ids=sids)
        counts.graphs_built, counts.graphs_failed = b.built, b.failed
        clock["graphs"] += time.perf_counter() - t
    done = 0
    if progress:
        progress(0, len(todo))
    for i in range(0, len(todo), chunk_size):
        part = todo[i:i + chunk_size]
        t = time.perf_counter()
        mids, gs, _unusable = _graph_rows(engine, plan.recipe_id, part)
        if len(mids):
            mean, std = ensemble_predict(models, gs, batch_size=batch_size, device=device)
            clock["predict"] += time.perf_counter() - t
            t = time.perf_counter()
            with engine.begin() as conn:
                for k, target in enumerate(plan.targets):
                    unc = std[:, k] if len(models) > 1 else None
                    counts.rows_written += write_predictions(conn, plan.mv_id, mids, target,
                                                             mean[:, k], unc)
            counts.predicted += len(mids)
            clock["write"] += time.perf_counter() - t
        done += len(part)
        if progress:
            progress(done, len(todo))
    return counts


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
    query_engine: Engine | None = None,
) -> PredictSummary:
    """Predict every selected material lacking predictions, in this process (library use and
    benchmarks; the CLI runs the same steps as a job, see :func:`submit_predict`)."""
    t0 = time.perf_counter()
    plan = plan_predict(engine, tag=tag, alias=alias, where=where, query_engine=query_engine)
    summary = PredictSummary(tag=plan.tag, targets=plan.targets, selected=len(plan.selected),
                             already=len(plan.selected) - len(plan.todo))
    if plan.todo:
        c = predict_ids(engine, plan, plan.todo, load_models(engine, plan.mv_id),
                        batch_size=batch_size, chunk_size=chunk_size, device=device,
                        build_graphs=build_graphs, progress=progress)
        summary.predicted, summary.rows_written = c.predicted, c.rows_written
        summary.graphs_built, summary.graphs_failed = c.graphs_built, c.graphs_failed
        from workers.leaderboard import refresh_metrics

        refresh_metrics(engine, plan.mv_id)
    summary.seconds = time.perf_counter() - t0
    return summary


# ---------------------------------------------------------------------------------------------
# As a job: one task per range of materials (``platform predict``)


def submit_predict(engine: Engine, *, tag: str | None = None, alias: str | None = None,
                   where: str | None = None, batch_size: int = 2048, chunk_size: int = 20_000,
                   runner: str = "in-process", query_engine: Engine | None = None,
                   timeout: float = DEFAULT_QUERY_TIMEOUT) -> tuple[PredictPlan, int | None]:
    """Plan predictions as a job; the job id is ``None`` when nothing is left to predict.

    With ``where`` each task carries the ids it selected (compressed), so the condition is
    evaluated once, read-only, and workers never run it.
    """
    from workers.jobs import create_job, id_ranges

    plan = plan_predict(engine, tag=tag, alias=alias, where=where, query_engine=query_engine,
                        timeout=timeout)
    if not plan.todo:
        _refresh_if_missing(engine, plan.mv_id)
        return plan, None
    params = {"model_version_id": plan.mv_id, "tag": plan.tag, "where": where,
              "batch_size": batch_size, "selected": len(plan.selected),
              "already": len(plan.selected) - len(plan.todo)}
    todo = np.asarray(plan.todo, dtype=np.int64)
    tasks = list(id_ranges(todo, chunk_size))
    if where:
        for k, spec in enumerate(tasks):
            spec.params["ids"] = _encode_ids(todo[k * chunk_size:(k + 1) * chunk_size])
    job_id = create_job(engine, "predict", params, tasks, runner=runner, queue=KIND.queue)
    return plan, job_id


def _refresh_if_missing(engine: Engine, mv_id: int) -> None:
    """A run stopped after its last chunk but before its final step left predictions without
    leaderboard rows; a rerun that finds nothing to predict completes that step."""
    from workers.leaderboard import refresh_metrics

    with engine.connect() as conn:
        has_predictions = conn.execute(text(
            "SELECT 1 FROM predictions WHERE model_version_id = :mv LIMIT 1"),
            {"mv": mv_id}).first() is not None
        has_metrics = conn.execute(text(
            "SELECT 1 FROM model_metrics WHERE model_version_id = :mv LIMIT 1"),
            {"mv": mv_id}).first() is not None
    if has_predictions and not has_metrics:
        refresh_metrics(engine, mv_id)


class _PredictKind:
    name = "predict"
    queue = "gpu"

    def run(self, engine: Engine, job: Any, task: Any, ctx: Any) -> Any:
        from workers.jobs import Outcome

        p = job.params
        mv_id = int(p["model_version_id"])
        tag, targets, recipe_id = _model_meta(engine, mv_id)
        from workers.graphs import recipe_name

        plan = PredictPlan(mv_id=mv_id, tag=tag, targets=targets, recipe_id=recipe_id,
                           recipe=recipe_name(engine, recipe_id), where=p.get("where"),
                           selected=[], todo=[])
        lo, hi = task.params["lo"], task.params["hi"]
        if "ids" in task.params:  # selected at submit, read-only
            candidates = _decode_ids(task.params["ids"])
        else:  # no --where, or a job planned before tasks carried their ids
            candidates = select_materials(engine, p.get("where"), lo=lo, hi=hi)
        with engine.connect() as conn:
            done = _predicted(conn, mv_id, lo, hi)
        todo = candidates[~np.isin(candidates, done)].tolist()
        c = predict_ids(engine, plan, todo, load_models(engine, mv_id),
                        batch_size=int(p.get("batch_size", 2048)), chunk_size=task.total,
                        device=ctx.device, progress=lambda done, total: ctx.progress(done))
        return Outcome(done=len(todo), result={
            "predicted": c.predicted, "rows_written": c.rows_written,
            "graphs_built": c.graphs_built, "graphs_failed": c.graphs_failed,
            "already": task.total - len(todo)})

    def finalize(self, engine: Engine, job: Any, tasks: list[Any],
                 device: str = "auto") -> dict[str, Any]:
        from workers.leaderboard import refresh_metrics

        refresh_metrics(engine, int(job.params["model_version_id"]))
        out = {k: sum((t.result or {}).get(k, 0) for t in tasks)
               for k in ("predicted", "rows_written", "graphs_built", "graphs_failed")}
        return {**out, "tag": job.params["tag"], "selected": job.params["selected"],
                "already": job.params["already"]}


KIND = _PredictKind()
