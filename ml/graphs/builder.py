"""Build crystal graphs: primitive cell, cutoffs, candidate images, 2-means neighbour selection.

Per structure (reference: Tony-Y/cgnn ``tools/mp_graph.py``):
    r_k = atomic radius of atom k; factor = (V / ((4 pi / 3) * sum_k r_k^3))^(1/3) * 1.2
    cutoff_ij = (r_i + r_j) * factor        (scale-invariant)
    candidates of j: every image of every i with 1e-8 < d < cutoff_ij (a multigraph)
    neighbours of j: the nearest cluster of x = d / cutoff_ij by repeated exact 1-D 2-means
    edges: j -> i for every neighbour image i of j.

Cells are prepared one by one (checks, primitive cell, radii, cutoff factor), then searched
and clustered in batches of CHUNK cells: all per-pair and per-atom work is independent between
cells, so a batch gives exactly the result of each cell alone, with the numpy call overhead
shared. Use :func:`build_crystal_graphs` for throughput (~0.1 ms per OQMD-sized primitive cell
on one core); :func:`build_crystal_graph` on one cell pays that overhead alone (~0.5 ms).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.graphs.cluster import select_neighbors
from ml.graphs.elements import (
    RADII,
    RADII_CUBED,
    SPECIES_LOOKUP,
    atomic_radii,
    check_atomic_numbers,
)
from ml.graphs.errors import GraphBuildError
from ml.graphs.graph import CrystalGraph, trusted_graph
from ml.graphs.lattice import cell_volume
from ml.graphs.neighbors import Candidates, SearchCell, search_cells
from ml.graphs.primitive import primitive_cell
from ml.graphs.recipes import GraphRecipe, get_recipe

_FOUR_PI_OVER_3 = 4 * math.pi / 3
CHUNK = 256  # cells per batch: large enough to amortise numpy calls, small enough for cache


class _Settings(NamedTuple):
    """A recipe's parameters, typed, read once per call rather than once per structure."""

    images: str
    radius_factor: float
    min_distance: float
    cc_cutoff: float
    max_iter: int
    primitive_tolerance: float

    @classmethod
    def of(cls, recipe: str | GraphRecipe) -> _Settings:
        p = get_recipe(recipe).params
        return cls(
            str(p["images"]),
            float(p["radius_factor"]),
            float(p["min_distance"]),
            float(p["cc_cutoff"]),
            int(p["max_iter"]),
            float(p["primitive_tolerance"]),
        )


class PreparedCell(NamedTuple):
    """A checked (primitive) cell with its radii and cutoff factor, ready for the search.

    Attributes:
        z: (m,) atomic numbers.
        search: lattice, fractional coordinates, radii, cutoff factor and volume.
        reduced: whether the primitive-cell step shrank the input cell.
    """

    z: NDArray[np.int64]
    search: SearchCell
    reduced: bool


def build_crystal_graph(
    lattice: ArrayLike,
    frac_coords: ArrayLike,
    atomic_numbers: ArrayLike,
    recipe: str | GraphRecipe = "cgc",
) -> CrystalGraph:
    """The crystal graph of a structure, built on its primitive cell.

    Args:
        lattice: (3, 3) rows are the lattice vectors (Å).
        frac_coords: (n, 3) fractional coordinates (need not be wrapped into [0, 1)).
        atomic_numbers: (n,) integers Z.
        recipe: a recipe name (``"cgc"``, ``"cgc-reference27"``) or a GraphRecipe.

    Returns:
        A CrystalGraph of the m <= n atoms of the primitive cell: the input cell itself, in its
        own atom order, when it is already primitive; pymatgen's reduced cell otherwise.

    Raises:
        GraphBuildError: invalid input, an element without a radius (At, Fr, Z >= 96), a failed
            primitive reduction, or an image search that would not fit in memory.
    """
    settings = _Settings.of(recipe)
    cell = _prepare(lattice, frac_coords, atomic_numbers, settings, primitive=True)
    graph = _graphs_of([cell], settings)[0]
    if isinstance(graph, GraphBuildError):
        raise graph
    return graph


