"""OQMD dump → materials: selection rules and columnar chunks, pure (no database).

``extract(batches, "cgnn", workdir=tmp)`` consumes :class:`RowBatch` es of the qmdb tables
(from :func:`matplat.ingest.reader.iter_dump`, or from a live MySQL server: any iterable of
batches whose rows of each table arrive together) and yields :class:`MaterialChunk` s of at
most ``chunk_size`` materials in ``source_id`` order. ``extract_dump(path)`` does both.

Per material (see :mod:`matplat.ingest.oqmd_rules` for which calculation is chosen):

- structure = the chosen calculation's ``output_id`` structure, lattice rows as in
  ``structures.x1..z3``, atoms in id order, fractional coordinates exactly as in the dump;
- ``formula`` = pymatgen reduced formula, ``composition`` = full-cell formula ("Fe4 O6");
- ``volume`` = |det(lattice)| (``cgnn``) or ``structures.volume``, |det| when NULL
  (``oqmd-api``); ``volume_per_atom`` = volume / natoms;
- ``band_gap`` and ``total_magnetization`` = |``magmom``| (μB per cell); NULL → 0 under
  ``cgnn``, NaN (NULL) under ``oqmd-api``; ``magnetization`` = total / natoms (μB/atom);
- ``volume_deviation`` = 1 − v_atoms / volume_per_atom, where v_atoms = Σ_i 4/3·π·r_i³ ·
  n_i / Σ_i n_i over the REDUCED formula (n_i its amounts, r = pymatgen
  ``atomic_radius_calculated``, else ``atomic_radius``). That is the per-atom atomic volume
  of the formula over the per-atom cell volume; since the cell holds whole formula units
  it equals 1 − Σ_cell(4/3·π·r³) / V_cell. NaN when an element has no radius (At, Fr, and
  beyond Z = 94 where pymatgen has none).
- ``content_hash`` = sha256 of a canonical little-endian encoding of every field except the
  ids, so a change of structure or property changes it.

Malformed materials are not emitted but listed in ``rejects`` as ``(source_id, reason)``:
unknown element symbol, no atoms, NaN coordinates, singular lattice (|det| < 1e-6), output
structure missing, and under ``oqmd-api`` a ``structures.volume`` that disagrees with |det|
(negative, zero, infinite, or off by more than 0.1 %).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from matplat.ingest.batch import RowBatch
from matplat.ingest.dumpio import DumpFormatError
from matplat.ingest.formulas import Formulas, atomic_volume
from matplat.ingest.oqmd_rules import Selection, select
from matplat.ingest.oqmd_stage import NEEDED_COLUMNS, READ_COLUMNS, Staging
from matplat.ingest.qmdb import qmdb_columns

__all__ = [
    "RULES",
    "NEEDED_TABLES",
    "NEEDED_COLUMNS",
    "MaterialChunk",
    "extract",
    "extract_dump",
    "atomic_volume",
]

RULES = ("cgnn", "oqmd-api")
NEEDED_TABLES = frozenset(NEEDED_COLUMNS)
_SINGULAR = 1e-6
#: ``oqmd-api``: the dump's ``structures.volume`` may differ from |det(lattice)| by this much
#: (relative: rounding of the stored value); beyond it the row is rejected as inconsistent.
_VOLUME_RTOL = 1e-3
_BUCKET_MATERIALS = 1 << 16  # materials per atom bucket file (a multiple of chunk_size)
_ATOM_STEP = 1 << 20  # staged atoms scanned per step (34 MB)
_LUT_MAX_ID = 1 << 25  # structure ids below this: find materials by table lookup (128 MB max)
_REC = np.dtype([("m", "<i8"), ("id", "<i8"), ("z", "<i2"), ("xyz", "<f8", (3,))])


@dataclass
class MaterialChunk:
    """Up to ``chunk_size`` materials, columnar, in ``source_id`` order.

    Per material i, its atoms are rows ``site_offsets[i]:site_offsets[i + 1]`` of
    ``frac_coords`` and ``atomic_numbers``. Float properties use NaN for NULL.
    """

    source_id: np.ndarray  # int64: duplicate_of_id (cgnn) or entry id (oqmd-api)
    entry_id: np.ndarray  # int64: entry owning the chosen calculation
    calculation_id: np.ndarray  # int64
    structure_id: np.ndarray  # int64: the calculation's output structure
    formula: list[str]  # pymatgen reduced formula
    composition: list[str]  # full-cell formula, e.g. "Fe4 O6"
    natoms: np.ndarray  # int32
    spacegroup: np.ndarray  # int32, -1 = unknown
    prototype: list[str | None]
    lattice: np.ndarray  # (n, 3, 3) float64, rows = lattice vectors
    site_offsets: np.ndarray  # (n + 1,) int64
    frac_coords: np.ndarray  # (N, 3) float64
    atomic_numbers: np.ndarray  # (N,) int16
    volume: np.ndarray
    formation_energy: np.ndarray
    band_gap: np.ndarray
    magnetization: np.ndarray
    total_magnetization: np.ndarray
    volume_per_atom: np.ndarray
    volume_deviation: np.ndarray
    content_hash: list[str]
    rejects: list[tuple[int, str]] = field(default_factory=list)
    rule: str = "cgnn"
    #: OQMD's own hull distance (``formation_energies.stability``), NaN where unknown; None
    #: for sources that have none. Not part of the content hash: it is derived from the
    #: other materials of the dump, not from this one.
    oqmd_stability: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.source_id)


# -- extraction ---------------------------------------------------------------------------
def _needed_structures(stage: Staging, rule: str, limit: int | None) -> tuple[Selection, Any]:
    tables = stage.tables()
    sel = select(tables, rule)
    if limit is not None:
        sel = sel.head(limit)
    return sel, tables


def extract(
    batches: Iterable[RowBatch],
    rule: str = "cgnn",
    *,
    workdir: Path | str,
    limit: int | None = None,
    chunk_size: int = 10_000,
    source: str = "<batches>",
) -> Iterator[MaterialChunk]:
    """Select materials from qmdb table batches and yield them in chunks.

    ``workdir`` holds the staged atoms (a private subdirectory, removed at the end);
    ``limit`` keeps the first ``limit`` selected materials (by ``source_id``, rejected ones
    included); ``source`` names the input in error messages.
    """
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; choose one of {', '.join(RULES)}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    stage_dir = Path(tempfile.mkdtemp(prefix="matplat-oqmd-", dir=workdir))
    early: dict[str, Any] = {}

    def inputs_complete(stage: Staging) -> np.ndarray:
        early["sel"], early["tables"] = _needed_structures(stage, rule, limit)
        out = early["tables"].calc_output[early["sel"].calc_index]
        return np.unique(out[out >= 0])

    stage = Staging(stage_dir, source, inputs_complete)
    try:
        for batch in batches:
            stage.add(batch)
        stage.close_atoms()
        present = set(stage.tables_seen)
        if not present:
            raise DumpFormatError(
                f"{source}: none of the OQMD tables ({', '.join(sorted(NEEDED_TABLES))}) "
                f"is in it: not a qmdb (OQMD) dump"
            )
        missing = NEEDED_TABLES - present
        if missing:
            raise DumpFormatError(
                f"{source}: OQMD table(s) {', '.join(sorted(missing))} missing "
                f"(found {', '.join(sorted(present))}): the dump is incomplete"
            )
        if "sel" in early:
            sel, tables = early["sel"], early["tables"]
        else:
            sel, tables = _needed_structures(stage, rule, limit)
        yield from _Emitter(stage, tables, sel, rule, chunk_size, stage_dir).chunks()
    finally:
        stage.close_atoms()
        shutil.rmtree(stage_dir, ignore_errors=True)


def extract_dump(
    path: str | Path,
    rule: str = "cgnn",
    *,
    workdir: Path | str,
    limit: int | None = None,
    chunk_size: int = 10_000,
    progress: Callable[[int], Any] | None = None,
) -> Iterator[MaterialChunk]:
    """:func:`extract` over a dump file (``.sql``, ``.sql.gz``, ``-`` for stdin).

    ``progress(bytes_of_file_consumed)`` is called while the dump is read.
    """
    from matplat.ingest.reader import iter_dump

    batches = iter_dump(
        path,
        set(NEEDED_TABLES),
        columns={t: list(c) for t, c in READ_COLUMNS.items()},
        schema={t: list(qmdb_columns(t)) for t in NEEDED_TABLES},
        progress=progress,
    )
    name = "<stdin>" if str(path) == "-" else str(path)
    return extract(batches, rule, workdir=workdir, limit=limit, chunk_size=chunk_size, source=name)


class _Emitter:
    """Joins the selection with structures and staged atoms; builds the chunks."""

    def __init__(
        self,
        stage: Staging,
        tables: Any,
        sel: Selection,
        rule: str,
        chunk_size: int,
        directory: Path,
    ) -> None:
        self.stage = stage
        self.rule = rule
        self.chunk_size = chunk_size
        self.dir = directory
        self.formulas = Formulas()
        self._by_counts: dict[bytes, tuple[str, str, float]] = {}
        n = len(sel)
        ci = sel.calc_index
        self.source_id = sel.source_id
        self.entry_id = sel.entry_id
        self.formation_energy = sel.formation_energy
        self.oqmd_stability = (sel.oqmd_stability if sel.oqmd_stability is not None
                               else np.full(n, np.nan))
        self.calc_id = tables.calc_id[ci]
        self.structure_id = tables.calc_output[ci]
        col = stage.column
        self.magmom = col("calculations", "magmom", np.float64)[ci]
        self.band_gap = col("calculations", "band_gap", np.float64)[ci]
        proto = _lookup(tables.entry_id, col("entries", "proto", np.int32), self.entry_id, -1)
        self.prototype = [stage.prototypes[p] if p >= 0 else None for p in proto.tolist()]
        # Structures of the chosen calculations.
        st_id = col("structures", "id", np.int64)
        parts = stage._cols["structures"].get("lattice", [])
        st_lat = np.concatenate(parts) if parts else np.zeros((0, 9))
        pos, found = _positions(st_id, self.structure_id)
        self.lattice = np.where(found[:, None], st_lat[pos] if len(st_lat) else 0.0, np.nan)
        self.lattice = self.lattice.reshape(n, 3, 3)
        vol = col("structures", "volume", np.float64)
        sg = col("structures", "spacegroup", np.int64)
        self.st_volume = np.where(found, vol[pos] if len(vol) else np.nan, np.nan)
        self.spacegroup = np.where(found, sg[pos] if len(sg) else -1, -1).astype(np.int32)
        self.reason: dict[int, str] = {}
        for m in np.nonzero(~found)[0].tolist():
            sid = int(self.structure_id[m])
            self.reason[m] = (
                f"calculation {int(self.calc_id[m])} has no output structure (output_id NULL)"
                if sid < 0
                else f"output structure {sid} of calculation {int(self.calc_id[m])} is not in the dump"
            )
        self.found = found
        self.n = n
        self.bucket = max(1, _BUCKET_MATERIALS // chunk_size) * chunk_size

    # -- atoms, bucketed by output position ------------------------------------------------
    def _bucket_atoms(self) -> list[Path]:
        nb = (self.n + self.bucket - 1) // self.bucket
        paths = [self.dir / f"bucket{b}.bin" for b in range(nb)]
        files = [open(p, "wb") for p in paths]  # noqa: SIM115
        try:
            m_sid = np.where(self.found, self.structure_id, -1)
            valid = np.nonzero(m_sid >= 0)[0]
            order = np.argsort(m_sid[valid], kind="stable")
            keys, mats = m_sid[valid][order], valid[order]
            # Structure id -> material by a table lookup when ids are dense enough and no
            # two materials share a structure; else binary search (any ids, shared ones).
            lut = None
            if len(keys) and keys[-1] < _LUT_MAX_ID and not (np.diff(keys) == 0).any():
                lut = np.full(int(keys[-1]) + 2, -1, dtype=np.int32)
                lut[keys] = mats
            for a in self.stage.atom_slices(_ATOM_STEP):
                if lut is not None:
                    m = lut[np.minimum(a["sid"], len(lut) - 1)]
                    rows = np.flatnonzero(m >= 0)
                    if not len(rows):
                        continue
                    rec = np.empty(len(rows), dtype=_REC)
                    rec["m"] = m[rows]
                else:
                    lo = np.searchsorted(keys, a["sid"], "left")
                    cnt = np.searchsorted(keys, a["sid"], "right") - lo
                    if not cnt.any():
                        continue
                    rows = np.repeat(np.arange(len(a)), cnt)  # an atom per material using it
                    within = np.arange(len(rows)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
                    rec = np.empty(len(rows), dtype=_REC)
                    rec["m"] = mats[np.repeat(lo, cnt) + within]
                rec["id"] = a["id"][rows]
                rec["z"] = a["z"][rows]
                rec["xyz"] = a["xyz"][rows]
                b = rec["m"] // self.bucket
                order_b = np.argsort(b, kind="stable")
                rec, b = rec[order_b], b[order_b]
                cuts = np.searchsorted(b, np.arange(nb + 1))
                for k in range(nb):
                    if cuts[k + 1] > cuts[k]:
                        rec[cuts[k] : cuts[k + 1]].tofile(files[k])
        finally:
            for f in files:
                f.close()
        return paths

    def chunks(self) -> Iterator[MaterialChunk]:
        paths = self._bucket_atoms()
        for b, path in enumerate(paths):
            rec = np.fromfile(path, dtype=_REC)
            path.unlink()
            rec = rec[np.lexsort((rec["id"], rec["m"]))]
            lo_m = b * self.bucket
            hi_m = min(self.n, lo_m + self.bucket)
            for c0 in range(lo_m, hi_m, self.chunk_size):
                c1 = min(hi_m, c0 + self.chunk_size)
                i0, i1 = np.searchsorted(rec["m"], [c0, c1])
                yield self._chunk(c0, c1, rec[i0:i1])

    # -- one chunk -----------------------------------------------------------------------------
    def _chunk(self, c0: int, c1: int, rec: np.ndarray) -> MaterialChunk:
        k = c1 - c0
        local = (rec["m"] - c0).astype(np.int64)
        natoms = np.bincount(local, minlength=k)
        lat = self.lattice[c0:c1]
        with np.errstate(invalid="ignore"):
            det = np.abs(np.linalg.det(np.nan_to_num(lat, nan=0.0)))
        bad_lat = ~np.isfinite(lat).all(axis=(1, 2)) | (det < _SINGULAR)
        # oqmd-api stores the dump's structures.volume: it must agree with the lattice (a
        # negative, zero or infinite volume would give -inf volume deviations downstream).
        stv_all = self.st_volume[c0:c1] if self.rule != "cgnn" else np.full(k, np.nan)
        with np.errstate(invalid="ignore"):
            bad_vol = ~np.isnan(stv_all) & ~(
                np.isfinite(stv_all) & (np.abs(stv_all - det) <= _VOLUME_RTOL * det)
            )
        unknown = np.unique(local[rec["z"] <= 0])
        nan_xyz = np.unique(local[~np.isfinite(rec["xyz"]).all(axis=1)])
        rejects: list[tuple[int, str]] = []
        keep = np.ones(k, dtype=bool)
        unknown_set = set(unknown.tolist())
        nan_set = set(nan_xyz.tolist())
        for i in range(k):
            m = c0 + i
            why = self.reason.get(m)
            if why is None:
                sid = int(self.structure_id[m])
                if natoms[i] == 0:
                    why = f"structure {sid} has no atoms"
                elif i in unknown_set:
                    zs = rec["z"][(local == i) & (rec["z"] <= 0)]
                    why = f"structure {sid}: unknown element symbol {self._symbol(int(zs[0]))!r}"
                elif i in nan_set:
                    why = f"structure {sid}: NaN coordinates"
                elif bad_lat[i]:
                    why = f"structure {sid}: singular lattice (|det| = {det[i]:.3g})"
                elif bad_vol[i]:
                    why = (f"structure {sid}: volume {stv_all[i]:.6g} disagrees with its "
                           f"lattice (|det| = {det[i]:.6g})")
            if why is not None:
                keep[i] = False
                rejects.append((int(self.source_id[m]), why))
        idx = np.nonzero(keep)[0]
        sel = c0 + idx
        atom_keep = keep[local]
        rec = rec[atom_keep]
        na = natoms[idx].astype(np.int64)
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(na, out=offsets[1:])
        frac = np.ascontiguousarray(rec["xyz"], dtype="<f8")
        zs = rec["z"].astype("<i2")
        lattice = np.ascontiguousarray(lat[idx], dtype="<f8")
        det_k = det[idx]
        if self.rule == "cgnn":
            volume = det_k
            band_gap = np.nan_to_num(self.band_gap[sel], nan=0.0)
            total_mag = np.abs(np.nan_to_num(self.magmom[sel], nan=0.0))
        else:
            stv = self.st_volume[sel]
            volume = np.where(np.isnan(stv), det_k, stv)
            band_gap = self.band_gap[sel].copy()
            total_mag = np.abs(self.magmom[sel])
        nat_f = na.astype(np.float64)
        vpa = volume / nat_f
        magnetization = total_mag / nat_f
        formula, composition, v_atoms = self._formulas(zs, offsets)
        vdev = 1.0 - v_atoms / vpa
        chunk = MaterialChunk(
            source_id=self.source_id[sel].astype(np.int64),
            entry_id=self.entry_id[sel].astype(np.int64),
            calculation_id=self.calc_id[sel].astype(np.int64),
            structure_id=self.structure_id[sel].astype(np.int64),
            formula=formula,
            composition=composition,
            natoms=na.astype(np.int32),
            spacegroup=self.spacegroup[sel].astype(np.int32),
            prototype=[self.prototype[m] for m in sel.tolist()],
            lattice=lattice,
            site_offsets=offsets,
            frac_coords=frac,
            atomic_numbers=zs,
            volume=volume.astype(np.float64),
            formation_energy=self.formation_energy[sel].astype(np.float64),
            band_gap=band_gap.astype(np.float64),
            magnetization=magnetization,
            total_magnetization=total_mag.astype(np.float64),
            volume_per_atom=vpa,
            volume_deviation=vdev,
            content_hash=[],
            rejects=rejects,
            rule=self.rule,
            oqmd_stability=self.oqmd_stability[sel].astype(np.float64),
        )
        chunk.content_hash = content_hashes(chunk)
        return chunk

    def _symbol(self, z: int) -> str:
        return self.stage.unknown_symbols[-z - 1] if z < 0 else f"Z={z}"

    def _formulas(
        self, zs: np.ndarray, offsets: np.ndarray
    ) -> tuple[list[str], list[str], np.ndarray]:
        """Formulas and atomic volumes per material, grouping its atoms by Z with numpy."""
        n = len(offsets) - 1
        material = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
        keys, counts = np.unique(material * 256 + zs.astype(np.int64), return_counts=True)
        pairs = np.stack([keys & 255, counts], axis=1).astype("<i4")  # (Z, count), Z ascending
        raw = pairs.tobytes()
        bounds = (np.searchsorted(keys >> 8, np.arange(n + 1)) * 8).tolist()
        cache = self._by_counts
        get = self.formulas.get
        formula: list[str] = []
        composition: list[str] = []
        v = np.empty(n)
        for i in range(n):
            key = raw[bounds[i] : bounds[i + 1]]
            hit = cache.get(key)
            if hit is None:
                comp = np.frombuffer(key, "<i4").reshape(-1, 2).tolist()
                hit = cache[key] = get(tuple((z, c) for z, c in comp))
            formula.append(hit[0])
            composition.append(hit[1])
            v[i] = hit[2]
        return formula, composition, v


def _positions(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of each ``query`` id in ``keys`` (0 where absent) and whether it was found."""
    if len(keys) == 0:
        return np.zeros(len(query), dtype=np.int64), np.zeros(len(query), dtype=bool)
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    pos = np.minimum(np.searchsorted(sk, query), len(sk) - 1)
    found = (sk[pos] == query) & (query >= 0)
    return order[pos], found


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray, missing: int) -> np.ndarray:
    pos, found = _positions(keys, query)
    if len(values) == 0:
        return np.full(len(query), missing)
    return np.where(found, values[pos], missing)


