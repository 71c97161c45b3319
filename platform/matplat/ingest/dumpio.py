"""Opening a dump: plain, gzip (also bzip2 and xz) or stdin, with decompression in a thread.

Decompression runs in a background thread that fills a bounded queue, so that the parser
(the main thread) and inflate (zlib, bz2 and lzma release the GIL while they work) overlap
on two cores; see ``bench/parse.py`` for the measured gain. The format is sniffed from the
first bytes, not from the file name, so ``dump.sql`` that is really gzip, or a gzip stream
on stdin, both work. Memory stays bounded: the queue holds at most ``depth`` pieces of at
most ``piece`` bytes each, whatever the compression ratio.
"""

from __future__ import annotations

import bz2
import contextlib
import io
import lzma
import os
import queue
import sys
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from matplat.errors import InputError

__all__ = ["DumpFormatError", "open_dump", "source_position", "sniff_stream"]

_GZIP_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_READ_SIZE = 1 << 20  # compressed bytes per read in the decompression thread
_PIECE = 1 << 20  # decompressed bytes per queue item (bounds memory for any ratio)
_DEPTH = 16  # queue length: at most ~16 MiB decompressed ahead of the parser


class DumpFormatError(InputError):
    """A dump is truncated, corrupt, or not a mysqldump file.

    The message names the file, the byte offset, the table and row where known, and what
    was expected there.
    """


class _EndOfStream:
    pass


_END = _EndOfStream()


class ThreadedDecompressor(io.RawIOBase):
    """A readable binary stream that inflates ``raw`` in a background thread.

    ``source_position`` is the number of compressed bytes behind the data handed out so far,
    which is what a progress bar should compare with the file size.
    """

    def __init__(
        self,
        raw: IO[bytes],
        kind: str,
        name: str,
        *,
        prefix: bytes = b"",
        close_raw: bool = True,
    ) -> None:
        super().__init__()
        self._close_raw = close_raw
        self.name = name
        self.kind = kind
        self.source_position = 0
        self._raw = raw
        self._prefix = prefix
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_DEPTH)
        self._stop = threading.Event()
        self._pending = b""
        self._done = False
        self._thread = threading.Thread(
            target=self._run, name=f"matplat-{kind}-inflate", daemon=True
        )
        self._thread.start()

    # -- producer (background thread) ---------------------------------------------
    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _new(self) -> Any:
        if self.kind == "gzip":
            return zlib.decompressobj(wbits=31)
        if self.kind == "bzip2":
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor()

    def _run(self) -> None:
        try:
            self._inflate()
        except BaseException as exc:  # handed to the reading thread, which raises it
            self._put(exc)
        else:
            self._put(_END)

    def _inflate(self) -> None:
        d = self._new()
        pos = 0
        fed = False  # bytes fed to the current member/stream
        first = True
        while not self._stop.is_set():
            if first and self._prefix:
                data, first = self._prefix, False
            else:
                first = False
                data = self._raw.read(_READ_SIZE)
            if not data:
                if fed and not d.eof:
                    raise EOFError(
                        f"the data ends before its end-of-stream marker (after {pos} "
                        f"compressed bytes): the file is truncated"
                    )
                return
            pos += len(data)
            buf = data
            while True:
                if self.kind == "gzip":
                    out = d.decompress(buf, _PIECE)
                    fed = True
                    if out and not self._put((out, pos)):
                        return
                    if d.eof:
                        rest = d.unused_data
                        if not rest.strip(b"\x00"):
                            fed = False
                            d = self._new()
                            break
                        d, buf, fed = self._new(), rest, False
                        continue
                    buf = d.unconsumed_tail
                    if not buf and len(out) < _PIECE:
                        break
                else:
                    out = d.decompress(buf, _PIECE)
                    buf = b""
                    fed = True
                    if out and not self._put((out, pos)):
                        return
                    if d.eof:
                        rest = d.unused_data
                        d, fed = self._new(), False
                        if not rest:
                            break
                        buf = rest
                        continue
                    if d.needs_input:
                        break

    # -- consumer -----------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while True:
                piece = self.read(_PIECE)
                if not piece:
                    return b"".join(parts)
                parts.append(piece)
        out: list[bytes] = []
        have = 0
        if self._pending:
            take = self._pending[:size]
            self._pending = self._pending[size:]
            out.append(take)
            have = len(take)
        while have < size and not self._done:
            item = self._queue.get()
            if item is _END:
                self._done = True
                break
            if isinstance(item, BaseException):
                self._done = True
                if isinstance(item, (EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)):
                    raise DumpFormatError(
                        f"{self.name}: corrupt or truncated {self.kind} data near compressed "
                        f"byte {self.source_position}: {item}"
                    ) from item
                raise item
            data, pos = item
            self.source_position = pos
            need = size - have
            if len(data) > need:
                self._pending = data[need:]
                data = data[:need]
            out.append(data)
            have += len(data)
        return b"".join(out)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            while self._thread.is_alive():
                with contextlib.suppress(queue.Empty):  # unblock a producer on a full queue
                    self._queue.get(timeout=0.05)
            self._thread.join()
            if self._close_raw:
                self._raw.close()
        super().close()


