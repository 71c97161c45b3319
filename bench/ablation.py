"""Ablation of the platform's training defaults on learnable synthetic data (CPU).

Same data, split and epochs for every variant; 3 seeds each:

* ``platform``: one multitask model (formation energy, band gap, magnetization, volume
  deviation), softplus outputs for band gap and magnetization, standardised targets;
* ``per-target``: one model per target (otherwise as ``platform``), time summed;
* ``linear``: as ``platform`` with linear outputs for band gap and magnetization;
* ``raw``: as ``platform`` trained on raw targets (plain MSE, the reference's loss).

Data: ``--n`` structures of the synthetic dump's chemistry, ``cgc`` graphs, ``ml.synthetic_truth``
values + noise, split by reduced formula 80/10/10 (as the platform). Model: the ``no-edgenet``
preset at reduced width (``--hidden``, 3 convolutions) so that the whole run takes about ten
minutes on this shared 2-core machine with one thread; the optimiser is the platform's (Adam
lr 1e-3, weight decay 1e-6), batch 32, ``--epochs`` epochs with x0.1 at 80 %.

    python bench/ablation.py [--n 2000] [--epochs 20] [--seeds 3] [--json out.json]

Prints a Markdown table: test MAE per target (mean ± std over seeds) and training seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from math import gcd

import numpy as np
import torch

from matplat.ingest.sample_chem import make_structure
from ml.model import preset_config
from ml.split import grouped_split
from ml.synthetic_data import TARGETS, synthetic_graph_set
from ml.synthetic_truth import atomic_numbers_of, noise_floor_mae
from ml.train import TrainConfig, predict, train_model

VARIANTS = ("platform", "per-target", "linear", "raw")


def reduced_formula(species: list[str]) -> str:
    c = Counter(species)
    g = 0
    for v in c.values():
        g = gcd(g, v)
    return "".join(f"{e}{c[e] // g}" for e in sorted(c))


def data(n: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    cells = [make_structure(rng) for _ in range(n)]
    gs, _truth = synthetic_graph_set(
        [(s.lattice, s.frac, atomic_numbers_of(s.species)) for s in cells], seed=1)
    formulas = [reduced_formula(cells[int(i)].species) for i in gs.ids]
    subset = np.asarray(grouped_split(formulas, seed=12345), dtype=object)
    return tuple(gs.subset(np.flatnonzero(subset == k)) for k in ("train", "val", "test"))


def run(variant: str, splits, seed: int, epochs: int, hidden: int) -> tuple[dict, float]:  # type: ignore[no-untyped-def]
    train, val, test = splits
    tc = TrainConfig(epochs=epochs, batch_size=32, milestones=(int(0.8 * epochs),), seed=seed,
                     device="cpu", standardize=variant != "raw")
    arch = {"n_hidden": hidden, "n_graph": 2 * hidden, "n_conv": 3}
    groups = [(t,) for t in TARGETS] if variant == "per-target" else [TARGETS]
    maes: dict[str, float] = {}
    seconds = 0.0
    for targets in groups:
        extra = {"nonnegative_targets": ()} if variant == "linear" else {}
        cfg = preset_config("no-edgenet", n_node_features=89, targets=targets, **arch, **extra)
        t0 = time.perf_counter()
        model = train_model(cfg, train, val, tc).model()
        seconds += time.perf_counter() - t0
        pred = predict(model, test)
        for k, t in enumerate(targets):
            y = test.targets[:, list(test.target_names).index(t)].astype(np.float64)
            maes[t] = float(np.nanmean(np.abs(pred[:, k] - y)))
    return maes, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    splits = data(args.n)
    train, _val, test = splits
    print(f"data: {len(train)} train / {len(test)} test graphs in {time.perf_counter() - t0:.1f} s")
    base = {t: float(np.nanmean(np.abs(test.targets[:, k] - np.nanmean(train.targets[:, k]))))
            for k, t in enumerate(TARGETS)}
    results: dict[str, list] = {v: [] for v in VARIANTS}
    for seed in range(1, args.seeds + 1):
        for v in VARIANTS:
            maes, sec = run(v, splits, seed, args.epochs, args.hidden)
            results[v].append({"mae": maes, "seconds": sec})
            print(f"seed {seed} {v}: " + " ".join(f"{t}={m:.4f}" for t, m in maes.items())
                  + f" ({sec:.0f} s)", flush=True)
    print(f"\n| setup | {' | '.join(TARGETS)} | train s |\n|---|{'---|' * len(TARGETS)}---|")
    print("| mean predictor | " + " | ".join(f"{base[t]:.4f}" for t in TARGETS) + " | - |")
    for v in VARIANTS:
        cells = []
        for t in TARGETS:
            vals = np.array([r["mae"][t] for r in results[v]])
            cells.append(f"{vals.mean():.4f} ± {vals.std():.4f}")
        sec = np.array([r["seconds"] for r in results[v]])
        print(f"| {v} | " + " | ".join(cells) + f" | {sec.mean():.0f} ± {sec.std():.0f} |")
    print(f"\nnoise floor (formation energy): {noise_floor_mae('formation_energy'):.4f} eV/atom; "
          f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "baseline": base, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
