"""Query layer: model metrics with the model_leaderboard view, latest_predictions, indexes.

Users screen predictions with plain SQL; this revision adds what the README's example queries
need at OQMD scale: a per-model accuracy table refreshed after each predict (shown by the
``model_leaderboard`` view), the ``latest_predictions`` view (production alias first, else the
newest model), and indexes for screening by predicted and DFT values.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

MODEL_LEADERBOARD = """
CREATE VIEW model_leaderboard AS
SELECT mv.tag AS model_tag, mv.preset AS preset, mm.property AS property,
       mm.subset AS split, mm.n AS n, mm.mae AS mae, mm.rmse AS rmse, mm.roc_auc AS roc_auc,
       mv.created_at AS model_created_at, mm.refreshed_at AS refreshed_at
FROM model_metrics mm
JOIN model_versions mv ON mv.id = mm.model_version_id
"""

# Per material and property: the prediction of the model version aliased `production` when it
# has one, else that of the newest model version (highest id) that predicted it.
LATEST_PREDICTIONS = """
CREATE VIEW latest_predictions AS
SELECT p.material_id AS material_id, m.source_id AS source_id, m.formula AS formula,
       p.property AS property, p.value AS predicted, p.uncertainty AS uncertainty,
       mv.tag AS model_tag, p.created_at AS created_at
FROM predictions p
JOIN model_versions mv ON mv.id = p.model_version_id
JOIN materials m ON m.id = p.material_id
WHERE p.model_version_id = COALESCE(
    (SELECT a.model_version_id FROM model_aliases a
     JOIN predictions pa ON pa.model_version_id = a.model_version_id
          AND pa.material_id = p.material_id AND pa.property = p.property
     WHERE a.alias = 'production' AND a.replaced_at IS NULL),
    (SELECT MAX(pn.model_version_id) FROM predictions pn
     WHERE pn.material_id = p.material_id AND pn.property = p.property))
"""


def upgrade() -> None:
    op.create_table(
        "model_metrics",
        sa.Column("model_version_id", BIG_ID, nullable=False),
        sa.Column("property", sa.String(length=32), nullable=False),
        sa.Column("subset", sa.String(length=8), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("mae", sa.Double(), nullable=True),
        sa.Column("rmse", sa.Double(), nullable=True),
        sa.Column("roc_auc", sa.Double(), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name=op.f("fk_model_metrics_model_version_id_model_versions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_version_id", "property", "subset",
                                name=op.f("pk_model_metrics")),
    )
    op.create_index(op.f("ix_dft_properties_band_gap"), "dft_properties", ["band_gap"])
    op.create_index(op.f("ix_dft_properties_formation_energy"), "dft_properties",
                    ["formation_energy"])
    # New index first: MySQL needs an index on predictions.material_id for its foreign key.
    op.create_index("ix_predictions_material_id_property", "predictions",
                    ["material_id", "property"])
    op.create_index("ix_predictions_model_version_id_property_value", "predictions",
                    ["model_version_id", "property", "value"])
    op.drop_index(op.f("ix_predictions_material_id"), table_name="predictions")
    op.execute(MODEL_LEADERBOARD)
    op.execute(LATEST_PREDICTIONS)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS latest_predictions")
    op.execute("DROP VIEW IF EXISTS model_leaderboard")
    op.create_index(op.f("ix_predictions_material_id"), "predictions", ["material_id"])
    op.drop_index("ix_predictions_model_version_id_property_value", table_name="predictions")
    op.drop_index("ix_predictions_material_id_property", table_name="predictions")
    op.drop_index(op.f("ix_dft_properties_formation_energy"), table_name="dft_properties")
    op.drop_index(op.f("ix_dft_properties_band_gap"), table_name="dft_properties")
    op.drop_table("model_metrics")
