"""Pipeline step: discover hypothetical compounds from known structures, ranked by stability.

``platform discover`` runs as a job of kind ``discover``:

1. :func:`plan_discover` (the submitting command) checks the input (elements, compositions,
   the model's targets, a DFT hull per chemical system), reads the parents (materials with a
   structure, at most ``max_atoms`` atoms, as many elements as a target system; candidates of
   earlier runs are never parents), enumerates and scores species maps with
   :mod:`ml.discovery`, drops those already in the database (same reduced formula and
   structure type, outside other discovery runs) and keeps the ``limit`` most probable. Tasks
   are chunks of parents, each listing its candidates.
2. Each task (this process, or a Celery worker) substitutes the species into the parents'
   cells, rebuilds the crystal graphs (the cutoff depends on the new radii), predicts every
   target of the model (ensemble mean and spread), scales each cell uniformly to the
   predicted volume, scores the predicted formation energy against the DFT hull of the
   system and stores the candidates (:mod:`workers.discover_store`), in one transaction.

Idempotent: candidates are keyed by (run, formula @ structure type), so a redelivered task
or a rerun stores nothing twice, and a rerun of a finished run plans nothing.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, select, text

from matplat.db.models.discovery import CANDIDATE_PREFIX, RUN_NAME_MAX, DiscoveryRun
from matplat.errors import InputError, NotFoundError
from matplat.services import registry

TASK_CANDIDATES = 500  # candidates per task: seconds of work, far below broker timeouts
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class DiscoverRequest:
    """What to discover: a model, target systems or compositions, and the search limits."""

    tag: str | None = None
    alias: str | None = None
    elements: list[str] | None = None
    compositions: list[str] | None = None
    max_atoms: int = 40
    min_probability: float = 1e-3
    limit: int | None = None
    name: str | None = None


@dataclass
class DiscoverPlan:
    run_id: int
    run: str
    mv_id: int
    tag: str
    parents: int
    generated: int
    already: int
    planned: int
    tasks: list[Any] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Input


@functools.lru_cache(maxsize=1)
def symbols() -> list[str]:
    """Element symbols indexed by Z (index 0 empty)."""
    from pymatgen.core.periodic_table import Element

    return [""] + [Element.from_Z(z).symbol for z in range(1, 119)]


def parse_targets(elements: Sequence[str] | None, compositions: Sequence[str] | None):  # type: ignore[no-untyped-def]
    """Targets from ``--elements`` or ``--compositions`` (one of them), checked."""
    from ml.discovery import Target, reduced_key
    from ml.graphs import species_index

    if bool(elements) == bool(compositions):
        raise InputError("give exactly one of --elements and --compositions")
    table = {s: z for z, s in enumerate(symbols()) if s}

    def check(sym: str, where: str) -> int:
        z = table.get(sym)
        if z is None:
            raise InputError(f"{where}: unknown element {sym!r}")
        if species_index(z, strict=False) < 0:
            raise InputError(f"{where}: element {sym} is outside the models' 89-species table")
        return z

    if elements:
        zs = sorted({check(e.strip(), "--elements") for e in elements if e.strip()})
        if not zs:
            raise InputError("--elements: no element given")
        return [Target(tuple(zs))]
    from pymatgen.core import Composition

    by_system: dict[tuple[int, ...], set] = {}
    for text_ in compositions or []:
        formula = text_.strip()
        try:
            comp = Composition(formula)
        except Exception as e:  # noqa: BLE001 - pymatgen raises several kinds
            raise InputError(f"--compositions: cannot read {formula!r} as a formula ({e})") from e
        amounts = comp.get_el_amt_dict()
        if not amounts or any(a != int(a) or a <= 0 for a in amounts.values()):
            raise InputError(f"--compositions: {formula!r} needs whole, positive amounts")
        zs = [check(s, f"--compositions {formula}") for s in amounts]
        key = reduced_key(zs, [int(a) for a in amounts.values()])
        by_system.setdefault(tuple(sorted(zs)), set()).add(key)
    return [Target(system, frozenset(keys)) for system, keys in sorted(by_system.items())]


def check_run_name(name: str) -> str:
    if len(name) > RUN_NAME_MAX or not _RUN_NAME.match(name):
        raise InputError(
            f"--name {name!r}: a run name has 1-{RUN_NAME_MAX} letters, digits, '.', '_' or '-' "
            f"(candidates are stored as source {CANDIDATE_PREFIX}NAME, 32 characters at most)")
    return name


def default_run_name(targets: Sequence[Any], tag: str) -> str:
    sym = symbols()
    system = "-".join(sym[z] for z in sorted({z for t in targets for z in t.elements}))
    name = re.sub(r"[^A-Za-z0-9._-]", "", f"{system}.{tag}")[:RUN_NAME_MAX]
    return name.strip("._-") or "run"


# ---------------------------------------------------------------------------------------------
# Parents and their type keys


def type_key(prototype: str | None, spacegroup: int | None, reduced: Sequence[int],
             natoms: int) -> str:
    """Structure-type key: the prototype name, else anonymous formula, space group and atoms
    per cell (cheap; two different structures can share it, e.g. two P1 cells)."""
    if prototype:
        return prototype
    anon = "".join(f"{chr(65 + i)}{n if n != 1 else ''}"
                   for i, n in enumerate(sorted(reduced)))
    return f"{anon}:{spacegroup if spacegroup is not None else '?'}:{natoms}"


def load_parents(engine: Engine, ks: set[int], max_atoms: int):  # type: ignore[no-untyped-def]
    """Parents with ``k`` in ``ks`` elements and at most ``max_atoms`` atoms, by material id.

    Two column reads and numpy grouping: a Python loop runs only over the parents kept.
    """
    from ml.discovery import Parent

    cond = ("m.natoms <= :n AND m.source NOT LIKE :cand "
            "AND m.id IN (SELECT s.material_id FROM structures s)")
    params = {"n": max_atoms, "cand": CANDIDATE_PREFIX + "%"}
    with engine.connect() as conn:
        mats = conn.execute(text(
            f"SELECT m.id, m.prototype, m.spacegroup FROM materials m WHERE {cond} "
            "ORDER BY m.id"), params).all()
        els = conn.execute(text(
            "SELECT e.material_id, e.element, e.count FROM material_elements e "
            f"JOIN materials m ON m.id = e.material_id WHERE {cond}"), params).all()
    if not mats or not els:
        return []
    zof = {s: z for z, s in enumerate(symbols()) if s}
    e_mid = np.fromiter((r[0] for r in els), dtype=np.int64, count=len(els))
    sym, inv = np.unique(np.array([r[1] for r in els], dtype=object), return_inverse=True)
    e_z = np.array([zof.get(x, 0) for x in sym], dtype=np.int64)[inv.reshape(-1)]
    e_n = np.fromiter((r[2] for r in els), dtype=np.int64, count=len(els))
    order = np.lexsort((e_z, e_mid))
    e_mid, e_z, e_n = e_mid[order], e_z[order], e_n[order]
    mids, starts, nel = np.unique(e_mid, return_index=True, return_counts=True)
    info = {int(r[0]): (r[1], r[2]) for r in mats}
    parents = []
    for i in np.flatnonzero(np.isin(nel, list(ks))).tolist():
        mid = int(mids[i])
        if mid not in info:
            continue
        lo, hi = int(starts[i]), int(starts[i] + nel[i])
        zs, counts = e_z[lo:hi].tolist(), e_n[lo:hi].tolist()
        if min(zs) <= 0:
            continue
        g = math.gcd(*counts)
        proto, sg = info[mid]
        parents.append(Parent(mid, tuple(zs), tuple(counts),
                              type_key(proto, sg, [c // g for c in counts], sum(counts))))
    return parents


def _existing_keys(engine: Engine, formulas: set[str], source: str) -> set[tuple[str, str]]:
    """(formula, type key) of materials with these formulas, outside other discovery runs."""
    from sqlalchemy import bindparam

    out: set[tuple[str, str]] = set()
    stmt = text(
        "SELECT m.id, m.formula, m.prototype, m.spacegroup, e.count FROM materials m "
        "JOIN material_elements e ON e.material_id = m.id WHERE m.formula IN :f "
        "AND (m.source NOT LIKE :cand OR m.source = :own) ORDER BY m.id"
    ).bindparams(bindparam("f", expanding=True))
    items = sorted(formulas)
    per: dict[int, tuple[str, Any, Any, list[int]]] = {}
    with engine.connect() as conn:
        for i in range(0, len(items), 1000):
            for mid, f, proto, sg, count in conn.execute(stmt, {
                    "f": items[i:i + 1000], "cand": CANDIDATE_PREFIX + "%", "own": source}):
                per.setdefault(int(mid), (f, proto, sg, []))[3].append(int(count))
    for f, proto, sg, counts in per.values():
        g = math.gcd(*counts)
        out.add((f, type_key(proto, sg, [c // g for c in counts], sum(counts))))
    return out


# ---------------------------------------------------------------------------------------------
# Planning


def source_id(formula: str, key: str) -> str:
    """A candidate's natural key within its run (64 characters at most)."""
    sid = f"{formula}@{key}"
    if len(sid) <= 64:
        return sid
    import hashlib

    return f"{formula[:20]}@{hashlib.sha1(sid.encode()).hexdigest()}"


