"""Every request's transaction is read-only and has a statement timeout, on every engine."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import exc, text

from matplat.serve.readonly import ReadOnlyDatabase

_ENDLESS = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
            "SELECT COUNT(*) FROM c")


def test_writes_are_refused_and_leave_the_data(db) -> None:  # type: ignore[no-untyped-def]
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO graph_recipes (name, params, code_version, params_hash) "
                          "VALUES ('r', '{}', 'x', 'h')"))
    ro = ReadOnlyDatabase(db.url, timeout_s=5)
    try:
        for statement in ("DELETE FROM graph_recipes", "UPDATE graph_recipes SET name = 'y'",
                          "CREATE TABLE evil (x INTEGER)"):
            with pytest.raises(exc.DBAPIError), ro.read() as conn:
                conn.execute(text(statement))
        with ro.read() as conn:
            assert conn.execute(text("SELECT name FROM graph_recipes")).scalars().all() == ["r"]
    finally:
        ro.dispose()


def test_statement_timeout_stops_a_long_query(db) -> None:  # type: ignore[no-untyped-def]
    if db.kind == "mariadb":
        statement = "SELECT SLEEP(30)"
    else:
        statement = _ENDLESS
    ro = ReadOnlyDatabase(db.url, timeout_s=0.5)
    try:
        start = time.monotonic()
        if db.kind == "mariadb":
            # MariaDB ends an interrupted SLEEP early (result 1) or with error 1969
            try:
                with ro.read() as conn:
                    assert conn.execute(text(statement)).scalar_one() == 1
            except exc.DBAPIError as e:
                assert "max_statement_time" in str(e.orig)
        else:
            with pytest.raises(exc.DBAPIError), ro.read() as conn:
                conn.execute(text(statement)).all()
        assert time.monotonic() - start < 10
        with ro.read() as conn:  # the connection is usable again
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        ro.dispose()
