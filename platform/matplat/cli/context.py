"""The object every command receives: settings and lazily created engines."""

from __future__ import annotations

from dataclasses import dataclass, field

import click
from sqlalchemy import Engine

from matplat.config import Settings
from matplat.db.session import check_connection, ensure_current, get_engine, privileged_reason


@dataclass
class AppContext:
    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)
    _query_engine: Engine | None = field(default=None, repr=False)
    #: Printed on stderr once the command succeeded (an error stays the one line it is).
    warnings: list[str] = field(default_factory=list)

    def engine(self, *, require_schema: bool = True) -> Engine:
        """The engine of the configured database; checks the schema is at head by default."""
        if self._engine is None:
            self._engine = get_engine(self.settings.database_url)
        if require_schema:
            ensure_current(self._engine)
        else:
            check_connection(self._engine)
        return self._engine

    def query_engine(self) -> Engine:
        """The engine user SQL runs on (``platform query``, ``--where``).

        ``PLATFORM_QUERY_DATABASE_URL`` / ``--query-db`` when set, else the platform's own
        database (whose schema is checked). Warns (one stderr line after the command) when
        that connection may read server files or act on other sessions (superuser, FILE or
        SUPER privileges).
        """
        if self._query_engine is None:
            if self.settings.query_database_url:
                engine = get_engine(self.settings.query_database_url)
                check_connection(engine)
            else:
                engine = self.engine()
            reason = privileged_reason(engine)
            if reason:
                self.warnings.append(
                    f"warning: user SQL ran as {reason}; set PLATFORM_QUERY_DATABASE_URL to "
                    "a read-only role (README: Read-only SQL)")
            self._query_engine = engine
        return self._query_engine


pass_app = click.make_pass_decorator(AppContext)
