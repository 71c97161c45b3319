"""The known truth behind the synthetic DFT values: properties as functions of the crystal graph.

The synthetic OQMD dump (``matplat.ingest.sample``) does not invent its DFT values at random:
each is the function below of the structure's CGNN crystal graph (recipe ``cgc``), plus seeded
Gaussian noise of a stated size. A CGNN can therefore learn them, the irreducible error is
known, and any structure (a substitution candidate, a user's file) can be scored against the
same truth. The numbers are SYNTHETIC: chemical trends only, never science.

Notation, per structure of N atoms: the crystal graph gives each atom i its neighbour list
N(i) (one entry per periodic image: the graph's edges whose centre is i), its coordination
CN_i = |N(i)|, atomic number Z_i, Pauling electronegativity chi_i (:data:`ELECTRONEGATIVITY`,
3.0 for the noble gases that have none) and atomic radius r_i (the graph recipe's radii).
``mean_j`` is the mean over N(i) (0 for an isolated atom).

formation_energy (eV/atom)::

    E = (1/N) sum_i [ mean_j P(Z_i, Z_j) + C_U * (CN_i - CN*(Z_i))^2 ]
    P(A, B) = -K_CHI * |chi_A - chi_B| + R(A, B)       P(A, A) = 0

  K_CHI = 1 eV (large electronegativity differences bind strongly: NaCl about -2.2);
  R is a symmetric element-pair table of N(0, 0.1 eV) drawn once from ``TRUTH_SEED`` (the
  chemistry that trends do not explain); CN*(Z) a preferred coordination per element drawn
  from {4, 6, 8, 12} with the same seed; C_U = 0.004 eV. An element in a structure of its
  preferred coordination has E = 0 (the elemental reference); other coordinations cost
  energy, so polymorphs of one composition differ and only some compositions lie on the
  convex hull (tests/ml/test_synthetic_truth.py checks that with pymatgen's PhaseDiagram).

band_gap (eV), from bond ionicity::

    I = (1/N) sum_i mean_j |chi_i - chi_j|        gap = G_ION * max(0, I - I_METAL)

  G_ION = 2.5 eV, I_METAL = 0.8: metals (elements, intermetallics, mixed random cells) have
  exactly 0.

magnetization (muB/atom, absolute)::

    m = (1/N) sum_{i magnetic} MOMENT(Z_i) * min(1, 6 / CN_i)

  MOMENT is a fixed table of the magnetic species (Fe 2.2, Co 1.6, Ni 0.6, Mn 3.0, Cr 2.0,
  V 1.0, Gd 7.0, Nd 3.0, Ce 1.0, U 2.0); a high coordination quenches the moment. Every
  structure without one of them has exactly 0 (most materials).

volume_per_atom (Å^3/atom), from radii and coordination (denser packing at high CN)::

    V = (1/N) sum_i (4 pi / 3) r_i^3 / PHI(CN_i)      PHI(CN) = 0.74 * (clip(CN, 4, 14) / 12)^0.4

The graph recipe's cutoffs scale with the cell volume, so the graph, and with it every value
but the volume, does not depend on the cell's scale: the dump generator scales each relaxed
cell to its noisy volume without changing the other values. Supercells give the values of
their primitive cell (every atom keeps its neighbourhood), so the truth is computed on the
cell as given, without the primitive-cell step.

Noise (:func:`add_noise`, :data:`NOISE_SIGMA`): Gaussian with standard deviation sigma on
formation energy (all materials), band gap (insulators only, then clipped at 0: metals stay
exactly 0), magnetization (magnetic materials only, absolute value) and volume per atom. The
noise floor, the MAE of a perfect model against the noisy values, is sigma * sqrt(2/pi)
(:func:`noise_floor_mae`) on the materials that carry noise: 0.024 eV/atom for the formation
energy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.graphs.builder import graphs_of_cells, prepare
from ml.graphs.elements import MAX_Z, RADII, SYMBOLS
from ml.graphs.errors import GraphBuildError
from ml.graphs.graph import CrystalGraph

__all__ = [
    "ELECTRONEGATIVITY",
    "MAGNETIC_MOMENT",
    "NOISE_SIGMA",
    "PROPERTIES",
    "TRUTH_SEED",
    "add_noise",
    "atomic_numbers_of",
    "noise_floor_mae",
    "synthetic_truth",
    "synthetic_truths",
    "truth_of_graphs",
]

#: Seed of the element tables R(A, B) and CN*(Z): fixed, so the truth never changes.
TRUTH_SEED = 20261201
PROPERTIES = ("formation_energy", "band_gap", "magnetization", "volume_per_atom")
#: Standard deviation of the Gaussian noise of each property (units as the property).
NOISE_SIGMA = {"formation_energy": 0.03, "band_gap": 0.1, "magnetization": 0.05,
               "volume_per_atom": 0.3}  # fmt: skip

K_CHI = 1.0
C_U = 0.004
G_ION = 2.5
I_METAL = 0.8
_CHUNK = 256  # cells per graph batch

_PAULING = {
    "H": 2.20, "Li": 0.98, "Be": 1.57, "B": 2.04, "C": 2.55, "N": 3.04, "O": 3.44, "F": 3.98,
    "Na": 0.93, "Mg": 1.31, "Al": 1.61, "Si": 1.90, "P": 2.19, "S": 2.58, "Cl": 3.16, "K": 0.82,
    "Ca": 1.00, "Sc": 1.36, "Ti": 1.54, "V": 1.63, "Cr": 1.66, "Mn": 1.55, "Fe": 1.83,
    "Co": 1.88, "Ni": 1.91, "Cu": 1.90, "Zn": 1.65, "Ga": 1.81, "Ge": 2.01, "As": 2.18,
    "Se": 2.55, "Br": 2.96, "Kr": 3.00, "Rb": 0.82, "Sr": 0.95, "Y": 1.22, "Zr": 1.33,
    "Nb": 1.60, "Mo": 2.16, "Tc": 1.90, "Ru": 2.20, "Rh": 2.28, "Pd": 2.20, "Ag": 1.93,
    "Cd": 1.69, "In": 1.78, "Sn": 1.96, "Sb": 2.05, "Te": 2.10, "I": 2.66, "Xe": 2.60,
    "Cs": 0.79, "Ba": 0.89, "La": 1.10, "Ce": 1.12, "Pr": 1.13, "Nd": 1.14, "Pm": 1.13,
    "Sm": 1.17, "Eu": 1.20, "Gd": 1.20, "Tb": 1.10, "Dy": 1.22, "Ho": 1.23, "Er": 1.24,
    "Tm": 1.25, "Yb": 1.10, "Lu": 1.27, "Hf": 1.30, "Ta": 1.50, "W": 2.36, "Re": 1.90,
    "Os": 2.20, "Ir": 2.20, "Pt": 2.28, "Au": 2.54, "Hg": 2.00, "Tl": 1.62, "Pb": 2.33,
    "Bi": 2.02, "Po": 2.00, "At": 2.20, "Fr": 0.70, "Ra": 0.90, "Ac": 1.10, "Th": 1.30,
    "Pa": 1.50, "U": 1.38, "Np": 1.36, "Pu": 1.28,
}  # fmt: skip
MAGNETIC_MOMENT = {"Fe": 2.2, "Co": 1.6, "Ni": 0.6, "Mn": 3.0, "Cr": 2.0, "V": 1.0, "Gd": 7.0,
                   "Nd": 3.0, "Ce": 1.0, "U": 2.0}  # fmt: skip


def _by_z(values: dict[str, float], default: float) -> NDArray[np.float64]:
    out = np.full(MAX_Z + 1, default)
    for sym, v in values.items():
        out[SYMBOLS.index(sym) + 1] = v
    out.setflags(write=False)
    return out


#: Pauling electronegativity by Z (3.0 where none is defined: the noble gases).
ELECTRONEGATIVITY = _by_z(_PAULING, 3.0)
_MOMENT = _by_z(MAGNETIC_MOMENT, 0.0)


def _tables() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The pair energy table P (by Z, Z) and the preferred coordination CN* (by Z)."""
    rng = np.random.default_rng(TRUTH_SEED)
    r = rng.normal(0.0, 0.1, (MAX_Z + 1, MAX_Z + 1))
    r = np.triu(r, 1)
    r = r + r.T  # symmetric, zero diagonal
    chi = ELECTRONEGATIVITY
    pair = -K_CHI * np.abs(chi[:, None] - chi[None, :]) + r
    cn_star = rng.choice(np.array([4.0, 6.0, 8.0, 12.0]), MAX_Z + 1)
    for t in (pair, cn_star):
        t.setflags(write=False)
    return pair, cn_star