def build_crystal_graphs(
    structures: Iterable[tuple[ArrayLike, ArrayLike, ArrayLike]],
    recipe: str | GraphRecipe = "cgc",
) -> list[CrystalGraph | GraphBuildError]:
    """:func:`build_crystal_graph` over (lattice, frac_coords, atomic_numbers) tuples, batched.

    A structure that fails yields its GraphBuildError in its place (any other exception is
    wrapped into one, with the original as ``__cause__``), so one bad structure never stops
    the batch. Results are identical to calling :func:`build_crystal_graph` on each.
    """
    settings = _Settings.of(recipe)
    out: list[CrystalGraph | GraphBuildError] = []
    pending: list[tuple[int, PreparedCell]] = []
    for item in structures:
        index = len(out)
        out.append(GraphBuildError("not built"))
        try:
            lattice, frac, z = item
            pending.append((index, _prepare(lattice, frac, z, settings, primitive=True)))
        except GraphBuildError as exc:
            out[index] = exc
        except Exception as exc:  # a malformed tuple, a numpy error
            out[index] = _wrap(index, exc)
        if len(pending) >= CHUNK:
            _flush(pending, out, settings)
    _flush(pending, out, settings)
    return out


def prepare(
    lattice: ArrayLike,
    frac_coords: ArrayLike,
    atomic_numbers: ArrayLike,
    recipe: str | GraphRecipe = "cgc",
    *,
    primitive: bool = True,
) -> PreparedCell:
    """Check the input, take the primitive cell (unless ``primitive=False``), radii and factor."""
    return _prepare(lattice, frac_coords, atomic_numbers, _Settings.of(recipe), primitive=primitive)


def graphs_of_cells(
    cells: Sequence[PreparedCell], recipe: str | GraphRecipe = "cgc"
) -> list[CrystalGraph | GraphBuildError]:
    """Graphs of prepared cells, searched and clustered as one batch."""
    return _graphs_of(cells, _Settings.of(recipe))


def cell_candidates(cell: PreparedCell, recipe: str | GraphRecipe = "cgc") -> Candidates:
    """All candidate images of one prepared cell (before clustering)."""
    settings = _Settings.of(recipe)
    cand, errors = search_cells(
        [cell.search], images=settings.images, min_distance=settings.min_distance
    )
    if errors:
        raise errors[0]
    return cand


def cutoff_scale_factor(
    lattice: ArrayLike, atomic_numbers: ArrayLike, radius_factor: float = 1.2
) -> float:
    """(V / ((4 pi / 3) * sum r^3))^(1/3) * radius_factor, in the reference's exact arithmetic.

    V is pymatgen's ``Lattice.volume`` arithmetic and sum r^3 sums Python-float cubes with
    numpy's pairwise sum, as the reference does, so the factor matches it bit for bit.
    """
    z = check_atomic_numbers(atomic_numbers)
    atomic_radii(z)
    vol_atom = _FOUR_PI_OVER_3 * RADII_CUBED[z].sum()
    return float(
        ((cell_volume(np.asarray(lattice, np.float64)) / vol_atom) ** (1.0 / 3.0)) * radius_factor
    )


def _prepare(
    lattice: ArrayLike,
    frac_coords: ArrayLike,
    atomic_numbers: ArrayLike,
    settings: _Settings,
    *,
    primitive: bool,
) -> PreparedCell:
    lat, frac, z, volume = _check_input(lattice, frac_coords, atomic_numbers)
    reduced = False
    if primitive:
        lat, frac, z, reduced = primitive_cell(lat, frac, z, settings.primitive_tolerance)
        if reduced:
            volume = cell_volume(lat)
    vol_atom = _FOUR_PI_OVER_3 * RADII_CUBED[z].sum()
    if math.isnan(vol_atom):  # an element without a radius
        atomic_radii(z)  # raises, naming it
    radii = RADII[z]
    factor = ((volume / vol_atom) ** (1.0 / 3.0)) * settings.radius_factor
    return PreparedCell(z, SearchCell(lat, frac, radii, float(factor), volume), reduced)


