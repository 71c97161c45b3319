"""Settings: one frozen object read from ``PLATFORM_*`` variables and CLI options.

Importing this module reads nothing; :func:`load_settings` is called by the CLI (and tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

DEFAULT_DATABASE_URL = "sqlite:///platform.db"
DEFAULT_DEVICE = "auto"


@dataclass(frozen=True)
class Settings:
    """Where the platform keeps its data and runs its work.

    ``database_url``: any SQLAlchemy URL (``sqlite:///…``, ``postgresql+psycopg://…``,
    ``mysql+pymysql://…``). ``broker_url``: ``redis://…`` or ``amqp://…``; ``None`` runs tasks
    in-process. ``device``: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
    """

    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str | None = None
    device: str = DEFAULT_DEVICE

    def with_overrides(self, **values: str | None) -> Settings:
        """Return a copy with every non-``None`` value replaced (CLI options win over env)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def load_settings(environ: Mapping[str, str] | None = None, **overrides: str | None) -> Settings:
    """Build settings from the environment (``PLATFORM_DATABASE_URL``, ``PLATFORM_BROKER_URL``,
    ``PLATFORM_DEVICE``), then apply explicit overrides (CLI options)."""
    env = os.environ if environ is None else environ
    settings = Settings(
        database_url=env.get("PLATFORM_DATABASE_URL") or DEFAULT_DATABASE_URL,
        broker_url=env.get("PLATFORM_BROKER_URL") or None,
        device=env.get("PLATFORM_DEVICE") or DEFAULT_DEVICE,
    )
    return settings.with_overrides(**overrides)