PAIR_ENERGY, PREFERRED_CN = _tables()


def atomic_numbers_of(species: Sequence[str]) -> NDArray[np.int64]:
    """Atomic numbers of element symbols (``["Na", "Cl"]`` -> ``[11, 17]``)."""
    return np.array([SYMBOLS.index(s) + 1 for s in species], dtype=np.int64)


def truth_of_graphs(graphs: Sequence[CrystalGraph]) -> dict[str, NDArray[np.float64]]:
    """The four noiseless properties of each graph, ``{property: (G,) array}``, vectorised."""
    g = len(graphs)
    if g == 0:
        return {p: np.zeros(0) for p in PROPERTIES}
    sizes = np.array([gr.natoms for gr in graphs], dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    z = np.concatenate([gr.atomic_numbers for gr in graphs]).astype(np.int64)
    esizes = np.array([gr.nedges for gr in graphs], dtype=np.int64)
    shift = np.repeat(starts, esizes)
    src = np.concatenate([gr.edge_src for gr in graphs]).astype(np.int64) + shift
    dst = np.concatenate([gr.edge_dst for gr in graphs]).astype(np.int64) + shift
    n = len(z)
    cn = np.bincount(src, minlength=n).astype(np.float64)
    inv_cn = np.divide(1.0, cn, out=np.zeros(n), where=cn > 0)
    zs, zd = z[src], z[dst]
    bond = np.bincount(src, PAIR_ENERGY[zs, zd], minlength=n) * inv_cn
    chi = ELECTRONEGATIVITY
    ionic = np.bincount(src, np.abs(chi[zs] - chi[zd]), minlength=n) * inv_cn
    site = C_U * (cn - PREFERRED_CN[z]) ** 2
    moment = _MOMENT[z] * np.minimum(1.0, 6.0 / np.maximum(cn, 1.0))
    phi = 0.74 * (np.clip(cn, 4.0, 14.0) / 12.0) ** 0.4
    vol = (4.0 * math.pi / 3.0) * RADII[z] ** 3 / phi
    graph_of = np.repeat(np.arange(g), sizes)

    def mean(per_atom: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.bincount(graph_of, per_atom, minlength=g) / sizes

    return {
        "formation_energy": mean(bond + site),
        "band_gap": G_ION * np.maximum(0.0, mean(ionic) - I_METAL),
        "magnetization": mean(moment),
        "volume_per_atom": mean(vol),
    }


def synthetic_truths(
    structures: Iterable[tuple[ArrayLike, ArrayLike, ArrayLike]],
) -> dict[str, NDArray[np.float64]]:
    """:func:`synthetic_truth` of many (lattice, frac_coords, atomic_numbers), batched.

    A structure whose graph cannot be built (an element without a radius, a degenerate
    cell) gets NaN for every property; the others are unaffected.
    """
    items = list(structures)
    out = {p: np.full(len(items), np.nan) for p in PROPERTIES}
    for a in range(0, len(items), _CHUNK):
        cells, where = [], []
        for k, (lattice, frac, z) in enumerate(items[a : a + _CHUNK]):
            try:
                cells.append(prepare(lattice, frac, z, "cgc", primitive=False))
                where.append(a + k)
            except GraphBuildError:
                continue
        built = graphs_of_cells(cells, "cgc") if cells else []
        ok = [(i, gr) for i, gr in zip(where, built, strict=True) if isinstance(gr, CrystalGraph)]
        if not ok:
            continue
        idx = np.array([i for i, _ in ok])
        values = truth_of_graphs([gr for _, gr in ok])
        for p in PROPERTIES:
            out[p][idx] = values[p]
    return out


def synthetic_truth(
    lattice: ArrayLike, frac_coords: ArrayLike, atomic_numbers: ArrayLike
) -> dict[str, float]:
    """The noiseless synthetic properties of one structure (formulas: the module docstring).

    Args:
        lattice: (3, 3) lattice rows in Å.
        frac_coords: (n, 3) fractional coordinates.
        atomic_numbers: (n,) Z.

    Returns:
        ``{"formation_energy": eV/atom, "band_gap": eV, "magnetization": muB/atom,
        "volume_per_atom": Å^3/atom}`` (the volume is the truth's, not the given cell's).

    Raises:
        GraphBuildError: the crystal graph cannot be built (see ``ml.graphs``).
    """
    cell = prepare(lattice, frac_coords, atomic_numbers, "cgc", primitive=False)
    graph = graphs_of_cells([cell], "cgc")[0]
    if isinstance(graph, GraphBuildError):
        raise graph
    return {p: float(v[0]) for p, v in truth_of_graphs([graph]).items()}


def add_noise(
    values: dict[str, NDArray[np.float64]], rng: np.random.Generator
) -> dict[str, NDArray[np.float64]]:
    """Noisy copies of :func:`synthetic_truths`-style arrays (``NOISE_SIGMA`` per property).

    Formation energy and volume get N(0, sigma) everywhere; band gap and magnetization only
    where the truth is positive (then clipped at 0, and the magnetization's sign dropped), so
    metals and non-magnetic materials keep exactly 0. Draws one normal per property and
    structure, in the order of :data:`PROPERTIES`.
    """
    out = {}
    for p in PROPERTIES:
        v = np.asarray(values[p], dtype=np.float64)
        e = rng.normal(0.0, NOISE_SIGMA[p], v.shape)
        if p == "band_gap":
            out[p] = np.where(v > 0, np.maximum(v + e, 0.0), v)
        elif p == "magnetization":
            out[p] = np.where(v > 0, np.abs(v + e), v)
        else:
            out[p] = v + e
    return out


def noise_floor_mae(prop: str) -> float:
    """The MAE of the noise alone, sigma * sqrt(2 / pi): no model can beat it on average."""
    return NOISE_SIGMA[prop] * math.sqrt(2.0 / math.pi)
