"""Pipeline step: train a CGNN on the database's graphs and register it as a model version.

Reads graphs and DFT targets (``workers.datasets``), assigns or reuses a dataset split, trains
one model or an ensemble with ``ml.train``, evaluates it on the test subset, and registers
everything needed to reproduce it (hyperparameters, recipe, split, data snapshot hash, code
version, seed, per-epoch history, metrics, weights and their sha256) in one transaction.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sqlalchemy import Engine, select

from matplat import __version__
from matplat.db.bulk import insert_columns
from matplat.db.models import DatasetSplit, ModelVersion, SplitMember, TrainingRun
from matplat.db.session import session_factory, transaction
from matplat.errors import InputError, NotFoundError, PlatformError
from matplat.services import registry
from workers.datasets import GraphData, check_targets, load_graph_data
from workers.graphs import ensure_recipe

ENSEMBLE_FORMAT = "matplat-ensemble-v1"
DEFAULT_TARGETS = ["formation_energy", "band_gap", "magnetization", "volume_deviation"]


class TrainingFailed(PlatformError):
    """Training stopped (for example the loss became NaN); nothing was registered."""


@dataclass
class TrainRequest:
    tag: str
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    preset: str = "no-edgenet"
    recipe: str = "cgc"
    split: str | None = None
    seed: int = 12345
    ensemble: int = 1
    model_overrides: dict[str, Any] = field(default_factory=dict)
    train_overrides: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    name: str = "cgnn"


def pack_ensemble(members: list[bytes]) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": ENSEMBLE_FORMAT, "members": members}, buf)
    return buf.getvalue()


def unpack_ensemble(blob: bytes) -> list[bytes]:
    obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != ENSEMBLE_FORMAT:
        raise InputError("model artifact is not a matplat ensemble")
    return list(obj["members"])


def _split_assignment(engine: Engine, data: GraphData, split_name: str | None, seed: int
                      ) -> tuple[int, np.ndarray, bool]:
    """(split id, subset per graph, created?) — reuse a named split or create the default one."""
    from ml.split import grouped_split

    name = split_name or f"formula-grouped-{seed}"
    with session_factory(engine)() as s:
        split = s.scalars(select(DatasetSplit).where(DatasetSplit.name == name)).first()
        if split is not None:
            members = dict(s.execute(select(SplitMember.material_id, SplitMember.subset).where(
                SplitMember.split_id == split.id)).all())
            subsets = np.array([members.get(int(m), "") for m in data.material_ids], dtype=object)
            return split.id, subsets, False
    if split_name is not None and split_name != name:  # pragma: no cover
        raise NotFoundError(f"no split named {split_name!r}")
    subsets = np.asarray(grouped_split(data.formulas, seed=seed), dtype=object)
    counts = {k: int((subsets == k).sum()) for k in ("train", "val", "test")}
    with transaction(engine) as s:
        split = DatasetSplit(name=name, method="grouped-by-reduced-formula", seed=seed,
                             fractions={"train": 0.8, "val": 0.1, "test": 0.1}, counts=counts)
        s.add(split)
        s.flush()
        insert_columns(s.connection(), "split_members", {
            "split_id": np.full(len(subsets), split.id, dtype=np.int64),
            "material_id": data.material_ids,
            "subset": subsets.tolist(),
        })
        return split.id, subsets, True


def train_and_register(engine: Engine, req: TrainRequest,
                       progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train ``req`` and register it under ``req.tag``; returns the registered summary."""
    from ml.model import preset_config
    from ml.serialize import model_from_bytes, model_to_bytes
    from ml.train import (
        TrainConfig,
        TrainingDiverged,
        ensemble_predict,
        resolve_device,
        train_model,
    )

    check_targets(req.targets)
    with session_factory(engine)() as s:
        registry.ensure_tag_free(s, req.tag)
    recipe_id = ensure_recipe(engine, req.recipe)
    data = load_graph_data(engine, recipe_id)
    n = len(data.material_ids)
    if n < 3:
        raise InputError(f"only {n} materials have graphs of recipe {req.recipe!r} and DFT "
                         f"values: run `platform ingest` and `platform graphs build --recipe "
                         f"{req.recipe}` first")
    split_id, subsets, _ = _split_assignment(engine, data, req.split, req.seed)
    idx = {k: np.flatnonzero(subsets == k) for k in ("train", "val", "test")}
    if len(idx["train"]) == 0 or len(idx["val"]) == 0:
        raise InputError(f"split has {len(idx['train'])} training and {len(idx['val'])} "
                         "validation materials; need at least one of each")
    gs = data.graphs
    train_set, val_set, test_set = (gs.subset(idx[k]) for k in ("train", "val", "test"))
    model_cfg = preset_config(req.preset, n_node_features=89, targets=req.targets,
                              **req.model_overrides)
    members: list[bytes] = []
    runs: list[dict[str, Any]] = []
    models = []
    for member in range(req.ensemble):
        seed = req.seed + member
        tcfg = TrainConfig(**{"seed": seed, "device": req.device, **req.train_overrides})
        t0 = time.perf_counter()

        def cb(epoch: dict[str, Any], member: int = member, epochs: int = tcfg.epochs) -> None:
            if progress:
                progress({**epoch, "member": member, "members": req.ensemble, "epochs": epochs})

        try:
            result = train_model(model_cfg, train_set, val_set, tcfg, progress=cb)
        except TrainingDiverged as e:
            with transaction(engine) as s:
                s.add(TrainingRun(tag=req.tag, member=member, seed=seed, status="failed",
                                  device=str(req.device), error=str(e),
                                  seconds=time.perf_counter() - t0))
            raise TrainingFailed(f"training of {req.tag!r} (member {member}) stopped: {e}; "
                                 "nothing was registered") from e
        model = result.model()
        blob = model_to_bytes(model, model_cfg, {"seed": seed, "targets": req.targets})
        models.append(model_from_bytes(blob)[0])
        members.append(blob)
        runs.append({"member": member, "seed": seed, "history": result.history,
                     "best_epoch": result.best_epoch, "seconds": time.perf_counter() - t0,
                     "device": str(resolve_device(req.device))})
    metrics: dict[str, Any] = {"test": {}, "val": {}, "n": {k: int(len(v)) for k, v in idx.items()}}
    for subset_name, subset in (("test", test_set), ("val", val_set)):
        if len(subset) == 0:
            continue
        mean, _std = ensemble_predict(models, subset, device=req.device)
        cols = [list(subset.target_names).index(t) for t in req.targets]
        truth = np.asarray(subset.targets, dtype=np.float64)[:, cols]
        metrics[subset_name] = regression_metrics(req.targets, truth, mean)
    artifact = pack_ensemble(members)
    n_params = sum(p.numel() for p in models[0].parameters())
    hyper = {"model": model_cfg.to_dict(), "training": TrainConfig(**{
        "seed": req.seed, "device": req.device, **req.train_overrides}).to_dict()}
    hyper = _json_safe(hyper)
    with transaction(engine) as s:
        registry.ensure_tag_free(s, req.tag)
        mv = ModelVersion(
            tag=req.tag, name=req.name, preset=req.preset, status="ready", hyperparameters=hyper,
            targets=req.targets, recipe_id=recipe_id, split_id=split_id,
            data_snapshot_hash=data.snapshot_hash, code_version=__version__, seed=req.seed,
            ensemble_size=req.ensemble, n_parameters=int(n_params), metrics=_json_safe(metrics),
            artifact=artifact, artifact_sha256=hashlib.sha256(artifact).hexdigest())
        s.add(mv)
        s.flush()
        for r in runs:
            s.add(TrainingRun(model_version_id=mv.id, tag=req.tag, member=r["member"],
                              seed=r["seed"], status="succeeded", device=r["device"],
                              history=_json_safe(r["history"]), best_epoch=r["best_epoch"],
                              seconds=r["seconds"]))
    return {"tag": req.tag, "metrics": metrics, "n_parameters": n_params,
            "snapshot": data.snapshot_hash, "split_id": split_id, "skipped": data.skipped}


def regression_metrics(targets: list[str], truth: np.ndarray, pred: np.ndarray
                       ) -> dict[str, dict[str, float | int | None]]:
    """Per target: n, MAE, RMSE over known DFT values; ROC-AUC for the two classifications
    (band gap: metal vs insulator; magnetization: magnetic vs not; label = DFT value > 0)."""
    from ml.metrics import mae, rmse, roc_auc

    out: dict[str, dict[str, float | int | None]] = {}
    for k, t in enumerate(targets):
        known = np.isfinite(truth[:, k])
        y, p = truth[known, k], pred[known, k]
        m: dict[str, float | int | None] = {"n": int(known.sum())}
        if known.any():
            m["mae"] = mae(y, p)
            m["rmse"] = rmse(y, p)
            if t in ("band_gap", "magnetization"):
                labels = y > 0.0
                m["roc_auc"] = roc_auc(labels, p) if 0 < labels.sum() < len(labels) else None
        out[t] = m
    return out


def _json_safe(obj: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars by Python numbers, recursively."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)
