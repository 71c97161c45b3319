"""Running :func:`matplat.ingest.oqmd.extract_dump` in a child process.

The loader writes chunks from a thread of the main process while extraction computes the
next ones. Both are Python code, so in one process they take turns on the GIL; in two
processes they run on two cores (with the database server and the reader's parse worker
sharing them). :func:`extract_dump_in_process` yields exactly the chunks ``extract_dump``
would, and raises the same exceptions (pickled across), so callers cannot tell the two
apart except by speed.

Protocol: the child, ``python -m matplat.ingest.extract_process ARGS`` (ARGS a pickle in
hex), writes frames (see :mod:`matplat.ingest.parallel`) to its stdout: ``("progress",
position)``, ``("chunk", MaterialChunk)``, then ``("done", None)`` or ``("error",
exception)``. Its stdin is the caller's, so ``-`` (stdin) works. It ignores Ctrl-C (the
parent handles it and stops the child) and stops when its stdout is closed.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from matplat.ingest.parallel import read_frame, write_frame

__all__ = ["extract_dump_in_process"]


def extract_dump_in_process(
    path: str | Path,
    rule: str = "cgnn",
    *,
    workdir: Path | str,
    limit: int | None = None,
    chunk_size: int = 10_000,
    progress: Callable[[int], Any] | None = None,
) -> Iterator[Any]:
    """:func:`~matplat.ingest.oqmd.extract_dump` in a child process; same chunks, same errors."""
    args = {
        "path": str(path),
        "rule": rule,
        "workdir": str(workdir),
        "limit": limit,
        "chunk_size": chunk_size,
    }
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "matplat.ingest.extract_process", pickle.dumps(args).hex()],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    try:
        while True:
            frame = read_frame(proc.stdout)
            if frame is None:
                raise RuntimeError(
                    f"the extraction process stopped unexpectedly (exit status {proc.wait()})"
                )
            kind, value = frame
            if kind == "chunk":
                yield value
            elif kind == "progress":
                if progress is not None:
                    progress(value)
            elif kind == "error":
                raise value
            else:
                return
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.terminate()
        proc.wait()


def _serve(args: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    out = os.fdopen(os.dup(1), "wb")
    sys.stdout = sys.stderr  # nothing else may write into the protocol stream
    from matplat.ingest.oqmd import extract_dump

    last = [-1]

    def progress(position: int) -> None:
        if position != last[0]:
            last[0] = position
            write_frame(out, ("progress", position))

    try:
        for chunk in extract_dump(
            args["path"],
            args["rule"],
            workdir=args["workdir"],
            limit=args["limit"],
            chunk_size=args["chunk_size"],
            progress=progress,
        ):
            write_frame(out, ("chunk", chunk))
    except BrokenPipeError:
        return  # the parent stopped reading: it is handling an error of its own
    except BaseException as exc:  # handed to the parent, which raises it
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - not picklable: send its text
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        try:
            write_frame(out, ("error", exc))
        except BrokenPipeError:
            return
        return
    write_frame(out, ("done", None))


if __name__ == "__main__":
    _serve(pickle.loads(bytes.fromhex(sys.argv[1])))
