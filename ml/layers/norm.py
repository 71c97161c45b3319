"""Batch normalisation that survives a batch of one sample."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` over ``(M, F)`` rows that accepts ``M = 1`` in training mode.

    PyTorch raises on a single row in training mode (its variance is undefined), which is how
    the reference CGNN crashes on a last batch of one graph or on a one-atom structure alone in
    a batch. Our choice: a single row is normalised with the RUNNING statistics (as in eval
    mode) and the running statistics are left untouched; the affine weights still train.
    Any ``M >= 2`` behaves exactly like ``BatchNorm1d``. Parameters and buffers are those of
    ``BatchNorm1d`` (``2F`` parameters).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] <= 1 and self.running_mean is not None:
            return F.batch_norm(
                x,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                training=False,
                momentum=0.0,
                eps=self.eps,
            )
        return super().forward(x)


def bn_then(num_features: int, act: nn.Module | None, use_batch_norm: bool) -> nn.Module | None:
    """``act(BN(x))``, ``BN(x)``, ``act(x)`` or ``None`` (the reference's ``_bn_act``)."""
    if not use_batch_norm:
        return act
    if act is None:
        return BatchNorm(num_features)
    return nn.Sequential(BatchNorm(num_features), act)


def linear_bn(in_features: int, out_features: int, bias: bool, use_batch_norm: bool) -> nn.Module:
    """``BN(x W)`` (no bias: BN's shift replaces it) or ``x W (+ b)``."""
    if use_batch_norm:
        return nn.Sequential(nn.Linear(in_features, out_features, bias=False), BatchNorm(out_features))
    return nn.Linear(in_features, out_features, bias=bias)
