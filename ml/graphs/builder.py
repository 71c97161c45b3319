"""Build crystal graphs: primitive cell, cutoffs, candidate images, 2-means neighbour selection.

Per structure (reference: Tony-Y/cgnn ``tools/mp_graph.py``; exact arithmetic in DESIGN.md):
    r_k = atomic radius of atom k; factor = (V / ((4 pi / 3) * sum_k r_k^3))^(1/3) * 1.2
    cutoff_ij = (r_i + r_j) * factor        (scale-invariant)
    candidates of j: every image of every i with 1e-8 < d < cutoff_ij (a multigraph)
    neighbours of j: the nearest cluster of x = d / cutoff_ij by repeated exact 1-D 2-means
    edges: j -> i for every neighbour image i of j.

Cells are prepared one by one (checks, primitive cell, cutoffs), then searched and clustered in
batches: the per-atom work is row-independent, so a batch gives exactly the per-cell result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.graphs.cluster import select_neighbors
from ml.graphs.elements import RADII, RADII_CUBED, atomic_radii, check_atomic_numbers
from ml.graphs.elements import _SPECIES_LOOKUP as SPECIES_LOOKUP
from ml.graphs.errors import GraphBuildError
from ml.graphs.graph import CrystalGraph
from ml.graphs.lattice import cell_volume
from ml.graphs.neighbors import Candidates, SearchCell, prepare_cell, search_cells
from ml.graphs.primitive import primitive_cell
from ml.graphs.recipes import GraphRecipe, get_recipe

_FOUR_PI_OVER_3 = 4 * math.pi / 3
CHUNK = 256  # cells per batch: large enough to amortise numpy calls, small enough for cache


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
    rec = get_recipe(recipe)
    cell = prepare(lattice, frac_coords, atomic_numbers, rec)
    return _graphs_of([cell], rec)[0]


def build_crystal_graphs(
    structures: Iterable[tuple[ArrayLike, ArrayLike, ArrayLike]],
    recipe: str | GraphRecipe = "cgc",
) -> list[CrystalGraph | GraphBuildError]:
    """:func:`build_crystal_graph` over (lattice, frac_coords, atomic_numbers) tuples, batched.

    A structure that fails yields its GraphBuildError in its place (any other exception is
    wrapped into one, with the original as ``__cause__``), so one bad structure never stops
    the batch. Results are identical to calling :func:`build_crystal_graph` on each.
    """
    rec = get_recipe(recipe)
    out: list[CrystalGraph | GraphBuildError] = []
    pending: list[tuple[int, PreparedCell]] = []
    for item in structures:
        index = len(out)
        out.append(GraphBuildError("not built"))
        try:
            lattice, frac, z = item
            pending.append((index, prepare(lattice, frac, z, rec)))
        except GraphBuildError as exc:
            out[index] = exc
        except Exception as exc:  # a malformed tuple, a numpy error
            out[index] = _wrap(index, exc)
        if len(pending) >= CHUNK:
            _flush(pending, out, rec)
    _flush(pending, out, rec)
    return out


@dataclass(frozen=True)
class PreparedCell:
    """A checked primitive cell with its cutoffs, ready for the batched search.

    Attributes:
        z: (m,) atomic numbers.
        search: lattice, reduced coordinates, (m, m) cutoffs and the image-bounding basis.
        reduced: whether the primitive-cell step shrank the input cell.
    """

    z: NDArray[np.int64]
    search: SearchCell
    reduced: bool


def prepare(
    lattice: ArrayLike,
    frac_coords: ArrayLike,
    atomic_numbers: ArrayLike,
    recipe: str | GraphRecipe = "cgc",
    *,
    primitive: bool = True,
) -> PreparedCell:
    """Check the input, take the primitive cell (unless ``primitive=False``), compute cutoffs."""
    params = get_recipe(recipe).params
    lat, frac, z = _check_input(lattice, frac_coords, atomic_numbers)
    reduced = False
    if primitive:
        lat, frac, z, reduced = primitive_cell(lat, frac, z, float(params["primitive_tolerance"]))
    radii = RADII[z]
    if np.isnan(radii).any():
        atomic_radii(z)  # raises, naming the element
    volume = cell_volume(lat)
    vol_atom = _FOUR_PI_OVER_3 * RADII_CUBED[z].sum()
    factor = ((volume / vol_atom) ** (1.0 / 3.0)) * float(params["radius_factor"])
    cutoff = (radii[:, None] + radii[None, :]) * factor
    # The reference's reduced coordinates: Cartesian (pymatgen frac @ lattice), then
    # cart @ inv(lattice^T)^T; kept for bit-identical distances.
    red = np.matmul(np.dot(frac, lat), np.linalg.inv(lat.T).T)
    search = prepare_cell(lat, red, cutoff, volume=volume, images=str(params["images"]))
    return PreparedCell(z=z, search=search, reduced=reduced)


def cutoff_scale_factor(
    lattice: ArrayLike, atomic_numbers: ArrayLike, radius_factor: float = 1.2
) -> float:
    """(V / ((4 pi / 3) * sum r^3))^(1/3) * radius_factor, in the reference's exact arithmetic."""
    lat = np.asarray(lattice, dtype=np.float64)
    z = check_atomic_numbers(atomic_numbers)
    atomic_radii(z)
    vol_atom = _FOUR_PI_OVER_3 * RADII_CUBED[z].sum()
    return float(((cell_volume(lat) / vol_atom) ** (1.0 / 3.0)) * radius_factor)


