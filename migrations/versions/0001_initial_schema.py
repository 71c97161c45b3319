"""Initial schema: materials, structures, sites, DFT properties, graphs, models, predictions.

Creates every table of the platform and the two public views of the SQL contract
(``material_properties`` and ``prediction_results``), so later revisions add little schema.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types are spelled out here (a revision never imports the application's models).
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")

_DFT_OF_PROPERTY = """CASE p.property
        WHEN 'formation_energy' THEN d.formation_energy
        WHEN 'volume_per_atom' THEN d.volume_per_atom
        WHEN 'band_gap' THEN d.band_gap
        WHEN 'magnetization' THEN d.magnetization
        WHEN 'volume_deviation' THEN d.volume_deviation
    END"""

MATERIAL_PROPERTIES = """
CREATE VIEW material_properties AS
SELECT m.id AS material_id, m.source AS source, m.source_id AS source_id,
       m.formula AS formula, m.natoms AS natoms,
       d.formation_energy AS formation_energy, d.volume_per_atom AS volume_per_atom,
       d.band_gap AS band_gap, d.magnetization AS magnetization,
       m.spacegroup AS spacegroup
FROM materials m
LEFT JOIN dft_properties d ON d.material_id = m.id
"""

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


def upgrade() -> None:
    op.create_table(
        "dataset_splits",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("fractions", LONG_TEXT, nullable=False),
        sa.Column("counts", LONG_TEXT, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_splits")),
        sa.UniqueConstraint("name", name=op.f("uq_dataset_splits_name")),
    )
    op.create_table(
        "graph_recipes",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("params", LONG_TEXT, nullable=False),
        sa.Column("code_version", sa.String(length=64), nullable=False),
        sa.Column("params_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_graph_recipes")),
        sa.UniqueConstraint("params_hash", name=op.f("uq_graph_recipes_params_hash")),
    )
    op.create_index(op.f("ix_graph_recipes_name"), "graph_recipes", ["name"], unique=False)
    op.create_table(
        "ingest_runs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("file_name", sa.String(length=1024), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n_added", sa.Integer(), nullable=False),
        sa.Column("n_updated", sa.Integer(), nullable=False),
        sa.Column("n_unchanged", sa.Integer(), nullable=False),
        sa.Column("n_rejected", sa.Integer(), nullable=False),
        sa.Column("counts", LONG_TEXT, nullable=True),
        sa.Column("error", LONG_TEXT, nullable=True),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_runs")),
    )
    with op.batch_alter_table("ingest_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingest_runs_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_ingest_runs_status"), ["status"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params", LONG_TEXT, nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("error", LONG_TEXT, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_status"), ["status"], unique=False)

    op.create_table(
        "materials",
        sa.Column("id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("formula", sa.String(length=255), nullable=False),
        sa.Column("composition", sa.String(length=255), nullable=False),
        sa.Column("natoms", sa.Integer(), nullable=False),
        sa.Column("spacegroup", sa.SmallInteger(), nullable=True),
        sa.Column("prototype", sa.String(length=63), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("ingest_run_id", BIG_ID, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["ingest_run_id"],
            ["ingest_runs.id"],
            name=op.f("fk_materials_ingest_run_id_ingest_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_materials")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_materials_source_source_id")),
    )
    with op.batch_alter_table("materials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_materials_formula"), ["formula"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_materials_ingest_run_id"), ["ingest_run_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_materials_spacegroup"), ["spacegroup"], unique=False)

    op.create_table(
        "model_versions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("preset", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("hyperparameters", LONG_TEXT, nullable=False),
        sa.Column("targets", LONG_TEXT, nullable=False),
        sa.Column("recipe_id", BIG_ID, nullable=True),
        sa.Column("split_id", BIG_ID, nullable=True),
        sa.Column("data_snapshot_hash", sa.String(length=64), nullable=True),
        sa.Column("code_version", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("ensemble_size", sa.Integer(), nullable=False),
        sa.Column("n_parameters", sa.Integer(), nullable=True),
        sa.Column("metrics", LONG_TEXT, nullable=True),
        sa.Column("artifact", BLOB, nullable=True),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["recipe_id"],
            ["graph_recipes.id"],
            name=op.f("fk_model_versions_recipe_id_graph_recipes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["split_id"],
            ["dataset_splits.id"],
            name=op.f("fk_model_versions_split_id_dataset_splits"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("tag", name=op.f("uq_model_versions_tag")),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_versions_recipe_id"), ["recipe_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_model_versions_split_id"), ["split_id"], unique=False)

    op.create_table(
        "dft_properties",
        sa.Column("material_id", BIG_ID, nullable=False),
        sa.Column("formation_energy", sa.Double(), nullable=True),
        sa.Column("volume_per_atom", sa.Double(), nullable=True),
        sa.Column("band_gap", sa.Double(), nullable=True),
        sa.Column("magnetization", sa.Double(), nullable=True),
        sa.Column("total_magnetization", sa.Double(), nullable=True),
        sa.Column("volume_deviation", sa.Double(), nullable=True),
        sa.Column("source_calculation_id", sa.BigInteger(), nullable=True),
        sa.Column("selection_rule", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["materials.id"],
            name=op.f("fk_dft_properties_material_id_materials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("material_id", name=op.f("pk_dft_properties")),
    )
    op.create_table(
        "material_elements",
        sa.Column("material_id", BIG_ID, nullable=False),
        sa.Column("element", sa.String(length=3), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["materials.id"],
            name=op.f("fk_material_elements_material_id_materials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("material_id", "element", name=op.f("pk_material_elements")),
    )
    with op.batch_alter_table("material_elements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_material_elements_element"), ["element"], unique=False)

    op.create_table(
        "model_aliases",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("model_version_id", BIG_ID, nullable=False),
        sa.Column(
            "assigned_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_aliases_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_aliases")),
    )
    with op.batch_alter_table("model_aliases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_model_aliases_alias_replaced_at", ["alias", "replaced_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_model_aliases_model_version_id"), ["model_version_id"], unique=False
        )

    op.create_table(
        "predictions",
        sa.Column("model_version_id", BIG_ID, nullable=False),
        sa.Column("material_id", BIG_ID, nullable=False),
        sa.Column("property", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("uncertainty", sa.Double(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["materials.id"],
            name=op.f("fk_predictions_material_id_materials"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_predictions_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_version_id", "material_id", "property", name=op.f("pk_predictions")
        ),
    )
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_predictions_material_id"), ["material_id"], unique=False
        )

    op.create_table(
        "split_members",
        sa.Column("split_id", BIG_ID, nullable=False),
        sa.Column("material_id", BIG_ID, nullable=False),
        sa.Column("subset", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["materials.id"],
            name=op.f("fk_split_members_material_id_materials"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["split_id"],
            ["dataset_splits.id"],
            name=op.f("fk_split_members_split_id_dataset_splits"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("split_id", "material_id", name=op.f("pk_split_members")),
    )
    with op.batch_alter_table("split_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_split_members_material_id"), ["material_id"], unique=False
        )

    op.create_table(
        "structures",
        sa.Column("id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("material_id", BIG_ID, nullable=False),
        sa.Column("source_structure_id", sa.BigInteger(), nullable=True),
        sa.Column("natoms", sa.Integer(), nullable=False),
        sa.Column("volume", sa.Double(), nullable=False),
        sa.Column("lattice", BLOB, nullable=False),
        sa.Column("frac_coords", BLOB, nullable=False),
        sa.Column("atomic_numbers", BLOB, nullable=False),
        sa.ForeignKeyConstraint(
            ["material_id"],
            ["materials.id"],
            name=op.f("fk_structures_material_id_materials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_structures")),
    )
    with op.batch_alter_table("structures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_structures_material_id"), ["material_id"], unique=False
        )

    op.create_table(
        "training_runs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("model_version_id", BIG_ID, nullable=True),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("member", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("device", sa.String(length=32), nullable=True),
        sa.Column("history", LONG_TEXT, nullable=True),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("seconds", sa.Double(), nullable=True),
        sa.Column("error", LONG_TEXT, nullable=True),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_training_runs_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
    )
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_training_runs_model_version_id"), ["model_version_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_training_runs_tag"), ["tag"], unique=False)

    op.create_table(
        "crystal_graphs",
        sa.Column("structure_id", BIG_ID, nullable=False),
        sa.Column("recipe_id", BIG_ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("natoms", sa.Integer(), nullable=False),
        sa.Column("nedges", sa.Integer(), nullable=False),
        sa.Column("n_isolated", sa.Integer(), nullable=False),
        sa.Column("atomic_numbers", BLOB, nullable=True),
        sa.Column("edge_src", BLOB, nullable=True),
        sa.Column("edge_dst", BLOB, nullable=True),
        sa.Column("edge_image", BLOB, nullable=True),
        sa.Column("edge_dist", BLOB, nullable=True),
        sa.Column("error", LONG_TEXT, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["recipe_id"],
            ["graph_recipes.id"],
            name=op.f("fk_crystal_graphs_recipe_id_graph_recipes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["structure_id"],
            ["structures.id"],
            name=op.f("fk_crystal_graphs_structure_id_structures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("structure_id", "recipe_id", name=op.f("pk_crystal_graphs")),
    )
    with op.batch_alter_table("crystal_graphs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_crystal_graphs_recipe_id"), ["recipe_id"], unique=False
        )

    op.create_table(
        "sites",
        sa.Column("structure_id", BIG_ID, nullable=False),
        sa.Column("site_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("element", sa.String(length=3), nullable=False),
        sa.Column("atomic_number", sa.SmallInteger(), nullable=False),
        sa.Column("x", sa.Double(), nullable=False),
        sa.Column("y", sa.Double(), nullable=False),
        sa.Column("z", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["structure_id"],
            ["structures.id"],
            name=op.f("fk_sites_structure_id_structures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("structure_id", "site_index", name=op.f("pk_sites")),
    )
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sites_element"), ["element"], unique=False)

    op.execute(MATERIAL_PROPERTIES)
    op.execute(PREDICTION_RESULTS)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS prediction_results")
    op.execute("DROP VIEW IF EXISTS material_properties")
    op.drop_table("sites")
    op.drop_table("crystal_graphs")
    op.drop_table("training_runs")
    op.drop_table("structures")
    op.drop_table("split_members")
    op.drop_table("predictions")
    op.drop_table("model_aliases")
    op.drop_table("material_elements")
    op.drop_table("dft_properties")
    op.drop_table("model_versions")
    op.drop_table("materials")
    op.drop_table("jobs")
    op.drop_table("ingest_runs")
    op.drop_table("graph_recipes")
    op.drop_table("dataset_splits")
