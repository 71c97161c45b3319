"""Planning a discovery run: input checks, parents, candidate enumeration, the job.

:func:`plan_discover` is what ``platform discover`` (and ``Platform.discover``) runs before any
work: it checks the input (elements, compositions, the model's targets, a DFT hull per
chemical system, the run name), reads the parents (materials with a structure, at most
``max_atoms`` atoms, as many elements as a target system; candidates of earlier runs are
never parents), enumerates and scores species maps with :mod:`ml.discovery`, drops those
already in the database (same reduced formula and structure type, outside other discovery
runs) and keeps the ``limit`` most probable, then creates the job: tasks are chunks of
parents, each listing its candidates (:mod:`workers.discover` runs them). A refused request
writes nothing.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, select, text

from matplat.db.models.discovery import CANDIDATE_PREFIX, RUN_NAME_MAX, DiscoveryRun
from matplat.errors import InputError
from matplat.services import registry

#: Queue of discovery tasks: prediction (``gpu``), as for ``platform predict``.
QUEUE = "gpu"
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
    from workers.discover_hull import load_hull, reference_source
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
    # a reused run name is the first thing to say: no other check concerns that run
    params = {"elements": sorted(req.elements) if req.elements else None,
              "compositions": sorted(req.compositions) if req.compositions else None,
              "max_atoms": req.max_atoms, "min_probability": req.min_probability,
              "limit": req.limit}
    with engine.connect() as conn:
        run = conn.execute(select(DiscoveryRun.id, DiscoveryRun.model_version_id,
                                  DiscoveryRun.params).where(DiscoveryRun.name == name)).first()
    if run is not None and (run[1] != mv_id or run[2] != params):
        raise InputError(f"discovery run {name!r} was made with another model version or other "
                         "targets and limits; choose another --name")
    ref = reference_source(engine)
    for t in targets:
        if load_hull(engine, t.elements, ref) is None:
            raise InputError(f"no DFT hull for the {_system_name(t.elements)} system: no material "
                             "of it or of its subsystems has a DFT formation energy")
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
        queue=QUEUE)
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
