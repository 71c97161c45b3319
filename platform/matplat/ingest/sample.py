"""Synthetic OQMD-format dumps: qmpy's schema, mysqldump's layout, made-up data.

``write_sample_dump("qmdb_synthetic.sql.gz", entries=10_000, seed=1)`` writes a dump that
reads and restores like one made by MySQL 5.7's ``mysqldump`` of qmpy's database: header
comment (saying clearly that the data is SYNTHETIC), ``SET`` and conditional comments,
``DROP``/``CREATE TABLE`` from the qmdb DDL, ``LOCK TABLES``, extended INSERTs of ~1 MB on
one line (or one INSERT per row), tables in alphabetical order, a trigger in a
``DELIMITER ;;`` block, and the closing ``-- Dump completed`` comment.

Contents, per entry: an input structure from a prototype (rocksalt, CsCl, fluorite,
perovskite, wurtzite, zincblende, spinel, CdI2-layered, fcc/bcc/hcp elements, supercells)
or a random cell (1–60 atoms), with charge-balanced chemistry; calculations of the modern
(``relaxation`` → ``static``) or legacy (``coarse_relax`` → ``fine_relax`` → ``standard``)
workflow, failed ``static_0`` attempts, unconverged runs (``converged`` 0 or NULL), NULL
band gaps and moments, negative moments; formation energies under fits ``standard`` and
``nothing`` in varying order (so that the first row is not always the standard fit), a few
NULL or ≥ 5 eV/atom; duplicates (``duplicate_of_id`` pointing at an earlier entry), a few
entries with NULL ``duplicate_of_id``; and unneeded tables (``dos`` with long text,
``meta_data`` with escapes) that a reader must skip.

The DFT values have a known truth: every relaxed output of an entry is one "relaxed" cell
(its input, strained), scaled to its synthetic volume, and the formation energy (fit
``standard``), band gap and moment of every calculation are ``ml.synthetic_truth`` of that
cell plus seeded Gaussian noise (formulas and noise floors there). Duplicates share their
original's relaxed cell and values. So a model can learn them: with the ``cgnn`` rule,
material values are truth + noise except for ~2% whose first formation-energy row is the
``nothing`` fit (off by N(0.3, 0.2) eV/atom) and the rare NULL rows; the 1% of entries
with values ≥ 5 eV/atom have them in every row, so the rule drops them (unless a
duplicate has a sound value, which then wins as the lowest).

The generator streams: each block of entries is generated once (numpy, seeded by
``(seed, block)``, so the output is a pure function of ``seed`` and ``entries``), its rows
are appended to one spool file per table, and the spools are concatenated in table order at
the end (spool space ≈ the dump's size, in the output's directory). gzip output is
compressed in a background thread with a fixed header time, so it is byte-reproducible.
"""

from __future__ import annotations

import gzip
import math
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matplat.ingest.qmdb import mysqldump_create_table
from matplat.ingest.sample_chem import SynthStructure, make_structure

__all__ = ["SampleSummary", "write_sample_dump", "SAMPLE_TABLES"]

SAMPLE_TABLES = (
    "atoms", "calculations", "compositions", "dos", "entries", "formation_energies",
    "meta_data", "spacegroups", "structures",
)  # fmt: skip
_BLOCK = 2000  # entries generated per block
_STATEMENT_BYTES = 1_000_000  # extended INSERT length, like mysqldump's net_buffer_length
_FINAL_LABELS = ("static", "standard", "static_1")  # calculations that carry formation energies
#: Share of calculations with both fits whose first formation-energy row is the ``nothing``
#: fit (the ``cgnn`` rule takes the first row, whatever its fit): small, because that value
#: is off the truth by N(0.3, 0.2) eV/atom; about 2% of materials get it.
_NOTHING_FIRST = 0.05
_HM = {1: "P1", 164: "P-3m1", 186: "P6_3mc", 194: "P6_3/mmc", 216: "F-43m", 221: "Pm-3m",
       225: "Fm-3m", 227: "Fd-3m", 229: "Im-3m"}  # fmt: skip


