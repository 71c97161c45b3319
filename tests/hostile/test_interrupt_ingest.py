"""An ingest stopped by Ctrl-C (SIGINT to the whole process group, as a terminal sends it)
or by SIGTERM (to the command alone, as ``kill`` and service managers send it).

The dump arrives on stdin and stalls half-way, so the signal always lands while the ingest
works: both signals must give the one "interrupted" line and nothing else (no
BrokenPipeError from a child), exit 130 or 143, remove the ``matplat-ingest-*`` folder, and
leave a database that a rerun completes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import platform_cmd, platform_env, run_platform


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_ingest_cleans_up(db, sample_dump: Path, workdir: Path,
                                      sig: signal.Signals) -> None:
    tmp = workdir / "tmp"
    tmp.mkdir()
    data = sample_dump.read_bytes()
    proc = subprocess.Popen(platform_cmd("--db", db.url, "ingest", "-"), cwd=workdir,
                            env=platform_env(TMPDIR=str(tmp)), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(data[:len(data) // 2])
    proc.stdin.flush()
    deadline = time.monotonic() + 90
    while not list(tmp.glob("matplat-ingest-*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    time.sleep(1.0)  # the extraction child is reading the stalled stream
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"ingest still running 30 s after {sig.name}")
    text = err.decode(errors="replace")
    assert proc.returncode == 128 + sig, (proc.returncode, text)
    assert text.strip().splitlines() == [
        "interrupted: nothing was half-written; rerun to finish"], text
    assert not list(tmp.iterdir()), "temporary files left behind"
    rerun = run_platform("--db", db.url, "ingest", str(sample_dump), cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr
