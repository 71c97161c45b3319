"""Benchmark: structure files into PostgreSQL, and `platform predict --structures`.

Run:  python bench/structures.py [--cifs 20000] [--poscars 10000] [--seed 1] [--out DIR]
                                 [--skip-baseline] [--skip-predict] [--pg-url URL]

1. CIF ingest, end to end, on the same SYNTHETIC files in the same run (:func:`write_cifs`:
   random ordered crystals of 1–60 atoms in the cell, in P1, P-1, P2_1/c, Pnma, P4/mmm and
   Pm-3m, written as the asymmetric unit plus the space group's symmetry operations):

   * baseline: the straightforward loop, in one process: ``Structure.from_file`` per file,
     then one ORM object per row (material, structure, each site, each element, DFT row),
     ``session.flush()`` after each (one INSERT per row), one commit at the end;
   * ``platform ingest DIR`` as a subprocess (python start-up included) into a fresh
     PostgreSQL database at the head revision: parsing in a process pool (gemmi where it
     equals pymatgen), stored form and space group in the pool, binary COPY;
   * the same with ``MATPLAT_READER=pymatgen`` (pymatgen parses every file): what the
     gemmi path is worth;
   * where the time goes: single-process seconds per step on the first 1,000 files (read
     and parse, stored form and space group, chunk assembly, database write).

2. ``platform predict --model-tag bench --structures DIR --output FILE.csv`` on
   :func:`write_poscars` POSCARs (VASP 5, 1–60 atoms), against a model trained for one epoch
   on a 500-entry synthetic dump (its accuracy is irrelevant, its cost per graph is that of
   the default model): seconds from files to the written table, and the shares the command
   reports (parse, ingest, graphs, predict, write).

Databases are uniquely named and dropped at the end; ``uptime`` loads are printed with each
step (the machine is shared). Subprocesses run with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import hashlib  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))
sys.path.insert(0, str(ROOT))

# space group, crystal system, most asymmetric sites (so that the cell holds at most 60)
GROUPS = [(1, "triclinic", 60), (2, "triclinic", 30), (14, "monoclinic", 15),
          (62, "orthorhombic", 7), (123, "tetragonal", 3), (221, "cubic", 1)]
ELEMENTS = ["Li", "O", "Fe", "Mn", "Co", "Ni", "Ti", "Al", "Si", "Mg", "Na", "Cl", "S", "P",
            "Zn", "Cu", "Ca", "K", "Ba", "Sr"]
_OPS: dict[int, tuple[str, list[str]]] = {}


def _ops(number: int) -> tuple[str, list[str]]:
    if number not in _OPS:
        from pymatgen.symmetry.groups import SpaceGroup

        sg = SpaceGroup.from_int_number(number)
        _OPS[number] = (sg.symbol, [op.as_xyz_str() for op in sg.symmetry_ops])
    return _OPS[number]


def _cell(rng: np.random.Generator, system: str, natoms: int) -> tuple[float, ...]:
    v = 30.0 * natoms  # roomy: few random positions closer than 0.5 Å
    a = b = c = v ** (1 / 3)
    al = be = ga = 90.0
    if system in ("triclinic", "monoclinic", "orthorhombic"):
        a, b, c = (v ** (1 / 3)) * rng.uniform(0.85, 1.15, 3)
    if system == "triclinic":
        al, be, ga = rng.uniform(80, 100, 3)
    elif system == "monoclinic":
        be = rng.uniform(95, 110)
    elif system == "tetragonal":
        a = b = (v ** (1 / 3)) * rng.uniform(0.9, 1.1)
        c = v / a / a
    return a, b, c, al, be, ga


def write_cifs(folder: Path, n: int, seed: int = 1) -> list[Path]:
    """``n`` synthetic symmetrised CIFs (asymmetric unit + symmetry operations)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    i = attempt = 0
    while len(paths) < n:
        attempt += 1
        number, system, most = GROUPS[int(rng.integers(len(GROUPS)))]
        symbol, xyz = _ops(number)
        k = int(rng.integers(1, most + 1))
        a, b, c, al, be, ga = _cell(rng, system, k * len(xyz))
        els = rng.choice(ELEMENTS, size=min(3, k), replace=False)
        lines = [f"# synthetic structure {i} (matplat bench/structures.py, seed {seed})",
                 f"data_bench{i}", f"_symmetry_space_group_name_H-M '{symbol}'",
                 f"_symmetry_Int_Tables_number {number}", f"_cell_length_a {a:.6f}",
                 f"_cell_length_b {b:.6f}", f"_cell_length_c {c:.6f}",
                 f"_cell_angle_alpha {al:.4f}", f"_cell_angle_beta {be:.4f}",
                 f"_cell_angle_gamma {ga:.4f}", "loop_", "_symmetry_equiv_pos_as_xyz",
                 *[f"'{x}'" for x in xyz], "loop_", "_atom_site_label", "_atom_site_type_symbol",
                 "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z",
                 "_atom_site_occupancy"]
        for j in range(k):
            e = els[j % len(els)]
            x, y, z = rng.random(3)
            lines.append(f"{e}{j} {e} {x:.6f} {y:.6f} {z:.6f} 1")
        p = folder / f"bench{i:06d}.cif"
        p.write_text("\n".join(lines) + "\n")
        if _overlapping(p) and attempt < 20:
            continue  # random positions too close to a symmetry element: draw again
        paths.append(p)
        i += 1
        attempt = 0
    return paths


