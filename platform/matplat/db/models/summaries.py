"""Per-material structure summaries that OPTIMADE filters and sorts need as indexed columns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, SmallInteger, String, func
from sqlalchemy.orm import Mapped, mapped_column

from matplat.db.base import Base, BigId


class MaterialSummary(Base):
    """One row per material with a crystal structure: its OPTIMADE formulas and counts.

    OPTIMADE asks for ``chemical_formula_reduced`` (elements in alphabetical order),
    ``chemical_formula_anonymous`` ("A2B3") and ``nelements``/``nsites``; none of them is a
    column of ``materials`` (whose ``formula`` is pymatgen's reduced formula, ordered by
    electronegativity), and the anonymous formula cannot be computed in SQL at all. They are
    derived from ``material_elements`` and the material's first structure by
    :func:`matplat.serve.summaries.refresh` (``platform serve`` runs it before serving),
    keyed by ``content_hash`` so that only new or changed materials are recomputed.

    ``elements`` and ``counts`` are the sorted element symbols and their per-cell counts,
    comma-separated, so an API page needs no extra query for them; ``elements HAS ONLY``
    becomes an indexed ``elements IN (every subset of the list)``. Each filterable column
    has an index that ends with ``material_id``: a filter plus the default order by id is
    one ordered index range scan.
    """

    __tablename__ = "material_summaries"
    __table_args__ = (
        Index("ix_material_summaries_nelements_material_id", "nelements", "material_id"),
        Index("ix_material_summaries_nsites_material_id", "nsites", "material_id"),
        Index("ix_material_summaries_elements_material_id", "elements", "material_id"),
        Index("ix_material_summaries_formula_reduced_material_id", "formula_reduced", "material_id"),
        Index(
            "ix_material_summaries_formula_anonymous_material_id", "formula_anonymous", "material_id"
        ),
    )

    material_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True
    )
    structure_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("structures.id", ondelete="CASCADE"), index=True
    )
    content_hash: Mapped[str] = mapped_column(String(64))
    nelements: Mapped[int] = mapped_column(SmallInteger)
    nsites: Mapped[int] = mapped_column(Integer)
    elements: Mapped[str] = mapped_column(String(255))
    counts: Mapped[str] = mapped_column(String(255))
    formula_reduced: Mapped[str] = mapped_column(String(255))
    formula_anonymous: Mapped[str] = mapped_column(String(255))
    formula_hill: Mapped[str] = mapped_column(String(255))
    refreshed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
