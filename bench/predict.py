"""Benchmark: predictions/s of `predict_and_store`, write-back alone, and README query latency.

Run:  python bench/predict.py [--n 100000] [--query-materials 250000] [--part a|b|all]
                              [--skip-sqlite] [--runs 5] [--pg-url URL] [--out DIR]

Part (a), end-to-end prediction into PostgreSQL and SQLite. A fresh database (uniquely named,
dropped afterwards; SQLite: a temporary file) at the head revision gets N SYNTHETIC materials
written directly with ``matplat.db.bulk.insert_columns``: materials, structures, crystal
graphs (``ml.data.random_graph_set`` OQMD-like sizes, stored as ``ml.graphs.encode_graph``
blobs under the ``cgc`` recipe row), material_elements, dft_properties and a dataset split.
A small no-edgenet CGNN (random weights: speed does not depend on them) is registered as a
model version the way ``workers.training`` does (``model_to_bytes`` → ``pack_ensemble``).
Then ``workers.predict.predict_and_store`` runs once over all N materials (graphs already
built: its graph check finds nothing to build); the time spent in graph loading, inference,
write-back and the leaderboard refresh is taken by wrapping those functions in this process.
Rows written = N × 4 targets; "predictions/s" counts rows.

Write-back alone: ``matplat.db.bulk.write_predictions`` of N × 4 rows (with uncertainty, as an
ensemble writes them) in chunks of 20k materials, one transaction per chunk as
``predict_and_store`` does, against a baseline of plain ``executemany`` of
``INSERT INTO predictions … VALUES (…)`` of the same rows in the same chunks, each into its own
fresh model version of the same database (rows deleted after each, so every writer starts
from the same table). Alternated, best of ``--writeback-rounds``. PostgreSQL gets two more
rows: the same ``write_predictions`` calls with revision 0002's foreign key from
``predictions.model_version_id`` to ``model_versions`` added back for that writer (the schema
before revision 0003: the same-run before/after of dropping it), and a diagnostic with ``SET
LOCAL session_replication_role = replica`` (foreign-key triggers off; superuser only), to show
what the remaining per-row check (to ``materials``) costs.

Part (b), PostgreSQL only: README query latency. A fresh database with M materials (default
250k) with compositions (1–5 elements, O in about a quarter of them), space groups, DFT rows
(some NULL), a formula-grouped-like 80/10/10 split, and predictions of the four README
properties by two model versions v3 and v4 (M × 4 rows each) written with
``write_predictions``; ``workers.leaderboard.refresh_metrics`` after each model (the
snapshot ``wide_predictions`` and the metric tables the README's queries read), then
``VACUUM ANALYZE``. Each example query of README.md (between ``<!-- readme-query: NAME
-->`` and the next ```sql block; :a='Fe', :b='O') runs through
``matplat.services.query.run_query`` (what ``platform query`` uses): one warm-up, then
``--runs`` timed runs; median reported, with ``EXPLAIN (ANALYZE, BUFFERS)`` of any query whose
median exceeds 100 ms. Baseline in the same run: the README's queries before revision 0003
(``BASELINE_QUERIES``, same questions over ``prediction_results``; they still run on the new
schema) through the same ``run_query``, ``--baseline-runs`` timed runs after a warm-up.

One process, torch and BLAS on one thread (OMP_NUM_THREADS=1, torch.set_num_threads(1)).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform as _pyplatform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

torch.set_num_threads(1)
with contextlib.suppress(RuntimeError):  # already set
    torch.set_num_interop_threads(1)

from sqlalchemy import Engine, bindparam, text  # noqa: E402

from matplat import __version__  # noqa: E402
from matplat.db import migrate  # noqa: E402
from matplat.db.bulk import insert_columns, write_predictions  # noqa: E402
from matplat.db.models import DatasetSplit, ModelVersion  # noqa: E402
from matplat.db.session import get_engine, transaction  # noqa: E402
from ml.data import random_graph_set  # noqa: E402
from ml.graphs import encode_graph  # noqa: E402
from ml.graphs.elements import OQMD_SPECIES, SYMBOLS  # noqa: E402
from ml.graphs.graph import CrystalGraph  # noqa: E402

README = ROOT / "README.md"
TARGETS_A = ["formation_energy", "band_gap", "magnetization", "volume_deviation"]  # training default
PROPS_B = ["formation_energy", "volume_per_atom", "band_gap", "magnetization"]  # README's four
CHUNK = 20_000
FK_OFF = "write_predictions, FK triggers off (diagnostic)"
WITH_FK = "write_predictions + 0002's FK to model_versions (before)"
_FK_SQL = ("ALTER TABLE predictions ADD CONSTRAINT bench_fk_model_version FOREIGN KEY "
           "(model_version_id) REFERENCES model_versions (id) ON DELETE CASCADE")
SMALL_MODEL = {"n_hidden": 32, "n_graph": 64, "n_conv": 2}


def loadavg() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {loadavg()}] {msg}", flush=True)


# ---------------------------------------------------------------------------- databases
class PgDatabase:
    def __init__(self, base_url: str, keep: bool = False) -> None:
        self.keep = keep
        self.base = base_url.rstrip("/")
        self.name = f"bench_predict_{uuid.uuid4().hex[:10]}"
        self.url = f"{self.base}/{self.name}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.base.replace("postgresql+psycopg", "postgresql") + "/postgres",
                             autocommit=True) as c:
            c.execute(sql)

    def __enter__(self) -> PgDatabase:
        self._admin(f"CREATE DATABASE {self.name}")
        return self

    def __exit__(self, *exc: object) -> None:
        from matplat.db.session import dispose_engines

        dispose_engines()
        if self.keep:
            log(f"kept database {self.url} (drop it yourself)")
            return
        self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


class SqliteDatabase:
    def __init__(self, directory: Path) -> None:
        self.path = directory / f"bench_predict_{uuid.uuid4().hex[:10]}.db"
        self.url = f"sqlite:///{self.path}"

    def __enter__(self) -> SqliteDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        from matplat.db.session import dispose_engines

        dispose_engines()
        for p in self.path.parent.glob(self.path.name + "*"):
            p.unlink()


def fresh_engine(url: str) -> Engine:
    engine = get_engine(url)
    migrate.upgrade(engine)
    return engine


# ---------------------------------------------------------------------------- synthetic data
def formula_of(symbols: list[str], counts: list[int]) -> str:
    return "".join(f"{s}{c if c > 1 else ''}" for s, c in zip(symbols, counts, strict=True))


def insert_materials(conn: Any, ids: np.ndarray, comps: list[tuple[list[str], list[int]]],
                     spacegroups: np.ndarray) -> None:
    formulas = [formula_of(s, c) for s, c in comps]
    insert_columns(conn, "materials", {
        "id": ids,
        "source": ["oqmd"] * len(ids),
        "source_id": [str(100000 + int(i)) for i in ids],
        "formula": formulas,
        "composition": formulas,
        "natoms": np.array([sum(c) for _, c in comps], dtype=np.int64),
        "spacegroup": spacegroups,
        "prototype": [None] * len(ids),
        "content_hash": [hashlib.sha256(f.encode()).hexdigest() for f in formulas],
    })
    el_mid, el_sym, el_cnt = [], [], []
    for mid, (syms, cnts) in zip(ids.tolist(), comps, strict=True):
        for s, c in zip(syms, cnts, strict=True):
            el_mid.append(mid)
            el_sym.append(s)
            el_cnt.append(c)
    insert_columns(conn, "material_elements", {
        "material_id": np.asarray(el_mid, dtype=np.int64), "element": el_sym,
        "count": np.asarray(el_cnt, dtype=np.int64)})


def dft_columns(rng: np.random.Generator, ids: np.ndarray) -> dict[str, Any]:
    n = len(ids)
    gap = np.where(rng.random(n) < 0.6, 0.0, rng.uniform(0.05, 7.0, n))
    gap[rng.random(n) < 0.03] = np.nan
    mag = np.where(rng.random(n) < 0.8, 0.0, rng.uniform(0.0, 3.0, n))
    mag[rng.random(n) < 0.05] = np.nan
    return {
        "material_id": ids,
        "formation_energy": rng.normal(-0.9, 0.9, n),
        "volume_per_atom": rng.uniform(8.0, 45.0, n),
        "band_gap": gap,
        "magnetization": mag,
        "total_magnetization": np.abs(rng.normal(0, 2, n)),
        "volume_deviation": rng.uniform(-0.3, 0.5, n),
        "source_calculation_id": ids + 5_000_000,
        "selection_rule": ["cgnn"] * n,
    }


def make_split(engine: Engine, ids: np.ndarray, rng: np.random.Generator) -> int:
    subsets = np.array(["train", "val", "test"], dtype=object)[
        np.searchsorted([0.8, 0.9], rng.random(len(ids)), side="right")]
    counts = {k: int((subsets == k).sum()) for k in ("train", "val", "test")}
    with transaction(engine) as s:
        split = DatasetSplit(name=f"bench-{uuid.uuid4().hex[:6]}", method="random", seed=0,
                             fractions={"train": 0.8, "val": 0.1, "test": 0.1}, counts=counts)
        s.add(split)
        s.flush()
        insert_columns(s.connection(), "split_members", {
            "split_id": np.full(len(ids), split.id, dtype=np.int64),
            "material_id": ids, "subset": subsets.tolist()})
        return int(split.id)


def register_model(engine: Engine, tag: str, targets: list[str], recipe_id: int | None,
                   split_id: int | None, seed: int = 0) -> int:
    """A small random-weight no-edgenet CGNN registered like ``workers.training`` does."""
    from ml.model import CGNN, preset_config
    from ml.serialize import model_to_bytes
    from workers.training import pack_ensemble

    torch.manual_seed(seed)
    cfg = preset_config("no-edgenet", n_node_features=89, targets=targets, **SMALL_MODEL)
    model = CGNN(cfg).eval()
    artifact = pack_ensemble([model_to_bytes(model, cfg, {"seed": seed, "targets": targets})])
    with transaction(engine) as s:
        mv = ModelVersion(
            tag=tag, name="cgnn", preset="no-edgenet", status="ready",
            hyperparameters={"model": cfg.to_dict()}, targets=targets, recipe_id=recipe_id,
            split_id=split_id, code_version=__version__, seed=seed, ensemble_size=1,
            n_parameters=sum(p.numel() for p in model.parameters()), metrics={},
            artifact=artifact, artifact_sha256=hashlib.sha256(artifact).hexdigest())
        s.add(mv)
        s.flush()
        return int(mv.id)


def build_predict_db(engine: Engine, n: int, seed: int) -> tuple[int, dict[str, float]]:
    """N materials with structures and cgc graphs; returns (model version id, timings)."""
    from workers.graphs import ensure_recipe

    t = {}
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    gs = random_graph_set(n, seed=seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    comps, s_rows, g_rows = [], [], []
    recipe_id = ensure_recipe(engine, "cgc")
    no, eo = gs.node_offsets, gs.edge_offsets
    for i in range(n):
        sp = gs.species[no[i]:no[i + 1]]
        z = OQMD_SPECIES[sp].astype(np.int16)
        src = gs.edge_src[eo[i]:eo[i + 1]]
        dst = gs.edge_dst[eo[i]:eo[i + 1]]
        e = len(src)
        g = CrystalGraph(atomic_numbers=z, species=sp, edge_src=src, edge_dst=dst,
                         edge_image=np.zeros((e, 3), np.int8),
                         edge_dist=rng.uniform(1.8, 3.5, e).astype(np.float32))
        blobs = encode_graph(g)
        m = len(z)
        a = (m * 15.0) ** (1 / 3)
        s_rows.append((np.eye(3).astype("<f8") * a).tobytes())
        uz, cnt = np.unique(z, return_counts=True)
        comps.append(([SYMBOLS[int(q) - 1] for q in uz], cnt.tolist()))
        degree = np.bincount(src, minlength=m)
        g_rows.append((m, e, int((degree == 0).sum()), blobs))
    t["generate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    natoms = np.diff(no).astype(np.int64)
    with engine.begin() as conn:
        insert_materials(conn, ids, comps, rng.integers(1, 231, n).astype(np.int64))
        insert_columns(conn, "structures", {
            "id": ids, "material_id": ids, "source_structure_id": ids + 1_000_000,
            "natoms": natoms, "volume": natoms * 15.0,
            "lattice": s_rows,
            "frac_coords": [rng.random((int(k), 3)).astype("<f8").tobytes() for k in natoms],
            "atomic_numbers": [r[3]["atomic_numbers"] for r in g_rows]})
        insert_columns(conn, "crystal_graphs", {
            "structure_id": ids, "recipe_id": np.full(n, recipe_id, dtype=np.int64),
            "status": ["ok"] * n,
            "natoms": np.array([r[0] for r in g_rows], dtype=np.int64),
            "nedges": np.array([r[1] for r in g_rows], dtype=np.int64),
            "n_isolated": np.array([r[2] for r in g_rows], dtype=np.int64),
            **{k: [r[3][k] for r in g_rows] for k in
               ("atomic_numbers", "edge_src", "edge_dst", "edge_image", "edge_dist")},
            "error": [None] * n})
        insert_columns(conn, "dft_properties", dft_columns(rng, ids))
    split_id = make_split(engine, ids, rng)
    mv_id = register_model(engine, "bench-v1", TARGETS_A, recipe_id, split_id)
    t["load"] = time.perf_counter() - t0
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as c:
            c.exec_driver_sql("ANALYZE")
    return mv_id, t


# ---------------------------------------------------------------------------- part (a)
class Timers:
    """Wrap module attributes to accumulate wall time per name (restored on exit)."""

    def __init__(self, targets: list[tuple[Any, str, str]]) -> None:
        self.targets = targets
        self.seconds: dict[str, float] = {label: 0.0 for _, _, label in targets}
        self._saved: list[tuple[Any, str, Callable]] = []

    def __enter__(self) -> Timers:
        for module, attr, label in self.targets:
            fn = getattr(module, attr)
            self._saved.append((module, attr, fn))

            def wrapped(*a: Any, _fn: Callable = fn, _label: str = label, **k: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return _fn(*a, **k)
                finally:
                    self.seconds[_label] += time.perf_counter() - t0

            setattr(module, attr, wrapped)
        return self

    def __exit__(self, *exc: object) -> None:
        for module, attr, fn in self._saved:
            setattr(module, attr, fn)


def end_to_end(engine: Engine, mv_tag: str) -> dict[str, Any]:
    import ml.train
    import workers.graphs
    import workers.leaderboard
    import workers.predict

    with Timers([(workers.predict, "_graph_rows", "load graphs"),
                 (ml.train, "ensemble_predict", "inference"),
                 (workers.predict, "write_predictions", "write-back"),
                 (workers.graphs, "build_graphs", "graph check"),
                 (workers.leaderboard, "refresh_metrics", "leaderboard refresh")]) as tm:
        t0 = time.perf_counter()
        s = workers.predict.predict_and_store(engine, tag=mv_tag, device="cpu")
        wall = time.perf_counter() - t0
    parts = dict(tm.seconds)
    parts["other (selects, model load)"] = wall - sum(parts.values())
    return {"wall_s": wall, "materials": s.predicted, "rows": s.rows_written,
            "own_seconds": s.seconds, "parts": parts,
            "rows_s": s.rows_written / wall, "materials_s": s.predicted / wall}


def plain_executemany(engine: Engine, mv_id: int, mids: np.ndarray, props: list[str],
                      values: np.ndarray, unc: np.ndarray) -> None:
    mark = "%s" if engine.dialect.name == "postgresql" else "?"
    sql = ("INSERT INTO predictions (model_version_id, material_id, property, value, uncertainty)"
           f" VALUES ({', '.join([mark] * 5)})")
    for i in range(0, len(mids), CHUNK):
        part = slice(i, i + CHUNK)
        with engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            try:
                for k, prop in enumerate(props):
                    rows = list(zip([mv_id] * len(mids[part]), mids[part].tolist(),
                                    [prop] * len(mids[part]), values[part, k].tolist(),
                                    unc[part, k].tolist(), strict=True))
                    cur.executemany(sql, rows)
            finally:
                cur.close()


def bulk_write(engine: Engine, mv_id: int, mids: np.ndarray, props: list[str],
               values: np.ndarray, unc: np.ndarray, pre: str | None = None) -> None:
    for i in range(0, len(mids), CHUNK):
        part = slice(i, i + CHUNK)
        with engine.begin() as conn:
            if pre:
                conn.exec_driver_sql(pre)
            for k, prop in enumerate(props):
                write_predictions(conn, mv_id, mids[part], prop, values[part, k], unc[part, k])


def writeback(engine: Engine, n: int, rounds: int, recipe_id: int | None) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    mids = np.arange(1, n + 1, dtype=np.int64)
    values = rng.normal(0, 1, (n, 4))
    unc = np.abs(rng.normal(0, 0.1, (n, 4)))
    rows = n * 4
    writers: list[tuple[str, Callable[..., None]]] = [
        ("write_predictions", bulk_write), ("executemany INSERT", plain_executemany)]
    if engine.dialect.name == "postgresql":
        # Diagnostic only: the same call with the foreign-key triggers of `predictions` off
        # (needs a superuser; shows what the remaining per-row check, to materials, costs).
        writers.append((FK_OFF, lambda *a: bulk_write(
            *a, pre="SET LOCAL session_replication_role = replica")))
        writers.append((WITH_FK, bulk_write))
    res: dict[str, list[float]] = {label: [] for label, _ in writers}
    for r in range(rounds):
        for label, fn in writers:
            mv = register_model(engine, f"bench-wb-{uuid.uuid4().hex[:6]}", TARGETS_A,
                                recipe_id, None, seed=r)
            if label == WITH_FK:
                with engine.begin() as conn:
                    conn.exec_driver_sql(_FK_SQL)
            t0 = time.perf_counter()
            fn(engine, mv, mids, TARGETS_A, values, unc)
            dt = time.perf_counter() - t0
            with engine.begin() as conn:
                got = conn.execute(text("SELECT COUNT(*) FROM predictions WHERE "
                                        "model_version_id = :m"), {"m": mv}).scalar_one()
                assert got == rows, (label, got, rows)
                conn.execute(text("DELETE FROM predictions WHERE model_version_id = :m"),
                             {"m": mv})
                conn.execute(text("DELETE FROM model_versions WHERE id = :m"), {"m": mv})
                if label == WITH_FK:
                    conn.exec_driver_sql("ALTER TABLE predictions DROP CONSTRAINT "
                                         "bench_fk_model_version")
            if engine.dialect.name == "postgresql":  # every writer starts from the same table
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.exec_driver_sql("VACUUM predictions")
            res[label].append(dt)
            log(f"  write-back {label}: {rows} rows in {dt:.2f} s ({rows / dt:,.0f} rows/s)")
    out = {k: {"best_s": min(v), "all_s": v, "rows": rows, "rows_s": rows / min(v)}
           for k, v in res.items()}
    out["ratio"] = out["executemany INSERT"]["best_s"] / out["write_predictions"]["best_s"]
    return out


def part_a(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    backends = [("PostgreSQL", lambda: PgDatabase(args.pg_url))]
    if not args.skip_sqlite:
        backends.append(("SQLite", lambda: SqliteDatabase(out)))
    for name, make in backends:
        with make() as db:
            engine = fresh_engine(db.url)
            log(f"(a) {name}: building {args.n} materials")
            mv_id, tbuild = build_predict_db(engine, args.n, args.seed)
            log(f"(a) {name}: built (generate {tbuild['generate']:.1f} s, load "
                f"{tbuild['load']:.1f} s); predict_and_store …")
            e2e = end_to_end(engine, "bench-v1")
            log(f"(a) {name}: end-to-end {e2e['rows']} rows in {e2e['wall_s']:.1f} s = "
                f"{e2e['rows_s']:,.0f} rows/s ({e2e['materials_s']:,.0f} materials/s); "
                + ", ".join(f"{k} {v:.1f} s" for k, v in e2e["parts"].items()))
            with engine.connect() as conn:
                recipe_id = conn.execute(text("SELECT recipe_id FROM model_versions "
                                              "WHERE id = :m"), {"m": mv_id}).scalar_one()
            wb = writeback(engine, args.n, args.writeback_rounds, recipe_id)
            results[name] = {"build": tbuild, "end_to_end": e2e, "writeback": wb}
    return results


def print_part_a(res: dict[str, Any], n: int) -> str:
    lines = [f"End-to-end `predict_and_store` over {n:,} materials × 4 targets "
             f"(small no-edgenet CGNN {SMALL_MODEL}, CPU, 1 thread):", "",
             "| database | wall s | predictions/s | materials/s | load graphs s | inference s | "
             "write-back s | leaderboard refresh s | graph check s | other s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in res.items():
        e, p = r["end_to_end"], r["end_to_end"]["parts"]
        lines.append(
            f"| {name} | {e['wall_s']:.1f} | {e['rows_s']:,.0f} | {e['materials_s']:,.0f} | "
            f"{p['load graphs']:.1f} | {p['inference']:.1f} | {p['write-back']:.1f} | "
            f"{p['leaderboard refresh']:.1f} | {p['graph check']:.1f} | "
            f"{p['other (selects, model load)']:.1f} |")
    lines += ["", f"Write-back alone, {4 * n:,} prediction rows (20k materials × 4 properties "
              "per transaction), best of the rounds:", "",
              "| database | writer | s | predictions/s | × executemany |",
              "| --- | --- | ---: | ---: | ---: |"]
    for name, r in res.items():
        wb = r["writeback"]
        base = wb["executemany INSERT"]["best_s"]
        for k in ("write_predictions", "executemany INSERT", WITH_FK, FK_OFF):
            if k not in wb:
                continue
            lines.append(f"| {name} | {k} | {wb[k]['best_s']:.2f} | {wb[k]['rows_s']:,.0f} | "
                         f"{base / wb[k]['best_s']:.2f} |")
    text_ = "\n".join(lines)
    print(text_)
    return text_


# ---------------------------------------------------------------------------- part (b)
_COMMON = ["O", "Fe", "Mn", "Co", "Ni", "Cu", "Li", "Na", "Mg", "Al", "Si", "S", "F", "Cl", "N",
           "Ti", "Zn", "Ca", "Ba", "Sr", "La", "Pb", "Bi", "Se", "Te"]


def compositions(rng: np.random.Generator, n: int) -> list[tuple[list[str], list[int]]]:
    syms = [SYMBOLS[int(z) - 1] for z in OQMD_SPECIES]
    w = np.ones(len(syms))
    for s in _COMMON:
        w[syms.index(s)] = 3.0
    w[syms.index("O")] = 30.0
    w /= w.sum()
    k = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.05, 0.30, 0.45, 0.15, 0.05])
    out = []
    for i in range(n):
        els = rng.choice(len(syms), size=int(k[i]), replace=False, p=w)
        els.sort()
        out.append(([syms[e] for e in els], rng.integers(1, 7, len(els)).tolist()))
    return out


def build_query_db(engine: Engine, m: int, seed: int) -> dict[str, float]:
    from workers.graphs import ensure_recipe
    from workers.leaderboard import refresh_metrics

    t: dict[str, float] = {}
    rng = np.random.default_rng(seed)
    ids = np.arange(1, m + 1, dtype=np.int64)
    t0 = time.perf_counter()
    comps = compositions(rng, m)
    # skewed space groups: a few common ones dominate, as in OQMD
    common = np.array([225, 221, 227, 194, 216, 139, 166, 62, 12, 14, 2, 1, 123, 129, 191])
    sg = np.where(rng.random(m) < 0.7, rng.choice(common, m), rng.integers(1, 231, m))
    dft = dft_columns(rng, ids)
    with engine.begin() as conn:
        insert_materials(conn, ids, comps, sg.astype(np.int64))
        insert_columns(conn, "dft_properties", dft)
    split_id = make_split(engine, ids, rng)
    recipe_id = ensure_recipe(engine, "cgc")
    t["materials, elements, dft, split"] = time.perf_counter() - t0
    truth = {p: np.asarray(dft[p], dtype=np.float64) for p in PROPS_B}
    for tag, noise in (("v3", 0.12), ("v4", 0.10)):
        mv = register_model(engine, tag, PROPS_B, recipe_id, split_id)
        t0 = time.perf_counter()
        for i in range(0, m, CHUNK):
            part = slice(i, i + CHUNK)
            with engine.begin() as conn:
                for p in PROPS_B:
                    base = np.nan_to_num(truth[p][part], nan=0.5)
                    val = base + rng.normal(0, noise * (1 + np.abs(base).mean()), len(base))
                    if p in ("band_gap", "magnetization"):
                        val = np.maximum(val, 0.0)
                    write_predictions(conn, mv, ids[part], p, val,
                                      np.abs(rng.normal(0, noise, len(base))))
        t[f"write_predictions {tag} ({4 * m:,} rows)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        refresh_metrics(engine, mv)
        t[f"refresh_metrics {tag}"] = time.perf_counter() - t0
        log(f"(b) {tag}: written and refreshed")
    t0 = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM ANALYZE")
    t["VACUUM ANALYZE"] = time.perf_counter() - t0
    return t


def readme_queries() -> dict[str, str]:
    text_ = README.read_text(encoding="utf-8")
    out = {}
    for m in re.finditer(r"<!--\s*readme-query:\s*(\S+)\s*-->\s*```sql\n(.*?)```", text_,
                         re.S):
        out[m.group(1)] = m.group(2).strip()
    if not out:
        raise SystemExit("no readme-query blocks found in README.md")
    return out


#: The README's example queries before revision 0003 (same questions, over
#: ``prediction_results``), timed in the same run as the baseline.
BASELINE_QUERIES = {
    "screening": """
