"""Alembic environment: one linear history for SQLite, PostgreSQL and MariaDB/MySQL.

The engine comes from ``config.attributes["engine"]`` (set by ``matplat.db.migrate``) or,
when ``alembic`` runs on its own, from ``PLATFORM_DATABASE_URL``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlalchemy.dialects.mysql import LONGTEXT

import matplat.db.models  # noqa: F401  (registers every table on Base.metadata)
from matplat.config import load_settings
from matplat.db.base import Base
from matplat.db.session import get_engine
from matplat.db.types import JSONText

config = context.config
target_metadata = Base.metadata


def _include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # Staging tables of running loads are not part of the schema.
    return not (type_ == "table" and name and name.startswith("stage_"))


def _compare_type(context, inspected_column, metadata_column, inspected_type, metadata_type):  # type: ignore[no-untyped-def]
    # JSON documents are stored as text on every engine (see matplat.db.types.JSONText).
    if isinstance(metadata_type, JSONText):
        if context.dialect.name in ("mysql", "mariadb"):
            return not isinstance(inspected_type, LONGTEXT)
        return not isinstance(inspected_type, sa.Text)
    return None  # default comparison


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        url = config.get_main_option("sqlalchemy.url") or load_settings().database_url
        engine = get_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_object=_include_object,
            compare_type=_compare_type,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():  # pragma: no cover
    raise SystemExit("offline migrations are not supported: run against a database")
run_migrations_online()
