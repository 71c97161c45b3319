"""Fast write-back and README queries: no FK from predictions to model_versions, snapshots.

Measured in bench/predict.py on PostgreSQL at 1M predictions per model (bench/RESULTS.md):
- The per-row foreign-key check of ``predictions.model_version_id`` cost about a third of the
  bulk write-back; every write names a model version its writer has just read, and
  ``registry.delete_version`` deletes the predictions with the version, so the constraint goes.
  So does the index ``(model_version_id, property, value)`` of revision 0002 (written four
  times per material, in random order, ~15 % of the write-back): range screening now reads
  ``wide_predictions``, indexed per model on formation energy and band gap.
- Screening on two properties of a material went through a self-join of
  ``prediction_results`` plus a lookup of the material and of its DFT row per candidate
  (~0.3 s). ``wide_predictions`` (view ``material_predictions``) holds one row per model
  version and material with every predicted property beside its DFT value, rebuilt after
  each predict by ``workers.leaderboard.refresh_metrics`` (a cache of that rebuild: no
  foreign keys, whose per-row checks took a third of it).
- Error by chemistry and model-against-model comparisons aggregated 0.25–2 M rows per query
  (0.8–2 s); ``model_element_metrics`` and ``model_pair_metrics`` (views
  ``model_errors_by_element`` and ``model_comparisons``) hold them, refreshed like
  ``model_metrics``.
- ``material_elements (element, material_id)`` lets "contains Fe and O" merge two
  index-only scans.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PROPERTIES = ("formation_energy", "volume_per_atom", "band_gap", "magnetization",
              "volume_deviation")
FK_MODEL_VERSION = "fk_predictions_model_version_id_model_versions"
VALUE_INDEX = "ix_predictions_model_version_id_property_value"

_WIDE_COLUMNS = ",\n       ".join(
    f"w.{p} AS {p}, w.{p}_uncertainty AS {p}_uncertainty, w.{p}_dft AS {p}_dft"
    for p in PROPERTIES)

MATERIAL_PREDICTIONS = f"""
CREATE VIEW material_predictions AS
SELECT mv.tag AS model_tag, w.material_id AS material_id, w.formula AS formula,
       w.spacegroup AS spacegroup, w.split AS split,
       {_WIDE_COLUMNS},
       w.refreshed_at AS refreshed_at
FROM wide_predictions w
JOIN model_versions mv ON mv.id = w.model_version_id
"""

MODEL_ERRORS_BY_ELEMENT = """
CREATE VIEW model_errors_by_element AS
SELECT mv.tag AS model_tag, e.property AS property, e.subset AS split, e.element AS element,
       e.n AS n, e.mae AS mae, e.rmse AS rmse, e.n_without AS n_without,
       e.mae_without AS mae_without, e.rmse_without AS rmse_without,
       e.refreshed_at AS refreshed_at
FROM model_element_metrics e
JOIN model_versions mv ON mv.id = e.model_version_id
"""

MODEL_COMPARISONS = """
CREATE VIEW model_comparisons AS
SELECT a.tag AS model_tag, b.tag AS other_tag, c.property AS property, c.subset AS split,
       c.n AS n, c.mae AS mae, c.other_mae AS other_mae, c.rmse AS rmse,
       c.other_rmse AS other_rmse, c.n_closer AS n_closer, c.n_other_closer AS n_other_closer,
       c.refreshed_at AS refreshed_at
FROM model_pair_metrics c
JOIN model_versions a ON a.id = c.model_version_id
JOIN model_versions b ON b.id = c.other_model_version_id
"""

# SQLite rebuilds `predictions` to change its constraints, and its ALTER TABLE … RENAME
# refuses to run while a view names a table that is briefly missing; these two views of
# revisions 0001/0002 are dropped around the rebuild and created again unchanged.
_DFT_OF_PROPERTY = """CASE p.property
        WHEN 'formation_energy' THEN d.formation_energy
        WHEN 'volume_per_atom' THEN d.volume_per_atom
        WHEN 'band_gap' THEN d.band_gap
        WHEN 'magnetization' THEN d.magnetization
        WHEN 'volume_deviation' THEN d.volume_deviation
    END"""

PREDICTION_RESULTS = f"""
CREATE VIEW prediction_results AS
SELECT mv.tag AS model_tag, p.material_id AS material_id, m.source_id AS source_id,
       m.formula AS formula, p.property AS property, p.value AS predicted,
       p.uncertainty AS uncertainty,
       {_DFT_OF_PROPERTY} AS dft,
       ABS(p.value - {_DFT_OF_PROPERTY}) AS abs_error,
       sm.subset AS split, p.created_at AS created_at
