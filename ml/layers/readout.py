"""Graph readout: node pooling, full pooling over blocks, graph MLP, regression heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ml.layers.norm import BatchNorm
from ml.layers.ops import GraphOps

__all__ = [
    "Extension",
    "FullConnection",
    "GatedPooling",
    "GraphPooling",
    "LinearPooling",
    "RegressionHeads",
]


class LinearPooling(nn.Module):
    """Mean over the nodes of each graph: :math:`\\gamma_b = \\frac1{n_b}\\sum_{i\\in b} \\mathbf{h}_i`.

    ``(N, F) -> (B, F)``; no parameters.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, h: Tensor, ops: GraphOps) -> Tensor:
        return ops.pool_mean(h)


class GatedPooling(nn.Module):
    """Gated mean: :math:`\\gamma_b = \\frac1{n_b}\\sum_{i\\in b}
    \\mathrm{sigmoid}(\\mathbf{h}_i\\mathbf{W} + \\mathbf{b}) \\odot \\mathbf{h}_i`.

    ``(N, F) -> (B, F)``; ``F^2 + F`` parameters.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.linear = nn.Linear(num_features, num_features, bias=True)

    def forward(self, h: Tensor, ops: GraphOps) -> Tensor:
        return ops.pool_mean(torch.sigmoid(self.linear(h)) * h)


class GraphPooling(nn.Module):
    """Combine the pooled vectors of ``n_steps`` blocks: :math:`\\Gamma = \\sigma(\\mathrm{BN}(
    \\sum_t \\gamma_t \\mathbf{W}_t))`.

    With one step (no full pooling) there is no projection: :math:`\\sigma(\\mathrm{BN}(\\gamma))`.
    Forward: list of ``n_steps`` tensors ``(B, F)`` -> ``(B, F)``.
    """

    def __init__(
        self, num_features: int, n_steps: int, activation: nn.Module, use_batch_norm: bool = False
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.linears = (
            nn.ModuleList(nn.Linear(num_features, num_features, bias=False) for _ in range(n_steps))
            if n_steps > 1
            else None
        )
        self.norm = BatchNorm(num_features) if use_batch_norm else None
        self.activation = activation

    def forward(self, pooled: Sequence[Tensor]) -> Tensor:
        if self.linears is None:
            x = pooled[0]
        else:
            x = self.linears[0](pooled[0])
            for linear, gamma in zip(self.linears[1:], pooled[1:], strict=True):
                x = x + linear(gamma)
        if self.norm is not None:
            x = self.norm(x)
        return self.activation(x)


class FullConnection(nn.Module):
    """One layer of the graph MLP: :math:`\\sigma(\\mathrm{BN}(x\\mathbf{W}))` (bias-free with BN),
    else :math:`\\sigma(x\\mathbf{W} + \\mathbf{b})`. ``(B, F_in) -> (B, F_out)``.
    """

    def __init__(
        self, in_features: int, out_features: int, activation: nn.Module, use_batch_norm: bool = False
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=not use_batch_norm)
        self.norm = BatchNorm(out_features) if use_batch_norm else None
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        x = self.linear(x)
        if self.norm is not None:
            x = self.norm(x)
        return self.activation(x)


class RegressionHeads(nn.Module):
    """One linear regression head ``F -> 1`` per target, on a shared trunk.

    ``(B, F) -> (B, T)`` (never squeezed: a batch of one graph stays ``(1, T)``). Each head has
    ``F + 1`` parameters, so one target reproduces the reference's ``LinearRegression``.
    """

    def __init__(self, in_features: int, targets: Sequence[str]) -> None:
        super().__init__()
        self.targets = tuple(targets)
        self.heads = nn.ModuleDict({name: nn.Linear(in_features, 1) for name in self.targets})

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.heads[name](x) for name in self.targets], dim=1)


class Extension(nn.Module):
    """Multiply extensive targets by the atom count: ``y[:, t] *= n`` where ``mask[t]``.

    ``(B, T), (B,) -> (B, T)``. The reference's ``Extension`` for its single output.
    """

    def __init__(self, mask: Sequence[bool]) -> None:
        super().__init__()
        self.register_buffer("mask", torch.tensor(list(mask), dtype=torch.bool), persistent=False)

    def forward(self, y: Tensor, node_counts: Tensor) -> Tensor:
        n = node_counts.to(y.dtype).unsqueeze(1)
        return torch.where(self.mask, y * n, y)
