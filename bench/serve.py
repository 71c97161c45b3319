"""Benchmark: latency of `platform serve` (OPTIMADE queries and web pages) under 1 and 16
concurrent clients, against a no-database baseline measured in the same run.

Run:  python bench/serve.py --db URL [--prepare] [--clients 1,16] [--rounds 10]
                            [--workers 2] [--port 0]

URL is a PostgreSQL database holding a data set: an ingested one, or ``--build N`` writes N
SYNTHETIC materials into it (it must exist and be empty; ``platform db upgrade`` is run):
compositions of 1–5 elements (O and common elements weighted up, 1–6 atoms each), cubic
cells with random fractional coordinates, their sites, element counts, DFT values and skewed
space groups, written with ``matplat.db.bulk.insert_columns`` (COPY). Writing a
`platform sample oqmd-dump` of 600k entries took ~10 min on a quiet machine and projected to
~45 min under the load of this session, hence the direct writer.
``--prepare`` gives it a production model without training one: a model version
``bench-production`` whose predictions are SYNTHETIC (the DFT value plus a deterministic
offset of up to ±0.05 per property, uncertainty 0.02), written by SQL into ``predictions``
and ``wide_predictions`` (what ``platform predict`` fills), aliased ``production``; then
``VACUUM ANALYZE``. Serving cost does not depend on how predictions were made.

The server is ``platform serve --workers W`` in a subprocess on 127.0.0.1 (its start-up
includes the ``material_summaries`` refresh, timed and reported). Each client is a thread
with its own HTTP connection (requests.Session); every client runs ``--rounds`` rounds of
the request list below, in a per-client shuffled order, and each request's wall time is
recorded. Per request kind and client count the table gives median and p95 in ms, the
ratio of the median to the median of ``GET /optimade/v1/info`` in the same phase (a
response that touches no database: the server's floor on this machine at that load), and
"SQL alone": the median of the same filter's statements (page + ``data_returned``) run
in this process through the server's read-only transaction, without HTTP or JSON.

Request kinds: the OPTIMADE validator's kinds of queries (first page, single entry,
equality/inequality filters on indexed and unindexed properties, HAS ALL/ONLY, LENGTH,
provider ranges, deep offsets) and the web pages (search, material, models).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
TAG = "bench-production"
PROPS = ("formation_energy", "band_gap", "magnetization", "volume_per_atom", "volume_deviation")


def build(url: str, n: int, seed: int = 1) -> None:
    """N SYNTHETIC materials with structures, sites, elements and DFT values (see above)."""
    import hashlib

    import numpy as np
    from pymatgen.core.periodic_table import Element

    from matplat.db import migrate
    from matplat.db.bulk import insert_columns
    from matplat.db.session import get_engine
    from matplat.ingest.formulas import Formulas

    engine = get_engine(url)
    migrate.upgrade(engine)
    rng = np.random.default_rng(seed)
    zs = np.array([*range(1, 84), *range(89, 95)])
    w = np.ones(len(zs))
    for sym in ("Fe", "Co", "Ni", "Mn", "Cu", "Zn", "Al", "Si", "Ti", "Mg", "Li", "Na", "Ca"):
        w[int(np.flatnonzero(zs == Element(sym).Z)[0])] = 3.0
    w[int(np.flatnonzero(zs == 8)[0])] = 30.0
    w /= w.sum()
    symbols = {int(z): Element.from_Z(int(z)).symbol for z in zs}
    k = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.05, 0.30, 0.45, 0.15, 0.05])
    formulas = Formulas()
    common = np.array([225, 221, 227, 194, 216, 139, 166, 62, 12, 14, 2, 1, 123, 129, 191])
    step = 50_000
    for start in range(0, n, step):
        ids = np.arange(start + 1, min(n, start + step) + 1, dtype=np.int64)
        mat: dict[str, list] = {c: [] for c in ("formula", "natoms", "hash")}
        st_lat, st_fc, st_z, st_n = [], [], [], []
        el_mid, el_sym, el_cnt = [], [], []
        si_sid, si_idx, si_el, si_z, si_xyz = [], [], [], [], []
        for mid in ids.tolist():
            els = np.sort(rng.choice(zs, size=int(k[mid - 1]), replace=False, p=w))
            cnt = rng.integers(1, 7, len(els))
            reduced, _cell, _v = formulas.get(tuple(zip(els.tolist(), cnt.tolist(), strict=True)))
            z = np.repeat(els, cnt).astype("<i2")
            m = len(z)
            fc = rng.random((m, 3))
            a = (m * 15.0) ** (1 / 3)
            mat["formula"].append(reduced)
            mat["natoms"].append(m)
            mat["hash"].append(hashlib.sha256(f"{mid}{reduced}".encode()).hexdigest())
            st_lat.append((np.eye(3) * a).astype("<f8").tobytes())
            st_fc.append(fc.astype("<f8").tobytes())
            st_z.append(z.tobytes())
            st_n.append(m)
            for e, c in zip(els.tolist(), cnt.tolist(), strict=True):
                el_mid.append(mid)
                el_sym.append(symbols[e])
                el_cnt.append(c)
            for i in range(m):
                si_sid.append(mid)
                si_idx.append(i)
                si_el.append(symbols[int(z[i])])
                si_z.append(int(z[i]))
                si_xyz.append(fc[i])
        nn = len(ids)
        sg = np.where(rng.random(nn) < 0.7, rng.choice(common, nn), rng.integers(1, 231, nn))
        gap = np.where(rng.random(nn) < 0.6, 0.0, rng.uniform(0.05, 7.0, nn))
        mag = np.where(rng.random(nn) < 0.8, 0.0, rng.uniform(0.0, 3.0, nn))
        xyz = np.asarray(si_xyz)
        with engine.begin() as conn:
            insert_columns(conn, "materials", {
                "id": ids, "source": ["oqmd"] * nn, "source_id": [str(i + 100000) for i in ids],
                "formula": mat["formula"], "composition": mat["formula"],
                "natoms": np.asarray(mat["natoms"], dtype=np.int64),
                "spacegroup": sg.astype(np.int64), "prototype": [None] * nn,
                "content_hash": mat["hash"]})
            insert_columns(conn, "structures", {
                "id": ids, "material_id": ids, "source_structure_id": ids,
                "natoms": np.asarray(st_n, dtype=np.int64),
                "volume": np.asarray(st_n, dtype=float) * 15.0,
                "lattice": st_lat, "frac_coords": st_fc, "atomic_numbers": st_z})
            insert_columns(conn, "sites", {
                "structure_id": np.asarray(si_sid, dtype=np.int64),
                "site_index": np.asarray(si_idx, dtype=np.int64), "element": si_el,
                "atomic_number": np.asarray(si_z, dtype=np.int64),
                "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
            insert_columns(conn, "material_elements", {
                "material_id": np.asarray(el_mid, dtype=np.int64), "element": el_sym,
                "count": np.asarray(el_cnt, dtype=np.int64)})
            insert_columns(conn, "dft_properties", {
                "material_id": ids, "formation_energy": rng.normal(-0.9, 0.9, nn),
                "volume_per_atom": rng.uniform(8.0, 45.0, nn), "band_gap": gap,
                "magnetization": mag, "total_magnetization": mag * 2,
                "volume_deviation": rng.uniform(-0.3, 0.5, nn),
                "source_calculation_id": ids, "selection_rule": ["cgnn"] * nn})
        print(f"\rbuilt {ids[-1]}/{n} materials", end="", flush=True)
    print()
    engine.dispose()


def prepare(url: str) -> None:
    """A SYNTHETIC production model: predictions = DFT + deterministic offsets (see above)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM model_versions WHERE tag = :t"), {"t": TAG}).first():
            print(f"model version {TAG} exists: not prepared again")
            return
        mv = conn.execute(text(
            "INSERT INTO model_versions (tag, name, status, hyperparameters, targets, "
            "code_version, seed, ensemble_size) VALUES (:t, 'synthetic', 'ready', '{}', "
            "'[\"formation_energy\", \"band_gap\", \"magnetization\", \"volume_per_atom\", "
            "\"volume_deviation\"]', 'bench', 0, 2) RETURNING id"), {"t": TAG}).scalar_one()
        for k, prop in enumerate(PROPS):
            conn.execute(text(
                "INSERT INTO predictions (model_version_id, material_id, property, value, "
                "uncertainty) SELECT :mv, d.material_id, :p, "
                f"d.{prop} + ((d.material_id * {7 + k}) % 101 - 50) / 1000.0, 0.02 "
                f"FROM dft_properties d WHERE d.{prop} IS NOT NULL"), {"mv": mv, "p": prop})
        cols = ", ".join(f"{p}, {p}_uncertainty, {p}_dft" for p in PROPS)
        vals = ", ".join(
            f"d.{p} + ((d.material_id * {7 + k}) % 101 - 50) / 1000.0, 0.02, d.{p}"
            for k, p in enumerate(PROPS))
        conn.execute(text(
            f"INSERT INTO wide_predictions (model_version_id, material_id, formula, spacegroup, "
            f"split, {cols}) SELECT :mv, m.id, m.formula, m.spacegroup, NULL, {vals} "
            "FROM materials m JOIN dft_properties d ON d.material_id = m.id"), {"mv": mv})
        conn.execute(text("UPDATE model_aliases SET replaced_at = now() "
                          "WHERE alias = 'production' AND replaced_at IS NULL"))
        conn.execute(text("INSERT INTO model_aliases (alias, model_version_id) "
                          "VALUES ('production', :mv)"), {"mv": mv})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(url: str, workers: int, port: int, log: Path) -> tuple[subprocess.Popen, str, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "platform"), str(ROOT),
                                         env.get("PYTHONPATH", "")])
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "matplat", "--db", url, "serve", "--port", str(port),
         "--workers", str(workers)], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            if requests.get(base + "/optimade/v1/info", timeout=2).ok:
                return proc, base, time.monotonic() - t0
        except requests.ConnectionError:
            time.sleep(0.3)


