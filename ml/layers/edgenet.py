"""Edge networks: per-edge features built from the two end nodes of each edge.

Every variant maps the aggregating node's features :math:`\\mathbf{h}_j` (``j = src(e)``) and
the current edge state :math:`\\mathbf{z}_e` (initially the neighbour's
:math:`\\mathbf{h}_i`, ``i = dst(e)``) through ``n_layers`` layers to ``(E, out_features)``,

.. math::
    \\mathbf{z}^{(l+1)}_e = \\phi\\big(\\mathbf{h}_j, \\mathbf{z}^{(l)}_e\\big)
        \\; [+\\; \\mathbf{z}^{(l)}_e \\mathbf{W}_{\\mathrm{sc}}^{(l)}] ,

with the optional shortcut in brackets. The variants differ in :math:`\\phi`:

* original: :math:`\\sigma(\\mathrm{BN}(\\mathbf{h}_j^\\top \\mathsf{W} \\mathbf{z}_e))` (bilinear),
* fast type 0: :math:`\\sigma(\\mathbf{h}_j\\mathbf{W}_n \\odot \\mathbf{z}_e\\mathbf{W}_e)`,
  fast type 1: :math:`\\sigma(\\mathbf{h}_j\\mathbf{W}_n) \\odot \\sigma(\\mathbf{z}_e\\mathbf{W}_e)`,
* aggregated: a grouped bilinear (``cardinality`` groups of ``width``) between ELU-activated
  projections of both inputs, followed by a linear map back to ``out_features``.

Shapes and parameter counts equal the reference's (Tony-Y/cgnn ``EdgeNetwork``,
``FastEdgeNetwork``, ``AggregatedEdgeNetwork``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ml.layers.norm import BatchNorm, linear_bn
from ml.layers.ops import GraphOps

__all__ = [
    "AggregatedBilinear",
    "AggregatedEdgeNetwork",
    "BilinearEdgeNetwork",
    "FastEdgeNetwork",
    "GroupedBilinear",
]


def _shortcuts(in_features: int, out_features: int, n_layers: int, use: bool) -> nn.ModuleList | None:
    if not use:
        return None
    dims = [in_features] + [out_features] * (n_layers - 1)
    return nn.ModuleList(nn.Linear(d, out_features, bias=False) for d in dims)


class _BilinearBN(nn.Module):
    """``BN(bilinear(x1, x2))`` over edges, or the bare bilinear."""

    def __init__(self, bilinear: nn.Module, out_features: int, use_batch_norm: bool) -> None:
        super().__init__()
        self.bilinear = bilinear
        self.norm = BatchNorm(out_features) if use_batch_norm else None

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        y = self.bilinear(x1, x2)
        return y if self.norm is None else self.norm(y)


class BilinearEdgeNetwork(nn.Module):
    """The original edge network: one bilinear map per layer.

    Args: ``in_features`` (node width d), ``out_features`` (edge width), ``n_layers``,
    ``activation``, ``use_batch_norm`` (BN over edges after each bilinear; then no bias),
    ``bias``, ``use_shortcut``. Forward: ``(N, d)`` nodes, ``(E, d)`` neighbour rows
    -> ``(E, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n_layers: int,
        activation: nn.Module,
        use_batch_norm: bool = False,
        bias: bool = False,
        use_shortcut: bool = False,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        use_bias = bias and not use_batch_norm
        dims = [in_features] + [out_features] * (n_layers - 1)
        self.layers = nn.ModuleList(
            _BilinearBN(nn.Bilinear(in_features, d, out_features, bias=use_bias), out_features, use_batch_norm)
            for d in dims
        )
        self.shortcuts = _shortcuts(in_features, out_features, n_layers, use_shortcut)
        self.activation = activation

    def forward(self, h: Tensor, h_dst: Tensor, ops: GraphOps) -> Tensor:
        h_src = ops.gather_src(h)
        z = h_dst
        for k, layer in enumerate(self.layers):
            out = self.activation(layer(h_src, z))
            z = out if self.shortcuts is None else out + self.shortcuts[k](z)
        return z


class FastEdgeNetwork(nn.Module):
    """Factorised edge network: node and edge linear maps combined element-wise.

    ``net_type`` 0: ``act(h_j W_n ⊙ z W_e)``; 1: ``act(h_j W_n) ⊙ act(z W_e)``. The node map
    runs once per node (``(N, d)``) and is gathered per edge. Forward: ``(N, d)`` nodes,
    ``(E, d)`` neighbour rows -> ``(E, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n_layers: int,
        activation: nn.Module,
        net_type: int = 0,
        use_batch_norm: bool = False,
        bias: bool = False,
        use_shortcut: bool = False,
    ) -> None:
        super().__init__()
        if net_type not in (0, 1):
            raise ValueError(f"fast edge network type must be 0 or 1, got {net_type}")
        self.in_features, self.out_features = in_features, out_features
        self.net_type = net_type
        dims = [in_features] + [out_features] * (n_layers - 1)
        self.node_linears = nn.ModuleList(
            linear_bn(in_features, out_features, bias, use_batch_norm) for _ in range(n_layers)
        )
        self.edge_linears = nn.ModuleList(
            linear_bn(d, out_features, bias, use_batch_norm) for d in dims
        )
        self.shortcuts = _shortcuts(in_features, out_features, n_layers, use_shortcut)
        self.activation = activation

    def forward(self, h: Tensor, h_dst: Tensor, ops: GraphOps) -> Tensor:
        z = h_dst
        for k, (node_linear, edge_linear) in enumerate(zip(self.node_linears, self.edge_linears, strict=True)):
            ze = edge_linear(z)
            if self.net_type == 0:
                out = self.activation(ops.gather_src(node_linear(h)) * ze)
            else:
                out = ops.gather_src(self.activation(node_linear(h))) * self.activation(ze)
            z = out if self.shortcuts is None else out + self.shortcuts[k](z)
        return z


class GroupedBilinear(nn.Module):
    """``cardinality`` independent bilinear maps ``(width, width) -> width``, vectorised.

    Weight ``(C, w, w, w)`` (output, left, right per group), bias ``(C, w)``: the parameters of
    ``C`` separate ``nn.Bilinear(w, w, w)`` with the same initialisation. Forward:
    ``(E, C w), (E, C w) -> (E, C w)``, :math:`y_{c,o} = x_{1,c}^\\top W_{c,o} x_{2,c} + b_{c,o}`.
    """

    def __init__(self, cardinality: int, width: int, bias: bool) -> None:
        super().__init__()
        self.cardinality, self.width = cardinality, width
        bound = 1.0 / math.sqrt(width)
        self.weight = nn.Parameter(torch.empty(cardinality, width, width, width).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(cardinality, width).uniform_(-bound, bound)) if bias else None

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        c, w = self.cardinality, self.width
        a = x1.reshape(-1, c, w)
        b = x2.reshape(-1, c, w)
        y = torch.einsum("eci,coij,ecj->eco", a, self.weight, b)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(-1, c * w)


class AggregatedBilinear(nn.Module):
    """Aggregated (ResNeXt-style) bilinear: project, grouped bilinear, project back.

    ``y = W_o act(GB(act(x1 W_1), act(x2 W_2)))``; ``act`` is ELU as in the reference (its
    aggregated bilinear never receives the configured activation).
    """

    def __init__(
        self, in1_features: int, in2_features: int, out_features: int,
        cardinality: int, width: int, bias: bool,
    ) -> None:
        super().__init__()
        inner = cardinality * width
        self.fc_in1 = nn.Linear(in1_features, inner, bias=bias)
        self.fc_in2 = nn.Linear(in2_features, inner, bias=bias)
        self.grouped = GroupedBilinear(cardinality, width, bias)
        self.fc_out = nn.Linear(inner, out_features, bias=bias)
        self.activation = nn.ELU()

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        a = self.activation(self.fc_in1(x1))
        b = self.activation(self.fc_in2(x2))
        return self.fc_out(self.activation(self.grouped(a, b)))


class AggregatedEdgeNetwork(nn.Module):
    """Edge network whose layers are :class:`AggregatedBilinear` maps (optionally BN'd).

    Forward: ``(N, d)`` nodes, ``(E, d)`` neighbour rows -> ``(E, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n_layers: int,
        activation: nn.Module,
        cardinality: int = 32,
        width: int = 4,
        use_batch_norm: bool = False,
        bias: bool = False,
        use_shortcut: bool = False,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        use_bias = bias and not use_batch_norm
        dims = [in_features] + [out_features] * (n_layers - 1)
        self.layers = nn.ModuleList(
            _BilinearBN(
                AggregatedBilinear(in_features, d, out_features, cardinality, width, use_bias),
                out_features,
                use_batch_norm,
            )
            for d in dims
        )
        self.shortcuts = _shortcuts(in_features, out_features, n_layers, use_shortcut)
        self.activation = activation

    def forward(self, h: Tensor, h_dst: Tensor, ops: GraphOps) -> Tensor:
        h_src = ops.gather_src(h)
        z = h_dst
        for k, layer in enumerate(self.layers):
            out = self.activation(layer(h_src, z))
            z = out if self.shortcuts is None else out + self.shortcuts[k](z)
        return z
