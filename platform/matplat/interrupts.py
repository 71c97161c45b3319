"""Ctrl-C and SIGTERM, one way: both raise :class:`KeyboardInterrupt` and are remembered.

The CLI installs :func:`install` once; then a ``kill`` (SIGTERM, what service managers and
``timeout`` send) unwinds the process like Ctrl-C does: open transactions roll back, temporary
folders are removed, the one "interrupted" line is printed and the exit code says which
signal it was (130 for SIGINT, 143 for SIGTERM). Code that waits inside a database driver
reads :func:`requested` to tell an interrupted statement from a failed one.
"""

from __future__ import annotations

import signal
from types import FrameType

_requested: list[int] = []


def _handler(signum: int, _frame: FrameType | None) -> None:
    _requested.append(signum)
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT and SIGTERM to :class:`KeyboardInterrupt` (main thread only)."""
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def requested() -> int | None:
    """The first signal received since :func:`install`, or ``None``."""
    return _requested[0] if _requested else None


def exit_code() -> int:
    """The shell's exit code for the signal that stopped the process (130 by default)."""
    return 128 + (requested() or signal.SIGINT)
