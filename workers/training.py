"""Pipeline step: train a CGNN on the database's graphs and register it as a model version.

Reads graphs and DFT targets (``workers.datasets``), assigns or reuses a dataset split, trains
one model or an ensemble with ``ml.train``, evaluates it on the test subset, and registers
everything needed to reproduce it (hyperparameters, recipe, split, data snapshot hash, code
version, seed, per-epoch history, metrics, weights and their sha256) in one transaction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sqlalchemy import Engine, func, select

from matplat import __version__
from matplat.db.bulk import insert_columns
from matplat.db.models import (
    CrystalGraph,
    DatasetSplit,
    ModelVersion,
    SplitMember,
    TrainingRun,
)
from matplat.db.session import session_factory, transaction
from matplat.errors import InputError, NotFoundError, PlatformError
from matplat.services import registry
from workers.datasets import GraphData, load_graph_data
from workers.graphs import ensure_recipe

ENSEMBLE_FORMAT = "matplat-ensemble-v1"
DEFAULT_TARGETS = ["formation_energy", "band_gap", "magnetization", "volume_deviation"]

#: The CGNN paper's OQMD v1.2 test MAEs (DESIGN.md; formation energy: the ``complete`` preset,
#: single model), in the units of the platform's targets.
PAPER_TEST_MAE = {"formation_energy": 0.0367, "band_gap": 0.0502, "magnetization": 0.0826,
                  "volume_deviation": 0.0175}
#: ``--setup paper``: the reference's training (Adam lr 1e-3, weight decay 1e-6, batch 512,
#: 300 epochs, x0.1 at epoch 250, MSE on raw targets, fp32, best validation checkpoint) and
#: linear outputs, one target per model.
PAPER_TRAINING = {"epochs": 300, "batch_size": 512, "lr": 1e-3, "weight_decay": 1e-6,
                  "milestones": [250], "gamma": 0.1, "amp": "off", "standardize": False}
PAPER_PRESET = "complete"
SETUPS = ("platform", "paper")


def paper_setup(target: str, train_overrides: dict[str, Any] | None = None
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model overrides, training overrides) of ``--setup paper`` for one of the four paper
    targets; ``train_overrides`` (e.g. ``epochs``) win over the reference's values."""
    if target not in PAPER_TEST_MAE:
        raise InputError(f"--setup paper trains one of {', '.join(PAPER_TEST_MAE)} per model; "
                         f"got {target!r}")
    return {"nonnegative_targets": []}, {**PAPER_TRAINING, **(train_overrides or {})}


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
    setup: str = "platform"


def pack_ensemble(members: list[bytes]) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": ENSEMBLE_FORMAT, "members": members}, buf)
    return buf.getvalue()


def unpack_ensemble(blob: bytes) -> list[bytes]:
    obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != ENSEMBLE_FORMAT:
        raise InputError("model artifact is not a matplat ensemble")
    return list(obj["members"])


def check_artifact(blob: bytes) -> None:
    """Load every member of a stored ensemble (tensors only, ``weights_only``) and build its
    model; :class:`InputError` when that fails, so bad weights are refused on import."""
    from ml.serialize import model_from_bytes

    try:
        members = unpack_ensemble(blob)
        if not members:
            raise InputError("the ensemble has no members")
        for member in members:
            model_from_bytes(member)
    except InputError as e:
        raise InputError(f"weights are not a matplat model ({e})") from None
    except Exception as e:  # noqa: BLE001 - any failure to load means unusable weights
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"weights are not a matplat model ({type(e).__name__}: "
                         f"{reason[:200]})") from None


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


@dataclass
class Prepared:
    """Data, split and architecture of a training request, resolved from the database."""

    recipe_id: int
    data: GraphData
    split_id: int
    split_name: str
    idx: dict[str, np.ndarray]
    model_cfg: Any
    notes: list[str] = field(default_factory=list)

    def subsets(self):  # type: ignore[no-untyped-def]
        gs = self.data.graphs
        return tuple(gs.subset(self.idx[k]) for k in ("train", "val", "test"))


