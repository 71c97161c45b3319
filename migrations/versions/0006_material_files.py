"""Structure files as materials: material_files records where each such material came from
(file, CIF block / XYZ frame / JSON index / ASE row, format, file sha256).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "material_files",
        sa.Column("material_id", BIG_ID, nullable=False),
        sa.Column("file", sa.String(length=1024), nullable=False),
        sa.Column("block", sa.String(length=255), nullable=True),
        sa.Column("file_format", sa.String(length=16), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["materials.id"],
            name=op.f("fk_material_files_material_id_materials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("material_id", name=op.f("pk_material_files")),
    )
    with op.batch_alter_table("material_files", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_material_files_file_sha256"), ["file_sha256"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("material_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_material_files_file_sha256"))
    op.drop_table("material_files")
