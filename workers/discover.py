"""Pipeline step: discover hypothetical compounds from known structures, ranked by stability.

``platform discover`` runs as a job of kind ``discover``:

1. :func:`workers.discover_plan.plan_discover` (the submitting command) checks the input,
   enumerates the candidates left to make and creates the job: tasks are chunks of parents,
   each listing its candidates.
2. Each task (this process, or a Celery worker) substitutes the species into the parents'
   cells, rebuilds the crystal graphs (the cutoff depends on the new radii), predicts every
   target of the model (ensemble mean and spread), scales each cell uniformly to the
   predicted volume, scores the predicted formation energy against the DFT hull of the
   system and stores the candidates (:mod:`workers.discover_store`), in one transaction.

Idempotent: candidates are keyed by (run, formula @ structure type), so a redelivered task
or a rerun stores nothing twice, and a rerun of a finished run plans nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, select, text

from matplat.db.models.discovery import CANDIDATE_PREFIX, DiscoveryRun
from matplat.errors import NotFoundError
from workers.discover_plan import (
    QUEUE,
    DiscoverPlan,
    DiscoverRequest,
    load_parents,
    plan_discover,
    source_id,
    symbols,
    type_key,
)

__all__ = [
    "KIND", "DiscoverPlan", "DiscoverRequest", "TaskTimes", "discover_inprocess", "load_parents",
    "plan_discover", "ranking", "run_candidates", "type_key",
]


# ---------------------------------------------------------------------------------------------
# One task: substitute, graph, predict, scale, score, store


def _parent_structures(engine: Engine, ids: list[int]) -> dict[int, tuple]:
    from sqlalchemy import bindparam

    stmt = text(
        "SELECT s.material_id, s.lattice, s.frac_coords, s.atomic_numbers, m.spacegroup, "
        "m.prototype FROM structures s JOIN materials m ON m.id = s.material_id "
        "WHERE s.material_id IN :ids ORDER BY s.id").bindparams(bindparam("ids", expanding=True))
    out: dict[int, tuple] = {}
    with engine.connect() as conn:
        for i in range(0, len(ids), 2000):
            for mid, lat, frac, z, sg, proto in conn.execute(stmt, {"ids": ids[i:i + 2000]}):
                if int(mid) in out or len(lat) != 72:
                    continue
                out[int(mid)] = (np.frombuffer(lat, "<f8").reshape(3, 3),
                                 np.frombuffer(frac, "<f8").reshape(-1, 3),
                                 np.frombuffer(z, "<i2").astype(np.int64), sg, proto)
    return out


@dataclass
class TaskTimes:
    """Seconds per stage of a task (the benchmark reports where the time goes)."""

    read: float = 0.0
    graphs: float = 0.0
    predict: float = 0.0
    hull: float = 0.0
    write: float = 0.0


def run_candidates(engine: Engine, *, run_id: int, run: str, mv_id: int,
                   items: list[list[Any]], device: str = "auto",
                   progress: Callable[[int], None] | None = None,
                   times: TaskTimes | None = None) -> dict[str, int]:
    """Make, predict, score and store the candidates ``items`` (a task's list)."""
    from matplat.ingest.formulas import Formulas
    from ml.data import GraphSet
    from ml.discovery import scale_lattice, substitute
    from ml.graphs import build_crystal_graphs
    from ml.train import ensemble_predict
    from workers.discover_hull import fractions_of, load_hull, reference_source
    from workers.discover_store import StoredCandidate, write_candidates
    from workers.graphs import recipe_name
    from workers.predict import _model_meta, load_models

    times = times or TaskTimes()
    t0 = time.perf_counter()
    _tag, targets, recipe_id = _model_meta(engine, mv_id)
    models = load_models(engine, mv_id)
    recipe = recipe_name(engine, recipe_id)
    parents = _parent_structures(engine, sorted({int(it[0]) for it in items}))
    sym = symbols()
    formulas = Formulas()
    made = []
    for pid, new_z, prob, smap, checked in items:
        parent = parents.get(int(pid))
        if parent is None:  # the parent was deleted since planning
            continue
        lat, frac, z, sg, proto = parent
        old_z = sorted(set(z.tolist()))
        zn = substitute(z, old_z, new_z)
        made.append((int(pid), zn, lat, frac, sg, proto, float(prob), smap, bool(checked)))
    t1 = time.perf_counter()
    times.read += t1 - t0
    graphs = build_crystal_graphs([(lat, frac, zn) for _, zn, lat, frac, *_ in made],
                                  recipe=recipe)
    ok = [i for i, g in enumerate(graphs) if not isinstance(g, Exception)
          and int(np.min(g.species, initial=0)) >= 0]
    t2 = time.perf_counter()
    times.graphs += t2 - t1
    if progress:
        progress(len(items) // 3)
    good = [graphs[i] for i in ok]
    mean = std = np.zeros((0, len(targets)))
    if good:
        gs = GraphSet.from_lists(np.arange(len(good)), [g.species for g in good],
                                 [g.edge_src for g in good], [g.edge_dst for g in good],
                                 np.full((len(good), 1), np.nan, np.float32))
        mean, std = ensemble_predict(models, gs, batch_size=2048, device=device)
    t3 = time.perf_counter()
    times.predict += t3 - t2
    col = {t: k for k, t in enumerate(targets)}
    hulls: dict[tuple[int, ...], Any] = {}
    stored: list[StoredCandidate] = []
    pending: dict[tuple[int, ...], list[int]] = {}
    for row, i in enumerate(ok):
        pid, zn, lat, frac, sg, proto, prob, smap, checked = made[i]
        values, counts = np.unique(zn, return_counts=True)
        formula, cell, v_atoms = formulas.get(tuple(zip(values.tolist(), counts.tolist(),
                                                        strict=True)))
        if "volume_per_atom" in col:
            vpa = float(mean[row, col["volume_per_atom"]])
        elif "volume_deviation" in col:
            vpa = v_atoms / (1.0 - float(mean[row, col["volume_deviation"]]))
        else:
            vpa = math.nan  # nothing predicts the volume: the parent's cell is kept
        reduced = [c // math.gcd(*counts.tolist()) for c in counts.tolist()]
        key = type_key(proto, sg, reduced, len(zn))
        preds = {t: (float(mean[row, k]), float(std[row, k]) if len(models) > 1 else None)
                 for t, k in col.items()}
        stored.append(StoredCandidate(
            source_id=source_id(formula, key), formula=formula,
            composition=cell, spacegroup=sg, prototype=proto,
            lattice=scale_lattice(lat, len(zn), vpa), frac_coords=np.array(frac),
            atomic_numbers=zn, parent_material_id=pid, species_map=smap, probability=prob,
            charge_checked=checked, predictions=preds, e_above_hull=None, decomposition=None))
        pending.setdefault(tuple(values.tolist()), []).append(len(stored) - 1)
    t4 = time.perf_counter()
    times.read += t4 - t3
    ref = reference_source(engine) if pending else None
    for system, idx in pending.items():
        if system not in hulls:
            hulls[system] = load_hull(engine, system, ref)
        hull = hulls[system]
        if hull is None:
            continue
        frac = np.array([fractions_of(system, *np.unique(stored[j].atomic_numbers,
                                                         return_counts=True)) for j in idx])
        energies = np.array([stored[j].predictions["formation_energy"][0] for j in idx])
        dist, decomp = hull.distances(frac, energies)
        for j, d, text_ in zip(idx, dist, decomp, strict=True):
            stored[j].e_above_hull = None if not np.isfinite(d) else float(d)
            stored[j].decomposition = text_ or None
            if np.isfinite(d):  # as a leaderboard refresh would derive it
                unc = stored[j].predictions["formation_energy"][1]
                stored[j].predictions["e_above_hull"] = (float(d), unc)
    t5 = time.perf_counter()
    times.hull += t5 - t4
    if progress:
        progress(2 * len(items) // 3)
    with engine.begin() as conn:
        written = write_candidates(conn, CANDIDATE_PREFIX + run, run_id, mv_id, stored, sym)
    times.write += time.perf_counter() - t5
    return {"stored": written, "failed": len(items) - len(stored),
            "already": len(stored) - written}


class _DiscoverKind:
    name = "discover"
    queue = QUEUE

    def run(self, engine: Engine, job: Any, task: Any, ctx: Any) -> Any:
        from workers.jobs import Outcome

        p = job.params
        counts = run_candidates(engine, run_id=int(p["run_id"]), run=str(p["run"]),
                                mv_id=int(p["model_version_id"]),
                                items=task.params["candidates"], device=ctx.device,
                                progress=ctx.progress)
        return Outcome(done=task.total - counts["failed"], failed=counts["failed"],
                       result=counts)

    def finalize(self, engine: Engine, job: Any, tasks: list[Any],
                 device: str = "auto") -> dict[str, Any]:
        out = {k: sum((t.result or {}).get(k, 0) for t in tasks)
               for k in ("stored", "failed", "already")}
        return {**out, "run": job.params["run"], "tag": job.params["tag"]}


KIND = _DiscoverKind()


def discover_inprocess(engine: Engine, req: DiscoverRequest, *, device: str = "auto"):  # type: ignore[no-untyped-def]
    """Plan and run a discovery in this process; returns the run's ranking (a DataFrame).

    What ``platform discover`` does without a broker, for the Python API.
    """
    from matplat.errors import PlatformError
    from workers.jobs import run_inprocess

    plan, job_id = plan_discover(engine, req)
    if job_id is not None:
        try:
            job = run_inprocess(engine, job_id, device=device)
        except KeyboardInterrupt:
            from workers.jobs import cancel

            cancel(engine, job_id)
            raise
        if job.status != "succeeded":
            raise PlatformError(f"discovery job {job.id} {job.status}: {job.error} (run it "
                                "again to finish what did not)")
    return ranking(engine, plan.run)


# ---------------------------------------------------------------------------------------------
# Reading the ranking


def ranking(engine: Engine, run: str, limit: int | None = None):  # type: ignore[no-untyped-def]
    """The ``candidate_ranking`` rows of a run as a DataFrame, best first."""
    import pandas as pd

    with engine.connect() as conn:
        if conn.execute(select(DiscoveryRun.id).where(DiscoveryRun.name == run)).first() is None:
            raise NotFoundError(f"no discovery run {run!r}")
        sql = "SELECT * FROM candidate_ranking WHERE run = :r ORDER BY rank"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return pd.read_sql_query(text(sql), conn, params={"r": run})
