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
    SmallInteger,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from matplat.db.base import Base, BigId, Blob, LongText
from matplat.db.models.materials import MaterialElement
from matplat.db.types import JSONText

#: Properties a model can predict, in the column order of ``wide_predictions``.
PREDICTED_PROPERTIES = (
    "formation_energy",
    "volume_per_atom",
    "band_gap",
    "magnetization",
    "volume_deviation",
    "e_above_hull",
)
#: Derived properties: written by the leaderboard refresh from other predictions (the hull
#: distance from the predicted formation energy), never a training target.
DERIVED_PROPERTIES = ("e_above_hull",)


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
    """A predicted property of a material by a model version (mean over an ensemble).

    ``model_version_id`` has no foreign key (revision 0003): the per-row check cost a third of
    the bulk write-back, and every write names one model version that the writer has just
    read. :func:`matplat.services.registry.delete_version` deletes a version's predictions
    in the same transaction as the version, so no prediction outlives its model. Screening by
    predicted value reads :class:`WidePrediction` (indexed there), not this table.
    """

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_material_id_property", "material_id", "property"),)

    model_version_id: Mapped[int] = mapped_column(BigId, primary_key=True)
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
    magnetization (magnetic vs non-magnetic); ``baseline_mae`` is the mean predictor's MAE.
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
    #: MAE of the mean predictor (the training subset's mean DFT value) on the same rows.
    baseline_mae: Mapped[float | None] = mapped_column(Double)
    refreshed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class WidePrediction(Base):
    """One row per model version and material: each predicted property beside its DFT value.

    A snapshot of ``predictions`` joined to the material, its DFT values and the model's split,
    rebuilt by ``workers.leaderboard.refresh_metrics`` after every predict; the view
    ``material_predictions`` shows it with the model tag. Screening on two properties of the
    same material is then one indexed range scan, where ``prediction_results`` (one row per
    property) needs a self-join and a lookup of the material and its DFT row per candidate.
    Columns per property ``p``: ``p`` (predicted), ``p_uncertainty`` and ``p_dft``.

    No foreign keys: the table is a cache that each refresh rebuilds for its model version
    (the two per-row checks took a third of that rebuild), and ``registry.delete_version``
    deletes its rows with the version.
    """

    __tablename__ = "wide_predictions"
    __table_args__ = (
        Index("ix_wide_predictions_model_version_id_split", "model_version_id", "split"),
        Index(
            "ix_wide_predictions_model_version_id_formation_energy",
            "model_version_id",
            "formation_energy",
        ),
        Index("ix_wide_predictions_model_version_id_band_gap", "model_version_id", "band_gap"),
    )

    model_version_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    material_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    formula: Mapped[str] = mapped_column(String(255))
    spacegroup: Mapped[int | None] = mapped_column(SmallInteger)
    split: Mapped[str | None] = mapped_column(String(8))
    formation_energy: Mapped[float | None] = mapped_column(Double)
    formation_energy_uncertainty: Mapped[float | None] = mapped_column(Double)
    formation_energy_dft: Mapped[float | None] = mapped_column(Double)
    volume_per_atom: Mapped[float | None] = mapped_column(Double)
    volume_per_atom_uncertainty: Mapped[float | None] = mapped_column(Double)
    volume_per_atom_dft: Mapped[float | None] = mapped_column(Double)
    band_gap: Mapped[float | None] = mapped_column(Double)
    band_gap_uncertainty: Mapped[float | None] = mapped_column(Double)
    band_gap_dft: Mapped[float | None] = mapped_column(Double)
    magnetization: Mapped[float | None] = mapped_column(Double)
    magnetization_uncertainty: Mapped[float | None] = mapped_column(Double)
    magnetization_dft: Mapped[float | None] = mapped_column(Double)
    volume_deviation: Mapped[float | None] = mapped_column(Double)
    volume_deviation_uncertainty: Mapped[float | None] = mapped_column(Double)
    volume_deviation_dft: Mapped[float | None] = mapped_column(Double)
    e_above_hull: Mapped[float | None] = mapped_column(Double)
    e_above_hull_uncertainty: Mapped[float | None] = mapped_column(Double)
    e_above_hull_dft: Mapped[float | None] = mapped_column(Double)
    refreshed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ModelElementMetric(Base):
    """Accuracy of a model version on the materials that contain an element, and on the rest.

    Refreshed with ``model_metrics``; the view ``model_errors_by_element`` shows it with the
    tag. ``n, mae, rmse``: materials containing ``element``; ``n_without, mae_without,
    rmse_without``: the other materials of the same property and subset.
    """

    __tablename__ = "model_element_metrics"

    model_version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    property: Mapped[str] = mapped_column(String(32), primary_key=True)
    subset: Mapped[str] = mapped_column(String(8), primary_key=True)
    element: Mapped[str] = mapped_column(String(3), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    mae: Mapped[float | None] = mapped_column(Double)
    rmse: Mapped[float | None] = mapped_column(Double)
    n_without: Mapped[int] = mapped_column(Integer)
    mae_without: Mapped[float | None] = mapped_column(Double)
    rmse_without: Mapped[float | None] = mapped_column(Double)
    refreshed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ModelPairMetric(Base):
    """Two model versions compared on the materials both predicted, per property and subset.

    ``subset`` is that of ``model_version_id``'s split. ``mae``/``rmse`` are the first model's,
    ``other_mae``/``other_rmse`` the other's, on the same ``n`` materials with a DFT value;
    ``n_closer``/``n_other_closer`` count the materials where that model's absolute error is
    strictly smaller. Refreshed for every pair that includes the model just predicted; the
    view ``model_comparisons`` shows it with both tags.
    """

    __tablename__ = "model_pair_metrics"

    model_version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    other_model_version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    property: Mapped[str] = mapped_column(String(32), primary_key=True)
    subset: Mapped[str] = mapped_column(String(8), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    mae: Mapped[float | None] = mapped_column(Double)
    rmse: Mapped[float | None] = mapped_column(Double)
    other_mae: Mapped[float | None] = mapped_column(Double)
    other_rmse: Mapped[float | None] = mapped_column(Double)
    n_closer: Mapped[int] = mapped_column(Integer)
    n_other_closer: Mapped[int] = mapped_column(Integer)
    refreshed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


# "Materials with Fe and O" reads both elements' material ids in order (a merge of two
# index-only scans); the primary key (material_id, element) cannot serve that. Declared here
# because revision 0003 added it with the query layer; materials.py's single-column index on
# ``element`` is now a prefix of this one.
Index(
    "ix_material_elements_element_material_id",
    MaterialElement.element,
    MaterialElement.material_id,
)
