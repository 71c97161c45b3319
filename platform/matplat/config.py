"""Settings: one frozen object read from ``PLATFORM_*`` variables and CLI options.

Importing this module reads nothing; :func:`load_settings` is called by the CLI (and tests).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

DEFAULT_DATABASE_URL = "sqlite:///platform.db"
DEFAULT_DEVICE = "auto"
#: Seconds one user statement (``platform query``, a ``--where`` selection) may run.
DEFAULT_QUERY_TIMEOUT = 300.0
#: Seconds to wait for a database server to accept and answer a new connection.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds to wait for any answer of a database server before giving up on the connection.
#: Long enough for the slowest statement the platform itself runs (index builds of a full
#: OQMD ingest), short enough that a server that stopped answering is noticed.
DEFAULT_READ_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Settings:
    """Where the platform keeps its data and runs its work.

    ``database_url``: any SQLAlchemy URL (``sqlite:///…``, ``postgresql+psycopg://…``,
    ``mysql+pymysql://…``). ``broker_url``: ``redis://…`` or ``amqp://…``; ``None`` runs tasks
    in-process. ``device``: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
    ``query_database_url``: the connection user SQL runs on (``platform query``, every
    ``--where``), meant for a read-only role; ``None`` uses ``database_url``.
    ``query_timeout``: statement timeout of user SQL in seconds; ``connect_timeout`` and
    ``read_timeout``: seconds to wait for a server to connect and to answer.
    """

    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str | None = None
    device: str = DEFAULT_DEVICE
    query_database_url: str | None = None
    query_timeout: float = DEFAULT_QUERY_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT

    @property
    def user_sql_url(self) -> str:
        """The URL user SQL runs on."""
        return self.query_database_url or self.database_url

    def with_overrides(self, **values: str | float | None) -> Settings:
        """Return a copy with every non-``None`` value replaced (CLI options win over env)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        from matplat.errors import ConfigError

        raise ConfigError(f"{name}={raw!r}: expected a positive number of seconds")
    return value


def load_settings(environ: Mapping[str, str] | None = None,
                  **overrides: str | float | None) -> Settings:
    """Build settings from the environment (``PLATFORM_DATABASE_URL``, ``PLATFORM_BROKER_URL``,
    ``PLATFORM_DEVICE``, ``PLATFORM_QUERY_DATABASE_URL``, ``PLATFORM_QUERY_TIMEOUT``,
    ``PLATFORM_DB_CONNECT_TIMEOUT``, ``PLATFORM_DB_READ_TIMEOUT``), then apply explicit
    overrides (CLI options)."""
    env = os.environ if environ is None else environ
    settings = Settings(
        database_url=env.get("PLATFORM_DATABASE_URL") or DEFAULT_DATABASE_URL,
        broker_url=env.get("PLATFORM_BROKER_URL") or None,
        device=env.get("PLATFORM_DEVICE") or DEFAULT_DEVICE,
        query_database_url=env.get("PLATFORM_QUERY_DATABASE_URL") or None,
        query_timeout=_seconds(env, "PLATFORM_QUERY_TIMEOUT", DEFAULT_QUERY_TIMEOUT),
        connect_timeout=_seconds(env, "PLATFORM_DB_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT),
        read_timeout=_seconds(env, "PLATFORM_DB_READ_TIMEOUT", DEFAULT_READ_TIMEOUT),
    )
    return settings.with_overrides(**overrides)
