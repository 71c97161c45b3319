"""A second process that parses INSERT bodies for the dump reader, on the second core.

The reader cuts the dump into jobs (the bodies of consecutive INSERT statements of one
table, ~8 MB) in file order. Parsing a job (the Arrow tier of :mod:`matplat.ingest.values`)
is ~90 % of the reader's work, and Arrow's CSV parser is fastest single-threaded here, so
the reader keeps up to two jobs at a :class:`ParseWorker` (a child process running
``python -m matplat.ingest.parallel``) and parses the others itself; results are used in
file order. For a plain file the child reads the bodies itself (``os.pread`` at their
offsets: nothing is copied through the pipe); otherwise they are sent.

The child only ever runs the Arrow tier. When it declines (the tier is not provably exact
for a body), fails or dies, the reader parses that job itself with every tier, so results
and error messages are exactly those of the single-process reader.

Protocol on the child's stdin/stdout: frames of an 8-byte little-endian length and a pickle.
Requests ``(job id, (table, columns, kinds, wanted), source)`` with source ``("file", path,
[(offset, length), ...])`` or ``("bytes", [body, ...])``; replies ``(job id, result)``,
result ``(columns, rows per body)`` or None; the first reply is ``("ready", None)``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import IO, Any

__all__ = ["ParseWorker", "read_frame", "write_frame"]

_LEN = struct.Struct("<Q")


def write_frame(out: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_LEN.pack(len(data)))
    out.write(data)
    out.flush()


def read_frame(inp: IO[bytes]) -> Any:
    head = inp.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    data = inp.read(n)
    if len(data) < n:
        return None
    return pickle.loads(data)


class ParseWorker:
    """The parent's handle on the child: submit jobs, wait for their results in any order."""

    def __init__(self) -> None:
        # Fork when this process runs a single thread (the extraction child reading a plain
        # file): the child starts at once with everything imported. Otherwise (threads, or
        # not Linux: macOS frameworks are not fork-safe) start a fresh interpreter.
        if sys.platform.startswith("linux") and threading.active_count() == 1:
            jobs_r, jobs_w = os.pipe()
            results_r, results_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child
                try:
                    os.close(jobs_w)
                    os.close(results_r)
                    os.dup2(2, 1)  # the parent's stdout may be a protocol stream of its own
                    _serve(os.fdopen(jobs_r, "rb"), os.fdopen(results_w, "wb"))
                finally:
                    os._exit(0)
            os.close(jobs_r)
            os.close(results_w)
            self._pid: int | None = pid
            self._proc: subprocess.Popen[bytes] | None = None
            self._in = os.fdopen(jobs_w, "wb")
            self._out = os.fdopen(results_r, "rb")
        else:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
            env.setdefault("OMP_NUM_THREADS", "1")
            self._pid = None
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "matplat.ingest.parallel"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._in = self._proc.stdin
            self._out = self._proc.stdout
        self._results: dict[int, Any] = {}
        self._cond = threading.Condition()
        self._ready = False
        self._dead = False
        self._next = 0
        self._outbox: queue.Queue[Any] = queue.Queue()
        self._sender = threading.Thread(
            target=self._send_loop, name="matplat-parse-send", daemon=True
        )
        self._receiver = threading.Thread(
            target=self._receive_loop, name="matplat-parse-recv", daemon=True
        )
        self._sender.start()
        self._receiver.start()

    # -- threads of the parent ----------------------------------------------------------
    def _send_loop(self) -> None:
        stdin = self._in
        try:
            while (item := self._outbox.get()) is not None:
                write_frame(stdin, item)
        except (OSError, ValueError):
            pass  # the child died: the receiver marks every job failed
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _receive_loop(self) -> None:
        stdout = self._out
        try:
            while (frame := read_frame(stdout)) is not None:
                job, result = frame
                with self._cond:
                    if job == "ready":
                        self._ready = True
                    else:
                        self._results[job] = result
                    self._cond.notify_all()
        except Exception:  # noqa: BLE001 - a broken child only costs speed
            pass
        with self._cond:
            self._dead = True
            self._cond.notify_all()

    # -- API -------------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """Started (its imports done) and alive."""
        return self._ready and not self._dead

    def wait_ready(self) -> bool:
        """Wait until the child has started; False if it died instead."""
        with self._cond:
            while not self._ready and not self._dead:
                self._cond.wait()
            return not self._dead

    def submit(self, shape: Any, source: tuple) -> int:
        job = self._next
        self._next += 1
        spec = (shape.name, shape.columns, shape.kinds, shape.wanted)
        self._outbox.put((job, spec, source))
        return job

    def done(self, job: int) -> bool:
        with self._cond:
            return job in self._results or self._dead

    def result(self, job: int) -> Any:
        """The job's ``(columns, counts)``, or None: declined, failed, or the child died."""
        with self._cond:
            while job not in self._results and not self._dead:
                self._cond.wait()
            return self._results.pop(job, None)

    def close(self) -> None:
        self._outbox.put(None)  # the child ends when its input ends
        self._sender.join(timeout=5)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        else:
            assert self._pid is not None
            for _ in range(500):
                if os.waitpid(self._pid, os.WNOHANG) != (0, 0):
                    break
                time.sleep(0.01)
            else:
                os.kill(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
        self._receiver.join(timeout=5)
        self._out.close()

    def kill(self) -> None:
        """Stop the child at once (tests: a worker dying in the middle)."""
        if self._proc is not None:
            self._proc.kill()
        elif self._pid is not None:
            os.kill(self._pid, signal.SIGKILL)


# -- the child -------------------------------------------------------------------------------
def _serve(inp: IO[bytes], out: IO[bytes]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from matplat.ingest.values import TableShape, parse_arrow

    shapes: dict[tuple, TableShape] = {}
    files: dict[str, int] = {}
    write_frame(out, ("ready", None))
    while (frame := read_frame(inp)) is not None:
        job, spec, source = frame
        result = None
        try:
            name, columns, kinds, wanted = spec
            key = (name, tuple(columns), tuple(kinds), tuple(wanted))
            shape = shapes.get(key)
            if shape is None:
                shape = shapes[key] = TableShape(name, list(columns), list(kinds), list(wanted))
            if source[0] == "file":
                fd = files.get(source[1])
                if fd is None:
                    fd = files[source[1]] = os.open(source[1], os.O_RDONLY)
                bodies = [os.pread(fd, length, offset) for offset, length in source[2]]
                if any(len(b) != length for b, (_, length) in zip(bodies, source[2], strict=True)):
                    bodies = None
            else:
                bodies = source[1]
            if bodies is not None:
                result = parse_arrow(shape, bodies)
        except Exception:  # noqa: BLE001 - the parent re-parses and reports
            result = None
        write_frame(out, (job, result))


if __name__ == "__main__":
    _out = os.fdopen(os.dup(1), "wb")
    sys.stdout = sys.stderr  # nothing else may write into the protocol stream
    try:
        _serve(sys.stdin.buffer, _out)
        _out.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        # the parent stopped reading (interrupted, or handling an error of its own): leave
        # without a traceback after its "interrupted" line, and without flushing at exit
        os._exit(0)
