"""Training loop: learning, determinism, divergence, checkpointing, prediction, ensembles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ml.data import GraphSet, random_graph_set
from ml.metrics import mae
from ml.model import CGNN, CGNNConfig
from ml.train import (
    TrainConfig,
    TrainingDiverged,
    average_predictions,
    ensemble_predict,
    masked_mse,
    predict,
    train_model,
)

N_SPECIES = 6
MODEL = CGNNConfig(n_node_features=N_SPECIES, n_hidden=16, n_graph=32, n_conv=2, targets=("degree",))


def degree_set(n: int = 600, seed: int = 3) -> GraphSet:
    """SYNTHETIC graphs whose target, the mean number of neighbours, depends on structure only."""
    gs = random_graph_set(n, seed=seed, n_species=N_SPECIES, max_atoms=12, median_atoms=4, degree_range=(2, 10))
    y = gs.edge_counts / gs.node_counts
    return gs.with_targets(y[:, None], ["degree"])


def composition_features(gs: GraphSet) -> np.ndarray:
    x = np.zeros((len(gs), N_SPECIES))
    np.add.at(x, (np.repeat(np.arange(len(gs)), gs.node_counts), gs.species.astype(np.int64)), 1.0)
    return np.c_[x / gs.node_counts[:, None], x, np.ones(len(gs))]


@pytest.fixture(scope="module")
def data() -> tuple[GraphSet, GraphSet]:
    gs = degree_set()
    return gs.subset(np.arange(500)), gs.subset(np.arange(500, 600))


@pytest.fixture(scope="module")
def trained(data):
    train, val = data
    history = []
    config = TrainConfig(epochs=30, batch_size=32, milestones=(25,), seed=1)
    result = train_model(MODEL, train, val, config, progress=history.append)
    return result, history


def test_training_learns_a_structural_target_beyond_composition(data, trained) -> None:
    train, val = data
    result, history = trained
    losses = [h["train_loss"] for h in history]
    assert losses[-1] < 0.3 * losses[0]
    w, *_ = np.linalg.lstsq(composition_features(train), train.targets[:, 0], rcond=None)
    baseline = mae(val.targets[:, 0], composition_features(val) @ w)
    model_mae = mae(val.targets[:, 0], predict(result.model(), val)[:, 0])
    assert model_mae == pytest.approx(result.best_val_mae["degree"], rel=1e-5)
    assert model_mae < 0.4 * baseline


def test_history_and_progress_callback(trained) -> None:
    result, history = trained
    assert len(history) == len(result.history) == 30
    first = history[0]
    assert set(first) == {"epoch", "train_loss", "val_mae", "val_score", "lr", "seconds", "graphs_per_s"}
    assert [h["epoch"] for h in history] == list(range(1, 31))
    assert history[0]["lr"] == pytest.approx(1e-3) and history[-1]["lr"] == pytest.approx(1e-4)
    assert result.best_epoch == 1 + int(np.argmin([h["val_mae"]["degree"] for h in history]))
    assert result.best_val_mae == history[result.best_epoch - 1]["val_mae"]


def test_same_seed_gives_identical_weights(data) -> None:
    train, val = data
    small = train.subset(np.arange(120))
    config = TrainConfig(epochs=2, batch_size=16, seed=7)
    a = train_model(MODEL, small, val, config)
    b = train_model(MODEL, small, val, config)
    c = train_model(MODEL, small, val, TrainConfig(epochs=2, batch_size=16, seed=8))
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert not all(torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert not torch.are_deterministic_algorithms_enabled()  # global setting restored


def test_nan_loss_raises_training_diverged_and_keeps_best_weights(data, monkeypatch) -> None:
    train, val = data
    original = CGNN.forward
    calls = {"train": 0}

    def poisoned(self, batch):
        y = original(self, batch)
        if self.training:
            calls["train"] += 1
            if calls["train"] == 5 + 3:  # epoch 2 (4 batches per epoch), batch 4
                return y * float("nan")
        return y

    monkeypatch.setattr(CGNN, "forward", poisoned)
    small = train.subset(np.arange(64))
    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 4") as info:
        train_model(MODEL, small, val, TrainConfig(epochs=5, batch_size=16, seed=0))
    err = info.value
    assert (err.epoch, err.batch) == (2, 4)
    assert err.result.best_epoch == 1 and len(err.result.history) == 1
    assert all(torch.isfinite(v).all() for v in err.result.state_dict.values() if v.is_floating_point())


def test_nan_validation_does_not_freeze_checkpointing(data, monkeypatch) -> None:
    train, val = data
    original = CGNN.forward
    state = {"evals": 0}

    def nan_first_validation(self, batch):
        y = original(self, batch)
        if not self.training:
            state["evals"] += 1
            if state["evals"] == 1:
                return y * float("nan")
        return y

    monkeypatch.setattr(CGNN, "forward", nan_first_validation)
    small = train.subset(np.arange(64))
    result = train_model(MODEL, small, val, TrainConfig(epochs=3, batch_size=16, seed=0, eval_batch_size=1000))
    assert math.isnan(result.history[0]["val_score"])
    assert result.best_epoch in (2, 3) and math.isfinite(result.best_score)


def test_patience_stops_early(data) -> None:
    train, val = data
    result = train_model(MODEL, train.subset(np.arange(32)), val, TrainConfig(epochs=40, batch_size=16, lr=1e-6, patience=2))
    assert len(result.history) < 40


def test_masked_mse_ignores_unknown_targets_and_scales() -> None:
    pred = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
    target = torch.tensor([[2.0, float("nan")], [1.0, float("nan")]])
    scale = torch.tensor([2.0, 1.0])
    loss = masked_mse(pred, target, scale, torch.tensor([1, 2]), torch.tensor([False, False]))
    assert loss.item() == pytest.approx(((0.5**2) + 1.0**2) / 2)
    ext = masked_mse(pred, target, scale, torch.tensor([1, 2]), torch.tensor([True, False]))
    assert ext.item() == pytest.approx(((0.5**2) + 0.5**2) / 2)
    none = masked_mse(pred, torch.full_like(target, float("nan")), scale, torch.tensor([1, 2]), torch.tensor([False, False]))
    assert none.item() == 0.0


def test_multitask_training_with_missing_targets_and_bf16() -> None:
    gs = degree_set(120, seed=5)
    y = np.c_[gs.targets[:, 0], gs.node_counts.astype(np.float32)]
    y[::3, 1] = np.nan
    gs = gs.with_targets(y, ["degree", "band_gap"])
    config = CGNNConfig(
        n_node_features=N_SPECIES, n_hidden=8, n_graph=16, n_conv=2, targets=("degree", "band_gap"),
        nonnegative_targets=("band_gap",),
    )
    result = train_model(config, gs, gs, TrainConfig(epochs=2, batch_size=32, amp="bf16"))
    assert set(result.best_val_mae) == {"degree", "band_gap"}
    pred = predict(result.model(), gs)
    assert pred.shape == (120, 2) and (pred[:, 1] > 0).all()
    with pytest.raises(ValueError, match="lacks targets"):
        train_model(CGNNConfig(n_node_features=N_SPECIES, targets=("other",)), gs, gs, TrainConfig(epochs=1))


def test_predict_keeps_order_and_mode_and_ensembles_average(trained, data) -> None:
    _, val = data
    result, _ = trained
    model = result.model().train()
    p_all = predict(model, val, batch_size=7)
    assert model.training  # mode restored
    p_rev = predict(model, val.subset(np.arange(len(val))[::-1]), batch_size=64)
    np.testing.assert_allclose(p_all[::-1], p_rev, rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    other = CGNN(MODEL).eval()
    mean, std = ensemble_predict([model, other], val, batch_size=50)
    p_other = predict(other, val)
    np.testing.assert_allclose(mean, (p_all + p_other) / 2, rtol=1e-6)
    np.testing.assert_allclose(std, np.abs(p_all - p_other) / 2, rtol=1e-5, atol=1e-7)
    m1, s1 = average_predictions([p_all])
    assert np.array_equal(m1, p_all.astype(np.float64)) and not s1.any()


def test_a_target_absent_from_validation_does_not_block_selection() -> None:
    gs = degree_set(96, seed=6)
    y = np.c_[gs.targets[:, 0], np.ones(len(gs), dtype=np.float32)]
    y[:10] = np.nan  # graphs without any label are dropped from training
    train = gs.with_targets(y, ["degree", "other"])
    y_val = y.copy()
    y_val[:, 1] = np.nan
    val = gs.with_targets(y_val, ["degree", "other"])
    config = CGNNConfig(n_node_features=N_SPECIES, n_hidden=8, n_graph=16, n_conv=1, targets=("degree", "other"))
    result = train_model(config, train, val, TrainConfig(epochs=2, batch_size=32))
    assert result.best_epoch is not None and math.isfinite(result.best_score)
    assert math.isnan(result.best_val_mae["other"])
    with pytest.raises(ValueError, match="no graph with a known target"):
        train_model(config, gs.with_targets(np.full((96, 2), np.nan), ["degree", "other"]), val, TrainConfig(epochs=1))


def test_a_run_cut_by_its_time_budget_resumes_to_identical_weights(data) -> None:
    """Workers train in slices (one message each): slices through a serialized checkpoint end
    with the same weights, history and best epoch as one uninterrupted run."""
    import io

    train, val = data
    small = train.subset(np.arange(150))
    config = TrainConfig(epochs=5, batch_size=16, milestones=(3,), seed=11)
    whole = train_model(MODEL, small, val, config)
    assert whole.complete and whole.checkpoint is None

    slices = 0
    result = train_model(MODEL, small, val, config, budget_seconds=0.0)
    while not result.complete:
        slices += 1
        assert len(result.history) == slices  # a zero budget stops after every epoch
        buf = io.BytesIO()
        torch.save(result.checkpoint, buf)  # through bytes, as a worker stores it
        ckpt = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
        result = train_model(MODEL, small, val, config, resume=ckpt, budget_seconds=0.0)
    assert slices == 4
    assert result.best_epoch == whole.best_epoch
    assert [h["train_loss"] for h in result.history] == [h["train_loss"] for h in whole.history]
    assert [h["lr"] for h in result.history] == [h["lr"] for h in whole.history]
    assert all(torch.equal(result.state_dict[k], whole.state_dict[k]) for k in whole.state_dict)


def test_resume_rejects_something_that_is_not_a_checkpoint(data) -> None:
    train, val = data
    with pytest.raises(ValueError, match="not a matplat training checkpoint"):
        train_model(MODEL, train.subset(np.arange(40)), val, TrainConfig(epochs=2, batch_size=16),
                    resume={"epoch": 1})
