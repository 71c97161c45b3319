"""Build crystal graphs: primitive cell, cutoffs, candidate images, 2-means neighbour selection.

Per structure (reference: Tony-Y/cgnn ``tools/mp_graph.py``):
    r_k = atomic radius of atom k; factor = (V / (4 pi / 3 * sum_k r_k^3))^(1/3) * 1.2
    cutoff_ij = (r_i + r_j) * factor        (scale-invariant)
    candidates of j: every image of every i with 1e-8 < d < cutoff_ij (a multigraph)
    neighbours of j: the nearest cluster of x = d / cutoff_ij by repeated exact 1-D 2-means
    edges: j -> i for every neighbour image i of j.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.graphs.cluster import select_neighbors
from ml.graphs.elements import RADII_CUBED, atomic_radii, check_atomic_numbers, species_index
from ml.graphs.errors import GraphBuildError
from ml.graphs.graph import CrystalGraph
from ml.graphs.lattice import cell_volume, reduced_coords
from ml.graphs.neighbors import Candidates, find_candidates
from ml.graphs.primitive import primitive_cell
from ml.graphs.recipes import GraphRecipe, get_recipe

_FOUR_PI_OVER_3 = 4 * math.pi / 3


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
        A CrystalGraph of the m <= n atoms of the primitive cell (the input cell itself when it is
        already primitive, in its own atom order).

    Raises:
        GraphBuildError: invalid input, an element without a radius (At, Fr, Z >= 96), a failed
            primitive reduction, or an image search that would not fit in memory.
    """
    rec = get_recipe(recipe)
    lat, frac, z = _check_input(lattice, frac_coords, atomic_numbers)
    lat, frac, z, _ = primitive_cell(lat, frac, z, float(rec.params["primitive_tolerance"]))
    return graph_of_cell(lat, frac, z, rec)


def build_crystal_graphs(
    structures: Iterable[tuple[ArrayLike, ArrayLike, ArrayLike]],
    recipe: str | GraphRecipe = "cgc",
) -> list[CrystalGraph | GraphBuildError]:
    """:func:`build_crystal_graph` over (lattice, frac_coords, atomic_numbers) tuples.

    A structure that fails yields its GraphBuildError in its place (any other exception is
    wrapped into one), so one bad structure never stops the batch.
    """
    rec = get_recipe(recipe)
    out: list[CrystalGraph | GraphBuildError] = []
    for index, item in enumerate(structures):
        try:
            lattice, frac, z = item
            out.append(build_crystal_graph(lattice, frac, z, rec))
        except GraphBuildError as exc:
            out.append(exc)
        except Exception as exc:  # e.g. a malformed tuple or a numpy error
            err = GraphBuildError(f"structure {index}: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            out.append(err)
    return out


def graph_of_cell(
    lattice: NDArray[np.float64],
    frac: NDArray[np.float64],
    z: NDArray[np.int64],
    recipe: str | GraphRecipe = "cgc",
) -> CrystalGraph:
    """The crystal graph of exactly this cell, without the primitive-cell step (arrays as checked)."""
    rec = get_recipe(recipe)
    params: dict[str, Any] = rec.params
    cand = cell_candidates(lattice, frac, z, rec)
    keep = select_neighbors(
        cand.j,
        cand.ratio,
        len(z),
        cc_cutoff=float(params["cc_cutoff"]),
        max_iter=int(params["max_iter"]),
    )
    image = cand.image[keep]
    if image.size and np.abs(image).max() > 127:
        raise GraphBuildError("an image offset exceeds the int8 range: cell too skewed")
    return CrystalGraph(
        atomic_numbers=z.astype(np.int16),
        species=species_index(z, strict=False),
        edge_src=cand.j[keep].astype(np.int32),
        edge_dst=cand.i[keep].astype(np.int32),
        edge_image=image.astype(np.int8),
        edge_dist=cand.dist[keep].astype(np.float32),
    )


def cell_candidates(
    lattice: NDArray[np.float64],
    frac: NDArray[np.float64],
    z: NDArray[np.int64],
    recipe: str | GraphRecipe = "cgc",
) -> Candidates:
    """All candidate images of this cell under ``recipe`` (before clustering)."""
    params = get_recipe(recipe).params
    cutoff = cutoff_matrix(lattice, z, float(params["radius_factor"]))
    return find_candidates(
        lattice,
        reduced_coords(lattice, frac),
        cutoff,
        images=str(params["images"]),
        min_distance=float(params["min_distance"]),
    )


def cutoff_scale_factor(lattice: NDArray[np.float64], z: NDArray[np.int64], radius_factor: float = 1.2) -> float:
    """(V / (4 pi / 3 * sum r^3))^(1/3) * radius_factor, in the reference's exact arithmetic."""
    atomic_radii(z)  # raises for elements without a radius
    vol_atom = _FOUR_PI_OVER_3 * RADII_CUBED[z].sum()
    return float(((cell_volume(lattice) / vol_atom) ** (1.0 / 3.0)) * radius_factor)


def cutoff_matrix(lattice: NDArray[np.float64], z: NDArray[np.int64], radius_factor: float = 1.2) -> NDArray[np.float64]:
    """(n, n) cutoff_ij = (r_i + r_j) * factor, bit for bit as the reference."""
    radii = atomic_radii(z)
    return (radii[:, None] + radii[None, :]) * cutoff_scale_factor(lattice, z, radius_factor)


def _check_input(
    lattice: ArrayLike, frac_coords: ArrayLike, atomic_numbers: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    z = check_atomic_numbers(atomic_numbers)
    try:
        lat = np.array(lattice, dtype=np.float64)
        frac = np.array(frac_coords, dtype=np.float64)
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
    if not (np.all(np.isfinite(lat)) and np.all(np.isfinite(frac))):
        raise GraphBuildError("lattice and frac_coords must be finite")
    volume = cell_volume(lat)
    if not volume > 1e-6 * np.prod(np.sqrt((lat**2).sum(axis=1))):
        raise GraphBuildError(f"degenerate lattice (volume {volume:.3g} Å^3)")
    return lat, frac, z
