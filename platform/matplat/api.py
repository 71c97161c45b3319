"""The Python API for notebooks: :class:`Platform`, the CLI's functions behind methods.

    from matplat import Platform
    p = Platform("postgresql+psycopg://me@dbhost/matplat")   # default: the settings
    p.ingest("relaxed/", source="group")                     # files, folders, globs, objects
    df = p.predict(structures, model="v3")                   # pandas.DataFrame, one row each
    structures = p.structures(where="m.natoms <= 8", source="group")   # pymatgen Structures
    p.query("SELECT formula, band_gap FROM material_properties WHERE band_gap > :g", g=1.0)
    p.models()

Every method calls the function the matching command calls (``platform ingest``,
``platform predict --structures``, ``platform export structures``, ``platform query``,
``platform models list``); nothing here is a second implementation. Wherever a structure
goes in, a path (str or ``os.PathLike``), a pymatgen ``Structure`` or
``ComputedStructureEntry``, an ASE ``Atoms``, a list of any of these, or a dict of name →
object is accepted. Importing this module loads nothing heavy (no torch, no pymatgen):
each method imports what it needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Platform"]


def _split(items: Any) -> tuple[list[str], list[tuple[str | None, Any]], list[int] | None]:
    """(paths, (name, object) pairs, material ids) of what a caller passed."""
    if isinstance(items, str | os.PathLike) or not isinstance(items, Iterable | Mapping):
        items = [items]
    if isinstance(items, Mapping):
        return [], [(str(k), v) for k, v in items.items()], None
    items = list(items)
    if items and all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        return [], [], [int(i) for i in items]
    paths = [os.fspath(i) for i in items if isinstance(i, str | os.PathLike)]
    objects = [(None, i) for i in items if not isinstance(i, str | os.PathLike)]
    return paths, objects, None


class Platform:
    """One database (``database_url``, default: ``PLATFORM_DATABASE_URL`` or the SQLite file)
    and device (``device``, default ``PLATFORM_DEVICE``)."""

    def __init__(self, database_url: str | None = None, *, device: str | None = None) -> None:
        from matplat.config import load_settings

        self.settings = load_settings(database_url=database_url, device=device)
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine; the schema must be at head (``platform db upgrade``)."""
        if self._engine is None:
            from matplat.db.session import ensure_current, get_engine

            self._engine = get_engine(self.settings.database_url)
            ensure_current(self._engine)
        return self._engine

    def ingest(self, structures: Any, *, source: str | None = None,
               properties: str | None = None, strict: bool = False) -> Any:
        """Structures in as materials of ``source`` (as ``platform ingest``); returns the
        summary (``.material_ids``: name → material id, ``.rejects``, ``.load`` counts)."""
        from matplat.ingest.structures.ingest import ingest_structures

        paths, objects, ids = _split(structures)
        if ids is not None:
            raise TypeError("ingest takes structures or paths, not material ids")
        if source is None and objects and not paths:
            source = "python"
        return ingest_structures(self.engine, paths, objects=objects, source=source,
                                 properties=properties, strict=strict)

    def predict(self, structures: Any, model: str = "v3", *, source: str | None = None) -> Any:
        """Predictions of model ``model`` (a tag, else an alias) as a DataFrame, one row per
        structure (as ``platform predict --structures``); material ids predict stored ones."""
        from matplat.errors import NotFoundError
        from matplat.services import registry
        from workers.structures_predict import predict_structures

        paths, objects, ids = _split(structures)
        if source is None and objects and not paths:
            source = "python"
        kw: dict[str, Any] = {"paths": paths, "objects": objects, "ids": ids, "source": source,
                              "device": self.settings.device}
        try:
            registry.artifact_bytes(self.engine, model, None)
            which = {"tag": model}
        except NotFoundError:
            which = {"alias": model}
        return predict_structures(self.engine, **which, **kw).table

    def structures(self, where: str | None = None, source: str | None = None) -> list[Any]:
        """Stored structures as pymatgen ``Structure`` s (DFT values and ids in
        ``.properties``); ``where`` is a SQL condition on ``materials m``."""
        from matplat.services.structures import select_structures, to_pymatgen

        return [to_pymatgen(s) for s in select_structures(self.engine, source=source,
                                                          where=where)]

    def query(self, sql: str, **params: Any) -> Any:
        """A read-only SQL statement with named parameters (``:name``) as a DataFrame."""
        from matplat.services.query import run_query

        return run_query(self.engine, sql, params)

    def discover(self, model: str = "v3", *, elements: str | Iterable[str] | None = None,
                 compositions: str | Iterable[str] | None = None, max_atoms: int = 40,
                 min_probability: float = 1e-3, limit: int | None = None,
                 name: str | None = None) -> Any:
        """Hypothetical compounds in a chemical system (``elements``, e.g. ``"Li,Fe,P,O"``) or
        of given ``compositions``, ranked by predicted hull distance (as ``platform
        discover``, in this process); returns the run's ``candidate_ranking`` rows as a
        DataFrame. ``model`` is a tag, else an alias."""
        from matplat.errors import NotFoundError
        from matplat.services import registry
        from workers.discover import DiscoverRequest, discover_inprocess

        def listed(v: str | Iterable[str] | None) -> list[str] | None:
            if v is None:
                return None
            items = v.split(",") if isinstance(v, str) else list(v)
            return [i.strip() for i in items if i.strip()]

        try:
            registry.artifact_bytes(self.engine, model, None)
            which = {"tag": model}
        except NotFoundError:
            which = {"alias": model}
        req = DiscoverRequest(**which, elements=listed(elements),
                              compositions=listed(compositions), max_atoms=max_atoms,
                              min_probability=min_probability, limit=limit, name=name)
        return discover_inprocess(self.engine, req, device=self.settings.device)

    def models(self) -> Any:
        """The model registry as a DataFrame (as ``platform models list``)."""
        import pandas as pd

        from matplat.services.registry import list_versions

        return pd.DataFrame(list_versions(self.engine))
