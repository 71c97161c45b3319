"""The object every command receives: settings and a lazily created engine."""

from __future__ import annotations

from dataclasses import dataclass, field

import click
from sqlalchemy import Engine

from matplat.config import Settings
from matplat.db.session import check_connection, ensure_current, get_engine


@dataclass
class AppContext:
    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)

    def engine(self, *, require_schema: bool = True) -> Engine:
        """The engine of the configured database; checks the schema is at head by default."""
        if self._engine is None:
            self._engine = get_engine(self.settings.database_url)
        if require_schema:
            ensure_current(self._engine)
        else:
            check_connection(self._engine)
        return self._engine


pass_app = click.make_pass_decorator(AppContext)
