"""Where a material read from a structure file came from."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from matplat.db.base import Base, BigId


class MaterialFile(Base):
    """Provenance of a material ingested from a structure file: the file (relative to the
    folder given), the CIF data block, XYZ frame, JSON index or ASE row id inside it (NULL
    for a file of one structure), its format and the sha256 of the file's bytes."""

    __tablename__ = "material_files"

    material_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True
    )
    file: Mapped[str] = mapped_column(String(1024))
    block: Mapped[str | None] = mapped_column(String(255))
    file_format: Mapped[str] = mapped_column(String(16))
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
