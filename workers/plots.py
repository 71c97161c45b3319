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
        path = out_dir / f"{tag}_learning_curves.png"
        _learning_curves(tag, runs, path)
        files.append(path)
    return files


def _learning_curves(tag: str, runs: list[dict], path: Path) -> list[str]:
    """Training loss (left) and validation MAE per target (right) of every member, per epoch;
    returns the labels of the curves drawn.

    The validation MAE is in each target's own unit, so the right panel is on a log scale and
    each target keeps one colour across members (members differ by line style).
    """
    import matplotlib.pyplot as plt

    fig, (loss_ax, mae_ax) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    styles = ["-", "--", ":", "-."]
    colours: dict[str, str] = {}
    for run in runs:
        hist = run.get("history") or []
        epochs = [h.get("epoch") for h in hist]
        style = styles[int(run.get("member", 0)) % len(styles)]
        loss_ax.plot(epochs, [h.get("train_loss") for h in hist], style,
                     label=f"m{run.get('member', 0)} train loss")
        targets = sorted({t for h in hist for t in (h.get("val_mae") or {})})
        for t in targets:
            values = [(h.get("val_mae") or {}).get(t, np.nan) for h in hist]
            line = mae_ax.plot(epochs, values, style, color=colours.get(t),
                               label=f"m{run.get('member', 0)} {t}")[0]
            colours.setdefault(t, line.get_color())
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss (standardised MSE)")
    loss_ax.set_yscale("log")
    loss_ax.legend(fontsize=7)
    mae_ax.set_xlabel("epoch")
    mae_ax.set_ylabel("validation MAE (unit of each target)")
    mae_ax.set_yscale("log")
    if colours:
        mae_ax.legend(fontsize=7)
    fig.suptitle(f"{tag}: learning curves", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    labels = [line.get_label() for ax in (loss_ax, mae_ax) for line in ax.get_lines()]
    plt.close(fig)
    return labels