def _graphs_of(
    cells: Sequence[PreparedCell], settings: _Settings
) -> list[CrystalGraph | GraphBuildError]:
    cand, errors = search_cells(
        [c.search for c in cells], images=settings.images, min_distance=settings.min_distance
    )
    sizes = np.array([len(c.z) for c in cells], dtype=np.int64)
    atom_start = np.cumsum(sizes) - sizes
    keep = select_neighbors(
        cand.j + atom_start[cand.cell],
        cand.ratio,
        int(sizes.sum()),
        cc_cutoff=settings.cc_cutoff,
        max_iter=settings.max_iter,
    )
    kept = np.flatnonzero(keep)
    cell_of = cand.cell[kept]
    image = cand.image.take(kept, axis=0)
    if len(image) and (image.min() < -128 or image.max() > 127):
        overflow = np.abs(image).max(axis=1) > 127
        for k in np.unique(cell_of[overflow]).tolist():
            errors[k] = GraphBuildError("an edge image offset exceeds int8: the cell is too skewed")
    src = cand.j[kept].astype(np.int32)
    dst = cand.i[kept].astype(np.int32)
    image8 = image.astype(np.int8)
    dist = cand.dist[kept].astype(np.float32)
    z = np.concatenate([c.z for c in cells])
    z16 = z.astype(np.int16)
    species = SPECIES_LOOKUP[z]
    for arr in (src, dst, image8, dist, z16, species):
        arr.flags.writeable = False  # the graphs' slices inherit it
    edge_bounds = np.searchsorted(cell_of, np.arange(len(cells) + 1)).tolist()
    atom_bounds = np.concatenate(([0], np.cumsum(sizes))).tolist()
    graphs: list[CrystalGraph | GraphBuildError] = []
    for k in range(len(cells)):
        if k in errors:
            graphs.append(errors[k])
            continue
        a, b = edge_bounds[k], edge_bounds[k + 1]
        u, v = atom_bounds[k], atom_bounds[k + 1]
        graphs.append(
            trusted_graph(z16[u:v], species[u:v], src[a:b], dst[a:b], image8[a:b], dist[a:b])
        )
    return graphs


def _flush(
    pending: list[tuple[int, PreparedCell]],
    out: list[CrystalGraph | GraphBuildError],
    settings: _Settings,
) -> None:
    """Build the pending cells as one batch; isolate a failure by building them one by one."""
    if not pending:
        return
    try:
        graphs = _graphs_of([c for _, c in pending], settings)
    except Exception:  # should not happen; never let one cell take the batch down
        graphs = []
        for index, cell in pending:
            try:
                graphs.append(_graphs_of([cell], settings)[0])
            except Exception as exc:
                graphs.append(exc if isinstance(exc, GraphBuildError) else _wrap(index, exc))
    for (index, _), graph in zip(pending, graphs, strict=True):
        out[index] = graph
    pending.clear()


def _wrap(index: int, exc: Exception) -> GraphBuildError:
    err = GraphBuildError(f"structure {index}: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def _check_input(
    lattice: ArrayLike, frac_coords: ArrayLike, atomic_numbers: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], float]:
    """(lattice, frac, z, volume) checked; GraphBuildError naming the first problem."""
    z = check_atomic_numbers(atomic_numbers)
    try:
        # C order for every BLAS call: a batch then computes exactly what one cell alone does
        lat = np.ascontiguousarray(lattice, dtype=np.float64)
        frac = np.ascontiguousarray(frac_coords, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GraphBuildError(f"lattice and frac_coords must be numeric arrays: {exc}") from exc
    if lat.shape != (3, 3):
        raise GraphBuildError(f"lattice must be (3, 3), got {lat.shape}")
    if frac.ndim != 2 or frac.shape[1] != 3:
        raise GraphBuildError(f"frac_coords must be (n, 3), got {frac.shape}")
    if len(frac) != len(z):
        raise GraphBuildError(f"{len(frac)} coordinates but {len(z)} atomic numbers")
    if len(z) == 0:
        raise GraphBuildError("a structure needs at least one atom")
    if not math.isfinite(lat.sum() + frac.sum()):  # a NaN or an infinity poisons the sum
        raise GraphBuildError("lattice and frac_coords must be finite")
    volume = cell_volume(lat)
    (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = lat.tolist()
    norms = (
        (a0 * a0 + a1 * a1 + a2 * a2)
        * (b0 * b0 + b1 * b1 + b2 * b2)
        * (c0 * c0 + c1 * c1 + c2 * c2)
    )
    if not volume > 1e-6 * math.sqrt(norms):
        raise GraphBuildError(f"degenerate lattice (volume {volume:.3g} Å^3)")
    return lat, frac, z, volume
