"""Activation functions of the CGNN, looked up by name.

Names follow the reference CLI: ``softplus``, ``ssp`` (shifted softplus), ``elu``, ``relu``,
``selu``, ``celu``; ``elu`` and ``celu`` take an alpha as ``"elu(0.5)"``. ``sigmoid`` and
``identity`` are accepted too (gates, heads).
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn
from torch.nn import functional as F

_WITH_ALPHA = re.compile(r"^\s*(\w+)\s*\(\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*\)\s*$")


class ShiftedSoftplus(nn.Module):
    r"""Shifted softplus, :math:`\mathrm{ssp}(x) = \mathrm{softplus}(x) - \ln 2`.

    It is zero at zero, like SchNet's activation. Shape: any, element-wise.
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = beta
        self.threshold = threshold
        self.shift = math.log(2.0) / beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x, self.beta, self.threshold) - self.shift

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


def activation(name: str | None) -> nn.Module | None:
    """Return a fresh activation module for ``name`` (``None`` or ``"none"`` gives ``None``).

    Raises ``ValueError`` for an unknown name.
    """
    if name is None or name.strip().lower() in ("none", ""):
        return None
    key = name.strip().lower()
    alpha = 1.0
    match = _WITH_ALPHA.match(key)
    if match is not None:
        key, alpha = match.group(1), float(match.group(2))
    if key == "softplus":
        return nn.Softplus()
    if key == "ssp":
        return ShiftedSoftplus()
    if key == "elu":
        return nn.ELU(alpha)
    if key == "relu":
        return nn.ReLU()
    if key == "selu":
        return nn.SELU()
    if key == "celu":
        return nn.CELU(alpha)
    if key == "sigmoid":
        return nn.Sigmoid()
    if key == "identity":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}")


def require_activation(name: str) -> nn.Module:
    """Like :func:`activation` but ``None`` is an error (for layers that need one)."""
    module = activation(name)
    if module is None:
        raise ValueError("an activation is required here, got None")
    return module
