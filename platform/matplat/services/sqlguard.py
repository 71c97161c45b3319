"""A tokenizer for user SQL: what is code, what is a string, a quoted name or a comment.

Checks on user SQL (``platform query``, ``--where``) must look at code only: ``'INTO
OUTFILE'`` inside a string is data, while ``/*! INTO OUTFILE 'x' */`` inside a MariaDB
executable comment is code. A regex over the raw text gets one or the other wrong, so the
statement is split into tokens the way each engine reads it:

* strings ``'…'`` (doubled quotes; backslash escapes on MariaDB and in PostgreSQL ``E'…'``),
  PostgreSQL dollar quotes ``$tag$…$tag$``; ``"…"`` is a name on PostgreSQL and SQLite and a
  string on MariaDB, opaque text either way; `` `…` `` and SQLite ``[…]`` names;
* comments ``-- …`` (on MariaDB only when a space follows, as the server reads it), ``# …``
  on MariaDB, ``/* … */`` (nested on PostgreSQL); MariaDB's ``/*! … */`` and ``/*M! … */``
  are tokenized as code, since that server runs them (on every engine: a statement checked
  for one engine may be pasted into another);
* words, numbers, ``:name`` parameters and single punctuation characters.

Whether backslash escapes a quote depends on a server setting (MariaDB's
``NO_BACKSLASH_ESCAPES``, PostgreSQL's ``standard_conforming_strings``); :func:`code_words`
reads the statement both ways, so a string cannot hide code from one of the two readings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_PARAM = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_EXEC_COMMENT = re.compile(r"/\*M?!\d*")


@dataclass(frozen=True)
class Token:
    """One token: ``kind`` is word, number, param, string, name, comment or punct."""

    kind: str
    text: str
    start: int


def tokenize(sql: str, dialect: str, *, backslash: bool | None = None) -> list[Token]:
    """Split ``sql`` as ``dialect`` (sqlite, postgresql, mysql) reads it.

    ``backslash``: whether ``\\`` escapes inside ordinary strings (default: the engine's
    default). Raises :class:`ValueError` for an unterminated string, name or comment.
    """
    mysql = dialect in ("mysql", "mariadb")
    if backslash is None:
        backslash = mysql
    return list(_tokens(sql, 0, len(sql), dialect, mysql, backslash))


def _close_quote(sql: str, i: int, end: int, quote: str, backslash: bool) -> int:
    """Index after the closing ``quote`` of the literal starting at ``i``."""
    j = i + 1
    while j < end:
        c = sql[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < end and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    raise ValueError(f"unterminated {quote}…{quote} starting at character {i + 1}")


def _block_comment_end(sql: str, i: int, end: int, nested: bool) -> int:
    depth, j = 1, i + 2
    while j < end:
        if nested and sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    raise ValueError(f"unterminated /* comment starting at character {i + 1}")


def _tokens(sql: str, i: int, end: int, dialect: str, mysql: bool,
            backslash: bool) -> Iterator[Token]:
    pg = dialect == "postgresql"
    while i < end:
        c = sql[i]
        if c.isspace():
            i += 1
        elif (c == "#" and mysql) or (c == "-" and sql.startswith("--", i) and (
                not mysql or i + 2 >= end or sql[i + 2].isspace() or ord(sql[i + 2]) < 32)):
            j = sql.find("\n", i)
            j = end if j < 0 or j > end else j
            yield Token("comment", sql[i:j], i)
            i = j
        elif sql.startswith("/*", i):
            j = _block_comment_end(sql, i, end, nested=pg)
            m = _EXEC_COMMENT.match(sql, i)
            if m:  # MariaDB runs what is inside: code (on every engine, to be safe)
                yield from _tokens(sql, m.end(), j - 2, dialect, mysql, backslash)
            else:
                yield Token("comment", sql[i:j], i)
            i = j
        elif c == "'" or (c == '"' and mysql):
            esc = backslash or (pg and i > 0 and sql[i - 1] in "eE"
                                and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_")))
            j = _close_quote(sql, i, end, c, esc)
            yield Token("string", sql[i:j], i)
            i = j
        elif c in '"`':
            j = _close_quote(sql, i, end, c, backslash=False)
            yield Token("name", sql[i:j], i)
            i = j
        elif c == "[" and dialect == "sqlite":
            j = sql.find("]", i)
            if j < 0 or j >= end:
                raise ValueError(f"unterminated [name] starting at character {i + 1}")
            yield Token("name", sql[i:j + 1], i)
            i = j + 1
        elif c == "$" and pg and (m := _DOLLAR.match(sql, i)):
            j = sql.find(m.group(0), m.end())
            if j < 0 or j >= end:
                raise ValueError(f"unterminated {m.group(0)} string starting at character {i + 1}")
            j += len(m.group(0))
            yield Token("string", sql[i:j], i)
            i = j
        elif c == ":" and (m := _PARAM.match(sql, i)) and not (i > 0 and sql[i - 1] == ":"):
            yield Token("param", m.group(0), i)
            i = m.end()
        elif m := _WORD.match(sql, i):
            yield Token("word", m.group(0), i)
            i = m.end()
        elif m := _NUMBER.match(sql, i):
            yield Token("number", m.group(0), i)
            i = m.end()
        else:
            yield Token("punct", c, i)
            i += 1


def unquote(token: Token) -> str:
    """The name a word or quoted name stands for, lower-cased (for comparisons)."""
    if token.kind == "name":
        return token.text[1:-1].lower()
    return token.text.lower()


def code_words(sql: str, dialect: str) -> set[str]:
    """Lower-cased words and quoted names that are code in either backslash reading.

    The engine's default reading must succeed (else :class:`ValueError`); the other one is
    only added when it reads too (a statement that does not read in a mode cannot run in it).
    """
    default = tokenize(sql, dialect)
    words = {unquote(t) for t in default if t.kind in ("word", "name")}
    try:
        other = tokenize(sql, dialect, backslash=dialect not in ("mysql", "mariadb"))
    except ValueError:
        return words
    return words | {unquote(t) for t in other if t.kind in ("word", "name")}


def escape_colons(sql: str, dialect: str) -> str:
    """``sql`` with every ``:`` outside code escaped for SQLAlchemy's ``text()``.

    ``text()`` takes any ``:word`` as a bind parameter, even inside a string literal such as
    ``'{"a":1}'``; escaped colons (``\\:``) are passed through as they are.
    """
    out: list[str] = []
    pos = 0
    for t in tokenize(sql, dialect):
        if t.kind in ("string", "name", "comment") and ":" in t.text:
            out.append(sql[pos:t.start])
            out.append(t.text.replace(":", "\\:"))
            pos = t.start + len(t.text)
    out.append(sql[pos:])
    return "".join(out)


def param_names(sql: str, dialect: str) -> list[str]:
    """Names of the ``:name`` parameters in the code of ``sql``, in order, once each."""
    seen: dict[str, None] = {}
    for t in tokenize(sql, dialect):
        if t.kind == "param":
            seen.setdefault(t.text[1:], None)
    return list(seen)
