"""Materials, their structures and sites, element sets and DFT properties."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from matplat.db.base import Base, BigId, Blob


class Material(Base):
    """One material of a source database (an OQMD entry under the selection rule).

    ``id`` is assigned by the platform (bulk loaders allocate ranges); ``(source, source_id)``
    is the natural key. ``content_hash`` covers structure and properties, so a newer dump can
    tell changed materials from unchanged ones.
    """

    __tablename__ = "materials"
    __table_args__ = (UniqueConstraint("source", "source_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(64))
    formula: Mapped[str] = mapped_column(String(255), index=True)
    composition: Mapped[str] = mapped_column(String(255))
    natoms: Mapped[int] = mapped_column(Integer)
    spacegroup: Mapped[int | None] = mapped_column(SmallInteger, index=True)
    prototype: Mapped[str | None] = mapped_column(String(63))
    content_hash: Mapped[str] = mapped_column(String(64))
    ingest_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("ingest_runs.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    structures: Mapped[list[Structure]] = relationship(
        back_populates="material", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )


class Structure(Base):
    """A crystal structure of a material, with arrays stored as little-endian bytes.

    ``lattice``: (3, 3) float64, rows are lattice vectors in Å. ``frac_coords``: (n, 3) float64
    fractional coordinates. ``atomic_numbers``: (n,) int16. The per-site rows users query
    live in :class:`Site`.
    """

    __tablename__ = "structures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    material_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("materials.id", ondelete="CASCADE"), index=True
    )
    source_structure_id: Mapped[int | None] = mapped_column(BigInteger)
    natoms: Mapped[int] = mapped_column(Integer)
    volume: Mapped[float] = mapped_column(Double)
    lattice: Mapped[bytes] = mapped_column(Blob)
    frac_coords: Mapped[bytes] = mapped_column(Blob)
    atomic_numbers: Mapped[bytes] = mapped_column(Blob)

    material: Mapped[Material] = relationship(back_populates="structures", lazy="raise")


class Site(Base):
    """One atom of a structure: element and fractional coordinates, for SQL users."""

    __tablename__ = "sites"

    structure_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("structures.id", ondelete="CASCADE"), primary_key=True
    )
    site_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    element: Mapped[str] = mapped_column(String(3), index=True)
    atomic_number: Mapped[int] = mapped_column(SmallInteger)
    x: Mapped[float] = mapped_column(Double)
    y: Mapped[float] = mapped_column(Double)
    z: Mapped[float] = mapped_column(Double)


class MaterialElement(Base):
    """Elements present in a material with their count per cell ("contains Fe and O")."""

    __tablename__ = "material_elements"

    material_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True
    )
    element: Mapped[str] = mapped_column(String(3), primary_key=True, index=True)
    count: Mapped[int] = mapped_column(Integer)


class DftProperty(Base):
    """The DFT values of a material's four CGNN targets, with provenance.

    Units: formation energy eV/atom, volume per atom Å³/atom, band gap eV, magnetization
    μB/atom (absolute); ``volume_deviation`` = 1 − V_atoms/V_cell; ``oqmd_stability``: OQMD's
    own hull distance (``formation_energies.stability`` of the chosen row, eV/atom) where the
    dump has it, to compare with the platform's ``material_hulls.e_above_hull``.
    """

    __tablename__ = "dft_properties"

    material_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True
    )
    formation_energy: Mapped[float | None] = mapped_column(Double, index=True)
    volume_per_atom: Mapped[float | None] = mapped_column(Double)
    band_gap: Mapped[float | None] = mapped_column(Double, index=True)
    magnetization: Mapped[float | None] = mapped_column(Double)
    total_magnetization: Mapped[float | None] = mapped_column(Double)
    volume_deviation: Mapped[float | None] = mapped_column(Double)
    oqmd_stability: Mapped[float | None] = mapped_column(Double)
    source_calculation_id: Mapped[int | None] = mapped_column(BigInteger)
    selection_rule: Mapped[str] = mapped_column(String(32))
