"""Stored structures out: as pymatgen/ASE objects, and as files (``platform export structures``).

Files are written by pymatgen (CIF: P1 with every site, 8 decimals; POSCAR: VASP 5, 16
digits; JSON: ``Structure.as_dict`` with the DFT values as ``properties``) and ASE
(extended XYZ with the DFT values in each frame's info), one file per material named after
its ``source_id`` (``/`` kept as folders, ``#`` as ``_``). CIF and POSCAR cannot hold the
DFT values, so ``properties.csv`` beside them lists them per file in the form
``platform ingest DIR --properties DIR/properties.csv`` reads: ingesting the folder again
gives materials with the same content hashes as the exported ones (structure files'
stored form, :mod:`matplat.ingest.structures.canonical`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from sqlalchemy import Engine, bindparam, text

from matplat.errors import InputError
from matplat.services.query import select_ids

__all__ = [
    "EXPORT_FORMATS",
    "StoredStructure",
    "export_structures",
    "select_structures",
    "to_ase",
    "to_pymatgen",
]

EXPORT_FORMATS = {"cif": ".cif", "poscar": ".vasp", "extxyz": ".xyz", "json": ".json"}
_PROPS = ("formation_energy", "band_gap", "magnetization")


@dataclass
class StoredStructure:
    material_id: int
    source: str
    source_id: str
    formula: str
    lattice: np.ndarray  # (3, 3) rows, Å
    frac: np.ndarray  # (n, 3)
    numbers: np.ndarray  # (n,)
    props: dict[str, float] = field(default_factory=dict)


def select_structures(
    engine: Engine,
    *,
    source: str | None = None,
    where: str | None = None,
    ids: list[int] | None = None,
    query_engine: Engine | None = None,
) -> list[StoredStructure]:
    """Stored structures with their DFT values, by material id; ``where`` is a read-only SQL
    condition on ``materials m`` (as ``platform predict --where``), evaluated in a read-only
    transaction on ``query_engine`` (the user-SQL connection; default ``engine``) for ids
    that the reading statement then uses."""
    if where:
        chosen = select_ids(query_engine or engine, where)
        ids = chosen if ids is None else sorted(set(chosen) & set(ids))
    sql = (
        "SELECT m.id, m.source, m.source_id, m.formula, s.lattice, s.frac_coords, "
        "s.atomic_numbers, d.formation_energy, d.band_gap, d.magnetization FROM materials m "
        "JOIN structures s ON s.material_id = m.id "
        "LEFT JOIN dft_properties d ON d.material_id = m.id WHERE 1 = 1"
    )
    params: dict[str, Any] = {}
    if source is not None:
        sql += " AND m.source = :source"
        params["source"] = source
    stmt = text(sql + (" AND m.id IN :ids" if ids is not None else "") + " ORDER BY m.id")
    if ids is not None:
        stmt = stmt.bindparams(bindparam("ids", expanding=True))
    out: list[StoredStructure] = []
    with engine.connect() as conn:
        parts = [ids[i : i + 2000] for i in range(0, len(ids), 2000)] if ids is not None else [None]
        for part in parts:
            if part is not None:
                params["ids"] = part
                if not part:
                    continue
            for row in conn.execute(stmt, params):
                lat = bytes(row[4])
                if len(lat) != 72:
                    continue  # graph-only materials (imported data sets) have no lattice
                props = {k: float(v) for k, v in zip(_PROPS, row[7:10], strict=True)
                         if v is not None and not math.isnan(float(v))}
                out.append(StoredStructure(
                    int(row[0]), str(row[1]), str(row[2]), str(row[3]),
                    np.frombuffer(lat, "<f8").reshape(3, 3).copy(),
                    np.frombuffer(bytes(row[5]), "<f8").reshape(-1, 3).copy(),
                    np.frombuffer(bytes(row[6]), "<i2").astype(np.int64), props))
    return out


def to_pymatgen(s: StoredStructure) -> Any:
    """A pymatgen ``Structure`` (DFT values in ``properties``)."""
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice(s.lattice), s.numbers.tolist(), s.frac,
                     properties={**s.props, "material_id": s.material_id,
                                 "source": s.source, "source_id": s.source_id})


def to_ase(s: StoredStructure) -> Any:
    """An ASE ``Atoms`` (periodic; DFT values in ``info``)."""
    from ase import Atoms

    return Atoms(numbers=s.numbers, cell=s.lattice, scaled_positions=s.frac, pbc=True,
                 info=dict(s.props))


def _file_name(source_id: str, suffix: str) -> str:
    parts = [p for p in PurePosixPath(source_id.replace("#", "_")).parts if p not in ("..", "/")]
    name = "/".join(parts) or "structure"
    return name if name.lower().endswith(suffix) else name + suffix


@dataclass
class ExportSummary:
    written: int
    directory: Path
    files: dict[int, str]  # material id → file name relative to the directory


def export_structures(
    engine: Engine,
    directory: str | Path,
    fmt: str,
    *,
    source: str | None = None,
    where: str | None = None,
    query_engine: Engine | None = None,
) -> ExportSummary:
    """Write the selected structures as files of ``fmt`` (see the module docstring)."""
    import warnings

    import pandas as pd

    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise InputError(f"{directory}: exists and is not a folder")
    structures = select_structures(engine, source=source, where=where,
                                   query_engine=query_engine)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[int, str] = {}
    taken: set[str] = set()
    rows = []
    for s in structures:
        name = _file_name(s.source_id, EXPORT_FORMATS[fmt])
        if name in taken:  # the same source_id in two sources
            name = _file_name(f"{s.source}/{s.source_id}", EXPORT_FORMATS[fmt])
        taken.add(name)
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _write(path, s, fmt)
        files[s.material_id] = name
        rows.append({"name": name, **s.props})
    if fmt in ("cif", "poscar") and rows:
        pd.DataFrame(rows, columns=["name", *_PROPS]).to_csv(out / "properties.csv", index=False)
    return ExportSummary(len(structures), out, files)


def _write(path: Path, s: StoredStructure, fmt: str) -> None:
    if fmt == "extxyz":
        from ase.io import write

        write(path, to_ase(s), format="extxyz")
        return
    st = to_pymatgen(s)
    if fmt == "cif":
        from pymatgen.io.cif import CifWriter

        CifWriter(st).write_file(path)
    elif fmt == "poscar":
        from pymatgen.io.vasp import Poscar

        Poscar(st, comment=f"{s.formula} {s.source}:{s.source_id}").write_file(path)
    else:
        import json

        d = st.as_dict()
        d["properties"] = dict(s.props)
        path.write_text(json.dumps(d), encoding="utf-8")
