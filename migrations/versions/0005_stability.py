"""Thermodynamic stability: convex-hull distances, OQMD's own stability, discovery metrics.

- ``hull_builds``, ``hull_systems``, ``material_hulls``, ``hull_decompositions``: what
  ``platform hull build`` writes (per material: distance to the hull of its chemical system,
  on the hull or not, decomposition products; per system: the signature of the data it was
  built from, so a rebuild after an ingest recomputes only changed systems).
- ``dft_properties.oqmd_stability``: OQMD's ``formation_energies.stability``, kept on ingest.
- View ``material_stability``: ``material_properties`` with the hull columns and
  ``oqmd_stability``.
- The predicted hull distance is property ``e_above_hull`` of ``predictions`` (derived by the
  leaderboard refresh), so ``prediction_results`` takes its DFT value from ``material_hulls``
  and ``wide_predictions``/``material_predictions`` gain its three columns.
- ``stability_metrics`` (view ``model_stability_metrics``): precision, recall, F1, DAF … of
  each model version per subset and stability threshold, refreshed with the leaderboard.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
OLD_PROPERTIES = ("formation_energy", "volume_per_atom", "band_gap", "magnetization",
                  "volume_deviation")
NEW_PROPERTIES = (*OLD_PROPERTIES, "e_above_hull")


def _material_predictions(props: Sequence[str]) -> str:
    cols = ",\n       ".join(
        f"w.{p} AS {p}, w.{p}_uncertainty AS {p}_uncertainty, w.{p}_dft AS {p}_dft"
        for p in props)
    return f"""
CREATE VIEW material_predictions AS
SELECT mv.tag AS model_tag, w.material_id AS material_id, w.formula AS formula,
       w.spacegroup AS spacegroup, w.split AS split,
       {cols},
       w.refreshed_at AS refreshed_at
FROM wide_predictions w
JOIN model_versions mv ON mv.id = w.model_version_id
"""


def _prediction_results(with_hull: bool) -> str:
    hull_case = "\n        WHEN 'e_above_hull' THEN h.e_above_hull" if with_hull else ""
    dft = f"""CASE p.property
        WHEN 'formation_energy' THEN d.formation_energy
        WHEN 'volume_per_atom' THEN d.volume_per_atom
        WHEN 'band_gap' THEN d.band_gap
        WHEN 'magnetization' THEN d.magnetization
        WHEN 'volume_deviation' THEN d.volume_deviation{hull_case}
    END"""
    hull_join = ("\nLEFT JOIN material_hulls h ON h.material_id = p.material_id"
                 if with_hull else "")
    return f"""
CREATE VIEW prediction_results AS
SELECT mv.tag AS model_tag, p.material_id AS material_id, m.source_id AS source_id,
       m.formula AS formula, p.property AS property, p.value AS predicted,
       p.uncertainty AS uncertainty,
       {dft} AS dft,
       ABS(p.value - {dft}) AS abs_error,
       sm.subset AS split, p.created_at AS created_at
FROM predictions p
JOIN model_versions mv ON mv.id = p.model_version_id
JOIN materials m ON m.id = p.material_id
LEFT JOIN dft_properties d ON d.material_id = p.material_id{hull_join}
LEFT JOIN split_members sm ON sm.split_id = mv.split_id AND sm.material_id = p.material_id
"""


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

MATERIAL_STABILITY = """
CREATE VIEW material_stability AS
SELECT mp.material_id AS material_id, mp.source AS source, mp.source_id AS source_id,
       mp.formula AS formula, mp.natoms AS natoms, mp.formation_energy AS formation_energy,
       mp.volume_per_atom AS volume_per_atom, mp.band_gap AS band_gap,
       mp.magnetization AS magnetization, mp.spacegroup AS spacegroup,
       h.chemical_system AS chemical_system, h.e_above_hull AS e_above_hull,
       h.is_stable AS is_stable, h.formation_energy AS hull_formation_energy,
       d.oqmd_stability AS oqmd_stability, h.hull_build_id AS hull_build_id
FROM material_properties mp
LEFT JOIN material_hulls h ON h.material_id = mp.material_id
LEFT JOIN dft_properties d ON d.material_id = mp.material_id
"""

MODEL_STABILITY_METRICS = """
CREATE VIEW model_stability_metrics AS
SELECT mv.tag AS model_tag, s.subset AS split, s.threshold AS threshold, s.n AS n,
       s.n_predicted AS n_predicted, s.tp AS tp, s.fp AS fp, s.tn AS tn, s.fn AS fn,
       s.precision_score AS precision_score, s.recall AS recall, s.f1 AS f1, s.accuracy AS accuracy,
       s.prevalence AS prevalence, s.daf AS daf, s.mae AS mae, s.rmse AS rmse, s.r2 AS r2,
       s.refreshed_at AS refreshed_at