def prepare(engine: Engine, req: TrainRequest) -> Prepared:
    """Check the request, load the graphs and targets, and assign (or reuse) the split."""
    from ml.model import preset_config
    from workers.train_config import check_request

    check_request(req)
    with session_factory(engine)() as s:
        registry.ensure_tag_free(s, req.tag)
    recipe_id = ensure_recipe(engine, req.recipe)
    with engine.connect() as conn:
        n_graphs = conn.execute(select(func.count()).select_from(CrystalGraph).where(
            CrystalGraph.recipe_id == recipe_id, CrystalGraph.status == "ok")).scalar_one()
    if not n_graphs:
        raise InputError(f"no graphs of recipe {req.recipe!r}: run `platform graphs build "
                         f"--recipe {req.recipe}` first")
    data = load_graph_data(engine, recipe_id)
    n = len(data.material_ids)
    if n < 3:
        raise InputError(f"only {n} materials have graphs of recipe {req.recipe!r} and DFT "
                         f"values: run `platform ingest` and `platform graphs build --recipe "
                         f"{req.recipe}` first")
    _check_target_values(req, data, np.arange(n))  # before the split is stored
    split_id, subsets, _ = _split_assignment(engine, data, req.split, req.seed)
    idx = {k: np.flatnonzero(subsets == k) for k in ("train", "val", "test")}
    if len(idx["train"]) == 0 or len(idx["val"]) == 0:
        raise InputError(f"split has {len(idx['train'])} training and {len(idx['val'])} "
                         "validation materials; need at least one of each")
    _check_target_values(req, data, idx["train"])
    with engine.connect() as conn:
        split_name = conn.execute(select(DatasetSplit.name).where(
            DatasetSplit.id == split_id)).scalar_one()
    model_cfg = preset_config(req.preset, n_node_features=89, targets=req.targets,
                              **req.model_overrides)
    return Prepared(recipe_id=recipe_id, data=data, split_id=split_id, split_name=split_name,
                    idx=idx, model_cfg=model_cfg)


def _check_target_values(req: TrainRequest, data: GraphData, train_idx: np.ndarray) -> None:
    """Refuse, before training, targets that none of ``rows`` (all materials, then the
    training split) has a value of: training learns nothing and no metric exists for them."""
    names = list(data.graphs.target_names)
    values = np.asarray(data.graphs.targets)
    empty = [t for t in req.targets
             if not np.isfinite(values[train_idx, names.index(t)]).any()]
    if empty:
        which = ("material" if len(train_idx) == len(data.material_ids)
                 else "material of the training split")
        raise InputError(
            f"no {which} with a graph of recipe {req.recipe!r} has a DFT value of "
            f"{', '.join(empty)} ({len(train_idx)} materials): leave it out of --targets")


def cap_batch_size(req: TrainRequest, prep: Prepared) -> tuple[TrainRequest, str | None]:
    """``req`` with its batch size capped for a small training set (``ml.train.batch_size_cap``)
    and the sentence saying so, or ``req`` unchanged and None."""
    from ml.train import MIN_STEPS_PER_EPOCH, batch_size_cap

    n_train = int(len(prep.idx["train"]))
    asked = _train_config(req, 0).batch_size
    cap = batch_size_cap(n_train)
    if asked <= cap:
        return req, None
    fixed = dataclasses.replace(req, train_overrides={**req.train_overrides, "batch_size": cap})
    return fixed, (f"batch size {asked} capped to {cap}: the training set has {n_train} "
                   f"materials, and an epoch should make at least {MIN_STEPS_PER_EPOCH} "
                   "optimiser steps")


def _train_config(req: TrainRequest, member: int):  # type: ignore[no-untyped-def]
    from ml.train import TrainConfig

    return TrainConfig(**{"seed": req.seed + member, "device": req.device,
                          **req.train_overrides})


def train_member(engine: Engine, req: TrainRequest, prep: Prepared, member: int,
                 progress: Callable[[dict[str, Any]], None] | None = None, *,
                 resume: dict[str, Any] | None = None, budget_seconds: float | None = None,
                 seconds_so_far: float = 0.0) -> tuple[Any, dict[str, Any] | None]:
    """Train ensemble member ``member`` (seed ``req.seed + member``).

    Returns ``(result, run)``: ``run`` (weights and run record) when the member finished,
    ``None`` when it stopped at ``budget_seconds`` with ``result.checkpoint`` to resume from.
    A diverged member is recorded as a failed training run and raises :class:`TrainingFailed`.
    """
    from ml.serialize import model_to_bytes
    from ml.train import TrainingDiverged, resolve_device, train_model

    train_set, val_set, _test = prep.subsets()
    tcfg = _train_config(req, member)
    t0 = time.perf_counter()

    def cb(epoch: dict[str, Any]) -> None:
        if progress:
            progress({**epoch, "member": member, "members": req.ensemble,
                      "epochs": tcfg.epochs})

    try:
        result = train_model(prep.model_cfg, train_set, val_set, tcfg, progress=cb,
                             resume=resume, budget_seconds=budget_seconds)
    except TrainingDiverged as e:
        with transaction(engine) as s:
            s.add(TrainingRun(tag=req.tag, member=member, seed=tcfg.seed, status="failed",
                              device=str(req.device), error=str(e),
                              seconds=seconds_so_far + time.perf_counter() - t0))
        raise TrainingFailed(f"training of {req.tag!r} (member {member}) stopped: {e}; "
                             "nothing was registered") from e
    if not result.complete:
        return result, None
    blob = model_to_bytes(result.model(), prep.model_cfg,
                          {"seed": tcfg.seed, "targets": req.targets})
    run = {"member": member, "seed": tcfg.seed, "history": result.history,
           "best_epoch": result.best_epoch,
           "seconds": seconds_so_far + time.perf_counter() - t0,
           "device": str(resolve_device(req.device)), "blob": blob}
    return result, run