SELECT bg.material_id, bg.formula, bg.predicted AS band_gap, fe.predicted AS formation_energy,
       bg.dft AS band_gap_dft, bg.abs_error AS band_gap_error
FROM prediction_results bg
JOIN prediction_results fe
  ON fe.material_id = bg.material_id AND fe.model_tag = bg.model_tag
 AND fe.property = 'formation_energy'
WHERE bg.model_tag = 'v3' AND bg.property = 'band_gap'
  AND bg.predicted BETWEEN 1 AND 3 AND fe.predicted < -1
  AND NOT EXISTS (SELECT 1 FROM material_elements e
                  WHERE e.material_id = bg.material_id AND e.element = 'Pb')
ORDER BY bg.material_id""",
    "error_by_spacegroup": """
SELECT m.spacegroup, pr.property, COUNT(*) AS n, AVG(pr.abs_error) AS mae
FROM prediction_results pr
JOIN materials m ON m.id = pr.material_id
WHERE pr.model_tag = 'v3' AND pr.split = 'test' AND pr.abs_error IS NOT NULL
GROUP BY m.spacegroup, pr.property
ORDER BY m.spacegroup, pr.property""",
    "error_by_chemistry": """
SELECT CASE WHEN EXISTS (SELECT 1 FROM material_elements e
                         WHERE e.material_id = pr.material_id AND e.element = 'O')
            THEN 'oxide' ELSE 'other' END AS chemistry,
       COUNT(*) AS n, AVG(pr.abs_error) AS mae
