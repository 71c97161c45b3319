"""The CGNN crystal graph coordinator in numpy: exact, deterministic and fast.

Public API::

    recipe = get_recipe("cgc")                      # or "cgc-reference27"
    g = build_crystal_graph(lattice, frac_coords, atomic_numbers, recipe="cgc")
    graphs = build_crystal_graphs(structures, recipe="cgc")   # errors in place, batch goes on
    blobs = encode_graph(g); g2 = decode_graph(g.natoms, g.nedges, blobs)

See ``builder`` for the definition, ``neighbors`` for the exact image search, ``cluster`` for
the exact 1-D 2-means and ``primitive`` for the primitive-cell step.
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
