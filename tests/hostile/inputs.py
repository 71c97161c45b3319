"""Hostile and careless inputs for the hardening tests: damaged dumps, model exports with
garbage weights, garbled data-set folders, full and read-only file systems."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: Column of structures.volume in the qmdb ``structures`` table (0-based).
_VOLUME_COL = 19


def read_dump(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def structures_rows(sql: bytes) -> list[tuple[int, int, int]]:
    """(start, end, entry_id) of every row of the `structures` INSERTs (values only)."""
    out = []
    for stmt in re.finditer(rb"INSERT INTO `structures` VALUES (.*?);\n", sql, re.DOTALL):
        body_start = stmt.start(1)
        for row in re.finditer(rb"\(([^()]*)\)", stmt.group(1)):
            fields = row.group(1).split(b",")
            out.append((body_start + row.start(1), body_start + row.end(1), int(fields[1])))
    return out


def with_structure_volume(sql: bytes, volumes: dict[int, bytes]) -> bytes:
    """The dump with structures.volume of every structure of the given entries replaced."""
    pieces = []
    last = 0
    for start, end, entry in structures_rows(sql):
        if entry not in volumes:
            continue
        fields = sql[start:end].split(b",")
        fields[_VOLUME_COL] = volumes[entry]
        pieces += [sql[last:start], b",".join(fields)]
        last = end
    pieces.append(sql[last:])
    return b"".join(pieces)


def with_bad_prototype(sql: bytes) -> bytes:
    """The dump with one entries.prototype_id holding bytes that are not UTF-8."""
    m = re.search(rb"INSERT INTO `entries` VALUES .*?,'([A-Za-z0-9]+)'\)", sql)
    assert m is not None, "no prototype_id in the sample dump"
    return sql[: m.start(1)] + b"Na\xff\xfe" + sql[m.end(1):]


def export_zip(path: Path, weights: bytes, tag: str = "imported") -> Path:
    """A model export (format, metadata, matching sha256) whose weights are ``weights``."""
    meta = {"format": "matplat-model-v1", "tag": tag, "name": "cgnn", "preset": "no-edgenet",
            "status": "ready", "hyperparameters": {}, "targets": ["formation_energy"],
            "data_snapshot_hash": "0" * 64, "code_version": "test", "seed": 1,
            "ensemble_size": 1, "n_parameters": 1, "metrics": {},
            "artifact_sha256": hashlib.sha256(weights).hexdigest(), "graph_recipe": None}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model.json", json.dumps(meta))
        z.writestr("weights.bin", weights)
    return path


def garbage_weights() -> dict[str, bytes]:
    """Weights that are not a matplat model, each readable as far as its kind allows."""
    import torch

    def saved(obj: object) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    return {
        "random-bytes": b"\x00\x01weights\xff" * 10,
        "empty": b"",
        "other-torch-object": saved({"hello": torch.zeros(3)}),
        "ensemble-of-garbage": saved({"format": "matplat-ensemble-v1", "members": [b"junk"]}),
        "ensemble-without-members": saved({"format": "matplat-ensemble-v1", "members": []}),
    }


def dataset_folder(directory: Path, *, config: bytes | None = None,
                   targets: bytes | None = None, split: bytes | None = None) -> Path:
    """A small CGNN reference-format folder (two graphs), with any file replaced."""
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    graphs = {"extra-1": ([0, 1], [np.array([1]), np.array([0])]),
              "extra-2": ([2, 2], [np.array([1]), np.array([0])])}
    holder = np.empty((), dtype=object)
    holder[()] = graphs
    np.savez_compressed(directory / "graph_data.npz", graph_dict=holder)
    (directory / "config.json").write_bytes(config if config is not None else json.dumps(
        {"atomic_numbers": [1, 3, 8], "node_vectors": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}
    ).encode())
    (directory / "targets.csv").write_bytes(
        targets if targets is not None else b"name,formation_energy_per_atom\nextra-1,-1.0\n"
        b"extra-2,-2.0\n")
    if split is not None:
        (directory / "split.json").write_bytes(split)
    return directory


@contextmanager
def tiny_filesystem(directory: Path, size: str = "4k") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``directory`` (needs root; skips otherwise)."""
    directory.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'not root'})")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path) -> None:
    """Fill a (small) file system completely."""
    try:
        with open(directory / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass


def one_error_line(output: str) -> str:
    """The single ``error:`` line of a command's output (fails on a traceback or more)."""
    assert "Traceback" not in output, output
    lines = [ln for ln in output.splitlines() if ln.lower().startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


Mutator = Callable[[bytes], bytes]
