"""Portable column types used by the models."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Text
from sqlalchemy.dialects.mysql import LONGTEXT
from sqlalchemy.types import TypeDecorator


class JSONText(TypeDecorator[Any]):
    """JSON stored as text: identical on SQLite, PostgreSQL and MariaDB.

    Native JSON types differ between the engines (MariaDB aliases LONGTEXT with a check
    constraint), which makes schema comparison noisy; the platform never queries inside these
    documents in SQL, so plain text is the portable choice.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):  # type: ignore[no-untyped-def]
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(LONGTEXT())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect) -> str | None:  # type: ignore[no-untyped-def]
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, allow_nan=True)

    def process_result_value(self, value: str | None, dialect) -> Any:  # type: ignore[no-untyped-def]
        if value is None:
            return None
        return json.loads(value)
