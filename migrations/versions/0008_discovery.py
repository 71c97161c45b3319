"""Discovery: runs, candidate lineage and the candidate_ranking view.

``platform discover`` stores hypothetical compounds (species substituted into known
structures) as materials of source ``candidates:RUN``; these tables keep how each was made
(parent, species map, substitution probability, model version) and the run's verdict
(predicted hull distance, decomposition). The view ranks a run's candidates by predicted
hull distance with their predicted properties side by side.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _predicted(prop: str, column: str = "value", alias: str | None = None) -> str:
    return (f"(SELECT p.{column} FROM predictions p WHERE p.model_version_id = c.model_version_id"
            f" AND p.material_id = c.material_id AND p.property = '{prop}') AS {alias or prop}")


_PROPS = ("formation_energy", "band_gap", "magnetization")

# Rank 1 is the lowest predicted hull distance (most likely stable); candidates without one
# (no formation energy predicted) come last, then by substitution probability.
CANDIDATE_RANKING = f"""
CREATE VIEW candidate_ranking AS
SELECT r.name AS run,
       ROW_NUMBER() OVER (PARTITION BY c.run_id ORDER BY
           CASE WHEN c.e_above_hull IS NULL THEN 1 ELSE 0 END, c.e_above_hull,
           c.probability DESC, c.material_id) AS rank,
       c.material_id AS material_id, m.formula AS formula, m.spacegroup AS spacegroup,
       m.natoms AS natoms, c.parent_material_id AS parent_id, pm.formula AS parent_formula,
       c.species_map AS species_map, c.probability AS probability,
       c.charge_checked AS charge_checked, mv.tag AS model_tag,
       {", ".join(f"{_predicted(p)}, {_predicted(p, 'uncertainty', p + '_uncertainty')}"
                  for p in _PROPS)},
       s.volume / s.natoms AS volume_per_atom,
       c.e_above_hull AS e_above_hull, c.decomposition AS decomposition
FROM candidates c
JOIN discovery_runs r ON r.id = c.run_id
JOIN materials m ON m.id = c.material_id
LEFT JOIN structures s ON s.material_id = c.material_id
LEFT JOIN materials pm ON pm.id = c.parent_material_id
LEFT JOIN model_versions mv ON mv.id = c.model_version_id
"""


def upgrade() -> None:
    op.create_table(
        "discovery_runs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=21), nullable=False),
        sa.Column("model_version_id", BIG_ID, nullable=True),
        sa.Column("params", sa.Text().with_variant(mysql.LONGTEXT(), "mysql",
                                                   "mariadb"), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_versions.id"],
            name=op.f("fk_discovery_runs_model_version_id_model_versions"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discovery_runs")),
        sa.UniqueConstraint("name", name=op.f("uq_discovery_runs_name")),
    )
    with op.batch_alter_table("discovery_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_discovery_runs_model_version_id"),
                              ["model_version_id"], unique=False)
    op.create_table(
        "candidates",
        sa.Column("material_id", BIG_ID, nullable=False),
        sa.Column("run_id", BIG_ID, nullable=False),
        sa.Column("parent_material_id", BIG_ID, nullable=True),
        sa.Column("species_map", sa.String(length=255), nullable=False),
        sa.Column("probability", sa.Double(), nullable=False),
        sa.Column("charge_checked", sa.Boolean(), nullable=False),
        sa.Column("model_version_id", BIG_ID, nullable=True),
        sa.Column("e_above_hull", sa.Double(), nullable=True),
        sa.Column("decomposition", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["material_id"], ["materials.id"], name=op.f("fk_candidates_material_id_materials"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["discovery_runs.id"], name=op.f("fk_candidates_run_id_discovery_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_material_id"], ["materials.id"],
            name=op.f("fk_candidates_parent_material_id_materials"), ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_versions.id"],
            name=op.f("fk_candidates_model_version_id_model_versions"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("material_id", name=op.f("pk_candidates")),
    )
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_candidates_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_candidates_parent_material_id"),
                              ["parent_material_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_candidates_model_version_id"),
                              ["model_version_id"], unique=False)
    op.execute(CANDIDATE_RANKING)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS candidate_ranking")
    op.drop_table("candidates")
    op.drop_table("discovery_runs")
