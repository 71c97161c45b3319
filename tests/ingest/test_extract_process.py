"""Extraction in a child process yields the same chunks and raises the same errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matplat.ingest.extract_process import extract_dump_in_process
from matplat.ingest.oqmd import extract_dump
from matplat.ingest.reader import DumpFormatError


def flat(chunks: list) -> list:
    out = []
    for c in chunks:
        for name in c.__dataclass_fields__:
            v = getattr(c, name)
            out.append((name, v.dtype.str, v.tobytes()) if isinstance(v, np.ndarray) else (name, v))
    return out


@pytest.mark.parametrize(("rule", "start"), [("cgnn", "fork"), ("oqmd-api", "spawn")])
def test_same_chunks_and_progress(
    sample_dump: Path, tmp_path: Path, rule: str, start: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplat.ingest.extract_process as ep

    if start == "spawn":  # as when this process runs threads: a fresh interpreter
        monkeypatch.setattr(ep.threading, "active_count", lambda: 2)
    here: list[int] = []
    there: list[int] = []
    want = list(extract_dump(sample_dump, rule, workdir=tmp_path, chunk_size=17, progress=here.append))
    got = list(
        extract_dump_in_process(
            sample_dump, rule, workdir=tmp_path, chunk_size=17, progress=there.append
        )
    )
    assert len(want) > 2 and flat(got) == flat(want)
    assert there[-1] == here[-1] == sample_dump.stat().st_size


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_same_error(
    sample_dump: Path, tmp_path: Path, start: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    import matplat.ingest.extract_process as ep

    if start == "spawn":
        monkeypatch.setattr(ep.threading, "active_count", lambda: 2)

    raw = gzip.decompress(sample_dump.read_bytes())
    cut = tmp_path / "cut.sql"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DumpFormatError) as here:
        list(extract_dump(cut, workdir=tmp_path))
    with pytest.raises(DumpFormatError) as there:
        list(extract_dump_in_process(cut, workdir=tmp_path))
    assert str(there.value) == str(here.value) and "truncated" in str(there.value)


def test_stopping_early_stops_the_child(sample_dump: Path, tmp_path: Path) -> None:
    """The consumer gives up (an error of its own, Ctrl-C), before or after the first
    chunk: the child is stopped and reaped at once, no hang."""
    import os

    for started in (False, True):
        chunks = extract_dump_in_process(sample_dump, workdir=tmp_path, chunk_size=5)
        child = chunks._child  # type: ignore[attr-defined]
        if started:
            next(chunks)
        chunks.close()  # type: ignore[attr-defined]
        assert list(chunks) == []
        if child.pid is not None:
            with pytest.raises(ChildProcessError):
                os.waitpid(child.pid, os.WNOHANG)  # already reaped
        else:
            assert child.proc.poll() is not None


def test_structure_lookup_by_table_or_by_search(
    sample_dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Atoms find their material through a dense table, or by binary search (sparse ids)."""
    import matplat.ingest.oqmd as oqmd

    want = flat(list(extract_dump(sample_dump, workdir=tmp_path, chunk_size=23)))
    monkeypatch.setattr(oqmd, "_LUT_MAX_ID", 0)
    assert flat(list(extract_dump(sample_dump, workdir=tmp_path, chunk_size=23))) == want


def test_cli_with_the_child_process(
    sample_dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`platform ingest` of a large dump goes through the child process: same outcome."""
    import gzip

    from click.testing import CliRunner
    from sqlalchemy import create_engine, text

    import matplat.cli.ingest as cli_ingest
    from matplat.cli import cli

    monkeypatch.setattr(cli_ingest, "_CHILD_MIN_BYTES", 0)
    plain = tmp_path / "d.sql"
    plain.write_bytes(gzip.decompress(sample_dump.read_bytes()))
    url = f"sqlite:///{tmp_path / 'x.db'}"
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", url, "db", "upgrade"]).exit_code == 0
    cut = tmp_path / "cut.sql"
    cut.write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    r = runner.invoke(cli, ["--db", url, "ingest", str(cut)])
    assert r.exit_code == 1 and "truncated" in r.output and "cut.sql" in r.output
    r = runner.invoke(cli, ["--db", url, "ingest", str(plain)])
    assert r.exit_code == 0, r.output
    n = sum(len(c) for c in extract_dump(plain, workdir=tmp_path))
    with create_engine(url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM materials")).scalar_one() == n
        sha = conn.execute(text("SELECT sha256 FROM ingest_runs")).scalar_one()
    import hashlib

    assert sha == hashlib.sha256(plain.read_bytes()).hexdigest()
    r = runner.invoke(cli, ["--db", url, "ingest", str(plain)])
    assert "already ingested" in r.output