def _check_request(req: DiscoverRequest) -> None:
    if req.max_atoms < 1:
        raise InputError(f"--max-atoms {req.max_atoms}: expected a positive number of atoms")
    if not 0 <= req.min_probability <= 1:
        raise InputError(f"--min-probability {req.min_probability}: expected a number in [0, 1]")
    if req.limit is not None and req.limit < 1:
        raise InputError(f"--limit {req.limit}: expected a positive number of candidates")


def _system_name(elements: Sequence[int]) -> str:
    sym = symbols()
    return "-".join(sorted(sym[z] for z in elements))


def plan_discover(engine: Engine, req: DiscoverRequest, *, runner: str = "in-process"
                  ) -> tuple[DiscoverPlan, int | None]:
    """Check the request, enumerate the candidates left to make and create the job (``None``
    when nothing is left). Nothing is written when the request is refused."""
    from matplat.ingest.formulas import Formulas
    from ml.discovery import generate_candidates, substitution_table
    from workers.discover_hull import load_hull
    from workers.discover_store import stored_source_ids
    from workers.jobs import TaskSpec, create_job

    _check_request(req)
    targets = parse_targets(req.elements, req.compositions)
    mv_id, tag, _blob, meta = registry.artifact_bytes(engine, req.tag, req.alias)
    if "formation_energy" not in meta["targets"]:
        raise InputError(f"model {tag!r} does not predict formation_energy (its targets: "
                         f"{', '.join(meta['targets'])}); stability needs it")
    if meta["recipe_id"] is None:
        raise InputError(f"model {tag!r} records no graph recipe; cannot build its inputs")
    name = check_run_name(req.name or default_run_name(targets, tag))
    source = CANDIDATE_PREFIX + name
    for t in targets:
        if load_hull(engine, t.elements) is None:
            raise InputError(f"no DFT hull for the {_system_name(t.elements)} system: no material "
                             "of it or of its subsystems has a DFT formation energy")
    with engine.connect() as conn:
        run = conn.execute(select(DiscoveryRun.id, DiscoveryRun.model_version_id).where(
            DiscoveryRun.name == name)).first()
    if run is not None and run[1] != mv_id:
        raise InputError(f"discovery run {name!r} was made with another model version; "
                         "choose another --name")
    parents = load_parents(engine, {len(t.elements) for t in targets}, req.max_atoms)
    cands = generate_candidates(parents, targets, substitution_table(),
                                min_probability=req.min_probability)
    _check_reached(targets, cands, req)
    formulas = Formulas()
    named = [(c, formulas.get(tuple(zip(c.new_z, c.parent.counts, strict=True)))[0])
             for c in cands]
    existing = _existing_keys(engine, {f for _, f in named}, source="")
    fresh = [(c, f) for c, f in named if (f, c.parent.type_key) not in existing]
    if req.limit is not None:
        fresh = fresh[:req.limit]
    with engine.connect() as conn:
        stored = stored_source_ids(conn, source, [source_id(f, c.parent.type_key)
                                                  for c, f in fresh])
    todo = [c for c, f in fresh if source_id(f, c.parent.type_key) not in stored]
    plan = DiscoverPlan(run_id=0, run=name, mv_id=mv_id, tag=tag,
                        parents=len({c.parent.key for c in cands}), generated=len(cands),
                        already=len(cands) - len(fresh) + len(stored), planned=len(todo))
    with engine.begin() as conn:
        if run is None:
            params = {"elements": req.elements, "compositions": req.compositions,
                      "max_atoms": req.max_atoms, "min_probability": req.min_probability,
                      "limit": req.limit}
            conn.execute(insert(DiscoveryRun.__table__).values(
                name=name, model_version_id=mv_id, params=params))
        plan.run_id = int(conn.execute(select(DiscoveryRun.id).where(
            DiscoveryRun.name == name)).scalar_one())
    if not todo:
        return plan, None
    todo.sort(key=lambda c: c.parent.key)
    tasks = []
    for i in range(0, len(todo), TASK_CANDIDATES):
        part = todo[i:i + TASK_CANDIDATES]
        tasks.append(TaskSpec({"lo": part[0].parent.key, "hi": part[-1].parent.key,
                               "candidates": [[c.parent.key, list(c.new_z), c.probability,
                                               c.species_map, c.charge_checked]
                                              for c in part]}, len(part)))
    job_id = create_job(engine, "discover", {
        "run_id": plan.run_id, "run": name, "model_version_id": mv_id, "tag": tag,
        "generated": plan.generated, "already": plan.already}, tasks, runner=runner,
        queue=KIND.queue)
    return plan, job_id


def _check_reached(targets: Sequence[Any], cands: Sequence[Any], req: DiscoverRequest) -> None:
    """A target nothing reaches is an input error (its words say which limits applied)."""
    from pymatgen.core import Composition

    reached = {c.composition for c in cands}
    systems = {tuple(sorted(z for z, _ in c.composition)) for c in cands}
    limits = (f"at most {req.max_atoms} atoms, substitution probability at least "
              f"{req.min_probability:g}")
    sym = symbols()
    for t in targets:
        if t.compositions is None:
            if t.elements not in systems:
                raise InputError(f"no parent structure reaches the {_system_name(t.elements)} "
                                 f"system ({limits}); try --min-probability or --max-atoms")
            continue
        for comp in sorted(t.compositions):
            if comp not in reached:
                formula = Composition({sym[z]: n for z, n in comp}).reduced_formula
                raise InputError(f"--compositions: no parent structure reaches {formula} "
                                 f"({limits}); try --min-probability or --max-atoms")


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
    from workers.discover_hull import fractions_of, load_hull
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
    for system, idx in pending.items():
        if system not in hulls:
            hulls[system] = load_hull(engine, system)
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
    queue = "gpu"

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