class _Prefixed(io.RawIOBase):
    """``prefix`` followed by the rest of ``stream`` (for streams that cannot peek)."""

    def __init__(self, prefix: bytes, stream: IO[bytes], close_raw: bool = True) -> None:
        super().__init__()
        self._prefix = prefix
        self._stream = stream
        self._close_raw = close_raw

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                data, self._prefix = self._prefix + self._stream.read(), b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            if len(data) < size:
                data += self._stream.read(size - len(data)) or b""
            return data
        return self._stream.read(size) or b""

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._close_raw and not self.closed:
            self._stream.close()
        super().close()


def _compression_of(head: bytes) -> str | None:
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_BZ2_MAGIC) and len(head) >= 4 and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return None


class _Unclosable(io.RawIOBase):
    """A view of a stream whose ``close`` leaves the stream open (stdin, a caller's file)."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self._stream = stream
        self.name = getattr(stream, "name", "<stream>")

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size) or b""

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def sniff_stream(stream: IO[bytes], name: str, *, close_raw: bool = True) -> IO[bytes]:
    """Return a stream of the decompressed bytes of ``stream`` (itself when plain).

    With ``close_raw=False`` closing the returned stream leaves ``stream`` open.
    """
    peek: Callable[[int], bytes] | None = getattr(stream, "peek", None)
    prefix = b""
    if peek is not None:
        try:
            head = peek(8)[:8]
        except (OSError, ValueError):
            head = b""
            peek = None
    if peek is None:
        prefix = stream.read(8) or b""
        head = prefix
    kind = _compression_of(head)
    if kind == "zstd":
        raise DumpFormatError(
            f"{name}: zstd-compressed; decompress it first (zstd -dc {name} | ...)"
        )
    if kind is None:
        if prefix:
            return _Prefixed(prefix, stream, close_raw)
        return stream if close_raw else _Unclosable(stream)
    return ThreadedDecompressor(stream, kind, name, prefix=prefix, close_raw=close_raw)


def open_dump(path: str | os.PathLike[str]) -> tuple[IO[bytes], int | None]:
    """Open a dump for reading: ``(binary stream of SQL text, file size or None)``.

    ``path`` is a ``.sql`` file, a gzip/bzip2/xz-compressed one (recognised by its first
    bytes), or ``-`` for stdin (size None). The size is that of the file on disk, i.e. the
    compressed size for a compressed dump, matching what :func:`source_position` reports.
    """
    if str(path) == "-":
        raw: IO[bytes] = sys.stdin.buffer
        return sniff_stream(raw, "<stdin>", close_raw=False), None
    p = Path(path)
    try:
        fh = open(p, "rb", buffering=_READ_SIZE)  # noqa: SIM115 - handed to the caller
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, not a dump file") from None
    size = os.fstat(fh.fileno()).st_size
    try:
        return sniff_stream(fh, str(p)), size
    except BaseException:
        fh.close()
        raise


def source_position(stream: IO[bytes], consumed: int) -> int:
    """Bytes of the underlying file behind the first ``consumed`` decompressed bytes."""
    pos = getattr(stream, "source_position", None)
    return consumed if pos is None else int(pos)
