"""Benchmark: all convex hulls of a synthetic dump, against pymatgen's PhaseDiagram.

Run:  python bench/hull.py [--entries 600000] [--seed 1] [--pymatgen-systems 400]
                           [--db sqlite|postgresql] [--incremental 1000] [--out DIR] [--keep]

In one run, on one SYNTHETIC OQMD-format dump (``matplat.ingest.sample.write_sample_dump``)
ingested into a fresh database (SQLite file, or a uniquely named PostgreSQL database dropped
afterwards; neither timed):

* **ours, pure**: ``ml.stability.systems.hull_all`` on every material of the source (read once
  with ``workers.hull_data.load_source``, timed separately): one hull per maximal chemical
  system, shared by its subsystems, vectorised distances and decompositions. tracemalloc peak
  of that call.
* **pymatgen baseline**: ``PhaseDiagram`` built once per chemical system (entries of the
  system and of all its subsystems, each element at 0 eV/atom) and ``get_e_above_hull`` of
  the system's materials, on ``--pymatgen-systems`` systems drawn at random (seeded; all of
  them if fewer): its mean time per system × the number of systems projects pymatgen's time
  for all of them. The same sample through ``hull_all(targets=sample)`` gives a second,
  like-for-like ratio (no sharing across the sample), and the largest |difference| of the
  distances (the equality check).
* **end to end**: ``platform hull build --full`` as a subprocess (reading the database,
  hulls, writing material_hulls / hull_decompositions / hull_systems), with its peak RSS.
* **incremental**: ``--incremental`` new materials inserted directly (compositions drawn from
  existing materials, new formation energies; what an ingest of new entries adds), then
  ``platform hull build`` as a subprocess: wall time and the systems it recomputed.

Subprocesses and this process run with OMP_NUM_THREADS=1. ``uptime``'s load averages are
recorded around the run (the machine is shared).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))
sys.path.insert(0, str(ROOT))

ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}"}


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


def platform_cmd(url: str, *args: str) -> tuple[float, str, float]:
    """Run ``platform --db URL ARGS`` in a subprocess: (wall s, output, child peak RSS MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "matplat", "--db", url, *args], env=ENV,
                         capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if out.returncode:
        raise SystemExit(f"platform {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, out.stdout.strip().splitlines()[-1], max(rss, before) / 1024


def pymatgen_sample(data, sample: list[int]) -> tuple[float, dict[int, float]]:
    """Seconds for PhaseDiagram + get_e_above_hull of each sampled system; distances."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition, Element

    from ml.stability.systems import subsystems

    e = data.entries
    idx = data.index
    pos = {s: i for i, s in enumerate(idx.systems)}
    comps = {}

    def comp(i: int) -> Composition:
        if i not in comps:
            a, b = e.indptr[i], e.indptr[i + 1]
            comps[i] = Composition({Element.from_Z(int(z)): float(n)
                                    for z, n in zip(e.z[a:b], e.amount[a:b], strict=True)})
        return comps[i]

    out: dict[int, float] = {}
    # Compositions are built before the clock starts: pymatgen gets its inputs ready-made.
    prepared = []
    for s in sample:
        members = [int(i) for j in subsystems(idx.systems, pos, idx.systems[s])
                   for i in idx.members[j] if np.isfinite(e.energies[i])]
        own = [int(i) for i in idx.members[s] if np.isfinite(e.energies[i])]
        for i in members:
            comp(i)
        prepared.append((s, members, own))
    t = time.perf_counter()
    for s, members, own in prepared:
        entries = {i: PDEntry(comps[i], float(e.energies[i]) * comps[i].num_atoms)
                   for i in members}
        refs = [PDEntry(Composition(Element.from_Z(z).symbol), 0.0) for z in idx.systems[s]]
        pd = PhaseDiagram(list(entries.values()) + refs)
        for i in own:
            out[i] = pd.get_e_above_hull(entries[i])
    return time.perf_counter() - t, out


def insert_new(engine, data, n: int, seed: int) -> None:
    """``n`` new materials: compositions of random existing ones, new formation energies."""
    from sqlalchemy import text

    from matplat.db.bulk import insert_columns
    from ml.graphs.elements import SYMBOLS

    rng = np.random.default_rng(seed)
    e = data.entries
    with engine.connect() as conn:
        first = int(conn.execute(text("SELECT MAX(id) FROM materials")).scalar_one()) + 1
    pick = rng.choice(np.flatnonzero(np.diff(e.indptr) > 0), size=n, replace=False)
    ids = np.arange(first, first + n)
    mat, el = [], {"material_id": [], "element": [], "count": []}
    for mid, i in zip(ids.tolist(), pick.tolist(), strict=True):
        a, b = e.indptr[i], e.indptr[i + 1]
        for z, c in zip(e.z[a:b].tolist(), e.amount[a:b].tolist(), strict=True):
            el["material_id"].append(mid)
            el["element"].append(SYMBOLS[z - 1])
            el["count"].append(int(c))
        mat.append(data.formulas[i])
    with engine.begin() as conn:
        insert_columns(conn, "materials", {
            "id": ids, "source": ["oqmd"] * n, "source_id": [f"new-{m}" for m in ids.tolist()],
            "formula": mat, "composition": mat, "natoms": np.ones(n, np.int64),
            "content_hash": ["0" * 64] * n})
        insert_columns(conn, "material_elements", el)
        insert_columns(conn, "dft_properties", {
            "material_id": ids, "formation_energy": rng.normal(-0.8, 0.6, n),
            "selection_rule": ["cgnn"] * n})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=600_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pymatgen-systems", type=int, default=400)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    ap.add_argument("--incremental", type=int, default=1000)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    from sqlalchemy import create_engine, text

    from matplat.db.session import get_engine
    from matplat.ingest.sample import write_sample_dump
    from ml.stability.systems import hull_all
    from workers.hull_data import load_source

    out = args.out or Path(tempfile.mkdtemp(prefix="bench-hull-"))
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"entries": args.entries, "seed": args.seed, "db": args.db,
                 "load_before": load()}
    dump = out / f"sample-{args.entries}-{args.seed}.sql.gz"
    if not dump.exists():
        t = time.perf_counter()
        write_sample_dump(dump, args.entries, args.seed)
        print(f"dump written in {time.perf_counter() - t:.0f} s", flush=True)
    admin = None
    if args.db == "sqlite":
        url = f"sqlite:///{out / f'hull-{uuid.uuid4().hex[:8]}.db'}"
    else:
        name = f"bench_hull_{uuid.uuid4().hex[:8]}"
        admin = create_engine(f"{args.pg_url}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}"))
        url = f"{args.pg_url}/{name}"
    try:
        platform_cmd(url, "db", "upgrade")
        wall, line, _ = platform_cmd(url, "ingest", str(dump))
        print(f"ingest {wall:.0f} s", flush=True)
        engine = get_engine(url)

        t = time.perf_counter()
        data = load_source(engine, "oqmd")
        res["read_s"] = time.perf_counter() - t
        n_ok = int(np.isfinite(data.entries.energies).sum())
        res.update(materials=len(data.entries.labels), with_energy=n_ok,
                   systems=len(data.index.systems),
                   systems_by_size={int(k): int(v) for k, v in zip(*np.unique(
                       [len(s) for s in data.index.systems], return_counts=True), strict=True)})
        tracemalloc.start()
        t = time.perf_counter()
        full = hull_all(data.entries, index=data.index)
        res["ours_s"] = time.perf_counter() - t
        res["ours_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        res["hulls"] = full.hulls
        res["methods"] = full.methods
        print(f"ours: {res['ours_s']:.2f} s, {full.hulls} hulls", flush=True)

        rng = np.random.default_rng(args.seed)
        real = [i for i, s in enumerate(data.index.systems) if s]
        sample = sorted(rng.choice(real, size=min(args.pymatgen_systems, len(real)),
                                   replace=False).tolist())
        pm_s, pm = pymatgen_sample(data, sample)
        t = time.perf_counter()
        part = hull_all(data.entries, targets=sample, index=data.index)
        ours_sample_s = time.perf_counter() - t
        diff = max(abs(part.e_above_hull[i] - v) for i, v in pm.items())
        diff_full = max(abs(full.e_above_hull[i] - v) for i, v in pm.items())
        res.update(pymatgen_sample_systems=len(sample), pymatgen_sample_s=pm_s,
                   pymatgen_projected_s=pm_s / len(sample) * len(real),
                   ours_sample_s=ours_sample_s, max_abs_diff=max(diff, diff_full),
                   sample_materials=len(pm))
        res["ratio_all"] = res["pymatgen_projected_s"] / res["ours_s"]
        res["ratio_sample"] = pm_s / ours_sample_s
        print(f"pymatgen: {pm_s:.1f} s on {len(sample)} systems, projected "
              f"{res['pymatgen_projected_s']:.0f} s; ratio {res['ratio_all']:.0f}x "
              f"(sample {res['ratio_sample']:.1f}x); max diff {res['max_abs_diff']:.1e}",
              flush=True)

        wall, line, rss = platform_cmd(url, "hull", "build", "--full")
        res.update(build_full_s=wall, build_full_line=line, build_full_rss_mb=rss)
        print(f"hull build --full: {wall:.1f} s ({line})", flush=True)
        insert_new(engine, data, args.incremental, args.seed)
        wall, line, _ = platform_cmd(url, "hull", "build")
        res.update(incremental_n=args.incremental, incremental_s=wall, incremental_line=line)
        print(f"incremental after {args.incremental} new: {wall:.1f} s ({line})", flush=True)
        res["load_after"] = load()
        print(json.dumps(res, indent=1, default=str))
        (out / "hull-results.json").write_text(json.dumps(res, indent=1, default=str))
    finally:
        from matplat.db.session import dispose_engines

        dispose_engines()
        if admin is not None:
            with admin.connect() as c:
                c.execute(text(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)"))
        if not args.keep and args.out is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