def register(engine: Engine, req: TrainRequest, prep: Prepared,
             runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Evaluate the trained members on validation and test and register the model version
    with everything needed to reproduce it, in one transaction."""
    from ml.serialize import model_from_bytes
    from ml.train import TrainConfig, ensemble_predict

    runs = sorted(runs, key=lambda r: r["member"])
    members = [r["blob"] for r in runs]
    models = [model_from_bytes(b)[0] for b in members]
    _train, val_set, test_set = prep.subsets()
    idx = prep.idx
    from ml.metrics import BAND_GAP_THRESHOLD, MAGNETIZATION_THRESHOLD

    metrics: dict[str, Any] = {"test": {}, "val": {}, "n": {k: int(len(v)) for k, v in idx.items()},
                               "setup": req.setup,
                               # DFT value above which a material counts as an insulator /
                               # magnetic in the ROC-AUCs (reasons: ml.metrics)
                               "class_thresholds": {"band_gap": BAND_GAP_THRESHOLD,
                                                    "magnetization": MAGNETIZATION_THRESHOLD}}
    for subset_name, subset in (("test", test_set), ("val", val_set)):
        if len(subset) == 0:
            continue
        mean, _std = ensemble_predict(models, subset, device=req.device)
        cols = [list(subset.target_names).index(t) for t in req.targets]
        truth = np.asarray(subset.targets, dtype=np.float64)[:, cols]
        metrics[subset_name] = regression_metrics(req.targets, truth, mean)
    artifact = pack_ensemble(members)
    n_params = sum(p.numel() for p in models[0].parameters())
    hyper = {"model": prep.model_cfg.to_dict(), "training": TrainConfig(**{
        "seed": req.seed, "device": req.device, **req.train_overrides}).to_dict()}
    hyper = _json_safe(hyper)
    with transaction(engine) as s:
        registry.ensure_tag_free(s, req.tag)
        mv = ModelVersion(
            tag=req.tag, name=req.name, preset=req.preset, status="ready", hyperparameters=hyper,
            targets=req.targets, recipe_id=prep.recipe_id, split_id=prep.split_id,
            data_snapshot_hash=prep.data.snapshot_hash, code_version=__version__, seed=req.seed,
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
            "snapshot": prep.data.snapshot_hash, "split_id": prep.split_id,
            "skipped": prep.data.skipped}


def train_and_register(engine: Engine, req: TrainRequest,
                       progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train ``req`` in this process and register it under ``req.tag`` (library use; the CLI
    runs the same steps as a job, one task per member, see :func:`submit_train`)."""
    prep = prepare(engine, req)
    req, _note = cap_batch_size(req, prep)
    runs = [train_member(engine, req, prep, m, progress)[1] for m in range(req.ensemble)]
    return register(engine, req, prep, [r for r in runs if r is not None])


# ---------------------------------------------------------------------------------------------
# As a job: one task per ensemble member, each message at most ``budget_seconds`` of training
# (a member continues from its checkpoint in the next message), registration at the end.

#: Training time per message: well under Redis' visibility timeout and RabbitMQ's consumer
#: timeout (30 min by default).
DEFAULT_BUDGET_SECONDS = 600.0


def _request_params(req: TrainRequest) -> dict[str, Any]:
    return _json_safe(dataclasses.asdict(req))


def _request_from(params: dict[str, Any], device: str) -> TrainRequest:
    return TrainRequest(**{**params, "device": device})


def submit_train(engine: Engine, req: TrainRequest, *, runner: str = "in-process",
                 budget_seconds: float = DEFAULT_BUDGET_SECONDS) -> tuple[int, Prepared]:
    """Check and prepare ``req`` (data, split) and plan it as a job, one task per member.

    The batch size is capped for a small training set (:func:`cap_batch_size`); the sentence
    saying so is in ``prep.notes``.
    """
    from workers.jobs import TaskSpec, create_job

    prep = prepare(engine, req)
    req, note = cap_batch_size(req, prep)
    if note:
        prep.notes.append(note)
    fixed = dataclasses.replace(req, split=prep.split_name)
    epochs = _train_config(req, 0).epochs
    params = {"request": _request_params(fixed), "snapshot": prep.data.snapshot_hash,
              "budget_seconds": budget_seconds, "n_graphs": int(len(prep.data.material_ids))}
    job_id = create_job(engine, "train", params,
                        [TaskSpec({"member": m}, epochs) for m in range(req.ensemble)],
                        runner=runner, queue=KIND.queue)
    return job_id, prep


def _load_state(blob: bytes | None) -> dict[str, Any] | None:
    if not blob:
        return None
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


def _dump_state(obj: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


_PREPARED: dict[tuple[str, str], Prepared] = {}


def _prepared_for(engine: Engine, job: Any) -> tuple[TrainRequest, Prepared]:
    """The job's request and its prepared data (cached per process and data snapshot)."""
    req = _request_from(job.params["request"], "auto")
    key = (str(engine.url), job.params["snapshot"] + req.tag)
    if key not in _PREPARED:
        prep = prepare(engine, req)
        if prep.data.snapshot_hash != job.params["snapshot"]:
            raise InputError(
                f"the training data changed since job {job.id} was submitted (snapshot "
                f"{prep.data.snapshot_hash[:12]} != {job.params['snapshot'][:12]}); "
                "submit the training again")
        _PREPARED.clear()
        _PREPARED[key] = prep
    return req, _PREPARED[key]


class _TrainKind:
    name = "train"
    queue = "gpu"

    def run(self, engine: Engine, job: Any, task: Any, ctx: Any) -> Any:
        from workers.jobs import Outcome

        req, prep = _prepared_for(engine, job)
        req = dataclasses.replace(req, device=ctx.device)
        member = int(task.params["member"])
        saved = _load_state(task.state)
        resume = saved["checkpoint"] if saved and "checkpoint" in saved else None
        so_far = float(saved.get("seconds", 0.0)) if saved else 0.0

        def progress(ep: dict[str, Any]) -> None:
            ctx.progress(int(ep["epoch"]), info=ep)

        t0 = time.perf_counter()
        result, run = train_member(engine, req, prep, member, progress, resume=resume,
                                   budget_seconds=float(job.params["budget_seconds"]),
                                   seconds_so_far=so_far)
        if run is None:
            state = _dump_state({"checkpoint": result.checkpoint,
                                 "seconds": so_far + time.perf_counter() - t0})
            return Outcome(done=len(result.history), state=state, requeue=True)
        return Outcome(done=len(run["history"]), state=_dump_state({"run": run}),
                       result={"best_epoch": run["best_epoch"], "seconds": run["seconds"],
                               "device": run["device"]})

    def finalize(self, engine: Engine, job: Any, tasks: list[Any],
                 device: str = "auto") -> dict[str, Any]:
        from workers.jobs import get_tasks

        if any(t.status != "done" for t in tasks):
            return {}
        tag = job.params["request"]["tag"]
        with engine.connect() as conn:
            existing = conn.execute(select(ModelVersion.data_snapshot_hash, ModelVersion.seed)
                                    .where(ModelVersion.tag == tag)).first()
        if existing is not None and tuple(existing) == (job.params["snapshot"],
                                                        job.params["request"]["seed"]):
            return {"tag": tag, "already_registered": True}  # a repeated final step
        req, prep = _prepared_for(engine, job)
        req = dataclasses.replace(req, device=device)
        runs = [_load_state(t.state)["run"] for t in get_tasks(engine, job.id, with_state=True)]
        out = register(engine, req, prep, runs)
        return _json_safe({"tag": out["tag"], "n_parameters": out["n_parameters"],
                           "metrics": out["metrics"], "skipped": out["skipped"],
                           "members": len(runs)})


KIND = _TrainKind()


def regression_metrics(targets: list[str], truth: np.ndarray, pred: np.ndarray
                       ) -> dict[str, dict[str, float | int | None]]:
    """Per target: n, MAE, RMSE over known DFT values; ROC-AUC for the two classifications
    (band gap: metal vs insulator; magnetization: magnetic vs not; label = DFT value above
    ``ml.metrics.BAND_GAP_THRESHOLD`` / ``MAGNETIZATION_THRESHOLD``)."""
    from ml.metrics import BAND_GAP_THRESHOLD, MAGNETIZATION_THRESHOLD, mae, rmse, roc_auc

    thresholds = {"band_gap": BAND_GAP_THRESHOLD, "magnetization": MAGNETIZATION_THRESHOLD}

    out: dict[str, dict[str, float | int | None]] = {}
    for k, t in enumerate(targets):
        known = np.isfinite(truth[:, k])
        y, p = truth[known, k], pred[known, k]
        m: dict[str, float | int | None] = {"n": int(known.sum())}
        if known.any():
            m["mae"] = mae(y, p)
            m["rmse"] = rmse(y, p)
            if t in thresholds:
                labels = y > thresholds[t]
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
