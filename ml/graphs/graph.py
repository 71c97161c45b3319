"""The crystal graph value object and its neighbour-list view."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_DTYPES = {
    "atomic_numbers": np.int16,
    "species": np.int16,
    "edge_src": np.int32,
    "edge_dst": np.int32,
    "edge_image": np.int8,
    "edge_dist": np.float32,
}


@dataclass(frozen=True, eq=False)
class CrystalGraph:
    """A crystal graph on the primitive cell; all arrays are read-only.

    Attributes:
        atomic_numbers: (m,) int16 Z of each atom of the primitive cell.
        species: (m,) int16 index into ``OQMD_SPECIES`` (the 89-species one-hot table), -1 for
            Z outside it (Po, Rn, Ra, Z > 94).
        edge_src: (E,) int32 centre atom j.
        edge_dst: (E,) int32 neighbour atom i (the reference's ``neighbors[j]`` lists these i;
            the CGNN convolution at j gathers from them).
        edge_image: (E, 3) int8 lattice offset of the neighbour i's periodic image.
        edge_dist: (E,) float32 distance j -> image of i in Å.

    Edges are sorted by (src, dst, image) and form a multigraph: one edge per periodic image.
    Graphs built in one batch may share (read-only) buffers.
    """

    atomic_numbers: NDArray[np.int16]
    species: NDArray[np.int16]
    edge_src: NDArray[np.int32]
    edge_dst: NDArray[np.int32]
    edge_image: NDArray[np.int8]
    edge_dist: NDArray[np.float32]

    def __post_init__(self) -> None:
        for name, dtype in _DTYPES.items():
            arr = np.asarray(getattr(self, name))
            if arr.dtype != dtype or not arr.flags.c_contiguous:
                arr = np.ascontiguousarray(arr, dtype=dtype)
            if arr.flags.writeable:
                arr = arr.view()
                arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        m, e = len(self.atomic_numbers), len(self.edge_src)
        if (
            self.atomic_numbers.shape != (m,)
            or self.species.shape != (m,)
            or self.edge_src.shape != (e,)
            or self.edge_dst.shape != (e,)
            or self.edge_image.shape != (e, 3)
            or self.edge_dist.shape != (e,)
        ):
            raise ValueError("inconsistent CrystalGraph array shapes")

    @property
    def natoms(self) -> int:
        """Number of atoms m of the primitive cell."""
        return len(self.atomic_numbers)

    @property
    def nedges(self) -> int:
        """Number of directed edges E."""
        return len(self.edge_src)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CrystalGraph):
            return NotImplemented
        return all(np.array_equal(getattr(self, name), getattr(other, name)) for name in _DTYPES)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CrystalGraph(natoms={self.natoms}, nedges={self.nedges})"


def trusted_graph(
    atomic_numbers: NDArray[np.int16],
    species: NDArray[np.int16],
    edge_src: NDArray[np.int32],
    edge_dst: NDArray[np.int32],
    edge_image: NDArray[np.int8],
    edge_dist: NDArray[np.float32],
) -> CrystalGraph:
    """A CrystalGraph from arrays of the right dtypes and shapes, without the checks.

    For the builder only: it passes read-only views of arrays that no one else holds.
    """
    graph = object.__new__(CrystalGraph)
    for name, arr in (
        ("atomic_numbers", atomic_numbers),
        ("species", species),
        ("edge_src", edge_src),
        ("edge_dst", edge_dst),
        ("edge_image", edge_image),
        ("edge_dist", edge_dist),
    ):
        object.__setattr__(graph, name, arr)
    return graph


def neighbor_lists(graph: CrystalGraph) -> list[list[int]]:
    """The reference's format: entry j lists the neighbours i of atom j, ascending, one per image."""
    bounds = np.searchsorted(graph.edge_src, np.arange(graph.natoms + 1))
    dst = graph.edge_dst.tolist()
    return [dst[a:b] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]
