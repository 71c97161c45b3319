"""Helpers for hostile-input tests: the real ``platform`` command in a subprocess.

Hostile inputs are tested the way an attacker or a careless user meets the platform: a real
process, its exit code, its stderr and what it left behind (files, database rows, server
sessions). ``platform_cmd`` builds the command line; ``run_platform`` runs it to the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def platform_env(**extra: str) -> dict[str, str]:
    """The environment of a child ``platform``: this checkout's code, one thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "platform"), str(ROOT)])
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def platform_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "matplat", *args]


def run_platform(*args: str, cwd: Path, timeout: float = 120,
                 **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``platform ARGS`` to its end and return its exit code and output."""
    return subprocess.run(platform_cmd(*args), cwd=cwd, env=platform_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Non-zero exit, no traceback, one ``error:`` line on stderr holding every fragment."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d
