"""Writing DataFrames as tables, CSV, JSON or Parquet, to stdout or a file."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from matplat.errors import InputError

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
        return df.to_json(orient="records", date_format="iso", indent=None)
    raise InputError(f"format {fmt!r} cannot be printed; use --output FILE")


def write(df: pd.DataFrame, fmt: str, output: str | None) -> None:
    """Print ``df`` in ``fmt``, or write it to ``output``."""
    if fmt == "parquet":
        if not output:
            raise InputError("--format parquet needs --output FILE")
        df.to_parquet(Path(output), index=False)
        click.echo(f"wrote {len(df)} rows to {output}", err=True)
        return
    body = render(df, fmt)
    if output:
        Path(output).write_text(body + "\n", encoding="utf-8")
        click.echo(f"wrote {len(df)} rows to {output}", err=True)
    else:
        click.echo(body)
