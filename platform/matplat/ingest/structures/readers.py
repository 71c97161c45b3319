"""Structure files → :class:`Parsed` records, through pymatgen and ASE readers only.

Formats (detected by name, then by content for names that say nothing):

- CIF (``.cif``, ``.mcif``): every data block, symmetry operations expanded by pymatgen's
  ``CifParser`` (the conventional cell as written, not reduced). Occupancies are kept as
  read so that a disordered block is rejected with the reason instead of silently merged.
  Plain ordered files take a gemmi path with the same result, 20× faster
  (:mod:`~matplat.ingest.structures.cif_fast`).
- VASP POSCAR/CONTCAR/``*.vasp`` (VASP 5 with a species line; VASP 4 with the species in
  the comment line): pymatgen ``Poscar``.
  ``MATPLAT_READER=pymatgen`` sends every CIF to pymatgen too.
- extended XYZ (``.xyz``, ``.extxyz``): every frame, by ASE; numeric per-frame values named
  as in :data:`~matplat.ingest.structures.records.PROPERTY_NAMES` are DFT values.
- pymatgen JSON (``.json``, ``.jsonl``): one ``Structure`` or ``ComputedStructureEntry``
  object, a list of them, or one per line. Site and structure ``properties`` are dropped
  before ``Structure.from_dict``: pymatgen decodes them with ``MontyDecoder``, which imports
  whatever module a document names, and an input file must never run code.
- ASE databases (``.db``): every row, by ``ase.db.connect``; numeric key-value pairs as
  for extended XYZ.

A record's name is the file's name relative to the folder given (or the file's own name),
with ``#block`` (CIF data block), ``#frame`` (XYZ frame or JSON list index, from 0) or
``#id`` (ASE row id) appended when the file holds more than one structure. pymatgen's
warnings are captured (one per structure at most would otherwise flood the terminal) and
only used to explain a rejected structure.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from matplat.ingest.structures.records import (
    Parsed,
    Rejected,
    check,
    from_ase,
    from_pymatgen,
    numeric_properties,
)

__all__ = ["FORMATS", "detect_format", "parse_file", "parse_object"]

FORMATS = ("cif", "poscar", "extxyz", "json", "ase-db")
_BY_SUFFIX = {
    ".cif": "cif", ".mcif": "cif", ".vasp": "poscar", ".poscar": "poscar", ".xyz": "extxyz",
    ".extxyz": "extxyz", ".json": "json", ".jsonl": "json", ".db": "ase-db",
}  # fmt: skip
_VASP_NAMES = ("POSCAR", "CONTCAR")


def detect_format(path: Path) -> str | None:
    """The format of a structure file by its name, else by its first bytes; None if neither."""
    fmt = _BY_SUFFIX.get(path.suffix.lower())
    if fmt is not None:
        return fmt
    if path.name.upper().startswith(_VASP_NAMES):
        return "poscar"
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    text = head.lstrip()
    if head.startswith(b"SQLite format 3"):
        return "ase-db"
    if text.startswith((b"data_", b"#\\#CIF")) or b"\ndata_" in head:
        return "cif"
    if text.startswith((b"{", b"[")):
        return "json"
    return None


def parse_file(path: Path, display: str, fmt: str | None = None) -> list[Parsed]:
    """Every structure of one file as checked records (rejected ones carry the reason).

    ``display`` is the file's name relative to the folder given; it names the records.
    A file that cannot be read at all gives one rejected record with ``block`` None.
    """
    fmt = fmt or detect_format(path)
    if fmt is None:
        return [Parsed(display, display, None, "?", reject="not a recognised structure file")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            raw = list(_READERS[fmt](path))
        except Exception as e:  # noqa: BLE001 - any reader failure rejects the file
            msg = _reason(e, caught)
            return [Parsed(display, display, None, fmt, reject=f"unreadable {fmt} file: {msg}")]
    out: list[Parsed] = []
    several = len(raw) > 1
    for block, item, props in raw:
        name = f"{display}#{block}" if several and block is not None else display
        rec = Parsed(name, display, block, fmt, props=props)
        _fill(rec, item)
        out.append(rec)
    if not out:
        out.append(Parsed(display, display, None, fmt, reject="no structure in the file"))
    return out


def parse_object(obj: Any, name: str) -> Parsed:
    """A pymatgen ``Structure``/``ComputedStructureEntry`` or ASE ``Atoms`` as a record."""
    props: dict[str, float] = {}
    item = obj
    if hasattr(obj, "structure") and hasattr(obj, "energy"):  # ComputedStructureEntry
        props = numeric_properties(getattr(obj, "data", None))
        item = obj.structure
    elif hasattr(obj, "info") and hasattr(obj, "numbers"):  # ase.Atoms
        props = numeric_properties(obj.info)
    elif hasattr(obj, "properties"):
        props = numeric_properties(obj.properties)
    rec = Parsed(name, "<object>", None, "object", props=props)
    _fill(rec, item)
    return rec


def _fill(rec: Parsed, item: Any) -> None:
    """Convert and check a reader's item into the record's arrays (or its reject reason)."""
    if isinstance(item, Rejected):
        rec.reject = str(item)
        return
    try:
        if isinstance(item, tuple):  # arrays already (the gemmi CIF path)
            lattice, frac, numbers = item
        elif hasattr(item, "numbers") and hasattr(item, "cell"):
            lattice, frac, numbers = from_ase(item)
        elif hasattr(item, "lattice") and hasattr(item, "frac_coords"):
            lattice, frac, numbers = from_pymatgen(item)
        else:
            raise Rejected(f"not a structure: {type(item).__name__}")
    except Rejected as e:
        rec.reject = str(e)
        return
    why = check(lattice, frac, numbers)
    if why is not None:
        rec.reject = why
        return
    rec.lattice, rec.frac, rec.numbers = lattice, frac, numbers


def _reason(e: BaseException, caught: list[warnings.WarningMessage]) -> str:
    text = str(e).strip().splitlines()
    msg = text[-1] if text else type(e).__name__
    notes = [str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip()]
    if notes and notes[-1] not in msg:
        msg += f" ({notes[-1]})"
    return msg[:500]


# -- per format: (block, structure-or-Rejected, properties) --------------------------------------
Item = tuple[str | None, Any, dict[str, float]]


def _read_cif(path: Path) -> Iterator[Item]:
    from pymatgen.io.cif import CifParser

    from matplat.ingest.structures.cif_fast import read_cif_fast

    # gemmi where its result equals pymatgen's (see cif_fast).
    if not _pymatgen_only():
        fast = read_cif_fast(path)
        if fast is not None:
            yield from fast
            return

    parser = CifParser(path)
    blocks = list(parser._cif.data.items())  # pymatgen's own tokeniser; one entry per block
    for name, block in blocks:
        try:
            # check_occu=False keeps partial occupancies so that they are rejected by name.
            s = parser._get_structure(block, primitive=False, symmetrized=False, check_occu=False)
            item: Any = s if s is not None else Rejected("no atoms")
        except (KeyError, ValueError, NotImplementedError, IndexError) as e:
            msg = str(e).strip().splitlines()
            item = Rejected(f"unreadable CIF block: {msg[-1] if msg else type(e).__name__}")
        yield name, item, {}


def _pymatgen_only() -> bool:
    """``MATPLAT_READER=pymatgen``: no faster reader (benchmarks and equality tests)."""
    return os.environ.get("MATPLAT_READER", "auto") == "pymatgen"


def _read_poscar(path: Path) -> Iterator[Item]:
    from pymatgen.core.periodic_table import Element
    from pymatgen.io.vasp import Poscar

    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    names = None
    if len(lines) > 6 and not any(c.isalpha() for c in lines[5]):
        # VASP 4: no species line. The convention (VASP's own tools, ASE) puts the species
        # in the comment line; pymatgen would otherwise name them H, He, ... silently.
        counts = lines[5].split()
        names = lines[0].split()[: len(counts)]
        if len(names) < len(counts) or not all(Element.is_valid_symbol(n) for n in names):
            raise ValueError(
                "VASP 4 POSCAR without element names: give them in the first line "
                "(e.g. 'Fe O') or use the VASP 5 format with a species line"
            )
    # ASE's read_vasp is 3-4x faster but stores Cartesian positions: coordinates exactly
    # half-way between two points of the stored form's 1e-7 grid then round the other way
    # than pymatgen's (1 file in 60 of bench/structures.py), so pymatgen reads every POSCAR.
    p = Poscar.from_str(text, default_names=names, read_velocities=False)
    yield None, p.structure, {}


def _read_extxyz(path: Path) -> Iterator[Item]:
    from ase.io import read

    try:
        frames = read(path, index=":", format="extxyz")
    except KeyError as e:  # ASE's symbol table lookup
        raise ValueError(f"unknown element {e.args[0]!r}") from None
    for i, atoms in enumerate(frames):
        yield str(i), atoms, numeric_properties(atoms.info)


def _read_json(path: Path) -> Iterator[Item]:
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
        docs = doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError as e:
        if "Extra data" not in str(e):
            raise
        docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    for i, d in enumerate(docs):
        try:
            item, props = _from_json(d)
        except Rejected as e:
            item, props = e, {}
        yield str(i), item, props


def _from_json(d: Any) -> tuple[Any, dict[str, float]]:
    from pymatgen.core import Structure

    if not isinstance(d, dict):
        raise Rejected(f"not a pymatgen object: a JSON {type(d).__name__}")
    cls = d.get("@class")
    props: dict[str, float] = {}
    if cls == "ComputedStructureEntry" or (cls is None and "structure" in d and "energy" in d):
        props = numeric_properties(d.get("data"))
        d = d.get("structure")
        if not isinstance(d, dict):
            raise Rejected("ComputedStructureEntry without a structure")
        cls = d.get("@class", "Structure")
    if cls not in ("Structure", None) or "lattice" not in d or "sites" not in d:
        raise Rejected(f"not a pymatgen Structure or ComputedStructureEntry (@class {cls!r})")
    if not d["sites"]:
        raise Rejected("no atoms")
    props = {**numeric_properties(d.get("properties")), **props}
    safe = {k: v for k, v in d.items() if k not in ("properties", "@module", "@class")}
    safe["sites"] = [
        {k: v for k, v in s.items() if k != "properties"} if isinstance(s, dict) else s
        for s in d["sites"]
    ]
    try:
        return Structure.from_dict(safe), props
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise Rejected(f"malformed pymatgen Structure: {e}") from e


def _read_ase_db(path: Path) -> Iterator[Item]:
    import sqlite3

    import ase.db

    # ase.db.connect creates its tables in any SQLite file that lacks them: look first,
    # read-only, so that another program's database (platform.db) is never written to.
    uri = f"{path.resolve().as_uri()}?mode=ro"
    probe = sqlite3.connect(uri, uri=True)
    try:
        tables = {r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        probe.close()
    if not {"systems", "information"} <= tables:
        raise ValueError("an SQLite database but not an ASE database (no table systems)")
    with ase.db.connect(str(path), type="db", create_indices=False) as db:
        for row in db.select():
            yield str(row.id), row.toatoms(), numeric_properties(row.key_value_pairs)


_READERS = {
    "cif": _read_cif,
    "poscar": _read_poscar,
    "extxyz": _read_extxyz,
    "json": _read_json,
    "ase-db": _read_ase_db,
}


def spacegroup(lattice: np.ndarray, frac: np.ndarray, numbers: np.ndarray) -> int:
    """International space-group number by spglib (symprec 0.01 Å, pymatgen's default);
    -1 when spglib finds none."""
    import spglib

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = spglib.get_symmetry_dataset((lattice, frac, numbers.astype(np.int32)),
                                             symprec=0.01)
    except Exception:  # noqa: BLE001 - spglib raises its own error types
        return -1
    return int(ds.number) if ds is not None else -1
