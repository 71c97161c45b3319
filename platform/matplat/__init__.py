"""matplat: a database-backed materials platform (OQMD ingest, CGNN graphs, models, predictions).

``from matplat import Platform`` gives the Python API (:mod:`matplat.api`); it is imported on
first use so that ``import matplat`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Platform", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Platform":
        from matplat.api import Platform

        return Platform
    raise AttributeError(f"module 'matplat' has no attribute {name!r}")
