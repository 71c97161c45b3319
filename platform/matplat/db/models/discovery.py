"""Discovery runs and the lineage of their candidate materials.

A discovery run (``platform discover``) substitutes species into known structures, predicts
the candidates with one model version and stores each as a material of source
``candidates:RUN``. ``candidates`` keeps how each was made (parent, species map, substitution
probability) and what the run concluded (predicted hull distance and decomposition), so that
the ``candidate_ranking`` view can rank them without recomputing anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Double, ForeignKey, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from matplat.db.base import Base, BigId
from matplat.db.types import JSONText

#: Candidates are materials of source ``CANDIDATE_PREFIX + run name``; ``materials.source``
#: holds 32 characters, so a run name has at most 21.
CANDIDATE_PREFIX = "candidates:"
RUN_NAME_MAX = 32 - len(CANDIDATE_PREFIX)


class DiscoveryRun(Base):
    """One named discovery run: the model version it used and its parameters."""

    __tablename__ = "discovery_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(RUN_NAME_MAX), unique=True)
    model_version_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("model_versions.id", ondelete="SET NULL"), index=True
    )
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONText)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CandidateLineage(Base):
    """How a candidate material was made and how the run scored it.

    ``species_map``: JSON object, parent species -> new species (``{"Na+": "Li+"}``; plain
    element symbols when the parent's oxidation states were unknown, then
    ``charge_checked`` is false). ``e_above_hull``: predicted distance to the DFT hull of
    its chemical system (eV/atom, negative below it); ``decomposition``: the hull phases and
    fractions below it (``"LiF:0.5 FeF2:0.5"``).
    """

    __tablename__ = "candidates"

    material_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True
    )
    run_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("discovery_runs.id", ondelete="CASCADE"), index=True
    )
    parent_material_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("materials.id", ondelete="SET NULL"), index=True
    )
    species_map: Mapped[str] = mapped_column(String(255))
    probability: Mapped[float] = mapped_column(Double)
    charge_checked: Mapped[bool] = mapped_column(Boolean)
    model_version_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("model_versions.id", ondelete="SET NULL"), index=True
    )
    e_above_hull: Mapped[float | None] = mapped_column(Double)
    decomposition: Mapped[str | None] = mapped_column(Text)