def _overlapping(path: Path) -> bool:
    from matplat.ingest.structures.cif_fast import read_cif_fast
    from matplat.ingest.structures.records import check

    items = read_cif_fast(path)
    return items is not None and check(*items[0][1]) is not None


def write_poscars(folder: Path, n: int, seed: int = 2) -> list[Path]:
    """``n`` synthetic VASP 5 POSCARs of 1–60 random atoms (one folder each, as VASP runs)."""
    from pymatgen.core import Lattice

    from matplat.ingest.structures.records import check

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        for _attempt in range(20):  # redraw random positions closer than 0.5 Å
            natoms = int(rng.integers(1, 61))
            a, b, c, al, be, ga = _cell(rng, "triclinic", natoms)
            lat = Lattice.from_parameters(a, b, c, al, be, ga).matrix
            frac = rng.random((natoms, 3))
            if check(lat, frac, np.ones(natoms, dtype=np.int16)) is None:
                break
        els = list(rng.choice(ELEMENTS, size=min(3, natoms), replace=False))
        counts = np.bincount(np.arange(natoms) % len(els), minlength=len(els))
        body = [f"synthetic structure {i} (matplat bench/structures.py)", "1.0",
                *[" ".join(f"{v:.10f}" for v in row) for row in lat], " ".join(els),
                " ".join(str(int(x)) for x in counts), "Direct",
                *[" ".join(f"{v:.10f}" for v in row) for row in frac]]
        d = folder / f"run{i:06d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "POSCAR").write_text("\n".join(body) + "\n")
        paths.append(d / "POSCAR")
    return paths


# ------------------------------------------------------------------------------ helpers
def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load()}] {msg}", flush=True)


class PgDatabase:
    def __init__(self, base: str) -> None:
        from sqlalchemy import create_engine

        self.base = base.rstrip("/")
        self.name = f"bench_structures_{uuid.uuid4().hex[:10]}"
        self.url = f"{self.base}/{self.name}"
        self._admin = create_engine(f"{self.base}/postgres", isolation_level="AUTOCOMMIT")
        with self._admin.connect() as c:
            c.exec_driver_sql(f"CREATE DATABASE {self.name}")
        platform("db", "upgrade", url=self.url)

    def drop(self) -> None:
        from matplat.db.session import dispose_engines

        dispose_engines()
        with self._admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        self._admin.dispose()


