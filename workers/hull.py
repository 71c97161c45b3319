"""Pipeline step: convex hulls of every chemical system (``platform hull build``) as a job.

Planning reads each source's materials once (:mod:`workers.hull_data`), compares each
chemical system's signature with the one stored in ``hull_systems`` at the last build, and
marks *dirty* every system whose signature changed or that is new, and every system that
contains a changed system whose own hull moved (see :func:`dirty_systems`). Dirty systems are
grouped under maximal dirty systems (one hull serves all of its subsystems, see
:mod:`ml.stability.systems`) and the groups are packed into tasks of about ``chunk_size``
materials. A task recomputes its systems and replaces their rows in ``material_hulls``,
``hull_decompositions`` and ``hull_systems`` in one transaction (idempotent: a redelivered
task writes the same rows again). Nothing changed: no job, the build is recorded as such.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, bindparam, delete, select, text, update

from matplat.db.bulk import insert_columns, upsert
from matplat.db.models import HullBuild, HullSystem, IngestRun
from matplat.errors import InputError
from workers.hull_data import SourceData, cached_source, load_source, remember

#: e_above_hull at or below this (eV/atom) is on the hull.
STABLE_TOL = 1e-8
ID_CHUNK = 2000


@dataclass
class HullPlan:
    """What a build will do: per source, the dirty systems packed into tasks."""

    build_id: int
    sources: list[str]
    systems_total: int = 0
    systems_dirty: int = 0
    hulls_moved: int = 0
    materials: int = 0
    tasks: list[dict[str, Any]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)


def _stored(engine: Engine, source: str) -> dict[str, int]:
    with engine.connect() as conn:
        return {r[0]: int(r[1]) for r in conn.execute(
            select(HullSystem.chemical_system, HullSystem.signature)
            .where(HullSystem.source == source))}


def _changed(data: SourceData, stored: dict[str, int]) -> tuple[list[int], list[str]]:
    """(present systems whose signature changed or that are new, stored systems now gone)."""
    present = [i for i, n in enumerate(data.names) if n]
    changed = [i for i in present if stored.get(data.names[i]) != int(data.signatures[i])]
    return changed, sorted(set(stored) - {data.names[i] for i in present})


def _old_stable(engine: Engine, source: str, names: list[str]
                ) -> tuple[dict[str, set[tuple[int, float]]], dict[str, int]]:
    """Per system: the (material id, formation energy) of its materials on the hull at the
    last build that still exist, and the number that were on it then."""
    out: dict[str, set[tuple[int, float]]] = {n: set() for n in names}
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for i in range(0, len(names), ID_CHUNK):
            part = names[i:i + ID_CHUNK]
            for name, mid, fe in conn.execute(text(
                    "SELECT chemical_system, material_id, formation_energy FROM material_hulls "
                    "WHERE source = :s AND is_stable = :t AND chemical_system IN :names")
                    .bindparams(bindparam("names", expanding=True)),
                    {"s": source, "t": True, "names": part}):
                out[name].add((int(mid), float(fe)))
            counts.update({r[0]: int(r[1]) for r in conn.execute(
                select(HullSystem.chemical_system, HullSystem.n_stable).where(
                    HullSystem.source == source, HullSystem.chemical_system.in_(part)))})
    return out, counts


def dirty_systems(engine: Engine, data: SourceData, stored: dict[str, int], *,
                  full: bool = False) -> tuple[list[int], int]:
    """Indices of the systems to recompute, and how many changed systems moved their hull.

    A changed system (new, removed, or its materials' signature differs) is recomputed. Its
    supersets are recomputed only when its own hull moved: the set of its materials on the
    hull (ids and energies, computed now on the current data) differs from the last build's.
    A material above its system's hull cannot be a vertex of any superset's hull (the hull of
    a superset restricted to the subsystem's face is the subsystem's hull), so adding one,
    or changing one that stays above, leaves every superset as it was.
    """
    from ml.stability.systems import hull_all

    present = {n: i for i, n in enumerate(data.names) if n}
    if full:
        return sorted(present.values()), 0
    changed, removed = _changed(data, stored)
    if not changed and not removed:
        return [], 0
    res = hull_all(data.entries, targets=changed, index=data.index)
    old, old_n = _old_stable(engine, data.source, [data.names[i] for i in changed] + removed)
    moved = {n for n in removed if old_n.get(n, 0) > 0}
    e = data.entries
    for i in changed:
        rows = data.index.members[i]
        on = rows[res.e_above_hull[rows] <= STABLE_TOL]
        now = set(zip(e.labels[on].tolist(), e.energies[on].tolist(), strict=True))
        name = data.names[i]
        if now != old[name] or old_n.get(name, 0) != len(old[name]):
            moved.add(name)
    out = set(changed)
    if moved:
        for name, i in present.items():
            els = name.split("-")
            if any("-".join(sub) in moved for r in range(1, len(els) + 1)
                   for sub in itertools.combinations(els, r)):
                out.add(i)
    return sorted(out), len(moved)


def _pack(data: SourceData, dirty: list[int], chunk_size: int) -> list[tuple[list[str], int]]:
    """Dirty systems grouped by owner (maximal dirty system), packed by materials."""
    from ml.stability.systems import owners

    groups = owners(data.index.systems, dirty)
    tasks: list[tuple[list[str], int]] = []
    names: list[str] = []
    size = 0
    for served in groups.values():
        n = int(sum(len(data.index.members[j]) for j in served))
        names.extend(data.names[j] for j in served)
        size += n
        if size >= chunk_size:
            tasks.append((names, size))
            names, size = [], 0
    if names:
        tasks.append((names, size))
    return tasks


def plan_build(engine: Engine, *, source: str | None = None, full: bool = False,
               chunk_size: int = 50_000) -> HullPlan:
    """Record a hull build and work out its tasks (none when nothing changed)."""
    with engine.connect() as conn:
        sources = [r[0] for r in conn.execute(text(
            "SELECT DISTINCT source FROM materials ORDER BY source"))]
        snapshot = conn.execute(select(IngestRun.id).where(IngestRun.status == "succeeded")
                                .order_by(IngestRun.id.desc()).limit(1)).scalar()
    if source is not None:
        if source not in sources:
            raise InputError(f"no materials of source {source!r}; sources present: "
                             f"{', '.join(sources) or 'none (run `platform ingest` first)'}")
        sources = [source]
    with engine.begin() as conn:
        build_id = int(conn.execute(HullBuild.__table__.insert().values(
            source=source, ingest_run_id=snapshot, status="planned", systems_total=0,
            systems_recomputed=0, materials=0)).inserted_primary_key[0])
    plan = HullPlan(build_id, sources)
    for src in sources:
        data = load_source(engine, src)
        remember(engine, data, build_id)
        stored = _stored(engine, src)
        dirty, moved = dirty_systems(engine, data, stored, full=full)
        plan.hulls_moved += moved
        removed = sorted(set(stored) - set(data.names))
        if removed:
            with engine.begin() as conn:
                for i in range(0, len(removed), ID_CHUNK):
                    conn.execute(delete(HullSystem).where(
                        HullSystem.source == src,
                        HullSystem.chemical_system.in_(removed[i:i + ID_CHUNK])))
        plan.systems_total += sum(1 for n in data.names if n)
        plan.systems_dirty += len(dirty)
        for names, size in _pack(data, dirty, chunk_size):
            plan.tasks.append({"build_id": build_id, "source": src, "systems": names})
            plan.sizes.append(size)
            plan.materials += size
    return plan


def submit_build(engine: Engine, *, source: str | None = None, full: bool = False,
                 chunk_size: int = 50_000, runner: str = "in-process") -> tuple[HullPlan, int | None]:
    """Plan a build as a job; the job id is ``None`` when no system changed (the build is then
    closed at once as ``unchanged``)."""
    from workers.jobs import TaskSpec, create_job

    plan = plan_build(engine, source=source, full=full, chunk_size=chunk_size)
    if not plan.tasks:
        _close(engine, plan.build_id, "unchanged", plan.systems_total, 0, 0, {})
        return plan, None
    job_id = create_job(engine, "hull", {"build_id": plan.build_id, "source": source,
                                         "systems_total": plan.systems_total},
                        [TaskSpec(t, s) for t, s in zip(plan.tasks, plan.sizes, strict=True)],
                        runner=runner, queue=KIND.queue)
    with engine.begin() as conn:
        conn.execute(update(HullBuild).where(HullBuild.id == plan.build_id).values(
            job_id=job_id, status="running"))
    return plan, job_id


def _close(engine: Engine, build_id: int, status: str, total: int, recomputed: int,
           materials: int, left_out: dict[str, int]) -> None:
    from workers.jobs import now

    with engine.begin() as conn:
        conn.execute(update(HullBuild).where(HullBuild.id == build_id).values(
            status=status, systems_total=total, systems_recomputed=recomputed,
            materials=materials, left_out=left_out, finished_at=now()))


def compute_systems(engine: Engine, build_id: int, source: str, names: list[str],
                    progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Recompute the given systems of ``source`` and replace their rows; returns counts.
    ``progress(hulls done, hulls)`` is called after each hull (a job's progress report, which
    also stops the task when its job is cancelled: nothing is written before the end)."""
    from ml.graphs.elements import SYMBOLS
    from ml.stability.systems import hull_all

    data = cached_source(engine, source, build_id)
    targets = data.system_ids(names)
    res = hull_all(data.entries, targets=targets, index=data.index, progress=progress)
    idx = data.index
    rows = np.concatenate([idx.members[t] for t in targets]) if targets else np.zeros(0, int)
    mids = data.entries.labels[rows]
    done = rows[np.isfinite(res.e_above_hull[rows])]
    eah = res.e_above_hull[done]
    stable = eah <= STABLE_TOL
    sys_name = np.array(data.names, dtype=object)[idx.system_of[done]]
    # Decompositions of unstable materials; a product label is a material id, or -Z.
    unstable_ids = set(data.entries.labels[done[~stable]].tolist())
    d_mid = data.entries.labels[res.decomp_entry]
    keep = np.fromiter((m in unstable_ids for m in d_mid.tolist()), dtype=bool, count=len(d_mid))
    d_mid, d_lab, d_amt = d_mid[keep], res.decomp_label[keep], res.decomp_amount[keep]
    order = np.lexsort((-d_amt, d_mid))
    d_mid, d_lab, d_amt = d_mid[order], d_lab[order], d_amt[order]
    first = np.searchsorted(d_mid, d_mid, side="left")
    position = np.arange(len(d_mid)) - first
    row_of = np.searchsorted(data.entries.labels, np.maximum(d_lab, 0))
    formula = [SYMBOLS[-lab - 1] if lab < 0 else data.formulas[row_of[i]]
               for i, lab in enumerate(d_lab.tolist())]
    per_system: dict[str, tuple[int, int]] = {}
    for name, st in zip(sys_name.tolist(), stable.tolist(), strict=True):
        n, s = per_system.get(name, (0, 0))
        per_system[name] = (n + 1, s + int(st))
    with engine.begin() as conn:
        for i in range(0, len(mids), ID_CHUNK):
            part = [int(m) for m in mids[i:i + ID_CHUNK]]
            for table in ("hull_decompositions", "material_hulls"):
                conn.execute(text(f"DELETE FROM {table} WHERE material_id IN :ids")
                             .bindparams(bindparam("ids", expanding=True)), {"ids": part})
        insert_columns(conn, "material_hulls", {
            "material_id": data.entries.labels[done], "source": [source] * len(done),
            "chemical_system": sys_name.tolist(),
            "formation_energy": data.entries.energies[done], "e_above_hull": eah,
            "is_stable": stable.tolist(), "hull_build_id": np.full(len(done), build_id)})
        insert_columns(conn, "hull_decompositions", {
            "material_id": d_mid, "position": position, "product_material_id":
            [None if lab < 0 else lab for lab in d_lab.tolist()],
            "product_formula": formula, "fraction": d_amt})
        method = next(iter(res.methods), "qhull")
        upsert(conn, HullSystem.__table__, [
            {"source": source, "chemical_system": data.names[t],
             "nelements": len(idx.systems[t]), "n_materials": per_system.get(data.names[t],
                                                                              (0, 0))[0],
             "n_stable": per_system.get(data.names[t], (0, 0))[1],
             "signature": int(data.signatures[t]), "method": method,
             "hull_build_id": build_id} for t in targets if data.names[t]],
            ["source", "chemical_system"],
            ["nelements", "n_materials", "n_stable", "signature", "method", "hull_build_id"])
    return {"materials": int(len(done)), "stable": int(stable.sum()), "hulls": res.hulls,
            "systems": len(targets), "left_out": res.left_out, "methods": res.methods}


class _HullKind:
    name = "hull"
    queue = "cpu"

    def run(self, engine: Engine, job: Any, task: Any, ctx: Any) -> Any:
        from workers.jobs import Outcome

        p = task.params
        out = compute_systems(
            engine, int(p["build_id"]), p["source"], list(p["systems"]),
            progress=lambda done, total: ctx.progress(int(task.total * done / max(total, 1))))
        ctx.progress(task.total, force=True)
        return Outcome(done=task.total, result=out)

    def finalize(self, engine: Engine, job: Any, tasks: list[Any],
                 device: str = "auto") -> dict[str, Any]:
        results = [t.result or {} for t in tasks if t.status == "done"]
        left: dict[str, int] = {}
        methods: dict[str, int] = {}
        for r in results:
            for k, v in r.get("left_out", {}).items():
                left[k] = left.get(k, 0) + int(v)
            for k, v in r.get("methods", {}).items():
                methods[k] = methods.get(k, 0) + int(v)
        out = {k: sum(int(r.get(k, 0)) for r in results)
               for k in ("materials", "stable", "hulls", "systems")}
        ok = all(t.status == "done" for t in tasks)
        _close(engine, int(job.params["build_id"]), "succeeded" if ok else "failed",
               int(job.params["systems_total"]), out["systems"], out["materials"], left)
        return {**out, "left_out": left, "methods": methods,
                "build_id": int(job.params["build_id"]),
                "systems_total": int(job.params["systems_total"])}


KIND = _HullKind()
