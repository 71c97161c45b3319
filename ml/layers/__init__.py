"""Building blocks of the CGNN (Tony-Y/cgnn architecture, re-implemented).

Conventions: nodes are rows ``(N, F)``; edges ``(E,)`` run from ``edge_src`` (the node being
updated) to ``edge_dst`` (its neighbour); graphs are ``(B, F)`` rows. Every layer that touches
edges or graphs takes a :class:`GraphOps` built once per batch.
"""

from __future__ import annotations

from ml.layers.activations import ShiftedSoftplus, activation, require_activation
from ml.layers.conv import GatedGraphConvolution, NodeEmbedding, PostconvolutionNetwork
from ml.layers.edgenet import (
    AggregatedBilinear,
    AggregatedEdgeNetwork,
    BilinearEdgeNetwork,
    FastEdgeNetwork,
    GroupedBilinear,
)
from ml.layers.norm import BatchNorm
from ml.layers.ops import GraphOps, resolve_aggregation
from ml.layers.readout import (
    Extension,
    FullConnection,
    GatedPooling,
    GraphPooling,
    LinearPooling,
    RegressionHeads,
)

__all__ = [
    "AggregatedBilinear",
    "AggregatedEdgeNetwork",
    "BatchNorm",
    "BilinearEdgeNetwork",
    "Extension",
    "FastEdgeNetwork",
    "FullConnection",
    "GatedGraphConvolution",
    "GatedPooling",
    "GraphOps",
    "GraphPooling",
    "GroupedBilinear",
    "LinearPooling",
    "NodeEmbedding",
    "PostconvolutionNetwork",
    "RegressionHeads",
    "ShiftedSoftplus",
    "activation",
    "require_activation",
    "resolve_aggregation",
]
