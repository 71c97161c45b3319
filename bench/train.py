"""Benchmark: CGNN training and inference graphs/s against a reference-style baseline.

    OMP_NUM_THREADS=2 python bench/train.py [--graphs 10000] [--threads 2] [--epochs 2]

Data: SYNTHETIC graphs with OQMD-like sizes (1-60 atoms, mean ~8, ~12 edges per atom,
``ml.data.random_graph_set``), 89 species, one target. Model: the ``no-edgenet`` preset
(288,097 parameters), batch 512, Adam.

Each side runs in its own subprocess, so peak RSS is per side:

* ``baseline``: written here in the style of the reference implementation (Tony-Y/cgnn):
  one Python graph object per structure (one-hot float32 node rows, edge index arrays), a
  collate function that loops over the graphs of each batch building Python lists, a
  ``DataLoader`` with a random sampler, a dense one-hot embedding, and per edge: advanced-index
  gather, a 96 -> 192 linear map, gate and message, ``index_add_``.
* ``ours-per-edge``: our data pipeline and model with the fused fast path switched off and
  ``index_add_`` sums: the straightforward per-edge form.
* ``ours``: ``ml.train.train_model`` and ``ml.train.predict`` as shipped (CSR batches, per-node
  fused convolution, sparse CSR sums).

Training graphs/s is that of the last epoch (the first warms up); inference is the best of
two passes over all graphs. Bytes per graph: the data set's resident size divided by the
number of graphs (RSS growth while building it; for ``ours`` also the exact array size).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_SPECIES = 89


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------
# reference-style baseline (written for this benchmark; the reference's structure, not its code)
# --------------------------------------------------------------------------------------------
def _baseline_side(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    from ml.data import random_graph_set

    gs = random_graph_set(args.graphs, seed=args.seed, n_species=N_SPECIES)
    targets = (gs.edge_counts / gs.node_counts).astype(np.float32)
    eye = np.eye(N_SPECIES, dtype=np.float32)

    class PyGraph:
        """One structure as Python objects: one-hot rows and per-atom neighbour lists."""

        def __init__(self, species: list[int], neighbours: list[list[int]]) -> None:
            self.nodes = np.array([eye[s] for s in species], dtype=np.float32)
            self.edge_sources = np.concatenate([[i] * len(n) for i, n in enumerate(neighbours)]).astype(np.int64)
            self.edge_targets = np.concatenate(neighbours).astype(np.int64)

        def __len__(self) -> int:
            return len(self.nodes)

    rss0 = _rss_mb()
    graphs = []
    for g in range(len(gs)):
        a0, a1 = gs.node_offsets[g], gs.node_offsets[g + 1]
        e0, e1 = gs.edge_offsets[g], gs.edge_offsets[g + 1]
        src, dst = gs.edge_src[e0:e1], gs.edge_dst[e0:e1]
        neighbours = [dst[src == i].tolist() for i in range(a1 - a0)]
        graphs.append(PyGraph(gs.species[a0:a1].tolist(), neighbours))
    data_mb = _rss_mb() - rss0

    class Data(Dataset):
        def __len__(self) -> int:
            return len(graphs)

        def __getitem__(self, i: int):
            return graphs[i], targets[i]

    def collate(items):
        nodes, sources, dests, graph_index, counts, ys = [], [], [], [], [], []
        offset = 0
        for k, (graph, y) in enumerate(items):
            nodes.append(graph.nodes)
            sources.append(graph.edge_sources + offset)
            dests.append(graph.edge_targets + offset)
            graph_index += [k] * len(graph)
            counts.append(len(graph))
            ys.append(y)
            offset += len(graph)
        return (
            torch.Tensor(np.concatenate(nodes)),
            torch.LongTensor(np.concatenate(sources)),
            torch.LongTensor(np.concatenate(dests)),
            torch.LongTensor(graph_index),
            torch.Tensor(counts),
        ), torch.Tensor(ys)

    d, f, steps = 96, 192, 4

    def bn_lin(i: int, o: int) -> nn.Module:
        return nn.Sequential(nn.Linear(i, o, bias=False), nn.BatchNorm1d(o))

    class Conv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(d, 2 * d, bias=False)
            self.post = nn.ModuleList([bn_lin(d, d), bn_lin(d, d)])

        def forward(self, x, src, dst):
            e = self.linear(x[dst])
            g, m = torch.chunk(e, 2, dim=1)
            agg = torch.zeros_like(x)
            agg.index_add_(0, src, torch.sigmoid(g) * m)
            for layer in self.post:
                agg = nn.functional.elu(layer(agg))
            return x + agg

    class GatedMean(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(d, d)

        def forward(self, x, graph_index, counts):
            gated = torch.sigmoid(self.linear(x)) * x
            out = torch.zeros(counts.shape[0], d)
            out.index_add_(0, graph_index, gated)
            return out / counts.unsqueeze(1)

    class Baseline(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Linear(N_SPECIES, d, bias=False)
            self.convs = nn.ModuleList(Conv() for _ in range(steps))
            self.pools = nn.ModuleList(GatedMean() for _ in range(steps))
            self.mix = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(steps))
            self.mix_bn = nn.BatchNorm1d(d)
            self.fcs = nn.ModuleList([bn_lin(d, f), bn_lin(f, f)])
            self.out = nn.Linear(f, 1)

        def forward(self, inputs):
            nodes, src, dst, graph_index, counts = inputs
            x = self.embedding(nodes)
            pooled = []
            for conv, pool in zip(self.convs, self.pools, strict=True):
                x = conv(x, src, dst)
                pooled.append(pool(x, graph_index, counts))
            z = torch.sum(torch.stack([m(p) for m, p in zip(self.mix, pooled, strict=True)]), 0)
            z = nn.functional.softplus(self.mix_bn(z))
            for fc in self.fcs:
                z = nn.functional.softplus(fc(z))
            return torch.squeeze(self.out(z))

    torch.manual_seed(args.seed)
    model = Baseline()
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    loss_fn = nn.MSELoss()
    train_loader = DataLoader(Data(), batch_size=512, shuffle=True, collate_fn=collate)
    eval_loader = DataLoader(Data(), batch_size=512, shuffle=False, collate_fn=collate)

    train_gps = []
    for _ in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        for inputs, y in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), y)
            loss.backward()
            optimizer.step()
        train_gps.append(len(graphs) / (time.perf_counter() - t0))
    infer = []
    model.eval()
    for _ in range(2):
        t0 = time.perf_counter()
        with torch.no_grad():
            for inputs, _y in eval_loader:
                model(inputs)
        infer.append(len(graphs) / (time.perf_counter() - t0))
    return {
        "side": "baseline",
        "parameters": n_params,
        "train_gps": train_gps[-1],
        "infer_gps": max(infer),
        "data_bytes_per_graph": data_mb * 2**20 / len(graphs),
        "peak_rss_mb": _peak_rss_mb(),
    }


# --------------------------------------------------------------------------------------------
# ours
# --------------------------------------------------------------------------------------------
def _ours_side(args: argparse.Namespace, fast: bool) -> dict:
    import numpy as np
    import torch

    from ml.data import random_graph_set
    from ml.model import CGNN, count_parameters, preset_config
    from ml.train import TrainConfig, predict, train_model

    rss0 = _rss_mb()
    gs = random_graph_set(args.graphs, seed=args.seed, n_species=N_SPECIES)
    gs = gs.with_targets((gs.edge_counts / gs.node_counts)[:, None], ["formation_energy"])
    data_mb = _rss_mb() - rss0
    overrides = {} if fast else {"fast_path": False, "aggregation": "index"}
    config = preset_config("no-edgenet", targets=["formation_energy"], **overrides)
    tc = TrainConfig(epochs=args.epochs, batch_size=512, seed=args.seed, device="cpu")
    result = train_model(config, gs, None, tc)
    model = CGNN(config)
    model.load_state_dict(result.state_dict)
    infer = []
    for _ in range(2):
        t0 = time.perf_counter()
        predict(model, gs, batch_size=512, device="cpu")
        infer.append(len(gs) / (time.perf_counter() - t0))
    return {
        "side": "ours" if fast else "ours-per-edge",
        "parameters": count_parameters(model),
        "train_gps": result.history[-1]["graphs_per_s"],
        "infer_gps": max(infer),
        "data_bytes_per_graph": data_mb * 2**20 / len(gs),
        "array_bytes_per_graph": gs.nbytes / len(gs),
        "mean_atoms": float(gs.node_counts.mean()),
        "edges_per_atom": float(gs.edge_counts.sum() / gs.node_counts.sum()),
        "peak_rss_mb": _peak_rss_mb(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def _run_side(side: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, "--side", side, "--graphs", str(args.graphs), "--threads", str(args.threads),
           "--epochs", str(args.epochs), "--seed", str(args.seed)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graphs", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs; the last is timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--side", choices=["baseline", "ours", "ours-per-edge"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.side is not None:
        import torch

        torch.set_num_threads(args.threads)
        if args.side == "baseline":
            res = _baseline_side(args)
        else:
            res = _ours_side(args, fast=args.side == "ours")
        print(json.dumps(res))
        return

    load = os.getloadavg()[0]
    rows = [_run_side(side, args) for side in ("baseline", "ours-per-edge", "ours")]
    base = rows[0]
    ours = rows[-1]
    print(f"# CGNN train/infer benchmark, {date.today()}, {os.cpu_count()} CPUs, threads={args.threads}, "
          f"load before start {load:.2f}")
    print(f"# {args.graphs} synthetic graphs, mean {ours['mean_atoms']:.2f} atoms, "
          f"{ours['edges_per_atom']:.2f} edges/atom; torch {ours['torch']}, numpy {ours['numpy']}")
    print()
    print("| side | params | train graphs/s | x baseline | infer graphs/s | x baseline | data B/graph | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['side']} | {r['parameters']:,} | {r['train_gps']:,.0f} | {r['train_gps'] / base['train_gps']:.2f} | "
              f"{r['infer_gps']:,.0f} | {r['infer_gps'] / base['infer_gps']:.2f} | "
              f"{r['data_bytes_per_graph']:,.0f} | {r['peak_rss_mb']:,.0f} |")
    print()
    per_graph = ours["array_bytes_per_graph"]
    print(f"GraphSet arrays: {per_graph:.0f} B/graph -> 560k OQMD-like graphs: {per_graph * 560_000 / 1e9:.2f} GB; "
          f"baseline objects: {base['data_bytes_per_graph'] * 560_000 / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