@dataclass
class SampleSummary:
    """What :func:`write_sample_dump` wrote."""

    path: Path
    entries: int
    calculations: int
    structures: int
    atoms: int
    formation_energies: int
    bytes_written: int
    seconds: float

    @property
    def entries_per_second(self) -> float:
        return self.entries / self.seconds if self.seconds > 0 else float("inf")


# -- SQL text helpers -------------------------------------------------------------------
_SQL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\0": "\\0",
                              "\x1a": "\\Z", '"': '\\"'})  # fmt: skip
_DOT0 = re.compile(r"\.0(?=,|$)")
_EXP = re.compile(r"e\+?(-?)0*(?=\d)")


def _q(s: str | None) -> str:
    """A quoted, escaped SQL string literal (or NULL), as mysqldump writes it."""
    return "NULL" if s is None else "'" + s.translate(_SQL_ESCAPES) + "'"


def _floats(values: list[float | None]) -> list[str]:
    """Doubles as MySQL prints them: shortest round-trip digits, ``5`` not ``5.0``,
    ``1e-5`` not ``1e-05``; None and NaN become NULL."""
    if not values:
        return []
    s = ",".join(map(repr, values)).replace("None", "NULL").replace("nan", "NULL")
    return _EXP.sub(r"e\1", _DOT0.sub("", s)).split(",")


def _ints(values: list[int | None]) -> list[str]:
    return ["NULL" if v is None else str(v) for v in values]


class _Spool:
    """Rows of one table, written as INSERT statements to a temporary file."""

    def __init__(self, table: str, directory: Path, extended: bool) -> None:
        self.table = table
        self.path = directory / f"{table}.sql"
        self.fh = open(self.path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        self.extended = extended
        self.pending: list[str] = []
        self.size = 0
        self.head = f"INSERT INTO `{table}` VALUES "
        self.rows = 0
        self._owned = True

    def redirect(self, sink: Any) -> None:
        """Write statements to ``sink`` (the output) instead of the spool file."""
        self.fh.close()
        self.path.unlink()
        self.fh = sink
        self._owned = False

    def add(self, rows: list[str]) -> None:
        self.rows += len(rows)
        if not self.extended:
            self.fh.write("".join(f"{self.head}{r};\n" for r in rows))
            return
        for r in rows:
            self.pending.append(r)
            self.size += len(r) + 1
            if self.size >= _STATEMENT_BYTES:
                self.flush()

    def flush(self) -> None:
        if self.pending:
            self.fh.write(self.head + ",".join(self.pending) + ";\n")
            self.pending, self.size = [], 0

    def close(self) -> None:
        self.flush()
        if self._owned:
            self.fh.close()


class _ThreadedGzip:
    """A text sink that gzips in a background thread (zlib releases the GIL)."""

    def __init__(self, path: Path, level: int) -> None:
        self._raw = open(path, "wb")  # noqa: SIM115
        self._gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=level
        )
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._err: BaseException | None = None
        self._t = threading.Thread(target=self._run, name="matplat-sample-gzip", daemon=True)
        self._t.start()

    def _run(self) -> None:
        try:
            while (data := self._q.get()) is not None:
                self._gz.write(data)
        except BaseException as exc:  # reported by write/close
            self._err = exc
            while self._q.get() is not None:
                pass

    def write(self, text: str) -> None:
        if self._err:
            raise self._err
        self._q.put(text.encode("utf-8"))

    def close(self) -> None:
        self._q.put(None)
        self._t.join()
        self._gz.close()
        self._raw.close()
        if self._err:
            raise self._err


# -- generation ---------------------------------------------------------------------------
@dataclass
class _Ids:
    structure: int = 0
    calculation: int = 0
    formation_energy: int = 0
    atom: int = 0
    dos: int = 0
    meta: int = 0


