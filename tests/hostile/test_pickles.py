"""CGNN data-set folders whose pickles would run code must be refused, and never run it.

A folder for ``platform ingest DIR`` is downloaded data. Its ``graph_data.npz`` holds a pickle;
these tests plant pickles that call ``os.system`` (and other callables) through
``__reduce__`` and check that nothing runs, that the command exits with one line naming the
file, and that the database is untouched. A hand-written Python 2 pickle of the reference
format, and numpy's own protocols 2-5, still load.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from ml.safe_pickle import UnsafePickleError, load_npz_member

from .conftest import assert_one_line_error, run_platform


class _Shell:
    """Unpickling this runs a shell command (the attack)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (self.command,))


class _Eval:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (eval, ("__import__('pathlib').Path('PWNED_EVAL').touch()",))


def _folder(path: Path, graphs: object, *, raw_npy: bytes | None = None) -> Path:
    """A CGNN data-set folder with ``graphs`` pickled as graph_dict (or a raw .npy member)."""
    path.mkdir()
    if raw_npy is None:
        holder = np.empty((), dtype=object)
        holder[()] = graphs
        np.savez_compressed(path / "graph_data.npz", graph_dict=holder)
    else:
        with zipfile.ZipFile(path / "graph_data.npz", "w") as z:
            z.writestr("graph_dict.npy", raw_npy)
    (path / "config.json").write_text(json.dumps(
        {"atomic_numbers": [8, 11], "node_vectors": np.eye(2).tolist()}))
    pd.DataFrame({"name": ["hold-1"], "formula": ["NaO"]}).to_csv(path / "targets.csv",
                                                                  index=False)
    return path


def _npy_of_pickle(payload: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    return buf.getvalue() + payload


def _count_graphs(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM crystal_graphs")).scalar_one())


@pytest.mark.parametrize("payload", ["reduce", "eval", "nested", "raw-global"])
def test_code_in_graph_dict_never_runs(db, tmp_path: Path, workdir: Path, payload: str) -> None:
    marker = workdir / "PWNED"
    if payload == "reduce":
        folder = _folder(tmp_path / "evil", {"hold-1": _Shell(f"touch {marker}")})
    elif payload == "eval":
        folder = _folder(tmp_path / "evil", {"hold-1": _Eval()})
        marker = workdir / "PWNED_EVAL"
    elif payload == "nested":  # deep inside an otherwise valid graph entry
        folder = _folder(tmp_path / "evil", {"hold-1": ([0, 1], [np.array([1]),
                                                                 [_Shell(f"touch {marker}")]])})
    else:  # a bare pickle (not an ndarray) naming posix.system with a protocol-0 GLOBAL
        folder = _folder(tmp_path / "evil", None, raw_npy=_npy_of_pickle(
            b"cposix\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."))
    proc = run_platform("--db", db.url, "ingest", str(folder), cwd=workdir)
    assert not marker.exists(), "the pickle ran code"
    line = assert_one_line_error(proc, str(folder / "graph_data.npz"), "refusing")
    assert "system" in line or "eval" in line
    assert _count_graphs(db.engine) == 0


def test_codecs_encode_admitted_only_for_latin1(tmp_path: Path) -> None:
    """Protocol-2 pickles spell bytes as ``_codecs.encode(text, 'latin1')``; nothing else."""
    evil = _npy_of_pickle(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00"
                          b"hex_\x86R.")
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("graph_dict.npy", evil)
    with pytest.raises(UnsafePickleError):
        load_npz_member(path, "graph_dict")


# --- what must still load -------------------------------------------------------------------

def _g(module: bytes, name: bytes) -> bytes:
    return b"c" + module + b"\n" + name + b"\n"


def _s(data: bytes) -> bytes:  # a Python 2 str: SHORT_BINSTRING
    return b"U" + bytes([len(data)]) + data


def _i(n: int) -> bytes:
    return b"K" + bytes([n])


def _py2_dtype(code: bytes, order: bytes, flags: int) -> bytes:
    return (_g(b"numpy", b"dtype") + _s(code) + _i(0) + _i(1) + b"\x87R("
            + _i(3) + _s(order) + b"NNN" + b"J\xff\xff\xff\xff" * 2 + _i(flags) + b"tb")


def _py2_array(values: list[int]) -> bytes:
    """What numpy under Python 2 wrote for an int64 vector: _reconstruct + raw str data."""
    return (_g(b"numpy.core.multiarray", b"_reconstruct") + _g(b"numpy", b"ndarray")
            + _i(0) + b"\x85" + _s(b"b") + b"\x87R(" + _i(1) + _i(len(values)) + b"\x85"
            + _py2_dtype(b"i8", b"<", 0) + b"\x89"
            + _s(struct.pack(f"<{len(values)}q", *values)) + b"tb")


def _py2_graph_dict() -> bytes:
    """A 0-d object array holding {'hold-1': ([0, 1], [array([1]), array([0, 200])])}."""
    graphs = (b"}" + _s(b"hold-1") + b"](" + _i(0) + _i(1) + b"e"
              + b"](" + _py2_array([1]) + _py2_array([0, 200]) + b"e\x86s")
    return (b"\x80\x02" + _g(b"numpy.core.multiarray", b"_reconstruct")
            + _g(b"numpy", b"ndarray") + _i(0) + b"\x85" + _s(b"b") + b"\x87R("
            + _i(1) + b")" + _py2_dtype(b"O8", b"|", 63) + b"\x89]q\x00" + graphs
            + b"atb.")


def test_python2_reference_pickle_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "py2.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("graph_dict.npy", _npy_of_pickle(_py2_graph_dict()))
    # the crafted file is what numpy itself reads as a Python 2 pickle
    with np.load(path, allow_pickle=True, encoding="latin1") as ref:
        expected = ref["graph_dict"].item()
    got = load_npz_member(path, "graph_dict").item()
    assert list(got) == list(expected) == ["hold-1"]
    nodes, neighbors = got["hold-1"]
    assert nodes == [0, 1]
    assert [a.tolist() for a in neighbors] == [[1], [0, 200]]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickles_of_every_protocol_load(tmp_path: Path, protocol: int) -> None:
    graphs = {b"a-1": ([1, 2], [np.array([1], np.int64), np.array([0, 0], np.int32)]),
              "a-2": ((3,), [np.float32(1.5), np.int64(7), True, None, 2.5, "x", b"\xff"])}
    holder = np.empty((), dtype=object)
    holder[()] = graphs
    buf = io.BytesIO()
    pickle.dump(holder, buf, protocol=protocol)
    path = tmp_path / "p.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("graph_dict.npy", _npy_of_pickle(buf.getvalue()))
    got = load_npz_member(path, "graph_dict").item()
    assert got.keys() == graphs.keys()
    assert [a.tolist() for a in got[b"a-1"][1]] == [[1], [0, 0]]
    assert got["a-2"][1][:2] == [np.float32(1.5), np.int64(7)]
    assert got["a-2"][1][2:] == [True, None, 2.5, "x", b"\xff"]


def test_plain_arrays_load_without_pickle(tmp_path: Path) -> None:
    path = tmp_path / "plain.npz"
    arr = np.arange(12, dtype="<f4").reshape(3, 4)
    np.savez(path, a=arr, f=np.asfortranarray(arr))
    assert np.array_equal(load_npz_member(path, "a"), arr)
    assert np.array_equal(load_npz_member(path, "f"), arr)
    with pytest.raises(KeyError):
        load_npz_member(path, "graph_dict")
