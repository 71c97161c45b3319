"""The crystal graph neural network (CGNN) and its configuration.

Architecture of Tony-Y/cgnn (``GGNN`` in its ``models.py``), re-implemented:

    species -> embedding -> T x gated convolution -> pooling of each block (full pooling) or of
    the last -> graph pooling -> graph MLP -> one linear head per target [-> x atom count]

Presets (``preset_config``) reproduce the published OQMD configurations; with 89 species and one
target they have exactly the reference's parameter counts: ``benchmark`` 212,833,
``no-edgenet`` (default) 288,097, ``complete`` 490,849.

Beyond the reference: several targets share the trunk (one head each); targets are
standardised with a mean and a standard deviation stored as buffers, so :meth:`CGNN.forward`
returns physical units; optional softplus keeps band gap and magnetization non-negative.
The output of head ``t`` is

.. math::
    y_t = \\big[\\,\\mathrm{softplus}\\,\\big](\\mu_t + s_t\\, \\hat y_t)\\,[\\times n_{\\mathrm{atoms}}]

with the softplus for non-negative targets and the factor for extensive targets. With
:math:`\\mu = 0, s = 1` and neither option this is exactly the reference's output.
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ml.data import Batch
from ml.layers import (
    AggregatedEdgeNetwork,
    BilinearEdgeNetwork,
    Extension,
    FastEdgeNetwork,
    FullConnection,
    GatedGraphConvolution,
    GatedPooling,
    GraphOps,
    GraphPooling,
    LinearPooling,
    NodeEmbedding,
    PostconvolutionNetwork,
    RegressionHeads,
    activation,
    require_activation,
)

__all__ = ["CGNN", "CGNNConfig", "NONNEGATIVE_PROPERTIES", "PRESETS", "count_parameters", "preset_config"]

#: Properties that are non-negative by definition: softplus outputs by default in presets.
NONNEGATIVE_PROPERTIES = frozenset({"band_gap", "magnetization"})

_EDGE_NETS = ("original", "fast", "aggregated")


@dataclass
class CGNNConfig:
    """Hyper-parameters of a :class:`CGNN` (JSON-safe through :meth:`to_dict`).

    Field names follow the reference's command-line options; the defaults are the
    ``no-edgenet`` OQMD model. ``n_edge_net_layers = 0`` means no edge network;
    ``n_postconv_layers = 0`` no post-convolution network. ``fast_path`` enables the
    per-node form of the convolution where it is exact; ``aggregation`` picks the sparse
    back end (``auto``, ``csr``, ``index``; see :mod:`ml.layers.ops`).
    """

    n_node_features: int = 89
    n_hidden: int = 96
    n_graph: int = 192
    n_conv: int = 4
    n_fc: int = 2
    activation: str = "softplus"
    use_batch_norm: bool = True
    node_activation: str | None = None
    use_node_batch_norm: bool = False
    edge_activation: str | None = None
    use_edge_batch_norm: bool = False
    conv_type: int = 0
    conv_bias: bool = False
    n_edge_net_layers: int = 0
    n_edge_net_features: int = 16
    edge_net: str = "original"
    fast_edge_net_type: int = 0
    edge_net_activation: str = "elu"
    use_edge_net_batch_norm: bool = False
    edge_net_bias: bool = False
    use_edge_net_shortcut: bool = False
    edge_net_cardinality: int = 32
    edge_net_width: int = 4
    n_postconv_layers: int = 2
    postconv_activation: str = "elu"
    use_postconv_batch_norm: bool = True
    postconv_bias: bool = False
    full_pooling: bool = True
    gated_pooling: bool = True
    targets: tuple[str, ...] = ("formation_energy",)
    nonnegative_targets: tuple[str, ...] = ()
    extensive_targets: tuple[str, ...] = ()
    fast_path: bool = True
    aggregation: str = "auto"

    def __post_init__(self) -> None:
        self.targets = tuple(self.targets)
        self.nonnegative_targets = tuple(self.nonnegative_targets)
        self.extensive_targets = tuple(self.extensive_targets)
        if not self.targets or len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets must be non-empty and unique, got {self.targets}")
        for name in self.targets:
            if not name.isidentifier() or keyword.iskeyword(name):
                raise ValueError(f"target name {name!r} must be a Python identifier")
        for label, subset in (("nonnegative", self.nonnegative_targets), ("extensive", self.extensive_targets)):
            unknown = set(subset) - set(self.targets)
            if unknown:
                raise ValueError(f"{label}_targets {sorted(unknown)} are not among targets")
        for label, value in (
            ("n_node_features", self.n_node_features), ("n_hidden", self.n_hidden),
            ("n_graph", self.n_graph), ("n_conv", self.n_conv), ("n_fc", self.n_fc),
        ):
            if value < 1:
                raise ValueError(f"{label} must be >= 1, got {value}")
        if self.edge_net not in _EDGE_NETS:
            raise ValueError(f"edge_net must be one of {_EDGE_NETS}, got {self.edge_net!r}")
        if self.conv_type not in (0, 1) or self.fast_edge_net_type not in (0, 1):
            raise ValueError("conv_type and fast_edge_net_type must be 0 or 1")
        if self.aggregation not in ("auto", "csr", "index"):
            raise ValueError(f"aggregation must be auto, csr or index, got {self.aggregation!r}")
        for name in (self.activation, self.node_activation, self.edge_activation,
                     self.edge_net_activation, self.postconv_activation):
            activation(name)  # raises on an unknown name

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CGNNConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown CGNNConfig keys: {sorted(unknown)}")
        return cls(**dict(data))


PRESETS: dict[str, dict[str, Any]] = {
    # the three OQMD configurations of the reference's examples/
    "benchmark": {"n_postconv_layers": 0, "use_postconv_batch_norm": False},
    "no-edgenet": {},
    "complete": {
        "n_edge_net_layers": 1,
        "n_edge_net_features": 144,
        "edge_net": "fast",
        "fast_edge_net_type": 1,
        "use_edge_net_shortcut": True,
    },
}


def preset_config(
    name: str = "no-edgenet",
    n_node_features: int = 89,
    targets: Sequence[str] = ("formation_energy",),
    **overrides: Any,
) -> CGNNConfig:
    """The configuration of a published preset (``benchmark``, ``no-edgenet``, ``complete``).

    Targets in :data:`NONNEGATIVE_PROPERTIES` get softplus outputs unless
    ``nonnegative_targets`` is given in ``overrides``.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    values: dict[str, Any] = dict(PRESETS[name])
    values["n_node_features"] = n_node_features
    values["targets"] = tuple(targets)
    values["nonnegative_targets"] = tuple(t for t in targets if t in NONNEGATIVE_PROPERTIES)
    values.update(overrides)
    return CGNNConfig(**values)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _edge_network(c: CGNNConfig) -> nn.Module | None:
    if c.n_edge_net_layers < 1:
        return None
    act = require_activation(c.edge_net_activation)
    common = dict(
        use_batch_norm=c.use_edge_net_batch_norm, bias=c.edge_net_bias, use_shortcut=c.use_edge_net_shortcut
    )
    if c.edge_net == "aggregated":
        return AggregatedEdgeNetwork(
            c.n_hidden, c.n_edge_net_features, c.n_edge_net_layers, act,
            cardinality=c.edge_net_cardinality, width=c.edge_net_width, **common,
        )
    if c.edge_net == "fast":
        return FastEdgeNetwork(
            c.n_hidden, c.n_edge_net_features, c.n_edge_net_layers, act,
            net_type=c.fast_edge_net_type, **common,
        )
    return BilinearEdgeNetwork(c.n_hidden, c.n_edge_net_features, c.n_edge_net_layers, act, **common)


