"""Pipeline step: build crystal graphs for structures that lack one under a recipe.

Reads structures from the database, builds graphs with :mod:`ml.graphs` (in a process pool
when ``workers > 1``; building is pure computation, only this process talks to the
database), and writes them chunk by chunk with insert-if-absent. Each chunk commits on its
own, so a killed build loses at most one chunk and a rerun picks up where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, bindparam, select, text

from matplat.db.bulk import insert_ignore
from matplat.db.models import CrystalGraph, GraphRecipe
from matplat.errors import NotFoundError
from ml.graphs import (
    RECIPES,
    build_crystal_graphs,
    encode_graph,
    get_recipe,
)

#: (structure id, lattice (3, 3), fractional coordinates (n, 3) or why they are unreadable, Z)
StructureArrays = tuple[int, np.ndarray, np.ndarray | str, np.ndarray]


@dataclass
class BuildSummary:
    recipe: str
    recipe_id: int
    pending: int = 0
    built: int = 0
    failed: int = 0
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return (self.built + self.failed) / self.seconds if self.seconds else 0.0


def ensure_recipe(engine: Engine, name: str) -> int:
    """The id of the recipe row matching the code's recipe ``name`` (created if absent).

    Rows are keyed by ``params_hash``, so changed parameters or code make a new row and old
    graphs are never reused for a different recipe.
    """
    if name not in RECIPES:
        with engine.connect() as conn:
            row = conn.execute(
                select(GraphRecipe.id)
                .where(GraphRecipe.name == name)
                .order_by(GraphRecipe.id.desc())
            ).first()
        if row is None:
            known = ", ".join(sorted(RECIPES))
            raise NotFoundError(f"unknown graph recipe {name!r}: known recipes are {known}")
        return int(row[0])
    recipe = get_recipe(name)
    with engine.begin() as conn:
        insert_ignore(
            conn,
            GraphRecipe.__table__,
            [
                {
                    "name": recipe.name,
                    "params": recipe.params,
                    "code_version": recipe.code_version,
                    "params_hash": recipe.params_hash,
                }
            ],
        )
        return int(
            conn.execute(
                select(GraphRecipe.id).where(GraphRecipe.params_hash == recipe.params_hash)
            ).scalar_one()
        )


def recipe_name(engine: Engine, recipe_id: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(select(GraphRecipe.name).where(GraphRecipe.id == recipe_id)).scalar_one()
        )


def pending_structure_ids(
    engine: Engine,
    recipe_id: int,
    limit: int | None = None,
    where_ids: np.ndarray | None = None,
    *,
    lo: int | None = None,
    hi: int | None = None,
) -> np.ndarray:
    """Ids of structures with no graph row (ok or failed) for the recipe, ascending
    (optionally only ids in ``lo..hi``)."""
    sql = (
        "SELECT s.id FROM structures s LEFT JOIN crystal_graphs g "
        "ON g.structure_id = s.id AND g.recipe_id = :r WHERE g.structure_id IS NULL"
    )
    params: dict[str, int] = {"r": recipe_id}
    if lo is not None and hi is not None:
        sql += " AND s.id BETWEEN :lo AND :hi"
        params.update(lo=lo, hi=hi)
    with engine.connect() as conn:
        ids = np.fromiter(
            (r[0] for r in conn.execute(text(sql + " ORDER BY s.id"), params)), dtype=np.int64
        )
    if where_ids is not None:
        ids = ids[np.isin(ids, where_ids)]
    return ids[:limit] if limit is not None else ids


def load_structures(engine: Engine, ids: np.ndarray) -> list[StructureArrays]:
    """(id, lattice (3,3), frac (n,3), Z (n,)) of the given structures, in id order."""
    stmt = text(
        "SELECT id, lattice, frac_coords, atomic_numbers FROM structures WHERE id IN :ids ORDER BY id"
    ).bindparams(bindparam("ids", expanding=True))
    out: list[StructureArrays] = []
    with engine.connect() as conn:
        for i in range(0, len(ids), 5000):
            for sid, lat, frac, z in conn.execute(
                stmt, {"ids": [int(x) for x in ids[i : i + 5000]]}
            ):
                out.append(_decode_structure(int(sid), lat, frac, z))
    return out


def _decode_structure(sid: int, lat: bytes, frac: bytes, z: bytes) -> StructureArrays:
    """Arrays of one stored structure. A row that cannot be decoded (a corrupt blob) comes
    back with the reason in place of its coordinates, so that it fails alone, with a recorded
    reason, instead of stopping its chunk."""
    try:
        numbers = np.frombuffer(z, "<i2").astype(np.int64)
        coords = np.frombuffer(frac, "<f8").reshape(-1, 3)
        if len(coords) != len(numbers):
            raise ValueError(f"{len(coords)} coordinates for {len(numbers)} atomic numbers")
    except ValueError as e:
        return sid, np.full((3, 3), np.nan), f"corrupt structure row {sid}: {e}", np.zeros(0, np.int64)
    # Graph-only materials (imported CGNN data sets) have no lattice: NaN fails the build
    # with a recorded reason instead of stopping the chunk.
    lattice = np.frombuffer(lat, "<f8").reshape(3, 3) if len(lat) == 72 else np.full((3, 3), np.nan)
    return sid, lattice, coords, numbers


def build_rows(
    structures: list[StructureArrays], recipe: str, recipe_id: int
) -> list[dict[str, Any]]:
    """Pure: graphs (or failure records) of ``structures`` as ``crystal_graphs`` rows."""
    good = [s for s in structures if not isinstance(s[2], str)]
    built = iter(build_crystal_graphs([(lat, frac, z) for _, lat, frac, z in good], recipe=recipe))
    results = [ValueError(s[2]) if isinstance(s[2], str) else next(built) for s in structures]
    rows: list[dict[str, Any]] = []
    for (sid, _lat, _frac, z), g in zip(structures, results, strict=True):
        if isinstance(g, Exception):
            rows.append(
                {
                    "structure_id": sid,
                    "recipe_id": recipe_id,
                    "status": "failed",
                    "natoms": len(z),
                    "nedges": 0,
                    "n_isolated": 0,
                    "atomic_numbers": None,
                    "edge_src": None,
                    "edge_dst": None,
                    "edge_image": None,
                    "edge_dist": None,
                    "error": str(g)[:2000],
                }
            )
            continue
        blobs = encode_graph(g)
        degree = np.bincount(g.edge_src, minlength=g.natoms)
        rows.append(
            {
                "structure_id": sid,
                "recipe_id": recipe_id,
                "status": "ok",
                "natoms": int(g.natoms),
                "nedges": int(g.nedges),
                "n_isolated": int((degree == 0).sum()),
                "error": None,
                **blobs,
            }
        )
    return rows


def write_rows(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        insert_ignore(conn, CrystalGraph.__table__, rows)


def _chunks(ids: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def build_graphs(
    engine: Engine,
    recipe: str = "cgc",
    *,
    workers: int = 1,
    limit: int | None = None,
    chunk_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
    ids: np.ndarray | None = None,
) -> BuildSummary:
    """Build and store graphs for every structure lacking one (``progress(done, total)``)."""
    recipe_id = ensure_recipe(engine, recipe)
    name = recipe_name(engine, recipe_id)
    pending = pending_structure_ids(engine, recipe_id, limit, ids)
    if workers <= 1 or len(pending) == 0:
        return build_ids(engine, name, recipe_id, pending, chunk_size=chunk_size,
                         progress=progress)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return build_ids(engine, name, recipe_id, pending, chunk_size=chunk_size,
                         progress=progress, pool=pool, workers=workers)


def build_ids(
    engine: Engine,
    name: str,
    recipe_id: int,
    pending: np.ndarray,
    *,
    chunk_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
    pool: Executor | None = None,
    workers: int = 1,
) -> BuildSummary:
    """Build and store the graphs of ``pending`` structure ids, committing each chunk.

    With ``pool`` (``workers`` processes), building runs there; only this process writes.
    """
    summary = BuildSummary(recipe=name, recipe_id=recipe_id, pending=len(pending))
    t0 = time.perf_counter()
    done = 0

    def account(rows: list[dict[str, Any]]) -> None:
        nonlocal done
        write_rows(engine, rows)
        summary.failed += sum(r["status"] == "failed" for r in rows)
        summary.built += sum(r["status"] == "ok" for r in rows)
        done += len(rows)
        if progress:
            progress(done, len(pending))

    if progress:
        progress(0, len(pending))
    if pool is None:
        for part in _chunks(pending, chunk_size):
            account(build_rows(load_structures(engine, part), name, recipe_id))
    else:
        inflight: list[Future[list[dict[str, Any]]]] = []
        for part in _chunks(
            pending, max(1, min(chunk_size, len(pending) // (workers * 4) or 1))
        ):
            inflight.append(
                pool.submit(build_rows, load_structures(engine, part), name, recipe_id)
            )
            while len(inflight) >= workers * 2:
                account(inflight.pop(0).result())
        for fut in inflight:
            account(fut.result())
    summary.seconds = time.perf_counter() - t0
    return summary


def graph_stats(engine: Engine) -> list[dict[str, Any]]:
    """Per recipe: graphs ok/failed, structures without a graph, mean degree, isolated atoms."""
    sql = text(
        "SELECT r.id, r.name, r.code_version, "
        "SUM(CASE WHEN g.status = 'ok' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN g.status = 'failed' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN g.status = 'ok' THEN g.natoms ELSE 0 END), "
        "SUM(CASE WHEN g.status = 'ok' THEN g.nedges ELSE 0 END), "
        "SUM(CASE WHEN g.status = 'ok' THEN g.n_isolated ELSE 0 END) "
        "FROM graph_recipes r LEFT JOIN crystal_graphs g ON g.recipe_id = r.id "
        "GROUP BY r.id, r.name, r.code_version ORDER BY r.id"
    )
    with engine.connect() as conn:
        n_structures = int(conn.execute(text("SELECT count(*) FROM structures")).scalar_one())
        out = []
        for rid, name, code, ok, failed, atoms, edges, isolated in conn.execute(sql):
            ok, failed, atoms, edges = (
                int(ok or 0),
                int(failed or 0),
                int(atoms or 0),
                int(edges or 0),
            )
            out.append(
                {
                    "recipe": name,
                    "recipe_id": int(rid),
                    "code_version": code,
                    "graphs": ok,
                    "failed": failed,
                    "missing": n_structures - ok - failed,
                    "mean_degree": round(edges / atoms, 3) if atoms else None,
                    "isolated_atoms": int(isolated or 0),
                }
            )
    return out


def graph_failures(engine: Engine, recipe_id: int, limit: int = 20) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [
            (int(a), str(b))
            for a, b in conn.execute(
                text(
                    "SELECT structure_id, error FROM crystal_graphs WHERE recipe_id = :r AND "
                    "status = 'failed' ORDER BY structure_id"
                ),
                {"r": recipe_id},
            ).fetchmany(limit)
        ]


# ---------------------------------------------------------------------------------------------
# As a job: one task per range of pending structure ids (``platform graphs build``)


def submit_build(
    engine: Engine,
    recipe: str = "cgc",
    *,
    limit: int | None = None,
    chunk_size: int = 1000,
    runner: str = "in-process",
) -> int | None:
    """Plan a graph build as a job (``None`` when every structure has a graph already)."""
    from workers.jobs import create_job, id_ranges

    recipe_id = ensure_recipe(engine, recipe)
    name = recipe_name(engine, recipe_id)
    pending = pending_structure_ids(engine, recipe_id, limit)
    if len(pending) == 0:
        return None
    return create_job(
        engine, "graphs", {"recipe": name, "recipe_id": recipe_id, "limit": limit},
        list(id_ranges(pending, chunk_size)), runner=runner, queue=KIND.queue)


class _GraphsKind:
    name = "graphs"
    queue = "cpu"

    def run(self, engine: Engine, job: Any, task: Any, ctx: Any) -> Any:
        from workers.jobs import Outcome

        recipe_id = int(job.params["recipe_id"])
        ids = pending_structure_ids(engine, recipe_id, lo=task.params["lo"], hi=task.params["hi"])
        workers = getattr(ctx.pool, "_max_workers", 1) if ctx.pool is not None else 1
        s = build_ids(engine, job.params["recipe"], recipe_id, ids, chunk_size=task.total,
                      pool=ctx.pool, workers=workers,
                      progress=lambda done, total: ctx.progress(done))
        return Outcome(done=s.built, failed=s.failed,
                       result={"built": s.built, "failed": s.failed, "seconds": s.seconds,
                               "already": task.total - len(ids)})

    def finalize(self, engine: Engine, job: Any, tasks: list[Any],
                 device: str = "auto") -> dict[str, Any]:
        built = sum((t.result or {}).get("built", 0) for t in tasks)
        failed = sum((t.result or {}).get("failed", 0) for t in tasks)
        return {"recipe": job.params["recipe"], "recipe_id": job.params["recipe_id"],
                "pending": job.total, "built": built, "failed": failed}


KIND = _GraphsKind()
