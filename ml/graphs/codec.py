"""Compact byte encoding of crystal graphs for database columns.

Each array is stored raw and little-endian (int16 Z, int32 src/dst, int8 images, float32
distances); the counts live in their own columns (natoms, nedges), so a decode checks every
length. Species indices are not stored: they follow from Z.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ml.graphs.elements import species_index
from ml.graphs.graph import CrystalGraph

# key -> (little-endian dtype, values per row)
LAYOUT: dict[str, tuple[str, int]] = {
    "atomic_numbers": ("<i2", 1),
    "edge_src": ("<i4", 1),
    "edge_dst": ("<i4", 1),
    "edge_image": ("<i1", 3),
    "edge_dist": ("<f4", 1),
}


def encode_graph(graph: CrystalGraph) -> dict[str, bytes]:
    """Bytes of each array, keyed as in :data:`LAYOUT`; ~(2 m + 15 E) bytes in all."""
    return {
        key: np.ascontiguousarray(getattr(graph, key), dtype=dtype).tobytes()
        for key, (dtype, _) in LAYOUT.items()
    }


def decode_graph(natoms: int, nedges: int, blobs: Mapping[str, bytes]) -> CrystalGraph:
    """Inverse of :func:`encode_graph` (exact round trip); ValueError on a length mismatch."""
    arrays = {}
    for key, (dtype, width) in LAYOUT.items():
        rows = natoms if key == "atomic_numbers" else nedges
        blob = blobs[key]
        expected = rows * width * np.dtype(dtype).itemsize
        if len(blob) != expected:
            raise ValueError(f"{key}: {len(blob)} bytes, expected {expected} for {rows} rows")
        arr = np.frombuffer(blob, dtype=dtype, count=rows * width)
        arrays[key] = arr.reshape(rows, 3) if width == 3 else arr
    species = species_index(arrays["atomic_numbers"], strict=False)
    return CrystalGraph(species=np.asarray(species, dtype=np.int16), **arrays)
