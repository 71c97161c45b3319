"""OPTIMADE serving: material_summaries (reduced/anonymous/Hill formulas, nelements, nsites).

``platform serve`` answers OPTIMADE filters such as ``chemical_formula_anonymous = "A2B3"``,
``chemical_formula_reduced = "Fe2O3"`` (alphabetical element order, unlike
``materials.formula``) and ``nelements = 3`` on hundreds of thousands of materials. The
anonymous formula cannot be computed in SQL, and counting ``material_elements`` per material
for every ``nelements`` filter reads the whole table; this table holds them per material,
indexed as (column, material_id) so that a filter in id order is one index range scan
(``elements``, the sorted symbols, serves ``elements HAS ONLY`` as a list of subsets). It is
derived data, filled by ``matplat.serve.summaries.refresh`` (run by ``platform serve``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INDEXED = ("nelements", "nsites", "formula_reduced", "formula_anonymous", "elements")


def upgrade() -> None:
    op.create_table(
        "material_summaries",
        sa.Column("material_id", BIG_ID, nullable=False),
        sa.Column("structure_id", BIG_ID, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("nelements", sa.SmallInteger(), nullable=False),
        sa.Column("nsites", sa.Integer(), nullable=False),
        sa.Column("elements", sa.String(length=255), nullable=False),
        sa.Column("counts", sa.String(length=255), nullable=False),
        sa.Column("formula_reduced", sa.String(length=255), nullable=False),
        sa.Column("formula_anonymous", sa.String(length=255), nullable=False),
        sa.Column("formula_hill", sa.String(length=255), nullable=False),
        sa.Column(
            "refreshed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["material_id"], ["materials.id"],
            name=op.f("fk_material_summaries_material_id_materials"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["structure_id"], ["structures.id"],
            name=op.f("fk_material_summaries_structure_id_structures"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("material_id", name=op.f("pk_material_summaries")),
    )
    op.create_index(
        op.f("ix_material_summaries_structure_id"), "material_summaries", ["structure_id"]
    )
    for col in INDEXED:
        op.create_index(
            f"ix_material_summaries_{col}_material_id", "material_summaries", [col, "material_id"]
        )


def downgrade() -> None:
    # The table's indexes go with it (MariaDB refuses to drop an index a foreign key uses).
    op.drop_table("material_summaries")