FROM stability_metrics s
JOIN model_versions mv ON mv.id = s.model_version_id
"""


def upgrade() -> None:
    op.create_table(
        "hull_builds",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=True),
        sa.Column("ingest_run_id", sa.BigInteger(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("systems_total", sa.Integer(), nullable=False),
        sa.Column("systems_recomputed", sa.Integer(), nullable=False),
        sa.Column("materials", sa.Integer(), nullable=False),
        sa.Column("left_out", LONG_TEXT, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hull_builds")),
    )
    op.create_table(
        "hull_systems",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("chemical_system", sa.String(length=255), nullable=False),
        sa.Column("nelements", sa.SmallInteger(), nullable=False),
        sa.Column("n_materials", sa.Integer(), nullable=False),
        sa.Column("n_stable", sa.Integer(), nullable=False),
        sa.Column("signature", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("hull_build_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "chemical_system", name=op.f("pk_hull_systems")),
    )
    op.create_index(op.f("ix_hull_systems_hull_build_id"), "hull_systems", ["hull_build_id"])
    op.create_table(
        "material_hulls",
        sa.Column("material_id", BIG_ID, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("chemical_system", sa.String(length=255), nullable=False),
        sa.Column("formation_energy", sa.Double(), nullable=False),
        sa.Column("e_above_hull", sa.Double(), nullable=False),
        sa.Column("is_stable", sa.Boolean(), nullable=False),
        sa.Column("hull_build_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["material_id"], ["materials.id"],
                                name=op.f("fk_material_hulls_material_id_materials"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("material_id", name=op.f("pk_material_hulls")),
    )
    op.create_index(op.f("ix_material_hulls_chemical_system"), "material_hulls",
                    ["chemical_system"])
    op.create_index(op.f("ix_material_hulls_e_above_hull"), "material_hulls", ["e_above_hull"])
    op.create_index(op.f("ix_material_hulls_hull_build_id"), "material_hulls", ["hull_build_id"])
    op.create_table(
        "hull_decompositions",
        sa.Column("material_id", BIG_ID, nullable=False),
        sa.Column("position", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("product_material_id", sa.BigInteger(), nullable=True),
        sa.Column("product_formula", sa.String(length=255), nullable=False),
        sa.Column("fraction", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["material_id"], ["materials.id"],
                                name=op.f("fk_hull_decompositions_material_id_materials"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("material_id", "position", name=op.f("pk_hull_decompositions")),
    )
    op.create_table(
        "stability_metrics",
        sa.Column("model_version_id", BIG_ID, nullable=False),
        sa.Column("subset", sa.String(length=8), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        *[sa.Column(c, sa.Integer(), nullable=False)
          for c in ("n", "n_predicted", "tp", "fp", "tn", "fn")],
        *[sa.Column(c, sa.Double(), nullable=True)
          for c in ("precision_score", "recall", "f1", "accuracy", "prevalence", "daf", "mae",
                    "rmse", "r2")],
        sa.Column("refreshed_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name=op.f("fk_stability_metrics_model_version_id_model_versions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_version_id", "subset", "threshold",
                                name=op.f("pk_stability_metrics")),
    )
    # Plain ADD COLUMN on every engine (SQLite needs no table rebuild for it).
    op.add_column("dft_properties", sa.Column("oqmd_stability", sa.Double(), nullable=True))
    op.execute("DROP VIEW IF EXISTS material_predictions")
    for suffix in ("", "_uncertainty", "_dft"):
        op.add_column("wide_predictions",
                      sa.Column(f"e_above_hull{suffix}", sa.Double(), nullable=True))
    op.execute(_material_predictions(NEW_PROPERTIES))
    op.execute("DROP VIEW IF EXISTS prediction_results")
    op.execute(_prediction_results(True))
    op.execute(MATERIAL_STABILITY)
    op.execute(MODEL_STABILITY_METRICS)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS model_stability_metrics")
    op.execute("DROP VIEW IF EXISTS material_stability")
    # Views that name the altered tables go while SQLite rebuilds them, and come back as
    # revision 0004 had them.
    for view in ("prediction_results", "material_properties", "material_predictions"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.execute("DELETE FROM predictions WHERE property = 'e_above_hull'")
    with op.batch_alter_table("wide_predictions", schema=None) as batch_op:
        for suffix in ("", "_uncertainty", "_dft"):
            batch_op.drop_column(f"e_above_hull{suffix}")
    with op.batch_alter_table("dft_properties", schema=None) as batch_op:
        batch_op.drop_column("oqmd_stability")
    op.execute(MATERIAL_PROPERTIES)
    op.execute(_prediction_results(False))
    op.execute(_material_predictions(OLD_PROPERTIES))
    op.drop_table("stability_metrics")
    op.drop_table("hull_decompositions")
    op.drop_table("material_hulls")
    op.drop_table("hull_systems")
    op.drop_table("hull_builds")