class CGNN(nn.Module):
    """Crystal graph neural network: :class:`~ml.data.Batch` -> ``(B, T)`` predictions.

    Buffers ``target_mean`` and ``target_std`` ``(T,)`` (default 0 and 1) are part of the
    state dict; set them with :meth:`set_target_stats` before training.
    """

    def __init__(self, config: CGNNConfig) -> None:
        super().__init__()
        c = self.config = config
        self.embedding = NodeEmbedding(c.n_node_features, c.n_hidden)
        convs = []
        for _ in range(c.n_conv):
            postconv = (
                PostconvolutionNetwork(
                    c.n_hidden, c.n_hidden, c.n_postconv_layers, require_activation(c.postconv_activation),
                    use_batch_norm=c.use_postconv_batch_norm, bias=c.postconv_bias,
                )
                if c.n_postconv_layers > 0
                else None
            )
            convs.append(
                GatedGraphConvolution(
                    c.n_hidden,
                    edge_network=_edge_network(c),
                    postconv_network=postconv,
                    conv_type=c.conv_type,
                    bias=c.conv_bias,
                    node_activation=activation(c.node_activation),
                    use_node_batch_norm=c.use_node_batch_norm,
                    edge_activation=activation(c.edge_activation),
                    use_edge_batch_norm=c.use_edge_batch_norm,
                    fast=c.fast_path,
                )
            )
        self.convs = nn.ModuleList(convs)
        # which blocks are pooled: all (full pooling) or the last
        self.pooled_blocks = tuple(range(c.n_conv)) if c.full_pooling else (c.n_conv - 1,)
        pool_cls = GatedPooling if c.gated_pooling else LinearPooling
        self.poolings = nn.ModuleList(pool_cls(c.n_hidden) for _ in self.pooled_blocks)
        self.graph_pooling = GraphPooling(
            c.n_hidden, len(self.pooled_blocks), require_activation(c.activation), c.use_batch_norm
        )
        dims = [c.n_hidden] + [c.n_graph] * (c.n_fc - 1)
        self.fcs = nn.ModuleList(
            FullConnection(d, c.n_graph, require_activation(c.activation), c.use_batch_norm) for d in dims
        )
        self.heads = RegressionHeads(c.n_graph, c.targets)
        self.extension = (
            Extension([t in c.extensive_targets for t in c.targets]) if c.extensive_targets else None
        )
        n_t = len(c.targets)
        self.register_buffer("target_mean", torch.zeros(n_t))
        self.register_buffer("target_std", torch.ones(n_t))
        self.register_buffer(
            "nonnegative", torch.tensor([t in c.nonnegative_targets for t in c.targets]), persistent=False
        )
        self.aggregation = c.aggregation

    @property
    def targets(self) -> tuple[str, ...]:
        return self.config.targets

    def set_target_stats(self, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> None:
        """Store the standardisation ``(T,)`` of each target (per atom for extensive ones)."""
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean_t.numel() != len(self.targets) or std_t.numel() != len(self.targets):
            raise ValueError("one mean and one std per target are required")
        if not bool(torch.isfinite(mean_t).all()) or not bool((std_t > 0).all()):
            raise ValueError("target means must be finite and standard deviations positive")
        self.target_mean.copy_(mean_t)
        self.target_std.copy_(std_t)

    def graph_ops(self, batch: Batch) -> GraphOps:
        """The sparse operators of ``batch`` (built once per forward pass)."""
        return GraphOps(batch.edge_src, batch.edge_dst, batch.graph_index, batch.node_counts, self.aggregation)

    def encode(self, batch: Batch, ops: GraphOps | None = None) -> Tensor:
        """Graph features after the graph MLP: ``(B, n_graph)``."""
        ops = self.graph_ops(batch) if ops is None else ops
        h = self.embedding(batch.species)
        pooled = []
        pools = iter(self.poolings)
        for k, conv in enumerate(self.convs):
            h = conv(h, ops)
            if k in self.pooled_blocks:
                pooled.append(next(pools)(h, ops))
        x = self.graph_pooling(pooled)
        for fc in self.fcs:
            x = fc(x)
        return x

    def forward(self, batch: Batch) -> Tensor:
        """``(B, T)`` predictions in physical units."""
        y = self.heads(self.encode(batch))
        if y.dtype in (torch.float16, torch.bfloat16):
            y = y.float()  # autocast: un-standardise and report in float32
        y = self.target_mean + self.target_std * y
        if bool(self.config.nonnegative_targets):
            y = torch.where(self.nonnegative, F.softplus(y), y)
        if self.extension is not None:
            y = self.extension(y, batch.node_counts)
        return y

    def extra_repr(self) -> str:
        return f"targets={list(self.targets)}, parameters={count_parameters(self):,}"