FROM prediction_results pr
WHERE pr.model_tag = 'v3' AND pr.property = 'formation_energy' AND pr.abs_error IS NOT NULL
GROUP BY 1
ORDER BY 1""",
    "compare_models": """
SELECT a.property, COUNT(*) AS n, AVG(a.abs_error) AS mae_v3, AVG(b.abs_error) AS mae_v4,
       SUM(CASE WHEN b.abs_error < a.abs_error THEN 1 ELSE 0 END) AS v4_closer
FROM prediction_results a
JOIN prediction_results b
  ON b.material_id = a.material_id AND b.property = a.property AND b.model_tag = 'v4'
WHERE a.model_tag = 'v3' AND a.abs_error IS NOT NULL
GROUP BY a.property
ORDER BY a.property""",
    "elements_present": """
SELECT mp.material_id, mp.formula, mp.formation_energy, mp.band_gap
FROM material_properties mp
WHERE mp.material_id IN (SELECT material_id FROM material_elements
                         WHERE element IN (:a, :b)
                         GROUP BY material_id HAVING COUNT(*) = 2)
ORDER BY mp.material_id""",
}


def time_query(engine: Engine, sql: str, params: dict[str, str], runs: int
               ) -> tuple[dict[str, Any], Any]:
    from matplat.services.query import run_query

    df = run_query(engine, sql, params)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        df = run_query(engine, sql, params)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return ({"median_ms": med * 1e3, "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3,
             "rows": len(df), "all_ms": [x * 1e3 for x in times]}, df)


def same_answer(name: str, new: Any, old: Any) -> bool:
    """The rewritten query answers as the old one did (compared where the shapes allow)."""
    if name == "error_by_chemistry":
        old = old.set_index("chemistry")
        want = [old.n["oxide"], old.mae["oxide"], old.n["other"], old.mae["other"]]
        return bool(np.allclose(new.iloc[0].astype(float).to_numpy(), np.asarray(want, float)))
    if name == "error_by_spacegroup":
        fe = old[old.property == "formation_energy"].set_index("spacegroup").mae
        got = new.set_index("spacegroup").formation_energy_mae.reindex(fe.index)
        return bool(np.allclose(got.astype(float), fe.astype(float)))
    if list(new.columns) != list(old.columns) or len(new) != len(old):
        return False
    return all(np.allclose(new[c].astype(float), old[c].astype(float), equal_nan=True)
               if new[c].dtype.kind in "fiu" else (new[c].astype(str) == old[c].astype(str)).all()
               for c in new.columns)


def part_b(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    queries = readme_queries()
    params = {"elements_present": {"a": "Fe", "b": "O"}}
    res: dict[str, Any] = {"queries": {}, "baseline": {}, "same_answer": {}, "explain": {}}
    with PgDatabase(args.pg_url, keep=args.keep_db) as db:
        engine = fresh_engine(db.url)
        log(f"(b) building {args.query_materials} materials, 2 models × 4 properties")
        res["build"] = build_query_db(engine, args.query_materials, args.seed)
        tables = ("materials", "material_elements", "dft_properties", "split_members",
                  "predictions", "wide_predictions", "model_metrics", "model_element_metrics",
                  "model_pair_metrics")
        with engine.connect() as conn:
            res["rows"] = {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                           for t in tables}
            res["sizes"] = {r[0]: r[1] for r in conn.execute(text(
                "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class "
                "WHERE relname IN :t").bindparams(bindparam("t", expanding=True)),
                {"t": list(tables)})}
        log(f"(b) rows: {res['rows']}")
        for name, sql in queries.items():
            p = params.get(name, {})
            res["queries"][name], df = time_query(engine, sql, p, args.runs)
            med = res["queries"][name]["median_ms"]
            log(f"(b) {name}: median {med:.1f} ms, {len(df)} rows")
            if name in BASELINE_QUERIES and args.baseline_runs:
                res["baseline"][name], old = time_query(engine, BASELINE_QUERIES[name], p,
                                                        args.baseline_runs)
                res["same_answer"][name] = same_answer(name, df, old)
                log(f"(b) {name} before 0003: median {res['baseline'][name]['median_ms']:.1f} "
                    f"ms, {len(old)} rows; same answer: {res['same_answer'][name]}")
            if med > 100 or args.explain_all:
                with engine.connect() as conn:
                    conn.exec_driver_sql("SET jit = off")  # as run_query does
                    plan = "\n".join(r[0] for r in conn.execute(
                        text("EXPLAIN (ANALYZE, BUFFERS) " + sql), p))
                res["explain"][name] = plan
                (out / f"explain_{name}.txt").write_text(plan + "\n")
    return res


def print_part_b(res: dict[str, Any]) -> str:
    lines = [f"README queries over {res['rows']['predictions']:,} prediction rows "
             f"({res['rows']['materials']:,} materials; PostgreSQL; `run_query`; median of the "
             "timed runs after one warm-up):", "",
             "| query | median ms | min ms | max ms | rows | < 100 ms | before 0003: median ms "
             "| × faster | same answer |",
             "| --- | ---: | ---: | ---: | ---: | :---: | ---: | ---: | :---: |"]
    for name, q in res["queries"].items():
        ok = "yes" if q["median_ms"] < 100 else "**no**"
        b = res.get("baseline", {}).get(name)
        before = (f"{b['median_ms']:.1f} | {b['median_ms'] / q['median_ms']:.1f} | "
                  f"{'yes' if res['same_answer'][name] else '**no**'}") if b else "– | – | –"
        lines.append(f"| {name} | {q['median_ms']:.1f} | {q['min_ms']:.1f} | {q['max_ms']:.1f} | "
                     f"{q['rows']:,} | {ok} | {before} |")
    text_ = "\n".join(lines)
    print(text_)
    for name, plan in res["explain"].items():
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) {name}:\n{plan}")
    return text_


# ---------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="materials for part (a)")
    ap.add_argument("--query-materials", type=int, default=250_000, help="materials for (b)")
    ap.add_argument("--part", choices=["a", "b", "all"], default="all")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline-runs", type=int, default=3,
                    help="timed runs of each pre-0003 README query (0: skip the baseline)")
    ap.add_argument("--writeback-rounds", type=int, default=2)
    ap.add_argument("--explain-all", action="store_true")
    ap.add_argument("--keep-db", action="store_true",
                    help="keep part (b)'s PostgreSQL database for inspection (not dropped)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    ap.add_argument("--out", type=Path, help="directory for results.json and EXPLAIN output "
                    "(default: a temporary directory)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-predict-"))
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "argv": sys.argv, "cores": os.cpu_count(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "load_start": loadavg(),
        "python": _pyplatform.python_version(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads()}
    log(f"{os.cpu_count()} cores, Python {results['python']}, torch {torch.__version__} "
        f"({torch.get_num_threads()} thread); out {out}")
    tables = []
    if args.part in ("a", "all"):
        results["a"] = part_a(args, out)
    if args.part in ("b", "all"):
        results["b"] = part_b(args, out)
    results["load_end"] = loadavg()
    print()
    if "a" in results:
        tables.append(print_part_a(results["a"], args.n))
        print()
    if "b" in results:
        tables.append(print_part_b(results["b"]))
    print(f"\nload average start {results['load_start']}, end {results['load_end']}")
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "tables.md").write_text("\n\n".join(tables) + "\n")
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
