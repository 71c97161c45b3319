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

``--rediscovery`` (needs the learnable synthetic data, ``ml.synthetic_truth``): ingest a dump,
build its hulls, delete the stable compounds of the ``--systems`` chemical systems with the
most of them (as if the dump had never held them), rebuild the hulls, train, discover in those
systems, and score every candidate with the truth function against the hull known at
discovery time (true hull distance ≤ 0: a real discovery). Reported: the share of held-out
compounds regenerated (same formula and structure type), the share of those ranked stable
(predicted hull distance ≤ 0), and the precision and discovery acceleration factor (precision /
prevalence) of the candidates predicted stable, against a baseline that takes as many
candidates by substitution probability alone.

    python bench/discover.py --entries 3000 --systems 8 [--db postgresql+psycopg://…]
    python bench/discover.py --rediscovery --entries 6000 --systems 10 --epochs 40
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


def rediscovery(args: argparse.Namespace) -> None:
    try:
        from ml.synthetic_truth import synthetic_truths
    except ImportError:
        raise SystemExit("rediscovery needs ml.synthetic_truth (the learnable synthetic "
                         "data)") from None
    import numpy as np

    from matplat.db.session import get_engine
    from matplat.ingest.sample import write_sample_dump
    from workers.discover import DiscoverRequest, discover_inprocess, type_key
    from workers.discover_hull import fractions_of, load_hull

    work = Path(tempfile.mkdtemp(prefix="bench-rediscover-"))
    url = args.db or f"sqlite:///{work / 'r.db'}"
    dump = work / "d.sql.gz"
    write_sample_dump(dump, args.entries, args.seed)
    invoke(url, "db", "upgrade")
    invoke(url, "ingest", str(dump))
    invoke(url, "hull", "build")
    engine = get_engine(url)
    with engine.connect() as conn:
        stable = conn.execute(text(
            "SELECT h.material_id, h.chemical_system, m.formula, m.prototype, m.spacegroup, "
            "m.natoms FROM material_hulls h JOIN materials m ON m.id = h.material_id "
            "WHERE h.is_stable = :t ORDER BY h.material_id"), {"t": True}).all()
        counts = {int(r[0]): [int(c) for (c,) in conn.execute(text(
            "SELECT count FROM material_elements WHERE material_id = :m"), {"m": int(r[0])})]
            for r in stable}
    per: dict[str, list] = {}
    for r in stable:
        if r.chemical_system.count("-") in (1, 2):
            per.setdefault(r.chemical_system, []).append(r)
    systems = [s for s, _ in sorted(per.items(), key=lambda t: (-len(t[1]), t[0]))][:args.systems]
    held = [r for s in systems for r in per[s]]

    def key(r) -> tuple[str, str]:  # type: ignore[no-untyped-def]
        c = counts[int(r.material_id)]
        g = math.gcd(*c)
        return r.formula, type_key(r.prototype, r.spacegroup, [x // g for x in c], r.natoms)

    held_keys = {key(r) for r in held}
    with engine.begin() as conn:
        for r in held:
            conn.execute(text("DELETE FROM materials WHERE id = :m"), {"m": int(r.material_id)})
    print(f"held out {len(held)} stable compounds of {len(systems)} systems: {', '.join(systems)}")
    invoke(url, "hull", "build")
    invoke(url, "graphs", "build", "--workers", "1")
    t0 = time.perf_counter()
    invoke(url, "train", "--model-tag", "r", "--epochs", str(args.epochs), "--batch-size", "64")
    print(f"trained in {time.perf_counter() - t0:.0f} s")
    frames = []
    for i, system in enumerate(systems):
        try:
            frames.append(discover_inprocess(engine, DiscoverRequest(
                tag="r", elements=system.split("-"), name=f"r{i}", max_atoms=60,
                min_probability=args.min_probability), device="cpu"))
        except Exception as e:  # noqa: BLE001 - a system nothing reaches is reported
            print(f"  {system}: {e}")
    import pandas as pd

    df = pd.concat(frames, ignore_index=True)
    with engine.connect() as conn:
        geo = {int(m): (np.frombuffer(a, "<f8").reshape(3, 3), np.frombuffer(b, "<f8").reshape(
            -1, 3), np.frombuffer(c, "<i2").astype(np.int64), p, sg, n)
            for m, a, b, c, p, sg, n in conn.execute(text(
                "SELECT s.material_id, s.lattice, s.frac_coords, s.atomic_numbers, m.prototype, "
                "m.spacegroup, m.natoms FROM structures s JOIN materials m ON m.id = "
                "s.material_id WHERE m.source LIKE 'candidates:%'"))}
    mids = df["material_id"].astype(int).tolist()
    truth = synthetic_truths([geo[m][:3] for m in mids])["formation_energy"]
    true_dist = np.full(len(mids), np.nan)
    hulls: dict[tuple[int, ...], object] = {}
    keys = []
    for i, (m, formula) in enumerate(zip(mids, df["formula"], strict=True)):
        _lat, _frac, z, proto, sg, natoms = geo[m]
        values, n = np.unique(z, return_counts=True)
        g = math.gcd(*n.tolist())
        keys.append((formula, type_key(proto, sg, [c // g for c in n.tolist()], natoms)))
        system = tuple(values.tolist())
        if system not in hulls:
            hulls[system] = load_hull(engine, system)
        hull = hulls[system]
        if hull is not None:
            d, _ = hull.distances(fractions_of(system, values, n)[None, :],  # type: ignore[attr-defined]
                                  np.array([truth[i]]))
            true_dist[i] = d[0]
    df["true_e_above_hull"] = true_dist
    df["key"] = keys
    regen = df[df["key"].isin(held_keys)]
    real = df["true_e_above_hull"] <= 0
    pred = df["e_above_hull"] <= 0
    prevalence = real.mean()
    k = int(pred.sum())
    top = df.sort_values("probability", ascending=False).head(k)
    prec_m = (real & pred).sum() / k if k else math.nan
    prec_b = (top["true_e_above_hull"] <= 0).mean() if k else math.nan
    mae = (df["e_above_hull"] - df["true_e_above_hull"]).abs().mean()
    print(f"candidates: {len(df)}; truly stable against the known hull: {int(real.sum())} "
          f"(prevalence {prevalence:.3f}); hull-distance MAE {mae:.3f} eV/atom")
    print(f"held-out compounds regenerated: {len(regen)}/{len(held_keys)} "
          f"({len(regen) / max(1, len(held_keys)):.2f}); of those ranked stable (pred <= 0): "
          f"{int((regen['e_above_hull'] <= 0).sum())}; in the baseline's top {k}: "
          f"{int(regen['material_id'].isin(top['material_id']).sum())}")
    print(f"{'ranking':<34} {'selected':>8} {'TP':>5} {'precision':>9} {'DAF':>6}")
    print(f"{'model: predicted hull dist <= 0':<34} {k:8d} {int((real & pred).sum()):5d} "
          f"{prec_m:9.3f} {prec_m / prevalence if prevalence else math.nan:6.2f}")
    print(f"{'baseline: top by probability':<34} {k:8d} {int((top['true_e_above_hull'] <= 0).sum()):5d} "
          f"{prec_b:9.3f} {prec_b / prevalence if prevalence else math.nan:6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rediscovery", action="store_true", help="the rediscovery study")
    ap.add_argument("--entries", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--systems", type=int, default=8, help="binary systems to discover in")
    ap.add_argument("--ternary", type=int, default=2, help="ternary systems to discover in")
    ap.add_argument("--min-probability", type=float, default=1e-4)
    ap.add_argument("--db", help="database URL (default: a SQLite file in a temporary folder)")
    args = ap.parse_args()
    if args.rediscovery:
        rediscovery(args)
        return

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

    # One run over every composition the runs above made: one planning pass, many tasks.
    with engine.connect() as conn:
        formulas = sorted({r[0] for r in conn.execute(text(
            "SELECT m.formula FROM materials m WHERE m.source LIKE 'candidates:b%'"))})
    one = TaskTimes()
    ts = time.perf_counter()
    cpu0 = time.process_time()
    plan, job_id = plan_discover(engine, DiscoverRequest(
        tag="b", compositions=formulas, name="all", min_probability=args.min_probability))
    plan_one = time.perf_counter() - ts
    n = 0
    if job_id is not None:
        for task in jobs.get_tasks(engine, job_id):
            n += run_items(engine, run_id=plan.run_id, run=plan.run, mv_id=plan.mv_id,
                           items=task.params["candidates"], device="cpu", times=one)["stored"]
        jobs.cancel(engine, job_id)
    dt = time.perf_counter() - ts
    cpu = time.process_time() - cpu0
    print(f"\none run, {len(formulas)} compositions: {n} candidates stored in {dt:.2f} s: "
          f"{n / dt:.0f} candidates/s; {cpu:.2f} CPU s in this process: {n / cpu:.0f} "
          "candidates per CPU second (load-independent)")
    stages = {"plan (parents, enumerate, dedup)": plan_one, "read + substitute + assemble":
              one.read, "graphs": one.graphs, "predict": one.predict,
              "hull distances": one.hull, "write": one.write}
    for name, sec in stages.items():
        print(f"  {name:<34} {sec:7.2f} s  {100 * sec / dt:5.1f} %")

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
