"""Helpers of the serve tests: a ``platform serve`` subprocess on a free 127.0.0.1 port.

In a module of its own (not conftest.py) so that test modules import it by a unique name.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from dbutil import TestDatabase

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    db: TestDatabase
    base: str  # http://127.0.0.1:PORT
    log: Path

    @property
    def optimade(self) -> str:
        return f"{self.base}/optimade/v1"

    def get(self, path: str, **params: object) -> requests.Response:
        return requests.get(self.base + path, params=params or None, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, log: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """``platform serve`` in a subprocess; returns it and its base URL once it answers."""
    port = free_port()
    env = dict(os.environ)
    paths = [str(ROOT / "platform"), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    out = log.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "matplat", "--db", url, "serve", "--port", str(port), *args],
        stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"platform serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            if requests.get(base + "/optimade/v1/info", timeout=2).status_code == 200:
                return proc, base
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"platform serve did not answer:\n{log.read_text()}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
