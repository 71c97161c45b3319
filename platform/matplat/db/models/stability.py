"""Thermodynamic stability: hull builds, per-system hull state, per-material hull distances.

Written by ``workers.hull`` (``platform hull build``) only. The view ``material_stability``
joins :class:`MaterialHull` to ``material_properties``; users read decompositions from
:class:`HullDecomposition`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from matplat.db.base import Base, BigId
from matplat.db.types import JSONText


class HullBuild(Base):
    """One ``platform hull build``: the data snapshot it read and what it recomputed.

    ``ingest_run_id`` is the newest succeeded ingest at planning time (the snapshot);
    ``systems_total`` the chemical systems present, ``systems_recomputed`` those whose materials
    (or a subsystem's) changed since the last build; ``left_out``: reason → materials.
    """

    __tablename__ = "hull_builds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str | None] = mapped_column(String(32))
    ingest_run_id: Mapped[int | None] = mapped_column(BigInteger)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    systems_total: Mapped[int] = mapped_column(Integer)
    systems_recomputed: Mapped[int] = mapped_column(Integer)
    materials: Mapped[int] = mapped_column(Integer)
    left_out: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class HullSystem(Base):
    """A chemical system's hull state per source: the signature of the materials it was built
    from (an order-free hash of their ids and formation energies), so the next build after an
    ingest recomputes only the systems whose signature, or a subsystem's, changed."""

    __tablename__ = "hull_systems"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    chemical_system: Mapped[str] = mapped_column(String(255), primary_key=True)
    nelements: Mapped[int] = mapped_column(SmallInteger)
    n_materials: Mapped[int] = mapped_column(Integer)
    n_stable: Mapped[int] = mapped_column(Integer)
    signature: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(8))
    hull_build_id: Mapped[int] = mapped_column(BigInteger, index=True)


class MaterialHull(Base):
    """A material's distance to the convex hull of its chemical system (eV/atom, ≥ 0), whether
    it is on the hull, and the formation energy the hull used (the snapshot)."""

    __tablename__ = "material_hulls"

    material_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(32))
    chemical_system: Mapped[str] = mapped_column(String(255), index=True)
    formation_energy: Mapped[float] = mapped_column(Double)
    e_above_hull: Mapped[float] = mapped_column(Double, index=True)
    is_stable: Mapped[bool] = mapped_column(Boolean)
    hull_build_id: Mapped[int] = mapped_column(BigInteger, index=True)


class HullDecomposition(Base):
    """The products an unstable material decomposes into, with their atom fractions.

    ``product_material_id`` is NULL for an element reference (0 eV/atom) that no material of
    the data provides; ``product_formula`` names it either way. No foreign key on the product:
    a change to it changes its system's signature, which recomputes this row.
    """

    __tablename__ = "hull_decompositions"

    material_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    product_material_id: Mapped[int | None] = mapped_column(BigInteger)
    product_formula: Mapped[str] = mapped_column(String(255))
    fraction: Mapped[float] = mapped_column(Double)


class StabilityMetric(Base):
    """Discovery metrics of a model version's predicted hull distances, per subset of its split
    and stability threshold (Matbench Discovery's ``stable_metrics``).

    Over the materials the model predicted that have a DFT hull distance (``n``): stable means
    hull distance ≤ ``threshold`` (eV/atom); a missing prediction counts as predicted unstable.
    ``precision_score`` = TP/(TP+FP) (``precision`` is a reserved word in MySQL), ``prevalence`` =
    (TP+FN)/n, ``daf`` = precision / prevalence. ``mae``, ``rmse``, ``r2`` of the
    hull distance over the ``n_predicted`` materials with both values. Refreshed with
    ``model_metrics``; the view ``model_stability_metrics`` shows it with the model tag.
    """

    __tablename__ = "stability_metrics"

    model_version_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    subset: Mapped[str] = mapped_column(String(8), primary_key=True)
    threshold: Mapped[float] = mapped_column(Double, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    n_predicted: Mapped[int] = mapped_column(Integer)
    tp: Mapped[int] = mapped_column(Integer)
    fp: Mapped[int] = mapped_column(Integer)
    tn: Mapped[int] = mapped_column(Integer)
    fn: Mapped[int] = mapped_column(Integer)
    precision_score: Mapped[float | None] = mapped_column(Double)
    recall: Mapped[float | None] = mapped_column(Double)
    f1: Mapped[float | None] = mapped_column(Double)
    accuracy: Mapped[float | None] = mapped_column(Double)
    prevalence: Mapped[float | None] = mapped_column(Double)
    daf: Mapped[float | None] = mapped_column(Double)
    mae: Mapped[float | None] = mapped_column(Double)
    rmse: Mapped[float | None] = mapped_column(Double)
    r2: Mapped[float | None] = mapped_column(Double)
    refreshed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
