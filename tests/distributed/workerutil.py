"""Worker processes and a TCP relay for the Celery tests (used by conftest and the tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """`platform worker` processes started for one test (all stopped at its end)."""

    def __init__(self, db_url: str, broker: str, logdir: Path) -> None:
        self.db_url = db_url
        self.broker = broker
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "platform"), str(ROOT)])
        env["OMP_NUM_THREADS"] = "1"
        env["PLATFORM_VISIBILITY_TIMEOUT"] = "6"  # Redis: redeliver a dead worker's message soon
        for name in ("PLATFORM_DATABASE_URL", "PLATFORM_BROKER_URL", "PLATFORM_DEVICE"):
            env.pop(name, None)
        return env

    def start(self, name: str, queues: str = "cpu,gpu", broker: str | None = None) -> None:
        log = (self.logdir / f"worker-{name}.log").open("wb")
        cmd = [sys.executable, "-m", "matplat", "--db", self.db_url, "--broker",
               broker or self.broker, "--device", "cpu", "worker", "--queues", queues,
               "--concurrency", "1", "--pool", "prefork", "--name", f"{name}@%h",
               "--loglevel", "INFO",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.procs[name] = subprocess.Popen(cmd, cwd=self.logdir, env=self.env(), stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(name)

    def log(self, name: str) -> str:
        return (self.logdir / f"worker-{name}.log").read_text(errors="replace")

    def wait_ready(self, name: str, timeout: float = 90) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if " ready." in self.log(name):
                return
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"worker {name} did not start:\n{self.log(name)[-3000:]}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(name)


class TcpProxy:
    """A TCP relay in front of the broker: ``down()`` drops every connection and refuses new
    ones, as a broker that stopped would; ``up()`` serves again on the same port."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname, parts.port)
        self.port = _free_port()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def url(self, target_url: str) -> str:
        p = urlsplit(target_url)
        netloc = p.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit((p.scheme, f"{netloc[0]}@{host}" if len(netloc) == 2 else host,
                           p.path, p.query, p.fragment))

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.close()
                self._server = None
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