_HASH_PREFIX = b"matplat.material.v1\0"


def content_hashes(c: MaterialChunk) -> list[str]:
    """sha256 per material over a canonical encoding of all fields except the ids.

    The bytes hashed, in order: the prefix, formula NUL composition NUL, prototype (NUL when
    NULL, else 1 byte 1 + name + NUL), natoms and spacegroup (int32), the lattice (9 × f8),
    the fractional coordinates (f8) and atomic numbers (i2) of the sites, and the seven
    float properties (f8, NaN as the one canonical quiet NaN); all little-endian.
    """
    n = len(c.source_id)
    if n == 0:
        return []
    head = np.empty(n, dtype=[("natoms", "<i4"), ("sg", "<i4"), ("lat", "<f8", (9,))])
    head["natoms"] = c.natoms
    head["sg"] = c.spacegroup
    head["lat"] = np.asarray(c.lattice, dtype="<f8").reshape(n, 9)
    floats = np.stack(
        [c.volume, c.formation_energy, c.band_gap, c.magnetization, c.total_magnetization,
         c.volume_per_atom, c.volume_deviation], axis=1,
    ).astype("<f8")  # fmt: skip
    floats[np.isnan(floats)] = np.nan  # one NaN bit pattern, whatever produced it
    head_b = head.tobytes()
    float_b = floats.tobytes()
    frac_b = np.ascontiguousarray(c.frac_coords, dtype="<f8").tobytes()
    z_b = np.ascontiguousarray(c.atomic_numbers, dtype="<i2").tobytes()
    off = np.asarray(c.site_offsets, dtype=np.int64)
    f0, f1 = (off[:-1] * 24).tolist(), (off[1:] * 24).tolist()
    z0, z1 = (off[:-1] * 2).tolist(), (off[1:] * 2).tolist()
    sha = hashlib.sha256
    out = []
    for i in range(n):
        proto = c.prototype[i]
        out.append(
            sha(
                b"".join(
                    (
                        _HASH_PREFIX,
                        f"{c.formula[i]}\0{c.composition[i]}\0".encode(),
                        b"\0" if proto is None else b"\1" + proto.encode() + b"\0",
                        head_b[i * 80 : i * 80 + 80],
                        frac_b[f0[i] : f1[i]],
                        z_b[z0[i] : z1[i]],
                        float_b[i * 56 : i * 56 + 56],
                    )
                )
            ).hexdigest()
        )
    return out
