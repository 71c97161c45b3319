"""Training, prediction and ensembles of the CGNN.

``train_model`` follows the reference recipe (Adam, MultiStepLR, MSE, keep the weights of the
best validation MAE) with these differences:

* the loss is the MSE of STANDARDISED targets, NaN targets masked: per target the mean of
  :math:`((\\hat y - y) / s)^2` over known values (for extensive targets divided by the atom
  count too), then the mean over the targets known in the batch;
* validation selects on the mean over targets of MAE / s (for one target: its MAE ranking);
  an epoch whose score is NaN is never selected, and never blocks later epochs;
* a NaN or infinite training loss raises :class:`TrainingDiverged` before the optimiser step,
  carrying the result so far (best weights untouched);
* progress goes to a callback, one dict per epoch; nothing is printed.

On CPU a run is deterministic for a seed (same weights bit for bit on the same machine and
thread count). On CUDA, autocast to bfloat16 (``amp="auto"``) and ``torch.compile`` are
available; scatter sums there use atomics and are not bit-reproducible.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ml.data import Batch, GraphSet
from ml.model import CGNN, CGNNConfig

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "average_predictions",
    "batch_size_cap",
    "ensemble_predict",
    "masked_mse",
    "predict",
    "resolve_device",
    "target_statistics",
    "train_model",
]

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class TrainConfig:
    """Optimisation settings; defaults are the reference's OQMD recipe.

    ``device``: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
    ``amp``: ``"auto"`` (bfloat16 autocast on CUDA, off on CPU), ``"bf16"`` or ``"off"``.
    ``patience``: stop after this many epochs without a better validation score (``None``:
    never). ``eval_batch_size``: validation/prediction batch (``None``: ``2 * batch_size``).
    """

    epochs: int = 300
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-6
    milestones: tuple[int, ...] = (250,)
    gamma: float = 0.1
    seed: int = 12345
    patience: int | None = None
    device: str = "auto"
    amp: str = "auto"
    compile: bool = False
    eval_batch_size: int | None = None
    deterministic: bool = True
    #: Train on standardised targets (mean 0, std 1 over the training set); False trains on
    #: raw values with a plain MSE, as the reference does.
    standardize: bool = True

    def __post_init__(self) -> None:
        self.milestones = tuple(int(m) for m in self.milestones)
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs >= 0, batch_size >= 1 and lr > 0 are required")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be auto, bf16 or off, got {self.amp!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {sorted(unknown)}")
        return cls(**dict(data))


@dataclass
class TrainResult:
    """Outcome of :func:`train_model`.

    ``state_dict``: CPU tensors of the selected weights (best validation score; the last
    epoch's when no epoch had a finite score). ``history``: one dict per epoch with keys
    ``epoch`` (1-based), ``train_loss``, ``val_mae`` (``{target: MAE}``), ``val_score``, ``lr``,
    ``seconds``, ``graphs_per_s`` (training phase). ``best_val_mae``: ``{target: MAE}`` at
    ``best_epoch`` (``None`` when no epoch qualified).
    """

    state_dict: dict[str, Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_mae: dict[str, float] = field(default_factory=dict)
    best_score: float = math.nan
    config: CGNNConfig | None = None
    #: ``None`` when training ran to its end; otherwise the run stopped at its time budget and
    #: this is the state to pass back as ``resume=`` (see :func:`train_model`).
    checkpoint: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        return self.checkpoint is None

    def model(self) -> CGNN:
        """A CGNN (eval mode, CPU) with the selected weights."""
        if self.config is None:
            raise ValueError("this result carries no model config")
        model = CGNN(self.config)
        model.load_state_dict(self.state_dict)
        return model.eval()


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; ``result`` holds the best weights so far."""

    def __init__(self, message: str, epoch: int, batch: int, result: TrainResult) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.result = result


#: A training set of n graphs gets batches of at most ceil(n / MIN_STEPS_PER_EPOCH) graphs (and
#: at least MIN_CAPPED_BATCH): the reference's batch of 512 on a few hundred materials would make
#: one optimiser step per epoch and learn nothing in a demo's epochs.
MIN_STEPS_PER_EPOCH = 40
MIN_CAPPED_BATCH = 32


def batch_size_cap(n_train: int) -> int:
    """The largest batch size for a training set of ``n_train`` graphs (see above)."""
    return max(MIN_CAPPED_BATCH, math.ceil(n_train / MIN_STEPS_PER_EPOCH))


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` -> CUDA when available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    use = amp == "bf16" or (amp == "auto" and device.type == "cuda")
    if not use:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms for the duration of a run, restoring the global setting."""
    if not enabled:
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def target_statistics(graph_set: GraphSet, config: CGNNConfig) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation ``(T,)`` of each target over its known values.

    Extensive targets are taken per atom. Unknown or constant targets get mean 0 / std 1
    where undefined.
    """
    columns = _target_columns(graph_set, config)
    values = graph_set.targets[:, columns].astype(np.float64)
    n = graph_set.node_counts.astype(np.float64)
    mean = np.zeros(len(columns))
    std = np.ones(len(columns))
    for t, name in enumerate(config.targets):
        v = values[:, t] / n if name in config.extensive_targets else values[:, t]
        v = v[np.isfinite(v)]
        if v.size:
            mean[t] = v.mean()
            s = v.std()
            std[t] = s if s > 1e-12 else 1.0
    return mean, std


def _target_columns(graph_set: GraphSet, config: CGNNConfig) -> list[int]:
    missing = [t for t in config.targets if t not in graph_set.target_names]
    if missing:
        raise ValueError(f"graph set lacks targets {missing}; it has {list(graph_set.target_names)}")
    return [graph_set.target_names.index(t) for t in config.targets]


def masked_mse(pred: Tensor, target: Tensor, scale: Tensor, node_counts: Tensor, extensive: Tensor) -> Tensor:
    """Loss on standardised residuals with NaN targets masked.

    ``pred``, ``target``: ``(B, T)``; ``scale``: ``(T,)`` standard deviations; ``extensive``:
    ``(T,)`` bool (their residuals are also divided by the atom count ``(B,)``). Returns the
    mean over targets present in the batch of the per-target mean squared residual (0 when
    no target is known).
    """
    known = torch.isfinite(target)
    denom = scale.unsqueeze(0) * torch.where(extensive.unsqueeze(0), node_counts.to(pred.dtype).unsqueeze(1), 1.0)
    r = torch.where(known, (pred - torch.nan_to_num(target)) / denom, 0.0)
    count = known.sum(0)
    per_target = (r * r).sum(0) / count.clamp_min(1)
    present = count > 0
    return (per_target * present).sum() / present.sum().clamp_min(1)


def _batches_on(graph_set: GraphSet, batch_size: int, device: torch.device, **kw: Any) -> Iterator[Batch]:
    pin = device.type == "cuda"
    for b in graph_set.iter_batches(batch_size, **kw):
        yield (b.pin_memory() if pin else b).to(device, non_blocking=pin)


@torch.no_grad()
def _predict_tensor(model: nn.Module, graph_set: GraphSet, batch_size: int, device: torch.device, amp: str) -> np.ndarray:
    outputs = []
    with _autocast(device, amp):
        for batch in _batches_on(graph_set, batch_size, device):
            outputs.append(model(batch).float().cpu())
    if not outputs:
        return np.zeros((0, len(model.targets)), dtype=np.float32)
    return torch.cat(outputs).numpy()


def predict(
    model: CGNN,
    graph_set: GraphSet,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    amp: str = "off",
) -> np.ndarray:
    """``(G, T)`` float32 predictions in physical units, in the order of ``graph_set``.

    Runs in eval mode (restored afterwards) on ``device`` (default: where the model is).
    """
    dev = next(model.parameters()).device if device is None else resolve_device(device)
    was_training = model.training
    model.to(dev).eval()
    try:
        return _predict_tensor(model, graph_set, batch_size, dev, amp)
    finally:
        model.train(was_training)


def average_predictions(predictions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over ``K`` models' ``(G, T)`` predictions.

    The std is the population std (``ddof=0``) of the members, the ensemble's spread; zero for
    one model.
    """
    if not predictions:
        raise ValueError("no predictions to average")
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in predictions])
    return stack.mean(0), stack.std(0)


def ensemble_predict(
    models: Sequence[CGNN],
    graph_set: GraphSet,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict with each of ``K`` models; return the mean and std ``(G, T)``."""
    return average_predictions([predict(m, graph_set, batch_size, device) for m in models])


def _validation_mae(targets: np.ndarray, pred: np.ndarray) -> list[float]:
    """MAE per target over graphs whose target is known; a NaN prediction makes it NaN."""
    out = []
    for t in range(targets.shape[1]):
        known = np.isfinite(targets[:, t])
        diff = np.abs(pred[known, t].astype(np.float64) - targets[known, t])
        out.append(float(diff.mean()) if known.any() else math.nan)
    return out


def _score(maes: Sequence[float], std: np.ndarray, known: np.ndarray) -> float:
    """Mean of MAE / std over the targets known in validation; NaN if any of them is NaN."""
    values = [m / s for m, s, k in zip(maes, std, known, strict=True) if k]
    if not values or not all(math.isfinite(v) for v in values):
        return math.nan
    return float(np.mean(values))


def train_model(
    model_config: CGNNConfig,
    train_set: GraphSet,
    val_set: GraphSet | None,
    train_config: TrainConfig | None = None,
    progress: ProgressFn | None = None,
    *,
    resume: Mapping[str, Any] | None = None,
    budget_seconds: float | None = None,
) -> TrainResult:
    """Train a CGNN and return the best weights and the history.

    ``train_set``/``val_set`` must hold a column for each of ``model_config.targets`` (NaN where
    unknown). Without a validation set the last epoch is kept. Raises
    :class:`TrainingDiverged` on a NaN/inf loss.

    With ``budget_seconds``, training stops after the first epoch that ends past the budget
    and returns a result whose ``checkpoint`` (model, optimiser, scheduler and random states,
    best weights and history) continues the run when passed back as ``resume`` with the same
    data and configs; on CPU the resumed run ends with the same weights, bit for bit, as an
    uninterrupted one. Workers use this to keep every message short.
    """
    tc = TrainConfig() if train_config is None else train_config
    device = resolve_device(tc.device)
    train_cols = _target_columns(train_set, model_config)
    val_cols = _target_columns(val_set, model_config) if val_set is not None and len(val_set) else None

    deterministic = tc.deterministic and device.type == "cpu"
    with _deterministic(deterministic):
        torch.manual_seed(tc.seed)
        model = CGNN(model_config)
        mean, std = target_statistics(train_set, model_config)
        if not tc.standardize:
            mean, std = np.zeros_like(mean), np.ones_like(std)
        model.set_target_stats(mean, std)
        model.to(device)
        forward: Callable[[Batch], Tensor] = model
        if tc.compile:
            model.aggregation = "index"  # compile traces index_add/index_select, not sparse CSR
            forward = torch.compile(model, dynamic=True)  # type: ignore[assignment]
        optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(tc.milestones), gamma=tc.gamma)
        scale = torch.as_tensor(std, dtype=torch.float32, device=device)
        extensive = torch.tensor([t in model_config.extensive_targets for t in model_config.targets], device=device)
        train_view = train_set.with_targets(train_set.targets[:, train_cols], model_config.targets)
        labelled = np.isfinite(train_view.targets).any(axis=1)
        if not labelled.all():  # graphs without any known target teach nothing
            train_view = train_view.subset(np.flatnonzero(labelled))
        if len(train_view) == 0:
            raise ValueError("the training set has no graph with a known target")
        val_view = (
            val_set.with_targets(val_set.targets[:, val_cols], model_config.targets)
            if val_set is not None and val_cols is not None
            else None
        )
        val_known = np.isfinite(val_view.targets).any(axis=0) if val_view is not None else None
        eval_bs = tc.eval_batch_size or 2 * tc.batch_size
        rng = np.random.default_rng(tc.seed)

        result = TrainResult(state_dict=_cpu_state(model), config=copy.deepcopy(model_config))
        best = math.inf
        since_best = 0
        first_epoch = 1
        if resume is not None:
            first_epoch, best, since_best = _restore(resume, model, optimizer, scheduler, rng, result)
        started = time.perf_counter()
        for epoch in range(first_epoch, tc.epochs + 1):
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            model.train()
            total, seen = 0.0, 0
            epoch_seed = int(rng.integers(2**63 - 1))
            for k, batch in enumerate(_batches_on(train_view, tc.batch_size, device, shuffle=True, seed=epoch_seed)):
                with _autocast(device, tc.amp):
                    pred = forward(batch)
                loss = masked_mse(pred.float(), batch.targets, scale, batch.node_counts, extensive)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingDiverged(
                        f"training loss is {value} at epoch {epoch}, batch {k + 1}; the best "
                        f"weights so far (epoch {result.best_epoch}) are in this error's result",
                        epoch, k + 1, result,
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += value * batch.num_graphs
                seen += batch.num_graphs
            train_seconds = time.perf_counter() - t0

            val_mae: dict[str, float] = {}
            score = math.nan
            if val_view is not None:
                model.eval()
                pred_val = _predict_tensor(forward, val_view, eval_bs, device, tc.amp)  # type: ignore[arg-type]
                maes = _validation_mae(val_view.targets, pred_val)
                val_mae = dict(zip(model_config.targets, maes, strict=True))
                score = _score(maes, std, val_known)
            scheduler.step()

            improved = val_view is None or (math.isfinite(score) and score < best)
            if improved:
                best = score if val_view is not None else best
                since_best = 0
                result.state_dict = _cpu_state(model)
                result.best_epoch = epoch
                result.best_val_mae = dict(val_mae)
                result.best_score = score
            else:
                since_best += 1
            record = {
                "epoch": epoch,
                "train_loss": total / max(seen, 1),
                "val_mae": val_mae,
                "val_score": score,
                "lr": lr,
                "seconds": time.perf_counter() - t0,
                "graphs_per_s": seen / train_seconds if train_seconds > 0 else math.nan,
            }
            result.history.append(record)
            if progress is not None:
                progress(dict(record))
            if tc.patience is not None and val_view is not None and since_best >= tc.patience:
                break
            if (
                budget_seconds is not None
                and epoch < tc.epochs
                and time.perf_counter() - started >= budget_seconds
            ):
                result.checkpoint = _checkpoint(epoch, best, since_best, model, optimizer,
                                                scheduler, rng, result)
                return result
        if result.best_epoch is None and result.history:
            result.state_dict = _cpu_state(model)  # no finite validation score: keep the last epoch
    return result


CHECKPOINT_FORMAT = "matplat-train-checkpoint-v1"


def _checkpoint(epoch: int, best: float, since_best: int, model: nn.Module,
                optimizer: torch.optim.Optimizer, scheduler: Any, rng: np.random.Generator,
                result: TrainResult) -> dict[str, Any]:
    """Everything needed to continue after ``epoch`` (CPU tensors and plain Python values)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "best": best,
        "since_best": since_best,
        "model": _cpu_state(model),
        "optimizer": _to_cpu(optimizer.state_dict()),
        "scheduler": scheduler.state_dict(),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "result": {
            "state_dict": {k: v.clone() for k, v in result.state_dict.items()},
            "history": copy.deepcopy(result.history),
            "best_epoch": result.best_epoch,
            "best_val_mae": dict(result.best_val_mae),
            "best_score": result.best_score,
        },
    }


def _restore(ckpt: Mapping[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: Any, rng: np.random.Generator, result: TrainResult
             ) -> tuple[int, float, int]:
    """Load a :func:`_checkpoint` into the run's objects; returns (next epoch, best, since)."""
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError("not a matplat training checkpoint")
    device = next(model.parameters()).device
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    for state in optimizer.state.values():  # optimiser moments follow the model's device
        for k, v in state.items():
            if isinstance(v, Tensor) and v.dim() > 0:
                state[k] = v.to(device)
    scheduler.load_state_dict(ckpt["scheduler"])
    rng.bit_generator.state = ckpt["numpy_rng"]
    torch.set_rng_state(ckpt["torch_rng"])
    saved = ckpt["result"]
    result.state_dict = dict(saved["state_dict"])
    result.history = list(saved["history"])
    result.best_epoch = saved["best_epoch"]
    result.best_val_mae = dict(saved["best_val_mae"])
    result.best_score = saved["best_score"]
    return int(ckpt["epoch"]) + 1, float(ckpt["best"]), int(ckpt["since_best"])


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
