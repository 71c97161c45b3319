"""Model tags and aliases: what a name may hold, checked before any work.

A tag names a model version in SQL, file names and terminals, so it is short and plain: 1 to
128 characters (the ``model_versions.tag`` column) from ``A-Z a-z 0-9 . _ + -``, starting
with a letter or digit. Aliases follow the same rule with at most 64 characters (the
``model_aliases.alias`` column). No whitespace, control characters or terminal escapes get
into the registry, and a name that the database would truncate or refuse is refused before a
training run rather than after it.
"""

from __future__ import annotations

import re
from typing import Any

from matplat.errors import InputError

TAG_MAX = 128
ALIAS_MAX = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
RULE = "letters, digits and . _ + - (starting with a letter or digit)"


def check_name(value: Any, what: str = "model tag", max_length: int = TAG_MAX) -> str:
    """``value`` if it is a valid tag (or alias, with ``max_length=ALIAS_MAX``), else
    :class:`InputError` saying what is allowed."""
    if not isinstance(value, str) or value == "":
        raise InputError(f"{what}: empty; use 1 to {max_length} {RULE}")
    if len(value) > max_length:
        raise InputError(
            f"{what} {value[:20]!r}…: {len(value)} characters, at most {max_length} allowed"
        )
    if _NAME.fullmatch(value) is None:
        raise InputError(f"{what} {value!r}: use only {RULE}")
    return value


def check_tag(value: Any, what: str = "model tag") -> str:
    return check_name(value, what, TAG_MAX)


def check_alias(value: Any, what: str = "alias") -> str:
    return check_name(value, what, ALIAS_MAX)
