"""Declarative base with a naming convention and portable column types."""

from __future__ import annotations

from sqlalchemy import BigInteger, Double, Integer, LargeBinary, MetaData, String, Text
from sqlalchemy.dialects.mysql import LONGBLOB, LONGTEXT
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Binary arrays (lattices, coordinates, graph edges, model weights): LONGBLOB on MySQL,
#: whose plain BLOB stops at 64 KiB.
Blob = LargeBinary().with_variant(LONGBLOB(), "mysql", "mariadb")

#: Long text (JSON documents, error messages): LONGTEXT on MySQL.
LongText = Text().with_variant(LONGTEXT(), "mysql", "mariadb")

#: 64-bit integer keys; SQLite only auto-increments ``INTEGER PRIMARY KEY``.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Base of every model. ``Double`` (8 bytes everywhere) is the float type."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        float: Double(),
        str: String(255),
        bytes: Blob,
    }
