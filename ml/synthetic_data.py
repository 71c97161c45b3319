"""Learnable synthetic training data in memory: structures -> crystal graphs + noisy truth.

For accuracy tests and the ablation benchmark, without a database: the same graphs
(recipe ``cgc``) and the same DFT values (``ml.synthetic_truth`` plus its noise) that the
synthetic dump delivers through ``platform ingest`` and ``platform graphs build``, made
directly. Callers bring the structures (e.g. ``matplat.ingest.sample_chem.make_structure``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ml.data import GraphSet
from ml.graphs import CrystalGraph, build_crystal_graphs
from ml.graphs.elements import RADII
from ml.synthetic_truth import PROPERTIES, add_noise, truth_of_graphs

__all__ = ["TARGETS", "synthetic_graph_set"]

#: The platform's default training targets (``volume_deviation`` instead of the volume).
TARGETS = ("formation_energy", "band_gap", "magnetization", "volume_deviation")


def synthetic_graph_set(
    structures: Sequence[tuple[ArrayLike, ArrayLike, ArrayLike]],
    seed: int,
    *,
    noise: bool = True,
) -> tuple[GraphSet, dict[str, np.ndarray]]:
    """Graphs of ``structures`` with targets :data:`TARGETS` (truth + noise unless ``noise``
    is False), and the noiseless truth ``{property: (G,)}`` (with ``volume_deviation``).

    Structures whose graph cannot be built are left out (ids are the input positions).
    ``volume_deviation`` is the platform's: 1 - (mean atomic sphere volume) / (volume per
    atom), with the graph recipe's radii.
    """
    built = build_crystal_graphs(structures)
    keep = [k for k, g in enumerate(built) if isinstance(g, CrystalGraph)]
    graphs: list[CrystalGraph] = [built[k] for k in keep]  # type: ignore[misc]
    truth = truth_of_graphs(graphs)
    values = add_noise(truth, np.random.default_rng(seed)) if noise else dict(truth)
    sphere = np.array([
        (4.0 * math.pi / 3.0) * float(np.mean(RADII[g.atomic_numbers.astype(np.int64)] ** 3))
        for g in graphs
    ])  # fmt: skip
    truth = {**truth, "volume_deviation": 1.0 - sphere / truth["volume_per_atom"]}
    values = {**values, "volume_deviation": 1.0 - sphere / values["volume_per_atom"]}
    y = np.stack([values[t] for t in TARGETS], axis=1)
    gs = GraphSet.from_lists(
        np.array(keep, dtype=np.int64),
        [g.species for g in graphs],
        [g.edge_src for g in graphs],
        [g.edge_dst for g in graphs],
        y,
        target_names=list(TARGETS),
    )
    return gs, {p: truth[p] for p in (*PROPERTIES, "volume_deviation")}
