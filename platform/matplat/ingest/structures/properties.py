"""``--properties FILE``: DFT values for structure files from a CSV or parquet table.

The table has a ``name`` column and any of the columns ``formation_energy``, ``band_gap``,
``magnetization`` (units as in the view ``material_properties``; the volume per atom is
the structure's own); other columns are ignored, empty cells are no value. A row
applies to the structure whose name, file (relative or bare), file stem, block/frame or
``file#block`` equals its ``name``, tried in that order; its values take precedence over
values found in the structure file itself.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

from matplat.errors import InputError
from matplat.ingest.structures.records import PROPERTY_NAMES, Parsed

__all__ = ["PropertyTable"]


class PropertyTable:
    """name → {property: value}, read once."""

    def __init__(self, values: dict[str, dict[str, float]], path: str) -> None:
        self.values = values
        self.path = path
        self.used: set[str] = set()

    @classmethod
    def read(cls, path: str | Path) -> PropertyTable:
        import pandas as pd

        p = Path(path)
        if not p.is_file():
            raise InputError(f"--properties {path}: no such file")
        try:
            if p.suffix.lower() == ".parquet":
                df = pd.read_parquet(p)
            else:
                df = pd.read_csv(p, dtype={"name": str}, keep_default_na=True)
        except Exception as e:  # noqa: BLE001 - pandas/pyarrow raise many types
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"--properties {path}: not a readable CSV/parquet table: {reason}") from e
        if "name" not in df.columns:
            raise InputError(
                f"--properties {path}: no 'name' column (columns: {', '.join(map(str, df.columns))})"
            )
        cols = [c for c in PROPERTY_NAMES if c in df.columns]
        if not cols:
            raise InputError(
                f"--properties {path}: none of the property columns {', '.join(PROPERTY_NAMES)}"
            )
        values: dict[str, dict[str, float]] = {}
        for k, row in enumerate(df[["name", *cols]].itertuples(index=False), start=2):
            name = str(row[0])
            vals: dict[str, float] = {}
            for c, v in zip(cols, row[1:], strict=True):
                try:
                    f = float(v)
                except (TypeError, ValueError):
                    raise InputError(
                        f"--properties {path}: line {k}, column {c}: {v!r} is not a number"
                    ) from None
                if not math.isnan(f):
                    vals[c] = f
            if name in values:
                raise InputError(f"--properties {path}: line {k}: name {name!r} appears twice")
            values[name] = vals
        return cls(values, str(path))

    def apply(self, rec: Parsed) -> None:
        """Put the table's values for ``rec`` (if any row matches it) into ``rec.props``."""
        f = PurePosixPath(rec.file)
        keys = [rec.name, rec.file, f.name, f.stem]
        if rec.block is not None:
            keys += [rec.block, f"{f.name}#{rec.block}"]
        for key in keys:
            hit = self.values.get(key)
            if hit is not None:
                rec.props.update(hit)
                self.used.add(key)
                return
