"""model_leaderboard.baseline_mae: the MAE of the mean predictor on the same rows.

A model's MAE means little alone: ``baseline_mae`` is the MAE of predicting, for every
material, the mean DFT value of the model's training subset, over exactly the rows of ``mae``
(refreshed with it by ``workers.leaderboard.refresh_metrics``). A model that learned nothing
has ``mae`` close to ``baseline_mae``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VIEW = """
CREATE VIEW model_leaderboard AS
SELECT mv.tag AS model_tag, mv.preset AS preset, mm.property AS property,
       mm.subset AS split, mm.n AS n, mm.mae AS mae, mm.rmse AS rmse, mm.roc_auc AS roc_auc,
       {extra}mv.created_at AS model_created_at, mm.refreshed_at AS refreshed_at
FROM model_metrics mm
JOIN model_versions mv ON mv.id = mm.model_version_id
"""


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS model_leaderboard")
    with op.batch_alter_table("model_metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("baseline_mae", sa.Double(), nullable=True))
    op.execute(_VIEW.format(extra="mm.baseline_mae AS baseline_mae, "))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS model_leaderboard")
    with op.batch_alter_table("model_metrics", schema=None) as batch_op:
        batch_op.drop_column("baseline_mae")
    op.execute(_VIEW.format(extra=""))
