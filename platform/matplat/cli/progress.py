"""Progress bars for the CLI (library code reports through callbacks; only the CLI draws)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def byte_bar(total: int | None, desc: str) -> Iterator[Callable[[int], None]]:
    """A bar over bytes (rate and ETA); yields ``update(position)`` taking the absolute offset."""
    bar = tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
        disable=None,
    )  # disabled automatically when stderr is not a terminal

    def update(position: int) -> None:
        if position > bar.n:
            bar.update(position - bar.n)

    try:
        yield update
    finally:
        bar.close()


@contextmanager
def count_bar(total: int | None, desc: str, unit: str = "it") -> Iterator[tqdm]:
    """A bar over items (structures, predictions, epochs) with rate and ETA."""
    bar = tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
        disable=None,
    )
    try:
        yield bar
    finally:
        bar.close()
