"""A small data set taken through the whole pipeline once per engine (module-scoped)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from dbutil import TestDatabase, create_database

from matplat.cli import cli

TRAIN_ARGS = ["--epochs", "3", "--batch-size", "32"]


def invoke(url: str, *args: str, ok: bool = True):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, ["--db", url, "--device", "cpu", *args],
                                catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, f"platform {' '.join(args)} failed:\n{result.output}"
    return result


def make_dump(directory: Path, entries: int = 120, seed: int = 7) -> Path:
    from matplat.ingest.sample import write_sample_dump

    path = directory / f"sample-{entries}-{seed}.sql.gz"
    if not path.exists():
        write_sample_dump(path, entries, seed)
    return path


def build_pipeline(kind: str, tmp: Path, dump: Path) -> TestDatabase:
    db = create_database(kind, tmp)
    url = db.url
    invoke(url, "db", "upgrade")
    invoke(url, "ingest", str(dump))
    invoke(url, "hull", "build")
    invoke(url, "graphs", "build", "--workers", "1")
    invoke(url, "train", "--model-tag", "v3", *TRAIN_ARGS)
    invoke(url, "train", "--model-tag", "v4", "--seed", "7", *TRAIN_ARGS)
    invoke(url, "predict", "--model-tag", "v3")
    invoke(url, "predict", "--model-tag", "v4")
    return db
