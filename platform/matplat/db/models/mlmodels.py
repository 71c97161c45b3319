"""Dataset splits, model versions and aliases, training runs and predictions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from matplat.db.base import Base, BigId, Blob, LongText
from matplat.db.types import JSONText


class DatasetSplit(Base):
    """A named train/val/test assignment of materials, reusable by later models."""

    __tablename__ = "dataset_splits"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    fractions: Mapped[dict[str, Any]] = mapped_column(JSONText)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SplitMember(Base):
    """Which subset (``train``, ``val``, ``test``) a material belongs to in a split."""

    __tablename__ = "split_members"

    split_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("dataset_splits.id", ondelete="CASCADE"), primary_key=True
    )
    material_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    subset: Mapped[str] = mapped_column(String(8))


class ModelVersion(Base):
    """A registered, immutable model: everything needed to reproduce and to load it.

    ``tag`` is unique and never reused. ``artifact`` holds the serialised weights
    (``artifact_sha256`` guards them), so any worker can load the model from the database.
    """

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("tag"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tag: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    preset: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="ready")
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSONText)
    targets: Mapped[list[str]] = mapped_column(JSONText)
    recipe_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("graph_recipes.id", ondelete="RESTRICT"), index=True
    )
    split_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("dataset_splits.id", ondelete="RESTRICT"), index=True
    )
    data_snapshot_hash: Mapped[str | None] = mapped_column(String(64))
    code_version: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    ensemble_size: Mapped[int] = mapped_column(Integer, default=1)
    n_parameters: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    artifact: Mapped[bytes | None] = mapped_column(Blob)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ModelAlias(Base):
    """An alias (e.g. ``production``) pointing at a model version, with its history.

    The current assignment of an alias is its row with ``replaced_at`` NULL; reassigning
    closes that row and opens a new one, so the history stays queryable.
    """

    __tablename__ = "model_aliases"
    __table_args__ = (Index("ix_model_aliases_alias_replaced_at", "alias", "replaced_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alias: Mapped[str] = mapped_column(String(64))
    model_version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    assigned_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    replaced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TrainingRun(Base):
    """One training of one model (one ensemble member): status and per-epoch history."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_version_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    tag: Mapped[str] = mapped_column(String(128), index=True)
    member: Mapped[int] = mapped_column(Integer, default=0)
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    device: Mapped[str | None] = mapped_column(String(32))
    history: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONText)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[float | None] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(LongText)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Prediction(Base):
    """A predicted property of a material by a model version (mean over an ensemble)."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_material_id_property", "material_id", "property"),
        Index("ix_predictions_model_version_id_property_value", "model_version_id", "property",
              "value"),
    )

    model_version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    material_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True
    )
    property: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column(Double)
    uncertainty: Mapped[float | None] = mapped_column(Double)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ModelMetric(Base):
    """Accuracy of a model version against DFT, per property and split subset.

    Refreshed after every ``platform predict`` (and after training) from the stored predictions;
    the view ``model_leaderboard`` shows it with the model tag. ``subset`` is ``train``,
    ``val``, ``test`` or ``all``; ``roc_auc`` is set for band gap (metal vs insulator) and
    magnetization (magnetic vs non-magnetic).
    """

    __tablename__ = "model_metrics"

    model_version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    property: Mapped[str] = mapped_column(String(32), primary_key=True)
    subset: Mapped[str] = mapped_column(String(8), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    mae: Mapped[float | None] = mapped_column(Double)
    rmse: Mapped[float | None] = mapped_column(Double)
    roc_auc: Mapped[float | None] = mapped_column(Double)
    refreshed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
