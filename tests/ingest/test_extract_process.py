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


@pytest.mark.parametrize("rule", ["cgnn", "oqmd-api"])
def test_same_chunks_and_progress(sample_dump: Path, tmp_path: Path, rule: str) -> None:
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


def test_same_error(sample_dump: Path, tmp_path: Path) -> None:
    import gzip

    raw = gzip.decompress(sample_dump.read_bytes())
    cut = tmp_path / "cut.sql"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DumpFormatError) as here:
        list(extract_dump(cut, workdir=tmp_path))
    with pytest.raises(DumpFormatError) as there:
        list(extract_dump_in_process(cut, workdir=tmp_path))
    assert str(there.value) == str(here.value) and "truncated" in str(there.value)


def test_stopping_early_stops_the_child(sample_dump: Path, tmp_path: Path) -> None:
    gen = extract_dump_in_process(sample_dump, workdir=tmp_path, chunk_size=5)
    next(gen)
    gen.close()  # the consumer gave up (an error of its own, Ctrl-C): no hang, no leftovers


def test_structure_lookup_by_table_or_by_search(
    sample_dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Atoms find their material through a dense table, or by binary search (sparse ids)."""
    import matplat.ingest.oqmd as oqmd

    want = flat(list(extract_dump(sample_dump, workdir=tmp_path, chunk_size=23)))
    monkeypatch.setattr(oqmd, "_LUT_MAX_ID", 0)
    assert flat(list(extract_dump(sample_dump, workdir=tmp_path, chunk_size=23))) == want