FROM predictions p
JOIN model_versions mv ON mv.id = p.model_version_id
JOIN materials m ON m.id = p.material_id
LEFT JOIN dft_properties d ON d.material_id = p.material_id
LEFT JOIN split_members sm ON sm.split_id = mv.split_id AND sm.material_id = p.material_id
"""

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


def _rebuild_predictions_views(rebuild: bool) -> None:
    """Drop (``rebuild`` False) or create again the views over ``predictions`` on SQLite."""
    if op.get_bind().dialect.name != "sqlite":
        return
    if rebuild:
        op.execute(PREDICTION_RESULTS)
        op.execute(LATEST_PREDICTIONS)
    else:
        op.execute("DROP VIEW IF EXISTS latest_predictions")
        op.execute("DROP VIEW IF EXISTS prediction_results")


def _refreshed_at() -> sa.Column:
    return sa.Column("refreshed_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                     nullable=False)


def _fk_model_version(table: str, column: str = "model_version_id") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], ["model_versions.id"],
                                   name=op.f(f"fk_{table}_{column}_model_versions"),
                                   ondelete="CASCADE")


def upgrade() -> None:
    _rebuild_predictions_views(False)
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_constraint(FK_MODEL_VERSION, type_="foreignkey")
        batch_op.drop_index(VALUE_INDEX)
    _rebuild_predictions_views(True)

    with op.batch_alter_table("material_elements", schema=None) as batch_op:
        batch_op.create_index("ix_material_elements_element_material_id",
                              ["element", "material_id"], unique=False)

    op.create_table(
        "wide_predictions",
        sa.Column("model_version_id", BIG_ID, nullable=False),
        sa.Column("material_id", BIG_ID, nullable=False),
        sa.Column("formula", sa.String(length=255), nullable=False),
        sa.Column("spacegroup", sa.SmallInteger(), nullable=True),
        sa.Column("split", sa.String(length=8), nullable=True),
        *[sa.Column(f"{p}{suffix}", sa.Double(), nullable=True)
          for p in PROPERTIES for suffix in ("", "_uncertainty", "_dft")],
        _refreshed_at(),
        sa.PrimaryKeyConstraint("model_version_id", "material_id",
                                name=op.f("pk_wide_predictions")),
    )
    with op.batch_alter_table("wide_predictions", schema=None) as batch_op:
        batch_op.create_index("ix_wide_predictions_model_version_id_split",
                              ["model_version_id", "split"])
        batch_op.create_index("ix_wide_predictions_model_version_id_formation_energy",
                              ["model_version_id", "formation_energy"])
        batch_op.create_index("ix_wide_predictions_model_version_id_band_gap",
                              ["model_version_id", "band_gap"])

    op.create_table(
        "model_element_metrics",
        sa.Column("model_version_id", BIG_ID, nullable=False),
        sa.Column("property", sa.String(length=32), nullable=False),
        sa.Column("subset", sa.String(length=8), nullable=False),
        sa.Column("element", sa.String(length=3), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("mae", sa.Double(), nullable=True),
        sa.Column("rmse", sa.Double(), nullable=True),
        sa.Column("n_without", sa.Integer(), nullable=False),
        sa.Column("mae_without", sa.Double(), nullable=True),
        sa.Column("rmse_without", sa.Double(), nullable=True),
        _refreshed_at(),
        _fk_model_version("model_element_metrics"),
        sa.PrimaryKeyConstraint("model_version_id", "property", "subset", "element",
                                name=op.f("pk_model_element_metrics")),
    )

    op.create_table(
        "model_pair_metrics",
        sa.Column("model_version_id", BIG_ID, nullable=False),
        sa.Column("other_model_version_id", BIG_ID, nullable=False),
        sa.Column("property", sa.String(length=32), nullable=False),
        sa.Column("subset", sa.String(length=8), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("mae", sa.Double(), nullable=True),
        sa.Column("rmse", sa.Double(), nullable=True),
        sa.Column("other_mae", sa.Double(), nullable=True),
        sa.Column("other_rmse", sa.Double(), nullable=True),
        sa.Column("n_closer", sa.Integer(), nullable=False),
        sa.Column("n_other_closer", sa.Integer(), nullable=False),
        _refreshed_at(),
        _fk_model_version("model_pair_metrics"),
        _fk_model_version("model_pair_metrics", "other_model_version_id"),
        sa.PrimaryKeyConstraint("model_version_id", "other_model_version_id", "property",
                                "subset", name=op.f("pk_model_pair_metrics")),
    )
    with op.batch_alter_table("model_pair_metrics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_pair_metrics_other_model_version_id"),
                              ["other_model_version_id"])

    op.execute(MATERIAL_PREDICTIONS)
    op.execute(MODEL_ERRORS_BY_ELEMENT)
    op.execute(MODEL_COMPARISONS)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS model_comparisons")
    op.execute("DROP VIEW IF EXISTS model_errors_by_element")
    op.execute("DROP VIEW IF EXISTS material_predictions")
    op.drop_table("model_pair_metrics")
    op.drop_table("model_element_metrics")
    op.drop_table("wide_predictions")
    with op.batch_alter_table("material_elements", schema=None) as batch_op:
        batch_op.drop_index("ix_material_elements_element_material_id")
    # Revision 0002's cascade would have removed predictions of deleted model versions;
    # without the constraint such rows can only come from writes around the registry.
    op.execute("DELETE FROM predictions WHERE NOT EXISTS "
               "(SELECT 1 FROM model_versions mv WHERE mv.id = predictions.model_version_id)")
    _rebuild_predictions_views(False)
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_foreign_key(FK_MODEL_VERSION, "model_versions", ["model_version_id"],
                                    ["id"], ondelete="CASCADE")
        batch_op.create_index(VALUE_INDEX, ["model_version_id", "property", "value"])
    _rebuild_predictions_views(True)
