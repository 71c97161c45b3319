"""Node embedding, gated graph convolution and the post-convolution network."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ml.layers.norm import bn_then, linear_bn
from ml.layers.ops import GraphOps

__all__ = ["GatedGraphConvolution", "NodeEmbedding", "PostconvolutionNetwork"]


class NodeEmbedding(nn.Module):
    """:math:`\\mathbf{h}^0_i = \\mathbf{v}_i \\mathbf{W}` for one-hot species rows, as a lookup.

    ``(N,)`` long species -> ``(N, out_features)``. The weight ``(n_species, out_features)`` is the
    transpose of the reference's bias-free ``Linear(n_species, out_features)`` and is initialised
    from the same distribution, U(±1/sqrt(n_species)).
    """

    def __init__(self, n_species: int, out_features: int) -> None:
        super().__init__()
        self.n_species, self.out_features = n_species, out_features
        bound = 1.0 / math.sqrt(n_species)
        self.weight = nn.Parameter(torch.empty(n_species, out_features).uniform_(-bound, bound))

    def forward(self, species: Tensor) -> Tensor:
        return self.weight.index_select(0, species)


class PostconvolutionNetwork(nn.Module):
    """``n_layers`` of :math:`x \\leftarrow \\sigma(\\mathrm{BN}(x\\mathbf{W}))` on ``(N, F)`` rows.

    Without batch norm a layer is :math:`\\sigma(x\\mathbf{W} [+ b])`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        n_layers: int,
        activation: nn.Module,
        use_batch_norm: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__()
        dims = [in_features] + [out_features] * (n_layers - 1)
        self.linears = nn.ModuleList(linear_bn(d, out_features, bias, use_batch_norm) for d in dims)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        for linear in self.linears:
            x = self.activation(linear(x))
        return x


class GatedGraphConvolution(nn.Module):
    """Gated graph convolution of the CGNN.

    For edge ``e`` from node ``j = src(e)`` to its neighbour ``i = dst(e)``, with edge input
    :math:`\\mathbf{e}_e = \\mathbf{h}_i` (or the edge network's output :math:`\\mathbf{z}_e`):

    .. math::
        [\\mathbf{g}_e \\,\\|\\, \\mathbf{m}_e] = \\mathbf{e}_e \\mathbf{W} \\;(+\\mathbf{b})
        \\qquad\\text{(conv_type 0; type 1 with an edge network:
        } \\mathbf{g}_e = \\mathbf{z}_e\\mathbf{W}_g,\\ \\mathbf{m}_e = \\mathbf{h}_i\\mathbf{W}_h)

        \\mathbf{a}_j = \\sum_{e:\\,src(e)=j} \\mathrm{sigmoid}(\\mathrm{BN}(\\mathbf{g}_e))
            \\odot \\sigma_e(\\mathrm{BN}(\\mathbf{m}_e))

        \\mathbf{h}'_j = \\sigma_n\\big(\\mathrm{BN}(\\mathbf{h}_j + \\mathrm{MFC}(\\mathbf{a}_j))\\big)

    where the BNs, :math:`\\sigma_e`, :math:`\\sigma_n` and the post-convolution network MFC are
    optional (absent ones are the identity). Shapes: ``(N, d) -> (N, d)``.

    Fast path (``fast=True``, no edge network, no edge batch norm): the edge input is
    :math:`\\mathbf{h}_i` alone, so the whole message :math:`\\mathrm{sigmoid}(\\mathbf{g})\\odot
    \\sigma_e(\\mathbf{m})` is a function of the neighbour ``i``: it is computed once per node
    ``(N, 2d)`` instead of once per edge ``(E, 2d)``, and the sum over edges becomes one sparse
    product ``A @ msg`` (:meth:`GraphOps.propagate`). Mathematically identical; equal to float
    round-off. (Edge batch norm takes statistics over edges, so it keeps the per-edge form.)
    """

    def __init__(
        self,
        features: int,
        edge_network: nn.Module | None = None,
        postconv_network: nn.Module | None = None,
        conv_type: int = 0,
        bias: bool = False,
        node_activation: nn.Module | None = None,
        use_node_batch_norm: bool = False,
        edge_activation: nn.Module | None = None,
        use_edge_batch_norm: bool = False,
        fast: bool = True,
    ) -> None:
        super().__init__()
        if conv_type not in (0, 1):
            raise ValueError(f"conv_type must be 0 or 1, got {conv_type}")
        self.features = features
        use_bias = bias and not use_edge_batch_norm
        self.linear_h: nn.Linear | None = None
        if edge_network is None:
            self.linear = nn.Linear(features, 2 * features, bias=use_bias)
        elif conv_type > 0:
            self.linear = nn.Linear(edge_network.out_features, features, bias=use_bias)
            self.linear_h = nn.Linear(features, features, bias=use_bias)
        else:
            self.linear = nn.Linear(edge_network.out_features, 2 * features, bias=use_bias)
        self.gate = bn_then(features, nn.Sigmoid(), use_edge_batch_norm)
        self.edge_activation = bn_then(features, edge_activation, use_edge_batch_norm)
        self.node_activation = bn_then(features, node_activation, use_node_batch_norm)
        self.edge_network = edge_network
        self.postconv_network = postconv_network
        self.fast = fast and edge_network is None and not use_edge_batch_norm

    def messages_per_edge(self, h: Tensor, ops: GraphOps) -> Tensor:
        """The straightforward form: ``(E, d)`` gated messages, one linear map per edge."""
        h_dst = ops.gather_dst(h)
        e = h_dst if self.edge_network is None else self.edge_network(h, h_dst, ops)
        if self.linear_h is None:
            g, m = self.linear(e).chunk(2, dim=1)
        else:
            g, m = self.linear(e), self.linear_h(h_dst)
        if self.edge_activation is not None:
            m = self.edge_activation(m)
        return self.gate(g) * m

    def aggregate(self, h: Tensor, ops: GraphOps) -> Tensor:
        """``(N, d) -> (N, d)``: :math:`\\mathbf{a}_j`, by the fast path when it applies."""
        if not self.fast:
            return ops.sum_at_src(self.messages_per_edge(h, ops))
        g, m = self.linear(h).chunk(2, dim=1)
        if self.edge_activation is not None:
            m = self.edge_activation(m)
        return ops.propagate(self.gate(g) * m)

    def forward(self, h: Tensor, ops: GraphOps) -> Tensor:
        a = self.aggregate(h, ops)
        out = h + (a if self.postconv_network is None else self.postconv_network(a))
        if self.node_activation is not None:
            out = self.node_activation(out)
        return out
