"""CIF through gemmi (a compiled CIF reader, ~20× pymatgen's speed), for the plain cases only.

pymatgen's ``CifParser`` costs 15–60 ms per symmetrised file, most of the time of a CIF
ingest. gemmi tokenises a file in well under a millisecond. It is used only where its
result provably equals pymatgen's, and the file goes to pymatgen otherwise:

- every block has explicit symmetry operations (``_symmetry_equiv_pos_as_xyz`` or
  ``_space_group_symop_operation_xyz``), the six cell parameters, and sites whose
  ``_atom_site_type_symbol`` is a plain element symbol, with occupancy 1 (or none given),
  finite coordinates, no magnetic moments;
- no two sites of the asymmetric unit are images of each other (pymatgen would add their
  occupancies on one position).

The expansion is pymatgen's: the cell is ``Lattice.from_parameters`` of the parameters;
each asymmetric site is moved by every operation, wrapped into [0, 1), and an image is kept
unless it lies within 1e-4 (fractional, periodic; pymatgen's ``site_tolerance``) of one
already kept. Only the order differs (pymatgen groups the sites by element), which neither
the content hash nor a crystal graph sees. ``tests/structures/test_fast_readers.py`` checks
equal content hashes against pymatgen on every test CIF.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_cif_fast"]

_TOL = 1e-4  # pymatgen CifParser site_tolerance
_OPS_TAGS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz")
_UNSUPPORTED_TAGS = ("_atom_site_moment_label", "_atom_site_moment.label",
                     "_space_group_magn.name_BNS", "_atom_site_moment_crystalaxis_x")


def read_cif_fast(path: Path) -> list[tuple[str, Any, dict[str, float]]] | None:
    """``(block name, (lattice, frac, numbers), {})`` per block, or None: use pymatgen."""
    try:
        import gemmi
    except ImportError:
        return None
    try:
        doc = gemmi.cif.read(str(path))
    except Exception:  # noqa: BLE001 - pymatgen gives the user its own message
        return None
    out = []
    for block in doc:
        item = _block(gemmi, block)
        if item is None:
            return None
        out.append((block.name, item, {}))
    return out or None


def _block(gemmi: Any, block: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    from pymatgen.core import Lattice

    if any(block.find_value(t) is not None or len(block.find_values(t)) for t in _UNSUPPORTED_TAGS):
        return None
    xyz = next((list(block.find_values(t)) for t in _OPS_TAGS if len(block.find_values(t))), None)
    if not xyz:
        return None
    try:
        st = gemmi.make_small_structure_from_block(block)
        ops = [gemmi.Op(gemmi.cif.as_string(s)) for s in xyz]
    except Exception:  # noqa: BLE001
        return None
    c = st.cell
    params = (c.a, c.b, c.c, c.alpha, c.beta, c.gamma)
    if not st.sites or not all(np.isfinite(params)) or min(params) <= 0:
        return None
    if params == (1.0, 1.0, 1.0, 90.0, 90.0, 90.0):  # gemmi's default: a parameter is missing
        return None
    symbols = _symbols()
    asym = np.empty((len(st.sites), 3))
    z = np.empty(len(st.sites), dtype=np.int16)
    for i, s in enumerate(st.sites):
        number = symbols.get(s.type_symbol.strip())
        if s.occ != 1.0 or number is None:
            return None
        f = s.fract
        asym[i] = (f.x, f.y, f.z)
        z[i] = number
    if not np.isfinite(asym).all():
        return None
    rot = np.array([op.rot for op in ops], dtype=np.float64) / gemmi.Op.DEN  # (k, 3, 3)
    tran = np.array([op.tran for op in ops], dtype=np.float64) / gemmi.Op.DEN  # (k, 3)
    images = np.einsum("kij,nj->nki", rot, asym) + tran[None]  # (n, k, 3)
    images -= np.floor(images)
    # Two asymmetric sites that are images of each other: pymatgen merges them; leave it.
    d = images[None, :, :, :] - asym[:, None, None, :]  # (i, j, op, 3)
    same = (np.abs(d - np.round(d)) < _TOL).all(axis=3).any(axis=2)  # (i, j)
    if np.tril(same, k=-1).any():
        return None
    frac, numbers = [], []
    for i in range(len(asym)):
        d = images[i][:, None, :] - images[i][None, :, :]
        eq = (np.abs(d - np.round(d)) < _TOL).all(axis=2).tolist()  # (k, k)
        kept: list[int] = []
        for a in range(len(eq)):  # pymatgen's order: keep an image unless one kept is within tol
            row = eq[a]
            if not any(row[b] for b in kept):
                kept.append(a)
        frac.append(images[i][kept])
        numbers.extend([z[i]] * len(kept))
    lattice = np.array(Lattice.from_parameters(*params).matrix, dtype=np.float64)
    return lattice, np.concatenate(frac), np.asarray(numbers, dtype=np.int16)


_SYMBOL_Z: dict[str, int] = {}


def _symbols() -> dict[str, int]:
    """Element symbol → Z for H … Og (pymatgen's table, read once)."""
    if not _SYMBOL_Z:
        from pymatgen.core.periodic_table import Element

        _SYMBOL_Z.update({e.symbol: int(e.Z) for e in Element})
    return _SYMBOL_Z