def cell_candidates(cell: PreparedCell, recipe: str | GraphRecipe = "cgc") -> Candidates:
    """All candidate images of one prepared cell (before clustering)."""
    params = get_recipe(recipe).params
    return search_cells(
        [cell.search], images=str(params["images"]), min_distance=float(params["min_distance"])
    )


def graphs_of_cells(
    cells: Sequence[PreparedCell], recipe: str | GraphRecipe = "cgc"
) -> list[CrystalGraph]:
    """Graphs of prepared cells, searched and clustered as one batch."""
    return _graphs_of(cells, get_recipe(recipe))


def _graphs_of(cells: Sequence[PreparedCell], rec: GraphRecipe) -> list[CrystalGraph]:
    params = rec.params
    cand = search_cells(
        [c.search for c in cells],
        images=str(params["images"]),
        min_distance=float(params["min_distance"]),
    )
    sizes = np.array([len(c.z) for c in cells], dtype=np.int64)
    atom_start = np.cumsum(sizes) - sizes
    keep = select_neighbors(
        cand.j + atom_start[cand.cell],
        cand.ratio,
        int(sizes.sum()),
        cc_cutoff=float(params["cc_cutoff"]),
        max_iter=int(params["max_iter"]),
    )
    cell_of = cand.cell[keep]
    image = cand.image[keep]
    if image.size and np.abs(image).max() > 127:
        bad = int(cell_of[np.abs(image).max(axis=1) > 127][0])
        raise _ImageOverflow(bad)
    src = cand.j[keep].astype(np.int32)
    dst = cand.i[keep].astype(np.int32)
    image8 = image.astype(np.int8)
    dist = cand.dist[keep].astype(np.float32)
    bounds = np.searchsorted(cell_of, np.arange(len(cells) + 1)).tolist()
    graphs = []
    for k, c in enumerate(cells):
        a, b = bounds[k], bounds[k + 1]
        graphs.append(
            CrystalGraph(
                atomic_numbers=c.z.astype(np.int16),
                species=SPECIES_LOOKUP[c.z],
                edge_src=src[a:b].copy(),
                edge_dst=dst[a:b].copy(),
                edge_image=image8[a:b].copy(),
                edge_dist=dist[a:b].copy(),
            )
        )
    return graphs


class _ImageOverflow(GraphBuildError):
    def __init__(self, cell: int) -> None:
        super().__init__("an edge image offset exceeds the int8 range: the cell is too skewed")
        self.cell = cell


def _flush(
    pending: list[tuple[int, PreparedCell]],
    out: list[CrystalGraph | GraphBuildError],
    rec: GraphRecipe,
) -> None:
    """Build the pending cells as one batch; isolate a failure by building them one by one."""
    if not pending:
        return
    try:
        graphs: list[CrystalGraph | GraphBuildError] = list(
            _graphs_of([c for _, c in pending], rec)
        )
    except Exception:
        graphs = []
        for index, cell in pending:
            try:
                graphs.append(_graphs_of([cell], rec)[0])
            except GraphBuildError as exc:
                graphs.append(exc)
            except Exception as exc:
                graphs.append(_wrap(index, exc))
    for (index, _), graph in zip(pending, graphs, strict=True):
        out[index] = graph
    pending.clear()


def _wrap(index: int, exc: Exception) -> GraphBuildError:
    err = GraphBuildError(f"structure {index}: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def _check_input(
    lattice: ArrayLike, frac_coords: ArrayLike, atomic_numbers: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    z = check_atomic_numbers(atomic_numbers)
    try:
        lat = np.asarray(lattice, dtype=np.float64)
        frac = np.asarray(frac_coords, dtype=np.float64)
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
    if not (np.isfinite(lat).all() and np.isfinite(frac).all()):
        raise GraphBuildError("lattice and frac_coords must be finite")
    volume = cell_volume(lat)
    if not volume > 1e-6 * float(np.prod(np.sqrt((lat * lat).sum(axis=1)))):
        raise GraphBuildError(f"degenerate lattice (volume {volume:.3g} Å^3)")
    return lat, frac, z