def platform(*args: str, url: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run ``platform --db URL ARGS`` as a subprocess; (wall seconds, stdout+stderr)."""
    e = {**os.environ, "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}", **(env or {})}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "matplat", "--db", url, "--device", "cpu", *args],
                       capture_output=True, text=True, env=e, cwd=ROOT)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"platform {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return dt, r.stdout + r.stderr


def baseline_loop(url: str, files: list[Path]) -> float:
    """The straightforward loop (see the module docstring); seconds."""
    from pymatgen.core import Structure
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from matplat.db.models import DftProperty, Material, MaterialElement, Site
    from matplat.db.models import Structure as StructureRow

    engine = create_engine(url)
    t = time.perf_counter()
    with Session(engine) as s, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mid, path in enumerate(files, start=1):
            st = Structure.from_file(path)
            comp = st.composition

            def add(obj: object, session: Session = s) -> None:
                session.add(obj)
                session.flush()  # one INSERT per row

            add(Material(id=mid, source="baseline", source_id=path.name,
                         formula=comp.reduced_formula, composition=comp.formula,
                         natoms=len(st), content_hash=hashlib.sha256(path.read_bytes()).hexdigest()))
            add(StructureRow(id=mid, material_id=mid, natoms=len(st), volume=st.volume,
                             lattice=st.lattice.matrix.astype("<f8").tobytes(),
                             frac_coords=st.frac_coords.astype("<f8").tobytes(),
                             atomic_numbers=np.array([x.specie.Z for x in st], "<i2").tobytes()))
            for i, site in enumerate(st):
                add(Site(structure_id=mid, site_index=i, element=site.specie.symbol,
                         atomic_number=site.specie.Z, x=float(site.frac_coords[0]),
                         y=float(site.frac_coords[1]), z=float(site.frac_coords[2])))
            for el, amount in comp.items():
                add(MaterialElement(material_id=mid, element=el.symbol, count=int(amount)))
            add(DftProperty(material_id=mid, volume_per_atom=st.volume / len(st),
                            selection_rule="baseline"))
        s.commit()
    dt = time.perf_counter() - t
    engine.dispose()
    return dt


def breakdown(url: str, files: list[Path], pymatgen: bool = True) -> dict[str, float]:
    """Single-process seconds per step of our path on ``files``."""
    from sqlalchemy import create_engine

    from matplat.ingest.formulas import Formulas
    from matplat.ingest.loader import load_chunks
    from matplat.ingest.structures.chunks import FILE_RULE, FileChunkWriter, build_chunk
    from matplat.ingest.structures.files import file_sha256
    from matplat.ingest.structures.ingest import _prepare
    from matplat.ingest.structures.readers import parse_file

    out: dict[str, float] = {}
    t = time.perf_counter()
    recs = [(r, file_sha256(f)) for f in files for r in parse_file(f, f.name, "cif")]
    out["read + parse (gemmi)"] = time.perf_counter() - t
    t = time.perf_counter()
    ok = [(_prepare(r), s) for r, s in recs if r.ok]
    out["stored form + space group"] = time.perf_counter() - t
    t = time.perf_counter()
    chunks = [build_chunk([r for r, _ in ok[i:i + 2000]], [s for _, s in ok[i:i + 2000]],
                          Formulas()) for i in range(0, len(ok), 2000)]
    out["chunk assembly (formulas, hashes)"] = time.perf_counter() - t
    engine = create_engine(url)
    t = time.perf_counter()
    load_chunks(engine, chunks, rule=FILE_RULE, source_name="breakdown",
                source_kind="structure-files",
                make_writer=lambda c, r, run: FileChunkWriter(c, r, run, source="breakdown"))
    out["database write (COPY, one transaction)"] = time.perf_counter() - t
    engine.dispose()
    if pymatgen:
        os.environ["MATPLAT_READER"] = "pymatgen"
        t = time.perf_counter()
        for f in files:
            parse_file(f, f.name, "cif")
        out["(read + parse with pymatgen instead)"] = time.perf_counter() - t
        del os.environ["MATPLAT_READER"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cifs", type=int, default=20_000)
    ap.add_argument("--poscars", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-predict", action="store_true")
    ap.add_argument("--skip-pymatgen", action="store_true",
                    help="skip the run with MATPLAT_READER=pymatgen")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    a = ap.parse_args()
    work = a.out or Path(tempfile.mkdtemp(prefix="bench-structures-"))
    print(f"# bench/structures.py on {os.cpu_count()} CPUs, load {load()}, {time.ctime()}")
    try:
        rows = []
        if a.cifs:
            log(f"writing {a.cifs} CIFs")
            cifs = write_cifs(work / "cifs", a.cifs, a.seed)
            atoms = None
            paths = [("platform ingest (gemmi + pool + COPY)", {}),
                     ("platform ingest, pymatgen parser", {"MATPLAT_READER": "pymatgen"})]
            for name, env in paths[: 1 if a.skip_pymatgen else 2]:
                db = PgDatabase(a.pg_url)
                try:
                    dt, out = platform("ingest", str(work / "cifs"), "--source", "bench",
                                       url=db.url, env=env)
                    added = int(re.search(r"materials added\s+(\d+)", out).group(1))
                    rejected = int(re.search(r"structures rejected\s+(\d+)", out).group(1))
                    log(f"{name}: {dt:.1f} s, {added} added, {rejected} rejected")
                    rows.append((name, dt, added, rejected))
                    if atoms is None:
                        from sqlalchemy import create_engine

                        e = create_engine(db.url)
                        with e.connect() as c:
                            atoms = c.exec_driver_sql("SELECT avg(natoms) FROM materials").scalar()
                        e.dispose()
                finally:
                    db.drop()
            if not a.skip_baseline:
                db = PgDatabase(a.pg_url)
                try:
                    dt = baseline_loop(db.url, cifs)
                    log(f"baseline loop: {dt:.1f} s")
                    rows.append(("baseline: Structure.from_file + ORM INSERT per row", dt,
                                 len(cifs), 0))
                finally:
                    db.drop()
            print(f"\n{a.cifs} CIFs, {atoms:.1f} atoms per accepted cell on average")
            base = next((r[1] for r in rows if r[0].startswith("baseline")), None)
            print("| path | seconds | files/s | materials | rejected | baseline / path |")
            print("|---|---|---|---|---|---|")
            for name, dt, added, rej in rows:
                ratio = f"{base / dt:.1f}x" if base else "-"
                print(f"| {name} | {dt:.1f} | {a.cifs / dt:.0f} | {added} | {rej} | {ratio} |")
            db = PgDatabase(a.pg_url)
            try:
                parts = breakdown(db.url, cifs[:1000], pymatgen=not a.skip_pymatgen)
            finally:
                db.drop()
            print("\nwhere the time goes (one process, first 1,000 files):")
            for k, v in parts.items():
                print(f"  {k}: {v:.2f} s ({v:.3f} ms/file x 1000)")
        if a.poscars and not a.skip_predict:
            log(f"writing {a.poscars} POSCARs")
            write_poscars(work / "poscars", a.poscars, a.seed + 1)
            db = PgDatabase(a.pg_url)
            try:
                from matplat.ingest.sample import write_sample_dump

                dump = work / "train.sql.gz"
                write_sample_dump(dump, 500, a.seed)
                platform("ingest", str(dump), url=db.url)
                platform("graphs", "build", url=db.url)
                platform("train", "--model-tag", "bench", "--epochs", "1", url=db.url)
                log("model trained; predicting")
                dt, out = platform("predict", "--model-tag", "bench", "--structures",
                                   str(work / "poscars"), "--source", "bench-poscars",
                                   "--output", str(work / "predictions.csv"), url=db.url)
                line = [x for x in out.splitlines() if "structures predicted" in x][-1]
                print(f"\npredict --structures, {a.poscars} POSCARs: {dt:.1f} s end to end "
                      f"(subprocess); the command says: {line}")
            finally:
                db.drop()
    finally:
        if a.out is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"# done, load {load()}")


if __name__ == "__main__":
    main()