def _formula(species: list[str]) -> tuple[str, str, str, int]:
    """(composition_id like 'Fe2 O3', generic like 'A2B3', element list 'Fe_O_', ntypes)."""
    counts: dict[str, int] = {}
    for s in species:
        counts[s] = counts.get(s, 0) + 1
    g = 0
    for c in counts.values():
        g = math.gcd(g, c)
    elems = sorted(counts)
    formula = " ".join(f"{e}{counts[e] // g}" for e in elems)
    amounts = sorted((counts[e] // g for e in elems), reverse=True)
    generic = "".join(f"{chr(65 + i)}{'' if n == 1 else n}" for i, n in enumerate(amounts))
    return formula, generic, "".join(f"{e}_" for e in elems), len(elems)


class _Generator:
    def __init__(self, spools: dict[str, _Spool], seed: int) -> None:
        self.spools = spools
        self.seed = seed
        self.ids = _Ids()
        self.compositions: dict[str, str] = {}
        # Long text for the unneeded tables (dos.data, meta_data.value), made once and
        # sliced at line boundaries: formatting it afresh per row would dominate the run.
        rng = np.random.default_rng([seed, 1 << 30])
        lines = [
            " ".join(f"{v:.5f}" for v in rng.normal(0.0, 1.0, 12).tolist())
            + ('; it\'s a "test" \\ tab\there ),(; Ångström ünïcödé' if i % 7 == 0 else "")
            for i in range(2000)
        ]
        escaped = [_q(line)[1:-1] + "\\n" for line in lines]
        self._text = "".join(escaped)
        self._text_starts = np.cumsum([0] + [len(e) for e in escaped])

    def _long_text(self, rng: np.random.Generator, lo: int, hi: int) -> str:
        """A quoted literal of lo..hi lines of the precomputed text (escapes intact)."""
        n = int(rng.integers(lo, hi))
        i = int(rng.integers(0, len(self._text_starts) - n))
        return "'" + self._text[self._text_starts[i] : self._text_starts[i + n]] + "'"

    def block(self, b: int, first: int, count: int) -> None:
        rng = np.random.default_rng([self.seed, b])
        rows: dict[str, list[str]] = {t: [] for t in SAMPLE_TABLES}
        atoms: dict[str, list[Any]] = {k: [] for k in ("sid", "el", "x", "y", "z", "f", "m")}
        struct_cols: dict[str, list[Any]] = {k: [] for k in ("head", "lat", "vol", "tail")}
        block_entries: list[tuple[int, SynthStructure, int]] = []
        plan: list[tuple[int, int | None, SynthStructure, int]] = []
        finals: list[tuple[np.ndarray, np.ndarray, list[str]]] = []
        for k in range(count):
            eid = first + k + 1
            dup_of: int | None = eid
            u = rng.random()
            if block_entries and u < 0.1:  # a duplicate: its own input, the original's result
                dup_of, src, final = block_entries[int(rng.integers(len(block_entries)))]
                base = SynthStructure(
                    src.prototype, src.spacegroup, src.lattice * rng.uniform(0.98, 1.02),
                    src.frac.copy(), list(src.species), src.ionic,
                )  # fmt: skip
            else:
                base = make_structure(rng)
                final = len(finals)
                finals.append(_relaxed_geometry(rng, base))
                if u > 0.99:
                    dup_of = None
                else:
                    block_entries.append((eid, base, final))
            plan.append((eid, dup_of, base, final))
        props = _dft_values(rng, finals)
        for eid, dup_of, base, final in plan:
            lat, frac, _ = finals[final]
            values = {p: float(v[final]) for p, v in props.items()}
            self._entry(rng, eid, dup_of, base, (lat, frac), values, rows, atoms, struct_cols)
        self._emit_structures(rows, struct_cols)
        self._emit_atoms(rows, atoms)
        for t in SAMPLE_TABLES:
            if rows[t]:
                self.spools[t].add(rows[t])

    def _structure(
        self,
        rng: np.random.Generator,
        eid: int,
        label: str,
        s: SynthStructure,
        relaxed: tuple[np.ndarray, np.ndarray] | None,
        formula: str,
        energy_pa: float | None,
        magmom: float | None,
        atoms: dict[str, list[Any]],
        cols: dict[str, list[Any]],
    ) -> tuple[int, np.ndarray]:
        self.ids.structure += 1
        sid = self.ids.structure
        n = len(s.species)
        if relaxed is not None:
            lat, frac = relaxed
        else:
            lat = np.round(s.lattice, 6)
            frac = np.round(s.frac, 6)
        (a1, a2, a3), (b1, b2, b3), (c1, c2, c3) = lat.tolist()
        vol = abs(a1 * (b2 * c3 - b3 * c2) - a2 * (b1 * c3 - b3 * c1) + a3 * (b1 * c2 - b2 * c1))
        sg = None if rng.random() < 0.03 else s.spacegroup
        proto = _q(s.prototype) if s.prototype else "NULL"
        ntypes = len(set(s.species))
        cols["head"].append(
            f"({sid},{eid},NULL,{_q(label)},{proto},{int(relaxed is None)},{_q(formula)},{n},{n},{ntypes},"
        )
        cols["lat"].extend(lat.ravel().tolist())
        stress = rng.normal(0.0, 2.0, 6).tolist() if relaxed is not None else [0.0] * 6
        vol_col: float | None = None if rng.random() < 0.05 else vol
        energy = None if energy_pa is None else energy_pa * n
        cols["vol"].extend([vol_col, None if vol_col is None else vol_col / n, *stress])
        cols["tail"].append(
            (sg, [energy, energy_pa, magmom, None if magmom is None else magmom / n, None, None])
        )
        atoms["sid"].extend([sid] * n)
        atoms["el"].extend(s.species)
        atoms["x"].extend(frac[:, 0].tolist())
        atoms["y"].extend(frac[:, 1].tolist())
        atoms["z"].extend(frac[:, 2].tolist())
        if relaxed is not None:
            atoms["f"].extend(rng.normal(0.0, 0.02, n * 3).tolist())
            mag = [None] * n if magmom is None else rng.normal(magmom / n, 0.1, n).tolist()
            atoms["m"].extend(mag)
        else:
            atoms["f"].extend([None] * (3 * n))
            atoms["m"].extend([None] * n)
        return sid, lat

    def _entry(
        self,
        rng: np.random.Generator,
        eid: int,
        dup_of: int | None,
        s: SynthStructure,
        final: tuple[np.ndarray, np.ndarray],
        values: dict[str, float],
        rows: dict[str, list[str]],
        atoms: dict[str, list[Any]],
        cols: dict[str, list[Any]],
    ) -> None:
        """One entry: its input structure, calculations (every relaxed output is ``final``)
        and formation energies; ``values`` are the entry's DFT values (truth + noise)."""
        formula, generic, elist, ntypes = _formula(s.species)
        n = len(s.species)
        path = f"/home/oqmd/libraries/synthetic/{eid}"
        rows["entries"].append(
            f"({eid},{_q(path)},{_q(s.prototype or 'random')},{_ints([dup_of])[0]},{ntypes},{n},"
            f"{_q(formula)},NULL,{_q(s.prototype) if s.prototype else 'NULL'})"
        )
        if formula not in self.compositions:  # written at the end, in primary-key order
            self.compositions[formula] = (
                f"({_q(formula)},{_q(generic)},{_q(elist)},{ntypes},NULL,NULL,NULL)"
            )
        moment = values["magnetization"] * n * (1.0 if rng.random() < 0.7 else -1.0)
        gap = values["band_gap"]
        unphysical = rng.random() < 0.01  # formation energies >= 5 eV/atom
        energy_pa = float(rng.normal(-5.0, 1.5))
        input_id, _ = self._structure(rng, eid, "input", s, None, formula, None, None, atoms, cols)
        u = rng.random()
        if u < 0.62:
            plan = [("relaxation", 1)]
            if rng.random() < 0.08:
                plan.append(("static_0", None if rng.random() < 0.5 else 0))
            plan.append(("static", 0 if rng.random() < 0.04 else 1))
        elif u < 0.92:
            plan = [
                ("coarse_relax", 1),
                ("fine_relax", 1),
                ("standard", 0 if rng.random() < 0.03 else 1),
            ]
            if rng.random() < 0.06:
                plan.append(("static", 1))
        elif u < 0.97:
            plan = [("relaxation", 1 if rng.random() < 0.5 else None)]
        else:
            plan = [("static", 1), ("static_1", 1)]  # a re-run: two statics-like labels
        prev = input_id
        for label, converged in plan:
            self.ids.calculation += 1
            cid = self.ids.calculation
            failed = label.startswith("static_") and label != "static_1"
            # NULL moments of non-magnetic results (read as 0 by the cgnn rule); NULL band
            # gaps only where they cannot hide an insulator's gap from a selected calculation
            magmom: float | None = moment
            if moment == 0.0:
                magmom = None if rng.random() < 0.6 else 0.0
            band_gap: float | None = gap
            if (gap == 0.0 or label not in _FINAL_LABELS) and rng.random() < 0.05:
                band_gap = None
            out_id: int | None = None
            if not failed:
                out_id, _ = self._structure(
                    rng, eid, label, s, final, formula, energy_pa, magmom, atoms, cols
                )
            dos_id: int | None = None
            if label == "static" and rng.random() < 0.05:
                self.ids.dos += 1
                dos_id = self.ids.dos
                rows["dos"].append(
                    f"({dos_id},{eid},{_floats([float(rng.normal(3, 1))])[0]},"
                    f"{_floats([band_gap])[0]},{self._long_text(rng, 40, 160)},"
                    f"{_q(path + '/static/DOSCAR.gz')})"
                )
            settings = (
                f"{{'encut': 520, 'prec': 'Accurate', 'ispin': {2 if magmom is not None else 1}, "
                f"'potcar': \"PAW_PBE\", 'kpoints': '{int(rng.integers(4, 12))}x auto'}}"
            )
            nums = _floats(
                [energy_pa * n, energy_pa, magmom, None if magmom is None else magmom / n, band_gap,
                 float(rng.integers(10, 400)), float(rng.uniform(10, 5e4))]
            )  # fmt: skip
            conv = "NULL" if converged is None else str(converged)
            rows["calculations"].append(
                f"({cid},{_q(label)},{_q(label)},{eid},{_q(path + '/' + label)},{_q(formula)},{n},"
                f"{prev},{_q(settings)},{_ints([out_id])[0]},{nums[0]},{nums[1]},{nums[2]},{nums[3]},"
                f"{_ints([dos_id])[0]},{nums[4]},{nums[5]},{int(rng.integers(0, 3))},"
                f"{int(rng.integers(1, 80))},{conv},{nums[6]})"
            )
            if out_id is not None:
                prev = out_id
            if label in _FINAL_LABELS and (converged == 1 or rng.random() < 0.5):
                self._formation_energies(
                    rng, eid, cid, formula, values["formation_energy"], unphysical, rows
                )
        if rng.random() < 0.05:
            self.ids.meta += 1
            rows["meta_data"].append(f"({self.ids.meta},'keyword',{self._long_text(rng, 1, 30)})")

    def _formation_energies(
        self,
        rng: np.random.Generator,
        eid: int,
        cid: int,
        formula: str,
        de: float,
        unphysical: bool,
        rows: dict[str, list[str]],
    ) -> None:
        if unphysical:  # every row of the entry: the cgnn rule drops the material
            de = float(5.0 + rng.exponential(2.0))
        fits: list[tuple[str, float | None]] = []
        if rng.random() > 0.03:
            fits.append(("standard", None if rng.random() < 0.01 else de))
        if rng.random() < 0.4 or not fits:
            fits.append(("nothing", float(de + rng.normal(0.3, 0.2))))
        if len(fits) > 1 and rng.random() < _NOTHING_FIRST:
            fits.reverse()
        for fit, value in fits:
            self.ids.formation_energy += 1
            rows["formation_energies"].append(
                f"({self.ids.formation_energy},{_q(formula)},{eid},{cid},{_q(fit)},{_q(fit)},"
                f"{_floats([float(rng.normal(0.1, 0.1))])[0]},{_floats([value])[0]})"
            )

    def _emit_structures(self, rows: dict[str, list[str]], cols: dict[str, list[Any]]) -> None:
        lat = _floats(cols["lat"])
        vol = _floats(cols["vol"])
        tails = []
        flat = []
        for sg, nums in cols["tail"]:
            tails.append(sg)
            flat.extend(nums)
        tail = _floats(flat)
        for i, head in enumerate(cols["head"]):
            t = tail[6 * i : 6 * i + 6]
            sg = "NULL" if tails[i] is None else str(tails[i])
            rows["structures"].append(
                head + ",".join(lat[9 * i : 9 * i + 9]) + "," + ",".join(vol[8 * i : 8 * i + 8])
                + f",{sg}," + ",".join(t) + ")"
            )  # fmt: skip

    def _emit_atoms(self, rows: dict[str, list[str]], a: dict[str, list[Any]]) -> None:
        n = len(a["sid"])
        first = self.ids.atom + 1
        self.ids.atom += n
        xs, ys, zs = _floats(a["x"]), _floats(a["y"]), _floats(a["z"])
        f = _floats(a["f"])
        m = _floats(a["m"])
        fx, fy, fz = f[0::3], f[1::3], f[2::3]
        tmpl = "(%d,%d,NULL,'%s',NULL,%s,%s,%s,%s,%s,%s,%s,NULL,NULL,1,NULL)"
        rows["atoms"].extend(
            map(
                tmpl.__mod__,
                zip(
                    range(first, first + n),
                    a["sid"],
                    a["el"],
                    xs,
                    ys,
                    zs,
                    fx,
                    fy,
                    fz,
                    m,
                    strict=True,
                ),
            )
        )


def _relaxed_geometry(
    rng: np.random.Generator, s: SynthStructure
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The "relaxed" cell of an input: strained lattice, displaced atoms in random cells
    (scaled to its synthetic volume later, by :func:`_dft_values`)."""
    lat = s.lattice * (1.0 + rng.normal(0.0, 0.015)) + rng.normal(0.0, 0.002, (3, 3))
    frac = s.frac
    if s.prototype is None:
        frac = np.mod(frac + rng.normal(0.0, 0.01, frac.shape), 1.0)
    return lat, frac, s.species


def _dft_values(
    rng: np.random.Generator, finals: list[tuple[np.ndarray, np.ndarray, list[str]]]
) -> dict[str, np.ndarray]:
    """The DFT values of the relaxed cells: ``ml.synthetic_truth`` of each plus its noise.

    Scales each lattice (in place) to the noisy volume per atom; a scaled cell has the same
    crystal graph, hence the same other values. A cell whose graph cannot be built (none
    should) keeps its volume and gets NaN values.
    """
    from ml.synthetic_truth import add_noise, atomic_numbers_of, synthetic_truths

    truth = synthetic_truths((lat, frac, atomic_numbers_of(sp)) for lat, frac, sp in finals)
    values = add_noise(truth, rng)
    for k, (lat, _frac, species) in enumerate(finals):
        target = values["volume_per_atom"][k] * len(species)
        if math.isfinite(target) and target > 0:
            lat *= (target / abs(float(np.linalg.det(lat)))) ** (1.0 / 3.0)
    return values


def _spacegroup_rows() -> list[str]:
    systems = ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
               (167, "rhombohedral"), (194, "hexagonal"), (230, "cubic"))  # fmt: skip
    out = []
    for n in range(1, 231):
        system = next(s for top, s in systems if n <= top)
        out.append(
            f"({n},{_q(_HM.get(n))},NULL,'','',{_q(system)},{int(n in (2, 221, 225, 227, 229, 164, 194))})"
        )
    return out


_HEADER = """-- MySQL dump 10.13  Distrib 5.7.99, for Linux (x86_64)
--
-- Host: localhost    Database: qmdb
-- ------------------------------------------------------
-- Server version	5.7.99-synthetic
--
-- SYNTHETIC DATA -- NOT OQMD. Made-up structures and properties in the qmpy (OQMD) schema,
-- written by matplat.ingest.sample.write_sample_dump(entries={entries}, seed={seed}),
-- for tests and benchmarks of `platform ingest`. Never use these numbers as science.

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
/*!40101 SET NAMES utf8 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;
"""
_FOOTER = """/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;
/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;

-- Dump completed (synthetic dump, seed {seed})
"""
_TRIGGER = """/*!50003 SET @saved_sql_mode = @@sql_mode */ ;
/*!50003 SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO' */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `meta_data_synthetic_check` BEFORE INSERT ON `meta_data` FOR EACH ROW BEGIN
  IF NEW.type = '' THEN SET NEW.type = 'keyword; default'; END IF;
END */;;
DELIMITER ;
/*!50003 SET sql_mode = @saved_sql_mode */ ;
"""


def _table_head(table: str) -> str:
    return (
        f"\n--\n-- Table structure for table `{table}`\n--\n\n"
        f"DROP TABLE IF EXISTS `{table}`;\n"
        "/*!40101 SET @saved_cs_client     = @@character_set_client */;\n"
        "/*!40101 SET character_set_client = utf8 */;\n"
        f"{mysqldump_create_table(table)}\n"
        "/*!40101 SET character_set_client = @saved_cs_client */;\n\n"
        f"--\n-- Dumping data for table `{table}`\n--\n\n"
        f"LOCK TABLES `{table}` WRITE;\n/*!40000 ALTER TABLE `{table}` DISABLE KEYS */;\n"
    )


def _table_tail(table: str) -> str:
    tail = f"/*!40000 ALTER TABLE `{table}` ENABLE KEYS */;\nUNLOCK TABLES;\n"
    return tail + _TRIGGER if table == "meta_data" else tail


def _open_output(path: Path, level: int) -> Any:
    if path.name.endswith(".gz"):
        return _ThreadedGzip(path, level)
    return open(path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115


def write_sample_dump(
    path: str | os.PathLike[str],
    entries: int,
    seed: int,
    *,
    extended_insert: bool = True,
    progress: Callable[[int], Any] | None = None,
    compresslevel: int = 6,
) -> SampleSummary:
    """Write a synthetic qmpy-schema mysqldump of ``entries`` entries (gzip if ``.gz``).

    The bytes are a pure function of ``entries``, ``seed`` and ``extended_insert``.
    ``progress(entries_done)`` is called after each block of entries; ``compresslevel`` is
    gzip's (6, as ``mysqldump | gzip``; 1 writes ~1.5× faster). ``atoms``, the first
    and largest table, streams straight into the output (compressed in a background thread
    while the next block is generated); the other tables go through spool files.
    """
    if entries < 0:
        raise ValueError("entries must be >= 0")
    t0 = time.perf_counter()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = _open_output(path, compresslevel)
    try:
        out.write(_HEADER.format(entries=entries, seed=seed))
        out.write(_table_head("atoms"))
        with tempfile.TemporaryDirectory(prefix=".matplat-sample-", dir=path.parent) as tmp:
            spools = {t: _Spool(t, Path(tmp), extended_insert) for t in SAMPLE_TABLES}
            spools["atoms"].redirect(out)
            try:
                spools["spacegroups"].add(_spacegroup_rows())
                gen = _Generator(spools, seed)
                for b, first in enumerate(range(0, entries, _BLOCK)):
                    gen.block(b, first, min(_BLOCK, entries - first))
                    if progress is not None:
                        progress(min(first + _BLOCK, entries))
                # mysqldump writes rows in primary-key order; the key is a case-insensitive
                # varchar here (utf8_general_ci), hence the upper-cased sort key.
                comps = gen.compositions
                spools["compositions"].add([comps[f] for f in sorted(comps, key=str.upper)])
            finally:
                for sp in spools.values():
                    sp.close()
            out.write(_table_tail("atoms"))
            for t in SAMPLE_TABLES[1:]:
                out.write(_table_head(t))
                with open(spools[t].path, encoding="utf-8", newline="\n") as fh:
                    while chunk := fh.read(1 << 22):
                        out.write(chunk)
                out.write(_table_tail(t))
        out.write(_FOOTER.format(seed=seed))
    finally:
        out.close()
    counts = {t: spools[t].rows for t in SAMPLE_TABLES}
    return SampleSummary(
        path=path,
        entries=entries,
        calculations=counts["calculations"],
        structures=counts["structures"],
        atoms=counts["atoms"],
        formation_energies=counts["formation_energies"],
        bytes_written=path.stat().st_size,
        seconds=time.perf_counter() - t0,
    )
