"""Real brokers and real worker processes for the Celery tests.

Each test gets its own broker namespace (a Redis database number, or a RabbitMQ virtual host
made with rabbitmqctl) so that no message of one test reaches another's workers, and starts
`platform worker` processes in their own process groups (so a test can kill -9 one).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from dbutil import unavailable
from workerutil import TcpProxy, Workers

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_URLS = {
    "redis": "redis://127.0.0.1:6379/0",
    "amqp": "amqp://guest:guest@127.0.0.1:5672//",
}
URL_ENV = {"redis": "PLATFORM_TEST_REDIS_URL", "amqp": "PLATFORM_TEST_AMQP_URL"}
_REDIS_DBS = itertools.cycle(range(1, 16))


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def _with_path(url: str, path: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, path, p.query, p.fragment))


@pytest.fixture(params=["redis", "amqp"])
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    kind = request.param
    base = os.environ.get(URL_ENV[kind]) or DEFAULT_URLS[kind]
    if not _reachable(base):
        unavailable(f"{kind} broker {base} is not reachable")
    if kind == "redis":
        import redis

        url = _with_path(base, f"/{next(_REDIS_DBS)}")
        client = redis.Redis.from_url(url)
        client.flushdb()
        try:
            yield url
        finally:
            client.flushdb()
            client.close()
        return
    ctl = shutil.which("rabbitmqctl")
    user = urlsplit(base).username or "guest"
    vhost = f"matplat-test-{uuid.uuid4().hex[:10]}"
    try:
        if ctl is None:
            raise OSError("no rabbitmqctl")
        subprocess.run([ctl, "-q", "add_vhost", vhost], check=True, capture_output=True,
                       timeout=60)
        subprocess.run([ctl, "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        # A broker we cannot administer: share its default virtual host, emptied first.
        _purge(base)
        yield base
        _purge(base)
        return
    try:
        yield _with_path(base, f"/{vhost}")
    finally:
        subprocess.run([ctl, "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


def _purge(url: str) -> None:
    from kombu import Connection

    with Connection(url) as conn:
        channel = conn.channel()
        for queue in ("cpu", "gpu"):
            try:
                channel.queue_purge(queue)
            except Exception:  # noqa: BLE001 - the queue does not exist yet
                channel = conn.channel()


@pytest.fixture
def spawn(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str, str], Workers]]:
    """``spawn(db_url, broker_url)``: a worker set for this test, stopped at its end (and whose
    logs are printed when the test failed: what the workers saw is the first thing to read)."""
    made: list[Workers] = []

    def make(db_url: str, broker: str) -> Workers:
        made.append(Workers(db_url, broker, tmp_path))
        return made[-1]

    yield make
    rep = getattr(request.node, "rep_call", None)
    for w in made:
        if rep is not None and rep.failed:
            for name in w.procs:
                print(f"----- worker {name} -----\n{w.log(name)[-4000:]}")
        w.stop_all()


@pytest.fixture
def proxy_factory() -> Iterator[list[TcpProxy]]:
    made: list[TcpProxy] = []
    yield made
    for p in made:
        p.down()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
