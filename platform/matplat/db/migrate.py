"""Alembic, driven from code: upgrade, downgrade and the current/head revisions."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from matplat.errors import PlatformError


def migrations_dir() -> Path:
    """The ``migrations/`` folder: beside the source root in a checkout or editable install."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "migrations"
        if (candidate / "env.py").is_file():
            return candidate
    raise PlatformError("cannot find the migrations folder (migrations/env.py)")


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at our migrations; ``engine`` is handed to env.py."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    if engine is not None:
        cfg.attributes["engine"] = engine
        cfg.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise PlatformError(f"migrations have {len(heads)} heads, expected one: {heads}")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def history() -> list[tuple[str, str | None, str]]:
    """(revision, down_revision, first docstring line) from base to head."""
    script = ScriptDirectory.from_config(alembic_config())
    revs = list(script.walk_revisions())
    revs.reverse()
    out = []
    for r in revs:
        doc = (r.doc or "").strip().splitlines()[0] if r.doc else ""
        down = (
            r.down_revision
            if isinstance(r.down_revision, str) or r.down_revision is None
            else ",".join(r.down_revision)
        )
        out.append((r.revision, down, doc))
    return out
