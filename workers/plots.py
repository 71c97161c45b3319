"""Parity plots (test set, predicted vs DFT) and learning curves of a model version, as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import Engine, text

from matplat.services import registry


def _test_predictions(engine: Engine, tag: str, device: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{target: (dft, predicted)} on the model's test subset (stored predictions, else inference)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT property, dft, predicted FROM prediction_results WHERE model_tag = :t "
            "AND split = 'test' AND dft IS NOT NULL"), {"t": tag}).all()
    if rows:
        for prop in sorted({r[0] for r in rows}):
            sel = [(r[1], r[2]) for r in rows if r[0] == prop]
            arr = np.asarray(sel, dtype=float)
            out[prop] = (arr[:, 0], arr[:, 1])
        return out
    from ml.train import ensemble_predict
    from workers.datasets import load_graph_data
    from workers.predict import _load_models

    mv_id, _tag, blob, meta = registry.artifact_bytes(engine, tag)
    if meta["split_id"] is None or meta["recipe_id"] is None:
        return out
    data = load_graph_data(engine, meta["recipe_id"])
    with engine.connect() as conn:
        test_ids = {int(r[0]) for r in conn.execute(text(
            "SELECT material_id FROM split_members WHERE split_id = :s AND subset = 'test'"),
            {"s": meta["split_id"]})}
    idx = np.flatnonzero(np.isin(data.material_ids, list(test_ids)))
    if len(idx) == 0:
        return out
    subset = data.graphs.subset(idx)
    mean, _ = ensemble_predict(_load_models(blob), subset, device=device)
    names = list(subset.target_names)
    truth = np.asarray(subset.targets, dtype=float)
    for k, t in enumerate(meta["targets"]):
        col = truth[:, names.index(t)]
        ok = ~np.isnan(col)
        out[t] = (col[ok], mean[ok, k])
    return out


def write_plots(engine: Engine, tag: str, out_dir: Path, device: str = "auto") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    info = registry.show_version(engine, tag)
    files: list[Path] = []
    for target, (dft, pred) in _test_predictions(engine, tag, device).items():
        fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
        ax.scatter(dft, pred, s=6, alpha=0.6)
        lo = float(np.nanmin([dft.min(), pred.min()])) if len(dft) else 0.0
        hi = float(np.nanmax([dft.max(), pred.max()])) if len(dft) else 1.0
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        mae = float(np.mean(np.abs(pred - dft))) if len(dft) else float("nan")
        ax.set_xlabel(f"DFT {target}")
        ax.set_ylabel(f"predicted {target}")
        ax.set_title(f"{tag}: {target} (test, n={len(dft)}, MAE={mae:.3g})", fontsize=9)
        fig.tight_layout()
        path = out_dir / f"{tag}_parity_{target}.png"
        fig.savefig(path)
        plt.close(fig)
        files.append(path)
    runs = info.get("training_runs") or []
    if runs:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        for run in runs:
            hist = run.get("history") or []
            epochs = [h.get("epoch") for h in hist]
            ax.plot(epochs, [h.get("train_loss") for h in hist], label=f"m{run['member']} train loss")
            val = [h.get("val_loss", None) for h in hist]
            if any(v is not None for v in val):
                ax.plot(epochs, val, "--", label=f"m{run['member']} val loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (standardised MSE)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.set_title(f"{tag}: learning curves", fontsize=9)
        fig.tight_layout()
        path = out_dir / f"{tag}_learning_curves.png"
        fig.savefig(path)
        plt.close(fig)
        files.append(path)
    return files
