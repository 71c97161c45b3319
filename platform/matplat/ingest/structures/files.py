"""Which files an ingest reads, what their structures are called, and the source's name.

Paths may be files, folders (read recursively; files whose format is not recognised by
name or content are skipped) or glob patterns (expanded here when the shell did not).
Names are paths relative to the deepest folder holding every input (a single folder: the
folder itself), so ``runs/*/CONTCAR`` gives ``a/CONTCAR``, ``b/CONTCAR``. The default
source is that folder's name, or the file's name for a single file.

``materials.source`` holds 32 characters and ``source_id`` 64: a default source name is
shortened to 32 (an explicit ``--source`` longer than that is an error), and a longer
structure name keeps its first 47 characters, ``~`` and 16 hex digits of its sha256.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from matplat.errors import InputError
from matplat.ingest.structures.readers import detect_format

__all__ = ["InputFile", "collect", "default_source", "check_source", "stored_name"]

SOURCE_CHARS = 32
NAME_CHARS = 64
_RESERVED = ("oqmd",)


@dataclass(frozen=True)
class InputFile:
    path: Path
    display: str  # relative to the base folder, '/'-separated
    fmt: str | None  # None: detect from content in the parser (explicitly named files)


def _expand(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if not os.path.exists(p) and glob.has_magic(p):
            hits = sorted(glob.glob(p, recursive=True))
            if not hits:
                raise InputError(f"{p}: no file matches the pattern")
            out.extend(Path(h) for h in hits)
        elif not os.path.exists(p):
            raise InputError(f"{p}: no such file or folder")
        else:
            out.append(Path(p))
    return out


def collect(paths: list[str]) -> tuple[list[InputFile], Path, int]:
    """(files to read in name order, the base folder, files skipped as not structures)."""
    inputs = [p.resolve() for p in _expand(paths)]
    if len(inputs) == 1 and inputs[0].is_dir():
        base = inputs[0]
    else:
        parents = [p if p.is_dir() else p.parent for p in inputs]
        base = Path(os.path.commonpath([str(p) for p in parents]))
    files: dict[str, InputFile] = {}
    skipped = 0
    for p in inputs:
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for n in sorted(names):
                    f = Path(root) / n
                    if n.startswith(".") or not f.is_file():
                        continue
                    fmt = detect_format(f)
                    if fmt is None:
                        skipped += 1
                        continue
                    rel = f.relative_to(base).as_posix()
                    files.setdefault(rel, InputFile(f, rel, fmt))
        elif p.is_file():
            rel = p.relative_to(base).as_posix()
            files.setdefault(rel, InputFile(p, rel, None))
    return [files[k] for k in sorted(files)], base, skipped


def default_source(paths: list[str], base: Path) -> str:
    """The folder's name, or the file's name for one file (at most 32 characters)."""
    inputs = _expand(paths)
    if len(inputs) == 1 and inputs[0].is_file():
        name = inputs[0].name
    else:
        name = base.name or "structures"
    return name[:SOURCE_CHARS]


def check_source(name: str) -> str:
    if not name or not name.strip():
        raise InputError("--source: the source name is empty")
    if len(name) > SOURCE_CHARS:
        raise InputError(
            f"--source {name!r}: {len(name)} characters, at most {SOURCE_CHARS} fit "
            "(materials.source)"
        )
    if name in _RESERVED:
        raise InputError(f"--source {name!r} is reserved for the OQMD dump ingest")
    return name


def stored_name(name: str) -> str:
    """``name`` as ``materials.source_id`` (64 characters at most, see the module docstring)."""
    if len(name) <= NAME_CHARS:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: NAME_CHARS - 17]}~{digest}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
