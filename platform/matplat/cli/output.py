"""Writing DataFrames as tables, CSV, JSON or Parquet, to stdout or a file."""

from __future__ import annotations

import datetime
import decimal
import json
import math
from typing import TYPE_CHECKING, Any

import click

from matplat.errors import InputError
from matplat.outputs import writing

if TYPE_CHECKING:  # pandas and numpy load when rows are written, not with --help
    import pandas as pd

FORMATS = ("table", "csv", "json", "parquet")


def format_option(formats: tuple[str, ...] = ("table", "csv", "json")):  # type: ignore[no-untyped-def]
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(formats),
        default="table",
        show_default=True,
        help="Output format.",
    )


def render(df: pd.DataFrame, fmt: str) -> str:
    import pandas as pd

    if fmt == "table":
        if df.empty:
            header = "  ".join(str(c) for c in df.columns)
            return f"{header}\n(0 rows)" if header else "(0 rows)"
        with pd.option_context(
            "display.max_rows",
            None,
            "display.max_columns",
            None,
            "display.width",
            200,
            "display.max_colwidth",
            60,
        ):
            return df.to_string(index=False)
    if fmt == "csv":
        return df.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return json_records(df)
    raise InputError(f"format {fmt!r} cannot be printed; use --output FILE")


def _load_libraries() -> None:
    """Bind numpy and pandas as this module's globals on first use (not at import)."""
    global np, pd
    import numpy as np
    import pandas as pd


def _plain(value: Any) -> Any:
    """A value JSON can hold: NaN and ±infinity become null, bytes their hex digits, decimals
    numbers, dates ISO 8601 text; containers recursively; anything else its text (callers
    run :func:`_load_libraries` first: ``_plain`` runs once per value)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if value is pd.NaT:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating, decimal.Decimal)):
        try:
            f = float(value)
        except (OverflowError, ValueError):
            return None
        return f if math.isfinite(f) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def json_text(obj: Any, indent: int | None = None) -> str:
    """Strict JSON (RFC 8259) of ``obj`` under the rule of :func:`_plain`; never ``NaN``."""
    _load_libraries()
    return json.dumps(_plain(obj), indent=indent, allow_nan=False, ensure_ascii=False)


def json_records(df: pd.DataFrame) -> str:
    """``df`` as a strict JSON list of records: pandas' fast writer (which writes NaN and
    ±infinity as null) after text, bytes and decimals of object columns went through
    :func:`_plain`; :func:`json_text` for what pandas still cannot write (huge integers)."""
    _load_libraries()
    out = df
    objects = [c for c in df.columns if df[c].dtype == object]
    if objects:
        out = df.copy()
        for c in objects:
            out[c] = pd.Series([_plain(v) for v in df[c]], index=df.index, dtype=object)
    try:
        return out.to_json(orient="records", date_format="iso", indent=None)
    except (OverflowError, UnicodeError, ValueError, TypeError):
        return json_text(df.to_dict(orient="records"))


def write(df: pd.DataFrame, fmt: str, output: str | None) -> None:
    """Print ``df`` in ``fmt``, or write it to ``output`` (checked before the query ran, see
    :mod:`matplat.outputs`; a write that fails is one error line and no partial file)."""
    if fmt == "parquet":
        if not output:
            raise InputError("--format parquet needs --output FILE")
        with writing(output, "--output") as path:
            try:
                df.to_parquet(path, index=False)
            except (ValueError, TypeError, ImportError) as e:
                raise InputError(f"--output {output}: cannot write Parquet ({e})") from None
        click.echo(f"wrote {len(df)} rows to {output}", err=True)
        return
    body = render(df, fmt)
    if output:
        with writing(output, "--output") as path, open(path, "w", encoding="utf-8") as f:
            f.write(body + "\n")
        click.echo(f"wrote {len(df)} rows to {output}", err=True)
    else:
        click.echo(body)