def request_kinds(url: str) -> list[tuple[str, str, dict]]:
    """(kind, path, params) with values drawn from the data set."""
    engine = create_engine(url)
    with engine.connect() as conn:
        a, b = [r[0] for r in conn.execute(text(
            "SELECT element FROM material_elements GROUP BY element ORDER BY COUNT(*) DESC "
            "LIMIT 2"))]
        formula = conn.execute(text(
            "SELECT formula_reduced FROM material_summaries GROUP BY formula_reduced "
            "ORDER BY COUNT(*) DESC LIMIT 1 OFFSET 20")).scalar_one()
        ids = [r[0] for r in conn.execute(text(
            "SELECT material_id FROM material_summaries ORDER BY material_id"))]
        n = len(ids)
    engine.dispose()
    rnd = random.Random(1)
    pick = [str(rnd.choice(ids)) for _ in range(64)]
    s = "/optimade/v1/structures"
    kinds = [
        ("info (no database: baseline)", "/optimade/v1/info", {}),
        ("structures first page", s, {}),
        ("structures/{id}", s + "/{id}", {}),
        ('id = "…"', s, {"filter": 'id = "{id}"'}),
        ("elements HAS ALL a,b", s, {"filter": f'elements HAS ALL "{a}","{b}"'}),
        ("elements HAS ONLY a,b", s, {"filter": f'elements HAS ONLY "{a}","{b}"'}),
        ("nelements = 3", s, {"filter": "nelements = 3"}),
        ("elements LENGTH 2", s, {"filter": "elements LENGTH 2"}),
        ("chemical_formula_reduced =", s, {"filter": f'chemical_formula_reduced = "{formula}"'}),
        ("chemical_formula_anonymous = AB", s, {"filter": 'chemical_formula_anonymous = "AB"'}),
        ("nsites < 4", s, {"filter": "nsites < 4"}),
        ("_matplat_band_gap 1..3", s, {"filter": "_matplat_band_gap > 1 AND _matplat_band_gap < 3"}),
        ("_matplat_predicted_formation_energy < -2", s,
         {"filter": "_matplat_predicted_formation_energy < -2"}),
        ("chemical_formula_descriptive ENDS (unindexed)", s,
         {"filter": 'chemical_formula_descriptive ENDS WITH "O3"'}),
        ("last_modified >= (unindexed)", s, {"filter": 'last_modified >= "2020-01-01T00:00:00Z"'}),
        ("page_offset deep (n/2)", s, {"page_offset": str(n // 2)}),
        ("sort=-nsites", s, {"sort": "-nsites"}),
        ("web: search page (elements)", "/", {"elements": f"{a},{b}"}),
        ("web: material page", "/materials/{id}", {}),
        ("web: models page", "/models", {}),
    ]
    return [(k, p, {**q, "_ids": pick}) for k, p, q in kinds]


def run_phase(base: str, kinds: list, clients: int, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k, _, _ in kinds}
    lock = threading.Lock()
    errors: list[str] = []

    def client(seed: int) -> None:
        rnd = random.Random(seed)
        session = requests.Session()
        for _ in range(rounds):
            order = list(kinds)
            rnd.shuffle(order)
            for kind, path, params in order:
                mid = rnd.choice(params["_ids"])
                q = {k: v.replace("{id}", mid) for k, v in params.items() if k != "_ids"}
                t0 = time.perf_counter()
                r = session.get(base + path.replace("{id}", mid), params=q, timeout=120)
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    errors.append(f"{kind}: {r.status_code} {r.text[:200]}")
                with lock:
                    times[kind].append(dt * 1000)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("errors:\n" + "\n".join(errors[:10]))
    return times


def sql_only(url: str, kinds: list, runs: int = 9) -> dict[str, float]:
    """Median ms of each filter kind's statements alone (page + data_returned), in-process,
    through the server's own read-only transaction: the database's share of a request."""
    from matplat.serve import entries
    from matplat.serve.filters import parse_filter
    from matplat.serve.readonly import ReadOnlyDatabase

    db = ReadOnlyDatabase(url)
    out: dict[str, float] = {}
    try:
        for kind, path, params in kinds:
            if path != "/optimade/v1/structures":
                continue
            offset = int(params.get("page_offset", 0))
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                where = parse_filter(params.get("filter", ""), "postgresql")
                with db.read() as conn:
                    prod = entries.production(conn)
                    rows, more = entries.page(conn, where, prod, params.get("sort"), 20, offset)
                    entries.returned(conn, where, prod, rows, more, offset, 1)
                times.append((time.perf_counter() - t0) * 1000)
            out[kind] = statistics.median(times)
    finally:
        db.dispose()
    return out


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--build", type=int, default=0, metavar="N",
                    help="write N synthetic materials into the (empty) database first")
    ap.add_argument("--prepare", action="store_true")
    ap.add_argument("--clients", default="1,16")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    if args.build:
        t0 = time.monotonic()
        build(args.db, args.build)
        print(f"built {args.build} synthetic materials in {time.monotonic() - t0:.1f} s")
    if args.prepare:
        t0 = time.monotonic()
        prepare(args.db)
        print(f"prepared synthetic production model in {time.monotonic() - t0:.1f} s")
    if args.clients.strip() in ("", "0"):
        return  # data only
    log = Path("/tmp") / f"bench-serve-{os.getpid()}.log"
    proc, base, startup = start(args.db, args.workers, args.port or free_port(), log)
    try:
        print(f"server up in {startup:.1f} s (includes the material_summaries refresh); "
              f"workers={args.workers}; load {os.getloadavg()}")
        kinds = request_kinds(args.db)
        run_phase(base, kinds, 2, 1)  # warm-up: caches, connection pools
        sql = sql_only(args.db, kinds)
        for clients in [int(c) for c in args.clients.split(",")]:
            rounds = max(1, args.rounds // max(1, clients // 4)) if clients > 4 else args.rounds
            t0 = time.monotonic()
            times = run_phase(base, kinds, clients, rounds)
            wall = time.monotonic() - t0
            total = sum(len(v) for v in times.values())
            floor = statistics.median(times[kinds[0][0]])
            print(f"\n{clients} client(s), {rounds} rounds each: {total} requests in {wall:.1f} s "
                  f"({total / wall:.0f} req/s); load {os.getloadavg()}")
            print("| request | n | median ms | p95 ms | median / info | SQL alone ms |")
            print("| --- | ---: | ---: | ---: | ---: | ---: |")
            for kind, _, _ in kinds:
                xs = times[kind]
                med = statistics.median(xs)
                own = f"{sql[kind]:.1f}" if kind in sql else ""
                print(f"| {kind} | {len(xs)} | {med:.1f} | {p95(xs):.1f} | {med / floor:.1f} "
                      f"| {own} |")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
