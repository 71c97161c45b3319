"""The CGNN crystal graph coordinator in numpy: exact, deterministic and fast.

Public API::

    recipe = get_recipe("cgc")                      # or "cgc-reference27"
    g = build_crystal_graph(lattice, frac_coords, atomic_numbers, recipe="cgc")
    graphs = build_crystal_graphs(structures, recipe="cgc")   # errors in place, batch goes on
    blobs = encode_graph(g); g2 = decode_graph(g.natoms, g.nedges, blobs)

Recipe ``cgc`` searches every periodic image the cutoff reaches; ``cgc-reference27`` only the
reference's 27 images −1..1 (reproducing the reference's candidate search, misses included).
Both cluster with the exact 1-D 2-means, not the sklearn KMeans of the published graphs, and
match ``neighbors_exact_1d_2means`` of the reference data on all 24 structures.
Batched, ~0.1 ms per OQMD-sized primitive cell on one core (bench/RESULTS.md, "Crystal graphs").

See ``builder`` for the definition, ``neighbors`` for the exact image search, ``cluster`` for
the exact 1-D 2-means, ``primitive`` for the primitive-cell step, ``codec`` for the storage
format and ``synthetic`` for the test and benchmark structures.
"""

from __future__ import annotations

from ml.graphs.builder import build_crystal_graph, build_crystal_graphs
from ml.graphs.codec import decode_graph, encode_graph
from ml.graphs.elements import OQMD_SPECIES, atomic_radii, species_index
from ml.graphs.errors import GraphBuildError
from ml.graphs.graph import CrystalGraph, neighbor_lists
from ml.graphs.recipes import RECIPES, GraphRecipe, get_recipe

__all__ = [
    "OQMD_SPECIES",
    "RECIPES",
    "CrystalGraph",
    "GraphBuildError",
    "GraphRecipe",
    "atomic_radii",
    "build_crystal_graph",
    "build_crystal_graphs",
    "decode_graph",
    "encode_graph",
    "get_recipe",
    "neighbor_lists",
    "species_index",
]
