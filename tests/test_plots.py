"""Learning-curve plots: training loss and validation MAE of every target of every member."""

from __future__ import annotations

from pathlib import Path

from workers.plots import _learning_curves


def test_learning_curves_draw_validation_mae_per_target_and_member(tmp_path: Path) -> None:
    def history(scale: float) -> list[dict]:
        return [{"epoch": e, "train_loss": scale / e,
                 "val_mae": {"formation_energy": 0.3 / e, "band_gap": 0.5 / e}}
                for e in range(1, 6)]

    runs = [{"member": 0, "history": history(1.0)}, {"member": 1, "history": history(2.0)}]
    path = tmp_path / "curves.png"
    labels = _learning_curves("v3", runs, path)
    assert path.stat().st_size > 0
    assert sorted(labels) == sorted([
        "m0 train loss", "m1 train loss", "m0 band_gap", "m0 formation_energy",
        "m1 band_gap", "m1 formation_energy"])
