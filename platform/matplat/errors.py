"""Domain errors. The CLI turns each into one line on stderr and exit code 1."""

from __future__ import annotations


class PlatformError(Exception):
    """Base class of every error a user should see as one clear message."""


class ConfigError(PlatformError):
    """A setting is invalid (for example a malformed database URL)."""


class DatabaseError(PlatformError):
    """The database cannot be reached or is not usable."""


class SchemaNotCurrentError(PlatformError):
    """The database schema is not at the head revision."""


class InputError(PlatformError):
    """An input file or argument is malformed; the message names the file and position."""


class NotFoundError(PlatformError):
    """A named object (model tag, recipe, split, ...) does not exist."""


class ConflictError(PlatformError):
    """An object with that name exists already and is never overwritten."""
