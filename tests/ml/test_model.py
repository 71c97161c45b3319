"""CGNN architecture: parameter counts, shapes, invariances, fast path, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.data import Batch, GraphSet, random_graph_set
from ml.layers import GraphOps
from ml.model import CGNN, CGNNConfig, count_parameters, preset_config

SMALL = dict(n_node_features=7, n_hidden=12, n_graph=20, n_conv=3)


def small_set(n: int = 12, seed: int = 0) -> GraphSet:
    return random_graph_set(n, seed=seed, n_species=7, max_atoms=9, median_atoms=4, degree_range=(1, 6))


def seeded(config: CGNNConfig, seed: int = 0) -> CGNN:
    torch.manual_seed(seed)
    return CGNN(config)


@pytest.mark.parametrize(
    ("preset", "expected"), [("benchmark", 212_833), ("no-edgenet", 288_097), ("complete", 490_849)]
)
def test_presets_reproduce_reference_parameter_counts(preset: str, expected: int) -> None:
    assert count_parameters(CGNN(preset_config(preset, n_node_features=89))) == expected


def test_default_config_is_the_no_edgenet_preset() -> None:
    assert CGNNConfig() == preset_config("no-edgenet")


@pytest.mark.parametrize("n_targets", [1, 2, 4])
def test_multitask_adds_one_head_per_target(n_targets: int) -> None:
    targets = ["formation_energy", "band_gap", "magnetization", "volume_per_atom"][:n_targets]
    model = CGNN(preset_config("no-edgenet", targets=targets))
    assert count_parameters(model) == 288_097 + (n_targets - 1) * (192 + 1)
    assert list(model.heads.heads) == targets
    assert set(model.config.nonnegative_targets) == {"band_gap", "magnetization"} & set(targets)


def test_config_round_trips_through_json() -> None:
    import json

    config = preset_config("complete", targets=["band_gap", "formation_energy"], extensive_targets=["formation_energy"])
    again = CGNNConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    with pytest.raises(ValueError, match="unknown"):
        CGNNConfig.from_dict({**config.to_dict(), "bogus": 1})


@pytest.mark.parametrize(
    "bad",
    [
        {"targets": ()},
        {"targets": ("a", "a")},
        {"targets": ("a.b",)},
        {"nonnegative_targets": ("band_gap",)},
        {"edge_net": "nope"},
        {"activation": "tanhh"},
        {"conv_type": 2},
    ],
)
def test_config_rejects_invalid_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        CGNNConfig(**bad)


VARIANTS = {
    "no-edgenet": {},
    "benchmark": {"n_postconv_layers": 0},
    "complete": {"n_edge_net_layers": 1, "n_edge_net_features": 10, "edge_net": "fast", "fast_edge_net_type": 1, "use_edge_net_shortcut": True},
    "fast0-bn": {"n_edge_net_layers": 2, "n_edge_net_features": 8, "edge_net": "fast", "use_edge_net_batch_norm": True, "conv_type": 1},
    "original": {"n_edge_net_layers": 2, "n_edge_net_features": 8, "edge_net": "original", "use_edge_net_shortcut": True},
    "aggregated": {"n_edge_net_layers": 1, "n_edge_net_features": 8, "edge_net": "aggregated", "edge_net_cardinality": 4, "edge_net_width": 2, "use_edge_net_batch_norm": True},
    "bn-everywhere": {"node_activation": "ssp", "use_node_batch_norm": True, "edge_activation": "celu(0.5)", "use_edge_batch_norm": True},
    "last-linear-pool": {"full_pooling": False, "gated_pooling": False, "use_batch_norm": False, "activation": "relu"},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_shapes_and_backward_of_every_variant(variant: str) -> None:
    model = seeded(CGNNConfig(**SMALL, targets=("a", "b"), **VARIANTS[variant]))
    batch = small_set().batch(range(12))
    y = model(batch)
    assert y.shape == (12, 2) and y.dtype == torch.float32
    y.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def permuted_copy(gs: GraphSet, seed: int) -> GraphSet:
    """The same graphs with the atoms of each graph relabelled by a random permutation."""
    rng = np.random.default_rng(seed)
    species, srcs, dsts = [], [], []
    for g in range(len(gs)):
        a, b = gs.node_offsets[g], gs.node_offsets[g + 1]
        e0, e1 = gs.edge_offsets[g], gs.edge_offsets[g + 1]
        perm = rng.permutation(b - a)  # new position of old atom k is perm[k]
        sp = np.empty(b - a, dtype=np.int64)
        sp[perm] = gs.species[a:b]
        species.append(sp)
        srcs.append(perm[gs.edge_src[e0:e1]])
        dsts.append(perm[gs.edge_dst[e0:e1]])
    return GraphSet.from_lists(gs.ids, species, srcs, dsts, gs.targets)


@pytest.mark.parametrize("variant", ["no-edgenet", "complete", "original", "bn-everywhere"])
@pytest.mark.parametrize("train", [False, True])
def test_graph_outputs_are_invariant_to_atom_permutation(variant: str, train: bool) -> None:
    gs = small_set(10)
    model = seeded(CGNNConfig(**SMALL, **VARIANTS[variant])).train(train)
    with torch.no_grad():
        y0 = model(gs.batch(range(10)))
        y1 = model(permuted_copy(gs, 1).batch(range(10)))
    torch.testing.assert_close(y0, y1, rtol=1e-5, atol=1e-5)


def test_graph_order_in_a_batch_does_not_matter() -> None:
    gs = small_set(10)
    model = seeded(CGNNConfig(**SMALL)).train()
    order = np.random.default_rng(0).permutation(10)
    with torch.no_grad():
        y0 = model(gs.batch(range(10)))
        y1 = model(gs.batch(order))
    torch.testing.assert_close(y0[order], y1, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("train", "dtype", "tol"),
    [(False, torch.float32, 1e-6), (False, torch.float64, 1e-12), (True, torch.float64, 1e-10)],
)
def test_fast_path_equals_straightforward_path(train: bool, dtype: torch.dtype, tol: float) -> None:
    """Per-node fused convolution + CSR sums == per-edge linear map + index_add.

    Training mode is compared in float64: batch norm over 40 graphs amplifies float32
    round-off of the (reordered) sums to a few 1e-6.
    """
    config = CGNNConfig(**SMALL, edge_activation="softplus", conv_bias=True)
    gs = random_graph_set(40, seed=2, n_species=7)
    batch = gs.batch(range(40))
    fast = seeded(config).to(dtype).train(train)
    slow = seeded(config).to(dtype).train(train)
    slow.aggregation = "index"
    for conv in slow.convs:
        conv.fast = False
    assert all(conv.fast for conv in fast.convs)
    y_fast, y_slow = fast(batch), slow(batch)
    assert y_fast.dtype == dtype
    torch.testing.assert_close(y_fast, y_slow, rtol=tol, atol=tol)
    if train:
        y_fast.square().sum().backward()
        y_slow.square().sum().backward()
        for (name, p), q in zip(fast.named_parameters(), slow.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=tol, atol=tol, msg=name)


def test_graph_ops_backends_agree_with_gradients() -> None:
    gs = random_graph_set(30, seed=5, n_species=7)
    b = gs.batch(range(30))
    x = torch.randn(b.num_nodes, 5, dtype=torch.float64, requires_grad=True)
    m = torch.randn(b.num_edges, 5, dtype=torch.float64, requires_grad=True)
    results = {}
    for mode in ("csr", "index"):
        ops = GraphOps(b.edge_src, b.edge_dst, b.graph_index, b.node_counts, mode)
        outs = [ops.propagate(x), ops.sum_at_src(m), ops.gather_src(x), ops.gather_dst(x), ops.pool_mean(x)]
        grads = torch.autograd.grad(sum((o * o.detach().sin()).sum() for o in outs), (x, m))
        results[mode] = [*outs, *grads]
    for a, c in zip(results["csr"], results["index"], strict=True):
        torch.testing.assert_close(a, c)
    # propagate is gather-then-sum
    ops = GraphOps(b.edge_src, b.edge_dst, b.graph_index, b.node_counts, "csr")
    torch.testing.assert_close(ops.propagate(x), ops.sum_at_src(ops.gather_dst(x)))


def test_unsorted_edges_are_handled_by_graph_ops() -> None:
    b = random_graph_set(8, seed=1, n_species=7).batch(range(8))
    perm = torch.randperm(b.num_edges, generator=torch.Generator().manual_seed(0))
    x = torch.randn(b.num_nodes, 3, dtype=torch.float64)
    sorted_ops = GraphOps(b.edge_src, b.edge_dst, b.graph_index, b.node_counts, "csr")
    shuffled = GraphOps(b.edge_src[perm], b.edge_dst[perm], b.graph_index, b.node_counts, "csr")
    torch.testing.assert_close(sorted_ops.propagate(x), shuffled.propagate(x))


def one_graph(n_atoms: int, edges: list[tuple[int, int]]) -> GraphSet:
    src = [e[0] for e in edges]
    dst = [e[1] for e in edges]
    return GraphSet.from_lists([7], [list(range(n_atoms))], [src], [dst], [[0.5]])


@pytest.mark.parametrize("variant", ["no-edgenet", "complete", "bn-everywhere", "aggregated"])
@pytest.mark.parametrize(
    "graph",
    [
        pytest.param((3, [(0, 1), (0, 2), (1, 0), (2, 2)]), id="3-atoms"),
        pytest.param((1, [(0, 0)]), id="1-atom-1-edge"),
        pytest.param((1, []), id="1-atom-no-edge"),
    ],
)
def test_a_batch_of_one_graph_works_in_train_and_eval(variant: str, graph: tuple) -> None:
    model = seeded(CGNNConfig(**SMALL, **VARIANTS[variant]))
    batch = one_graph(*graph).batch([0])
    model.train()
    running = [m.running_mean.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    y = model(batch)
    assert y.shape == (1, 1) and torch.isfinite(y).all()
    y.sum().backward()
    model.eval()
    with torch.no_grad():
        y_eval = model(batch)
    assert y_eval.shape == (1, 1) and torch.isfinite(y_eval).all()
    # BN layers that saw a single row did not move their running statistics to it
    after = [m.running_mean for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert any(torch.equal(a, b) for a, b in zip(running, after, strict=True))


def test_standardisation_nonnegativity_and_extension() -> None:
    config = CGNNConfig(
        **SMALL, targets=("e", "band_gap", "total"), nonnegative_targets=("band_gap",), extensive_targets=("total",)
    )
    model = seeded(config).eval()
    batch = small_set().batch(range(12))
    with torch.no_grad():
        raw = model.heads(model.encode(batch))
        model.set_target_stats([1.0, -3.0, 2.0], [2.0, 0.5, 3.0])
        y = model(batch)
    n = batch.node_counts.float()
    torch.testing.assert_close(y[:, 0], 1.0 + 2.0 * raw[:, 0])
    torch.testing.assert_close(y[:, 1], torch.nn.functional.softplus(-3.0 + 0.5 * raw[:, 1]))
    torch.testing.assert_close(y[:, 2], (2.0 + 3.0 * raw[:, 2]) * n)
    assert (y[:, 1] > 0).all()
    assert "target_mean" in model.state_dict() and "target_std" in model.state_dict()
    with pytest.raises(ValueError):
        model.set_target_stats([0.0, 0.0, 0.0], [1.0, 0.0, 1.0])


def test_bf16_autocast_runs_and_sums_in_float32() -> None:
    model = seeded(CGNNConfig(**SMALL)).train()
    batch = small_set().batch(range(12))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(batch)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    y.sum().backward()


def test_batch_to_device_keeps_fields() -> None:
    b = small_set().batch([0, 3])
    moved = b.to("cpu")
    assert isinstance(moved, Batch)
    assert moved.num_graphs == 2 and torch.equal(moved.edge_src, b.edge_src)
