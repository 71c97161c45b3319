"""Discovery throughput: candidates per second from parents to stored ranked candidates.

Builds a database from a synthetic dump (ingest, graphs, a small model), then runs discovery
in the most common chemical systems of the data and reports, per system and in total:
candidates planned and stored, seconds per stage (planning = reading parents, enumerating and
scoring species maps, dropping those already known; then per task: reading parents and
substituting, graphs, prediction, hull distances, writing) and candidates per second.

The baseline scores the same parents with pymatgen's own ``SubstitutionProbability`` in a
plain loop (``cond_prob_list`` per species map, the charge checked per map), on the same
parents and target systems in the same run: the ratio is the speed-up of the vectorised
enumeration.

    python bench/discover.py --entries 3000 --systems 8 [--db postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import tempfile
import time
from pathlib import Path

# bench/workers.py (a benchmark) would shadow the `workers` package: drop this folder from
# the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from click.testing import CliRunner  # noqa: E402
from sqlalchemy import text  # noqa: E402


def invoke(url: str, *args: str) -> str:
    from matplat.cli import cli

    r = CliRunner().invoke(cli, ["--db", url, "--device", "cpu", *args], catch_exceptions=False)
    if r.exit_code != 0:
        raise SystemExit(f"platform {' '.join(args)} failed:\n{r.output}")
    return r.output


def prepare(url: str, entries: int, seed: int, epochs: int, work: Path) -> None:
    from matplat.ingest.sample import write_sample_dump

    dump = work / f"d{entries}.sql.gz"
    write_sample_dump(dump, entries, seed)
    invoke(url, "db", "upgrade")
    invoke(url, "ingest", str(dump))
    invoke(url, "graphs", "build", "--workers", "1")
    invoke(url, "train", "--model-tag", "b", "--epochs", str(epochs), "--batch-size", "64")
    invoke(url, "hull", "build")


def common_systems(engine, k: int, size: int) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The ``k`` chemical systems of ``size`` elements with the most DFT materials."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT e.material_id, e.element FROM material_elements e JOIN dft_properties d "
            "ON d.material_id = e.material_id ORDER BY e.material_id")).all()
    per: dict[int, list[str]] = {}
    for mid, el in rows:
        per.setdefault(int(mid), []).append(str(el))
    count: dict[tuple[str, ...], int] = {}
    for els in per.values():
        if len(els) == size:
            key = tuple(sorted(els))
            count[key] = count.get(key, 0) + 1
    return [list(s) for s, _ in sorted(count.items(), key=lambda t: (-t[1], t[0]))[:k]]


def baseline_scores(parents, systems, min_probability: float) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Species maps kept by a plain pymatgen loop, and its seconds."""
    from pymatgen.analysis.structure_prediction.substitution_probability import (
        SubstitutionProbability,
    )
    from pymatgen.core import Element

    from ml.discovery.candidates import reduced_key
    from ml.discovery.substitution import oxidation_guess, substitution_table

    sp = SubstitutionProbability()
    table = substitution_table()
    t0 = time.perf_counter()
    kept = 0
    for system in systems:
        zs = sorted(Element(s).Z for s in system)
        species = {z: [s for s in sp.species if z == s.element.Z] for z in zs}
        for p in parents:
            if len(p.z) != len(zs):
                continue
            guess = oxidation_guess(reduced_key(p.z, p.counts))
            if guess is None:
                continue
            states = dict(zip((z for z, _ in reduced_key(p.z, p.counts)), guess, strict=True))
            old = [table.species[table.lookup(z, states[z])] for z in p.z
                   if table.lookup(z, states[z]) >= 0]
            if len(old) != len(p.z):
                continue
            for perm in itertools.permutations(zs):
                for new in itertools.product(*(species[z] for z in perm)):
                    if sum(n * s.oxi_state for n, s in zip(p.counts, new, strict=True)) != 0:
                        continue
                    if sp.cond_prob_list(list(new), old) >= min_probability:
                        kept += 1
    return kept, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--systems", type=int, default=8, help="binary systems to discover in")
    ap.add_argument("--ternary", type=int, default=2, help="ternary systems to discover in")
    ap.add_argument("--min-probability", type=float, default=1e-4)
    ap.add_argument("--db", help="database URL (default: a SQLite file in a temporary folder)")
    args = ap.parse_args()

    from matplat.db.session import get_engine
    from ml.discovery import substitution_table
    from workers import jobs
    from workers.discover import DiscoverRequest, TaskTimes, load_parents, plan_discover
    from workers.discover import run_candidates as run_items

    work = Path(tempfile.mkdtemp(prefix="bench-discover-"))
    url = args.db or f"sqlite:///{work / 'bench.db'}"
    t0 = time.perf_counter()
    prepare(url, args.entries, args.seed, args.epochs, work)
    print(f"prepared {args.entries} entries in {time.perf_counter() - t0:.0f} s ({url.split(':')[0]})")
    engine = get_engine(url)
    substitution_table()  # loaded once per process; not part of the per-run time
    systems = common_systems(engine, args.systems, 2) + common_systems(engine, args.ternary, 3)
    times = TaskTimes()
    plan_s = 0.0
    stored = planned = 0
    print(f"{'system':<12} {'planned':>8} {'stored':>7} {'seconds':>8} {'cand/s':>8}")
    t_all = time.perf_counter()
    for i, system in enumerate(systems):
        ts = time.perf_counter()
        try:
            plan, job_id = plan_discover(engine, DiscoverRequest(
                tag="b", elements=system, name=f"b{i}", min_probability=args.min_probability))
        except Exception as e:  # noqa: BLE001 - a system nothing reaches is reported, not fatal
            print(f"{'-'.join(system):<12} skipped: {e}")
            continue
        plan_s += time.perf_counter() - ts
        n = 0
        if job_id is not None:
            for task in jobs.get_tasks(engine, job_id):
                r = run_items(engine, run_id=plan.run_id, run=plan.run, mv_id=plan.mv_id,
                              items=task.params["candidates"], device="cpu", times=times)
                n += r["stored"]
            jobs.cancel(engine, job_id)
        dt = time.perf_counter() - ts
        stored += n
        planned += plan.planned
        print(f"{'-'.join(system):<12} {plan.planned:8d} {n:7d} {dt:8.2f} {n / dt if dt else 0:8.0f}")
    total = time.perf_counter() - t_all
    print(f"\ntotal: {stored} candidates stored of {planned} planned in {total:.2f} s: "
          f"{stored / total:.0f} candidates/s")
    stages = {"plan (parents, enumerate, dedup)": plan_s, "read + substitute + assemble":
              times.read, "graphs": times.graphs, "predict": times.predict,
              "hull distances": times.hull, "write": times.write}
    for name, s in stages.items():
        print(f"  {name:<34} {s:7.2f} s  {100 * s / total:5.1f} %")

    parents = load_parents(engine, {2, 3}, 40)
    t1 = time.perf_counter()
    from pymatgen.core import Element

    from ml.discovery import Target, generate_candidates

    targets = [Target(tuple(sorted(Element(s).Z for s in sy))) for sy in systems]
    ours = generate_candidates(parents, targets, substitution_table(),
                               min_probability=args.min_probability)
    ours_s = time.perf_counter() - t1
    kept, base_s = baseline_scores(parents, systems, args.min_probability)
    print(f"\nenumeration of {len(parents)} parents into {len(systems)} systems: vectorised "
          f"{ours_s:.3f} s ({len(ours)} candidates after dedup), pymatgen loop {base_s:.3f} s "
          f"({kept} charge-balanced ionic species maps kept): "
          f"{base_s / ours_s if ours_s else math.inf:.1f}x")


if __name__ == "__main__":
    main()
