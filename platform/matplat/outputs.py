"""Output paths: checked before any work, written with one-line errors.

Every command that writes a file (``ingest --rejects``, ``query --output``, ``export …``,
``models export``, ``models show --plot``) checks its destination with :func:`check_file` or
:func:`check_dir` before it reads or writes the database, so a typo in a path never costs an
ingest or a training run, and never fails after a commit. The check is a real attempt (open
the file for appending, or create a temporary file in the directory), because permission bits
say nothing to root, nor about read-only mounts and pseudo-filesystems such as ``/proc``.
Writing itself goes through :func:`writing`, which turns ``OSError`` (a full device, a file
system that went read-only) into :class:`OutputError` and removes the partial file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from matplat.errors import PlatformError


class OutputError(PlatformError):
    """An output file or directory cannot be written."""


def _reason(e: OSError) -> str:
    if e.strerror:
        return e.strerror
    if e.errno is not None:
        return os.strerror(e.errno)
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def check_file(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Fail now unless ``path`` can be created or appended to; returns it as a Path.

    Leaves no trace: a file created by the check is removed again; an existing file is opened
    for appending and not changed.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{what} {p}: is a directory, expected a file name")
    parent = p.parent
    if not parent.is_dir():
        raise OutputError(
            f"{what} {p}: directory {parent} does not exist" if not parent.exists()
            else f"{what} {p}: {parent} is not a directory"
        )
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
    except OSError as e:
        raise OutputError(f"{what} {p}: cannot write ({_reason(e)})") from None
    if not existed:
        with contextlib.suppress(OSError):
            p.unlink()
    return p


def check_dir(path: str | os.PathLike[str], what: str = "output directory") -> Path:
    """Fail now unless directory ``path`` exists and takes new files, or can be created
    (its nearest existing ancestor takes new files). Creates nothing."""
    p = Path(path)
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{what} {p}: {probe} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".matplat-probe-"):
            pass
    except OSError as e:
        raise OutputError(f"{what} {p}: cannot write in {probe} ({_reason(e)})") from None
    return p


@contextlib.contextmanager
def writing(path: str | os.PathLike[str], what: str = "output") -> Iterator[Path]:
    """Context for writing ``path``: an ``OSError`` inside becomes one :class:`OutputError`
    line and the partial file is removed (a file that existed before is left as it is)."""
    p = Path(path)
    existed = p.exists()
    try:
        yield p
    except OSError as e:
        if not existed:
            with contextlib.suppress(OSError):
                p.unlink()
        raise OutputError(f"{what} {p}: cannot write ({_reason(e)})") from None


def describe_os_error(e: OSError) -> str:
    """One line for an ``OSError`` that escaped to the command line (file name included)."""
    name = e.filename if e.filename is not None else ""
    where = f"{name}: " if name else ""
    return f"{where}{_reason(e)}"
