"""The model registry: versions (immutable, unique tags), aliases with history, export/import.

Everything here is database work only (no torch): weights travel as opaque bytes with their
sha256. Export files are zip archives holding ``model.json`` (metadata) and ``weights.bin``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from matplat.db.models import (
    DatasetSplit,
    GraphRecipe,
    ModelAlias,
    ModelMetric,
    ModelVersion,
    Prediction,
    TrainingRun,
)
from matplat.db.models.mlmodels import ModelElementMetric, ModelPairMetric, WidePrediction
from matplat.db.session import session_factory, transaction
from matplat.errors import ConflictError, InputError, NotFoundError
from matplat.names import check_alias, check_tag

EXPORT_FORMAT = "matplat-model-v1"

_META_FIELDS = (
    "tag",
    "name",
    "preset",
    "status",
    "hyperparameters",
    "targets",
    "data_snapshot_hash",
    "code_version",
    "seed",
    "ensemble_size",
    "n_parameters",
    "metrics",
    "artifact_sha256",
)


def get_version(session: Session, tag: str) -> ModelVersion:
    mv = session.scalars(select(ModelVersion).where(ModelVersion.tag == tag)).first()
    if mv is None:
        known = session.scalars(select(ModelVersion.tag).order_by(ModelVersion.id)).all()
        hint = (
            f"; known tags: {', '.join(known[-10:])}" if known else "; no model is registered yet"
        )
        raise NotFoundError(f"no model version with tag {tag!r}{hint}")
    return mv


def resolve(session: Session, tag: str | None = None, alias: str | None = None) -> ModelVersion:
    """The model version named by ``tag``, or currently pointed at by ``alias``."""
    if (tag is None) == (alias is None):
        raise InputError("give exactly one of --model-tag or --alias")
    if tag is not None:
        return get_version(session, tag)
    row = session.scalars(
        select(ModelAlias).where(ModelAlias.alias == alias, ModelAlias.replaced_at.is_(None))
    ).first()
    if row is None:
        raise NotFoundError(
            f"alias {alias!r} points at no model version "
            f"(set it with `platform models alias TAG {alias}`)"
        )
    return session.get(ModelVersion, row.model_version_id)  # type: ignore[return-value]


def ensure_tag_free(session: Session, tag: str) -> None:
    if session.scalars(select(ModelVersion.id).where(ModelVersion.tag == tag)).first() is not None:
        raise ConflictError(
            f"model tag {tag!r} exists already; tags are never overwritten "
            "(choose a new tag, or `platform models delete` it first)"
        )


def aliases_of(session: Session, model_version_id: int) -> list[str]:
    return list(
        session.scalars(
            select(ModelAlias.alias).where(
                ModelAlias.model_version_id == model_version_id, ModelAlias.replaced_at.is_(None)
            )
        )
    )


def list_versions(engine: Engine) -> list[dict[str, Any]]:
    with session_factory(engine)() as s:
        counts = dict(
            s.execute(
                select(Prediction.model_version_id, func.count()).group_by(
                    Prediction.model_version_id
                )
            ).all()
        )
        out = []
        for mv in s.scalars(select(ModelVersion).order_by(ModelVersion.id)):
            out.append(
                {
                    "tag": mv.tag,
                    "preset": mv.preset,
                    "targets": ",".join(mv.targets),
                    "ensemble": mv.ensemble_size,
                    "parameters": mv.n_parameters,
                    "test_mae": _short_metrics(mv.metrics),
                    "predictions": counts.get(mv.id, 0),
                    "aliases": ",".join(aliases_of(s, mv.id)),
                    "created_at": mv.created_at.isoformat(sep=" ", timespec="seconds")
                    if mv.created_at
                    else None,
                }
            )
    return out


def _short_metrics(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return ""
    test = metrics.get("test", {})
    return " ".join(
        f"{t}={v['mae']:.4g}" for t, v in test.items() if isinstance(v, dict) and "mae" in v
    )


def show_version(engine: Engine, tag: str) -> dict[str, Any]:
    """Everything recorded about a model version (no weights)."""
    with session_factory(engine)() as s:
        mv = get_version(s, tag)
        recipe = s.get(GraphRecipe, mv.recipe_id) if mv.recipe_id else None
        runs = s.scalars(
            select(TrainingRun)
            .where(TrainingRun.model_version_id == mv.id)
            .order_by(TrainingRun.member)
        ).all()
        split = s.get(DatasetSplit, mv.split_id) if mv.split_id else None
        history = s.scalars(
            select(ModelAlias).where(ModelAlias.model_version_id == mv.id).order_by(ModelAlias.id)
        ).all()
        n_pred = s.scalar(
            select(func.count()).select_from(Prediction).where(Prediction.model_version_id == mv.id)
        )
        return {
            **{f: getattr(mv, f) for f in _META_FIELDS},
            "id": mv.id,
            "created_at": mv.created_at.isoformat() if mv.created_at else None,
            "graph_recipe": None
            if recipe is None
            else {
                "name": recipe.name,
                "params_hash": recipe.params_hash,
                "code_version": recipe.code_version,
            },
            "split": None
            if split is None
            else {
                "name": split.name,
                "method": split.method,
                "seed": split.seed,
                "counts": split.counts,
            },
            "artifact_bytes": len(mv.artifact or b""),
            "aliases": aliases_of(s, mv.id),
            "alias_history": [
                {
                    "alias": a.alias,
                    "assigned_at": str(a.assigned_at),
                    "replaced_at": None if a.replaced_at is None else str(a.replaced_at),
                }
                for a in history
            ],
            "predictions": n_pred,
            "training_runs": [
                {
                    "member": r.member,
                    "seed": r.seed,
                    "status": r.status,
                    "device": r.device,
                    "best_epoch": r.best_epoch,
                    "seconds": r.seconds,
                    "history": r.history,
                }
                for r in runs
            ],
        }


def set_alias(engine: Engine, tag: str, alias: str) -> str | None:
    """Point ``alias`` at ``tag``; returns the tag it pointed at before (history is kept)."""
    check_alias(alias)
    with transaction(engine) as s:
        mv = get_version(s, tag)
        current = s.scalars(
            select(ModelAlias)
            .where(ModelAlias.alias == alias, ModelAlias.replaced_at.is_(None))
            .with_for_update()
        ).first()
        previous = None
        if current is not None:
            previous = s.get(ModelVersion, current.model_version_id).tag  # type: ignore[union-attr]
            if current.model_version_id == mv.id:
                return previous
            current.replaced_at = datetime.now(timezone.utc)
        s.add(
            ModelAlias(alias=alias, model_version_id=mv.id, assigned_at=datetime.now(timezone.utc))
        )
        return previous


def delete_version(engine: Engine, tag: str) -> int:
    """Delete a model version with everything derived from it; returns predictions removed.

    ``predictions`` has no foreign key to ``model_versions`` (it cost a third of the bulk
    write-back), so this function is what keeps predictions from outliving their model: all
    rows go in the one transaction that deletes the version. The other tables cascade in the
    database too; they are deleted here explicitly so that no engine setting matters.
    """
    with transaction(engine) as s:
        mv = get_version(s, tag)
        n = (
            s.scalar(
                select(func.count())
                .select_from(Prediction)
                .where(Prediction.model_version_id == mv.id)
            )
            or 0
        )
        for table in (Prediction, WidePrediction, ModelMetric, ModelElementMetric, ModelAlias,
                      TrainingRun):
            s.execute(table.__table__.delete().where(table.model_version_id == mv.id))
        s.execute(
            ModelPairMetric.__table__.delete().where(
                or_(
                    ModelPairMetric.model_version_id == mv.id,
                    ModelPairMetric.other_model_version_id == mv.id,
                )
            )
        )
        s.delete(mv)
        return int(n)


def export_version(engine: Engine, tag: str, path: Path) -> int:
    with session_factory(engine)() as s:
        mv = get_version(s, tag)
        recipe = s.get(GraphRecipe, mv.recipe_id) if mv.recipe_id else None
        meta = {f: getattr(mv, f) for f in _META_FIELDS}
        meta["format"] = EXPORT_FORMAT
        meta["graph_recipe"] = (
            None
            if recipe is None
            else {
                "name": recipe.name,
                "params": recipe.params,
                "code_version": recipe.code_version,
                "params_hash": recipe.params_hash,
            }
        )
        artifact = mv.artifact or b""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.json", json.dumps(meta, indent=2, sort_keys=True))
        z.writestr("weights.bin", artifact)
    return len(artifact)


def import_version(engine: Engine, path: Path, tag: str | None = None,
                   check: Callable[[bytes], None] | None = None) -> str:
    """Register a model exported by :func:`export_version` (optionally under another tag).

    ``check(weights)`` raises when the weights are not a usable model (the CLI passes a loader
    from ``workers``; this module does not import torch), so a damaged export is refused here
    and not at its first prediction.
    """
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("model.json"))
            artifact = z.read("weights.bin")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, OSError,
            ValueError) as e:
        raise InputError(f"{path}: not a matplat model export ({e})") from e
    if not isinstance(meta, dict):
        raise InputError(f"{path}: not a matplat model export (model.json is not an object)")
    if meta.get("format") != EXPORT_FORMAT:
        raise InputError(
            f"{path}: unknown export format {meta.get('format')!r}, expected {EXPORT_FORMAT}"
        )
    if hashlib.sha256(artifact).hexdigest() != meta.get("artifact_sha256"):
        raise InputError(f"{path}: weights do not match their sha256 (file corrupt)")
    new_tag = check_tag(tag, "--tag") if tag is not None else check_tag(
        meta.get("tag"), f"{path}: model tag")
    if check is not None:
        try:
            check(artifact)
        except InputError as e:
            raise InputError(f"{path}: {e}; nothing was imported") from None
    with transaction(engine) as s:
        ensure_tag_free(s, new_tag)
        recipe_id = None
        r = meta.get("graph_recipe")
        if r:
            from matplat.db.bulk import insert_ignore

            insert_ignore(
                s.connection(),
                GraphRecipe.__table__,
                [
                    {
                        "name": r["name"],
                        "params": r["params"],
                        "code_version": r["code_version"],
                        "params_hash": r["params_hash"],
                    }
                ],
            )
            recipe_id = s.scalar(
                select(GraphRecipe.id).where(GraphRecipe.params_hash == r["params_hash"])
            )
        fields = {f: meta.get(f) for f in _META_FIELDS if f != "tag"}
        s.add(
            ModelVersion(
                tag=new_tag, recipe_id=recipe_id, split_id=None, artifact=artifact, **fields
            )
        )
    return new_tag


def artifact_bytes(
    engine: Engine, tag: str | None = None, alias: str | None = None
) -> tuple[int, str, bytes, dict[str, Any]]:
    """(id, tag, weights, metadata) of a model version, the weights checked against sha256."""
    with session_factory(engine)() as s:
        mv = resolve(s, tag, alias)
        data = mv.artifact or b""
        if hashlib.sha256(data).hexdigest() != mv.artifact_sha256:
            raise InputError(f"model {mv.tag!r}: stored weights do not match their sha256")
        meta = {f: getattr(mv, f) for f in _META_FIELDS}
        meta["recipe_id"] = mv.recipe_id
        meta["split_id"] = mv.split_id
        return mv.id, mv.tag, data, meta
