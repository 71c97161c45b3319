"""Servers that stop answering: every command ends with one line within a bounded time.

A local listener accepts connections and never answers (a firewall that blackholes, a hung
server): connecting fails after the connect timeout on PostgreSQL and MariaDB, for the
platform's database and for the user-SQL connection. A proxy in front of the real MariaDB
that stops passing the server's answers mid-query checks the read timeout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from .conftest import assert_one_line_error, run_platform

BOUND_S = 30.0  # connect timeout 2 s plus the interpreter's start on a loaded machine


@contextlib.contextmanager
def _stalled_listener() -> Iterator[int]:
    """A port that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        t.join()
        for s in held:
            s.close()
        server.close()


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
@pytest.mark.parametrize("which", ["--db", "--query-db"])
def test_stalled_server_fails_within_connect_timeout(scheme: str, which: str,
                                                     workdir: Path) -> None:
    with _stalled_listener() as port:
        url = f"{scheme}://u@127.0.0.1:{port}/x"
        t0 = time.monotonic()
        args = ["--db", url, "status"] if which == "--db" else [
            "--query-db", url, "query", "SELECT 1 AS one"]
        proc = run_platform(*args, cwd=workdir, timeout=BOUND_S + 30,
                            PLATFORM_DB_CONNECT_TIMEOUT="2")
        elapsed = time.monotonic() - t0
    assert_one_line_error(proc, "cannot connect", f"127.0.0.1:{port}")
    assert elapsed < BOUND_S, elapsed


@contextlib.contextmanager
def _freezing_proxy(host: str, port: int, marker: bytes) -> Iterator[int]:
    """Forward to ``host:port`` until the server's answer holds ``marker``; then pass
    nothing more from the server (the client sees a connection that went silent)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    socks: list[socket.socket] = []
    stop = threading.Event()

    def pump(src: socket.socket, dst: socket.socket, watch: bool) -> None:
        frozen = False
        with contextlib.suppress(OSError):
            while not stop.is_set():
                data = src.recv(65536)
                if not data:
                    break
                frozen = frozen or (watch and marker in data)
                if not frozen:
                    dst.sendall(data)

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client = server.accept()[0]
            except OSError:
                continue
            upstream = socket.create_connection((host, port))
            socks.extend([client, upstream])
            threading.Thread(target=pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client, True), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        t.join()
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()
        server.close()


def test_mariadb_read_timeout_on_a_silent_connection(db, workdir: Path) -> None:
    if db.kind != "mariadb":
        pytest.skip("PyMySQL read timeout; PostgreSQL relies on TCP keepalives (README)")
    url = make_url(db.url)
    with _freezing_proxy(url.host or "127.0.0.1", url.port or 3306, b"stall_marker") as port:
        proxied = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        t0 = time.monotonic()
        proc = run_platform("--db", proxied, "query", "SELECT 'stall_marker' AS s",
                            cwd=workdir, timeout=BOUND_S + 30, PLATFORM_DB_READ_TIMEOUT="3")
        elapsed = time.monotonic() - t0
    assert_one_line_error(proc, "timed out")
    assert elapsed < BOUND_S, elapsed
