"""Running :func:`matplat.ingest.oqmd.extract_dump` in a child process.

The loader writes chunks from a thread of the main process while extraction computes the
next ones. Both are Python code, so in one process they take turns on the GIL; in two
processes they run on two cores (with the database server and the reader's parse worker
sharing them). :func:`extract_dump_in_process` yields exactly the chunks ``extract_dump``
would, and raises the same exceptions (pickled across), so callers cannot tell the two
apart except by speed.

Protocol: the child (forked, or ``python -m matplat.ingest.extract_process ARGS``, ARGS a
pickle in hex) writes frames (see :mod:`matplat.ingest.parallel`) to a pipe: ``("progress",
position)``, ``("chunk", MaterialChunk)``, then ``("done", None)`` or ``("error",
exception)``. Its stdin is the caller's, so ``-`` (stdin) works. It ignores Ctrl-C (the
parent handles it and stops the child) and stops when the pipe is closed.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

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
    """:func:`~matplat.ingest.oqmd.extract_dump` in a child process; same chunks, same errors.

    The child starts now (not at the first ``next``): forked, with everything imported,
    when this process runs a single thread on Linux; else a fresh interpreter.
    """
    args = {
        "path": str(path),
        "rule": rule,
        "workdir": str(workdir),
        "limit": limit,
        "chunk_size": chunk_size,
    }
    return _Chunks(_Child(args), progress)


class _Child:
    """The running child: its result stream, and how to stop and reap it."""

    def __init__(self, args: dict[str, Any]) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        if sys.platform.startswith("linux") and threading.active_count() == 1:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: never return into the caller's code
                try:
                    os.close(r)
                    _serve(args, os.fdopen(w, "wb"))
                finally:
                    os._exit(0)  # no cleanup of the parent's objects (database sockets)
            os.close(w)
            self.pid = pid
            self.out: IO[bytes] = os.fdopen(r, "rb")
        else:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "matplat.ingest.extract_process", pickle.dumps(args).hex()],
                stdout=subprocess.PIPE,
                env=env,
            )
            assert self.proc.stdout is not None
            self.out = self.proc.stdout

    def stop(self) -> int:
        """Close the stream, end the child if it still runs, and return its exit status."""
        self.out.close()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
            return self.proc.wait()
        assert self.pid is not None
        done, status = os.waitpid(self.pid, os.WNOHANG)
        if done == 0:
            os.kill(self.pid, signal.SIGTERM)
            _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


class _Chunks:
    """Iterator over the child's chunks. ``close`` stops the child, started or not (an
    unstarted generator would skip its ``finally``)."""

    def __init__(self, child: _Child, progress: Callable[[int], Any] | None) -> None:
        self._child = child
        self._progress = progress
        self._closed = False

    def __iter__(self) -> _Chunks:
        return self

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        try:
            while True:
                frame = read_frame(self._child.out)
                if frame is None:
                    raise RuntimeError(
                        "the extraction process stopped unexpectedly "
                        f"(exit status {self._child.stop()})"
                    )
                kind, value = frame
                if kind == "chunk":
                    return value
                if kind == "progress":
                    if self._progress is not None:
                        self._progress(value)
                elif kind == "error":
                    raise value
                else:
                    raise StopIteration
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._child.stop()


def _serve(args: dict[str, Any], out: IO[bytes]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
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
    _out = os.fdopen(os.dup(1), "wb")
    sys.stdout = sys.stderr  # nothing else may write into the protocol stream
    try:
        _serve(pickle.loads(bytes.fromhex(sys.argv[1])), _out)
        _out.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        # the parent stopped reading (interrupted, or handling an error of its own): leave
        # without a traceback after its "interrupted" line, and without flushing at exit
        os._exit(0)
