"""Graph recipes and crystal graphs stored per (structure, recipe)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from matplat.db.base import Base, BigId, Blob, LongText
from matplat.db.types import JSONText


class GraphRecipe(Base):
    """How graphs were built: a name, its parameters and the code version.

    A recipe with other parameters or code is a new row (``params_hash`` is unique; several rows
    may share a name across code versions), so graphs of one recipe are never silently mixed
    with another's. ``n_isolated`` of a graph counts atoms without any neighbour.
    """

    __tablename__ = "graph_recipes"
    __table_args__ = (UniqueConstraint("params_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSONText)
    code_version: Mapped[str] = mapped_column(String(64))
    params_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CrystalGraph(Base):
    """The crystal graph of one structure under one recipe, or why it could not be built.

    Arrays are little-endian bytes: ``atomic_numbers`` (n,) int16, ``edge_src``/``edge_dst``
    (E,) int32 (edge j → i), ``edge_image`` (E, 3) int8, ``edge_dist`` (E,) float32.
    ``status`` is ``ok`` or ``failed`` (then ``error`` says why and the arrays are NULL).
    """

    __tablename__ = "crystal_graphs"

    structure_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("structures.id", ondelete="CASCADE"), primary_key=True
    )
    recipe_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("graph_recipes.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    natoms: Mapped[int] = mapped_column(Integer)
    nedges: Mapped[int] = mapped_column(Integer)
    n_isolated: Mapped[int] = mapped_column(Integer, default=0)
    atomic_numbers: Mapped[bytes | None] = mapped_column(Blob)
    edge_src: Mapped[bytes | None] = mapped_column(Blob)
    edge_dst: Mapped[bytes | None] = mapped_column(Blob)
    edge_image: Mapped[bytes | None] = mapped_column(Blob)
    edge_dist: Mapped[bytes | None] = mapped_column(Blob)
    error: Mapped[str | None] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
