"""Crystal prototypes and charge-balanced chemistry for the synthetic dump generator.

Each prototype is a (primitive) cell of a well-known structure type with its sites labelled
by role; :func:`make_structure` fills the roles with elements chosen so that common
oxidation states balance (cations are the less electronegative elements, anions the more
electronegative ones), scales the cell from atomic radii, and optionally builds a small
supercell. Random P1 cells with 1–60 atoms of 2–4 elements cover everything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Prototype", "PROTOTYPES", "SynthStructure", "make_structure", "RADII", "MAGNETIC"]

_S3 = math.sqrt(3.0)
_FCC = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
_BCC = np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]])
_CUBIC = np.eye(3)


def _hex(c_over_a: float) -> np.ndarray:
    return np.array([[1.0, 0.0, 0.0], [-0.5, _S3 / 2, 0.0], [0.0, 0.0, c_over_a]])


@dataclass(frozen=True)
class Prototype:
    """A structure type: unit cell (in units of a), sites as (role, fractional coords)."""

    name: str
    spacegroup: int
    cell: np.ndarray
    sites: tuple[tuple[str, tuple[float, float, float]], ...]
    chemistry: str  # "AX", "AX2", "ABX3", "AB2X4", "AB" (intermetallic), "A" (element)
    a_factor: float  # a = a_factor * (r_A + r_X) (or * r_A for elements)
    weight: float


_SPINEL = (
    ("A", (0.0, 0.0, 0.0)), ("A", (0.25, 0.25, 0.25)),
    ("B", (0.125, 0.625, 0.625)), ("B", (0.625, 0.125, 0.625)),
    ("B", (0.625, 0.625, 0.125)), ("B", (0.625, 0.625, 0.625)),
    ("X", (0.3875, 0.3875, 0.3875)), ("X", (0.3875, 0.3875, 0.8375)),
    ("X", (0.3875, 0.8375, 0.3875)), ("X", (0.4125, 0.8625, 0.8625)),
    ("X", (0.8375, 0.3875, 0.3875)), ("X", (0.8625, 0.4125, 0.8625)),
    ("X", (0.8625, 0.8625, 0.4125)), ("X", (0.8625, 0.8625, 0.8625)),
)  # fmt: skip

PROTOTYPES: tuple[Prototype, ...] = (
    Prototype("NaCl", 225, _FCC, (("A", (0, 0, 0)), ("X", (0.5, 0.5, 0.5))), "AX", 2.0, 3.0),
    Prototype("CsCl", 221, _CUBIC, (("A", (0, 0, 0)), ("B", (0.5, 0.5, 0.5))), "AB", 1.16, 1.5),
    Prototype(
        "CaF2", 225, _FCC,
        (("A", (0, 0, 0)), ("X", (0.25, 0.25, 0.25)), ("X", (0.75, 0.75, 0.75))), "AX2", 2.3, 1.5,
    ),
    Prototype(
        "CaTiO3", 221, _CUBIC,
        (("A", (0, 0, 0)), ("B", (0.5, 0.5, 0.5)), ("X", (0.5, 0.5, 0.0)),
         ("X", (0.5, 0.0, 0.5)), ("X", (0.0, 0.5, 0.5))),
        "ABX3", 1.45, 2.0,
    ),
    Prototype(
        "ZnO", 186, _hex(1.633),
        (("A", (1 / 3, 2 / 3, 0.0)), ("A", (2 / 3, 1 / 3, 0.5)),
         ("X", (1 / 3, 2 / 3, 0.375)), ("X", (2 / 3, 1 / 3, 0.875))),
        "AX", 1.3, 1.0,
    ),
    Prototype("ZnS", 216, _FCC, (("A", (0, 0, 0)), ("X", (0.25, 0.25, 0.25))), "AX", 2.3, 1.0),
    Prototype("MgAl2O4", 227, _FCC, _SPINEL, "AB2X4", 4.0, 0.7),
    Prototype(
        "CdI2", 164, _hex(1.6),
        (("A", (0, 0, 0)), ("X", (1 / 3, 2 / 3, 0.25)), ("X", (2 / 3, 1 / 3, 0.75))), "AX2", 1.4, 1.0,
    ),
    Prototype("Cu", 225, _FCC, (("A", (0, 0, 0)),), "A", 2.83, 0.8),
    Prototype("W", 229, _BCC, (("A", (0, 0, 0)),), "A", 2.31, 0.5),
    Prototype(
        "Mg", 194, _hex(1.624), (("A", (1 / 3, 2 / 3, 0.25)), ("A", (2 / 3, 1 / 3, 0.75))), "A", 2.0, 0.5
    ),
)  # fmt: skip
RANDOM_WEIGHT = 2.0  # random P1 cells, relative to the prototype weights above

# Common oxidation states → elements (cations: low electronegativity; anions: high).
_CATIONS = {
    1: ("Li", "Na", "K", "Rb", "Cs", "Ag", "Cu", "Tl"),
    2: ("Mg", "Ca", "Sr", "Ba", "Zn", "Cd", "Fe", "Co", "Ni", "Mn", "Cu", "Pb", "Sn", "Be"),
    3: ("Al", "Ga", "In", "Sc", "Y", "La", "Fe", "Cr", "V", "Bi", "Nd", "Gd", "Ti", "Co", "Mn"),
    4: ("Ti", "Zr", "Hf", "Si", "Ge", "Sn", "Ce", "Mn", "Pb", "Mo", "V", "U"),
}
_ANIONS = {1: ("F", "Cl", "Br", "I", "H"), 2: ("O", "S", "Se", "Te"), 3: ("N", "P", "As")}
_METALS = (
    "Al", "Cu", "Ni", "Fe", "Co", "Ti", "Zr", "Nb", "Mo", "Pd", "Pt", "Au", "Ag", "Zn", "Mg",
    "Sc", "Y", "V", "Cr", "Mn", "W", "Ir", "Rh", "Ru", "Ta", "Hf", "Ga", "In", "Sn", "Li",
    "Ca", "Sr", "Ba", "La", "Ce", "Re", "Os", "Cd", "Hg",
)  # fmt: skip
MAGNETIC = frozenset({"Fe", "Co", "Ni", "Mn", "Cr", "V", "Gd", "Nd", "Ce", "U"})

# Approximate atomic radii (Å) of every element used: sizes the cells.
RADII = {
    "H": 0.53, "Li": 1.45, "Be": 1.05, "C": 0.7, "N": 0.65, "O": 0.6, "F": 0.5, "Na": 1.8,
    "Mg": 1.5, "Al": 1.25, "Si": 1.1, "P": 1.0, "S": 1.0, "Cl": 1.0, "K": 2.2, "Ca": 1.8,
    "Sc": 1.6, "Ti": 1.4, "V": 1.35, "Cr": 1.4, "Mn": 1.4, "Fe": 1.4, "Co": 1.35, "Ni": 1.35,
    "Cu": 1.35, "Zn": 1.35, "Ga": 1.3, "Ge": 1.25, "As": 1.15, "Se": 1.15, "Br": 1.15,
    "Rb": 2.35, "Sr": 2.0, "Y": 1.8, "Zr": 1.55, "Nb": 1.45, "Mo": 1.45, "Ru": 1.3, "Rh": 1.35,
    "Pd": 1.4, "Ag": 1.6, "Cd": 1.55, "In": 1.55, "Sn": 1.45, "Sb": 1.45, "Te": 1.4, "I": 1.4,
    "Cs": 2.6, "Ba": 2.15, "La": 1.95, "Ce": 1.85, "Nd": 1.85, "Gd": 1.8, "Hf": 1.55,
    "Ta": 1.45, "W": 1.35, "Re": 1.35, "Os": 1.3, "Ir": 1.35, "Pt": 1.35, "Au": 1.35,
    "Hg": 1.5, "Tl": 1.9, "Pb": 1.8, "Bi": 1.6, "U": 1.75,
}  # fmt: skip


@dataclass
class SynthStructure:
    """One generated cell: lattice rows (Å), fractional coordinates, element symbols."""

    prototype: str | None
    spacegroup: int
    lattice: np.ndarray  # (3, 3)
    frac: np.ndarray  # (n, 3)
    species: list[str]
    ionic: bool


def _pick(rng: np.random.Generator, seq: tuple[str, ...], exclude: set[str] = frozenset()) -> str:
    while True:
        s = seq[int(rng.integers(len(seq)))]
        if s not in exclude:
            return s


def _assign(rng: np.random.Generator, chemistry: str) -> dict[str, str]:
    """Elements for the roles of a prototype, charge balanced."""
    if chemistry == "A":
        return {"A": _pick(rng, _METALS)}
    if chemistry == "AB":
        if rng.random() < 0.3:  # CsCl-type halides
            return {"A": _pick(rng, _CATIONS[1]), "B": _pick(rng, _ANIONS[1])}
        a = _pick(rng, _METALS)
        return {"A": a, "B": _pick(rng, _METALS, {a})}
    if chemistry == "AX":
        q = int(rng.choice([1, 2, 3], p=[0.3, 0.5, 0.2]))
        return {"A": _pick(rng, _CATIONS[q]), "X": _pick(rng, _ANIONS[q])}
    if chemistry == "AX2":
        if rng.random() < 0.5:
            return {"A": _pick(rng, _CATIONS[2]), "X": _pick(rng, _ANIONS[1])}
        return {"A": _pick(rng, _CATIONS[4]), "X": _pick(rng, _ANIONS[2])}
    if chemistry == "ABX3":
        qa, qb, qx = [(2, 4, 2), (1, 2, 1), (3, 3, 2)][int(rng.integers(3))]
        a = _pick(rng, _CATIONS[qa])
        return {"A": a, "B": _pick(rng, _CATIONS[qb], {a}), "X": _pick(rng, _ANIONS[qx])}
    if chemistry == "AB2X4":
        a = _pick(rng, _CATIONS[2])
        return {"A": a, "B": _pick(rng, _CATIONS[3], {a}), "X": _pick(rng, _ANIONS[2])}
    raise ValueError(chemistry)


def _random_cell(rng: np.random.Generator) -> SynthStructure:
    n = int(rng.integers(1, 61))
    ntypes = int(min(n, rng.integers(2, 5)))
    pool = tuple(RADII)
    elements: list[str] = []
    while len(elements) < ntypes:
        e = _pick(rng, pool, set(elements))
        elements.append(e)
    species = [elements[i % ntypes] for i in range(n)]
    rng.shuffle(species)
    atoms_volume = sum(4.0 / 3.0 * math.pi * RADII[s] ** 3 for s in species)
    angles = np.radians(rng.uniform(70.0, 110.0, 3))
    lengths = rng.uniform(0.7, 1.3, 3)
    al, be, ga = angles
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([math.cos(ga), math.sin(ga), 0.0])
    cx = math.cos(be)
    cy = (math.cos(al) - math.cos(be) * math.cos(ga)) / math.sin(ga)
    cz = math.sqrt(max(1e-3, 1.0 - cx * cx - cy * cy))
    c = np.array([cx, cy, cz])
    cell = np.stack([a, b, c]) * lengths[:, None]
    scale = (atoms_volume / rng.uniform(0.35, 0.6) / abs(np.linalg.det(cell))) ** (1.0 / 3.0)
    return SynthStructure(None, 1, cell * scale, rng.random((n, 3)), species, False)


def make_structure(rng: np.random.Generator) -> SynthStructure:
    """A plausible input structure (ideal positions of its prototype, or a random cell)."""
    weights = np.array([p.weight for p in PROTOTYPES] + [RANDOM_WEIGHT])
    k = int(rng.choice(len(weights), p=weights / weights.sum()))
    if k == len(PROTOTYPES):
        return _random_cell(rng)
    proto = PROTOTYPES[k]
    roles = _assign(rng, proto.chemistry)
    r_a = RADII[roles["A"]]
    r_x = RADII[roles.get("X", roles.get("B", roles["A"]))]
    size = r_a if proto.chemistry == "A" else r_a + r_x
    a = proto.a_factor * size * rng.uniform(0.95, 1.05)
    frac = np.array([xyz for _, xyz in proto.sites], dtype=float)
    species = [roles[role] for role, _ in proto.sites]
    cell = proto.cell * a
    # Occasionally a supercell, keeping at most 60 atoms.
    if rng.random() < 0.2:
        reps = [1, 1, 1]
        for _ in range(3):
            ax = int(rng.integers(3))
            if len(species) * np.prod(reps) * 2 <= 60:
                reps[ax] *= 2
        if reps != [1, 1, 1]:
            shifts = np.array(
                [(i, j, k) for i in range(reps[0]) for j in range(reps[1]) for k in range(reps[2])],
                dtype=float,
            )
            frac = ((frac[None, :, :] + shifts[:, None, :]) / np.array(reps)).reshape(-1, 3)
            species = species * len(shifts)
            cell = cell * np.array(reps)[:, None]
    ionic = proto.chemistry not in ("A", "AB") or roles.get("B", "") in _ANIONS[1]
    return SynthStructure(proto.name, proto.spacegroup, cell, frac, species, ionic)
