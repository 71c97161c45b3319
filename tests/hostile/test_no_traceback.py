"""No command prints a Python traceback for a user error (issue 11): a catalogue of bad
invocations of every command in `platform --help`, each run as a real process (`python -m
matplat`), must exit non-zero with exactly one `error:` line on stderr and no traceback.

The catalogue grows with the code: `test_every_command_is_in_the_catalogue` fails when a new
command has no bad invocation here. Engine-specific behaviour is tested per engine in the
other files of this folder; this sweep runs on SQLite (plus unreachable servers).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import make_material, make_model_version

from hostile.inputs import dataset_folder, export_zip
from matplat.cli import cli
from matplat.db.session import dispose_engines, get_engine, transaction

ROOT = Path(__file__).resolve().parents[2]
LONG_TAG = "t" * 300

#: (case id, arguments). Paths are relative to the working directory the fixture prepares.
CATALOGUE: list[tuple[str, list[str]]] = [
    ("db-upgrade-unknown-revision", ["db", "upgrade", "nosuchrev"]),
    ("db-downgrade-unknown-revision", ["db", "downgrade", "nosuchrev", "--yes"]),
    ("db-unreachable-server", ["--db", "postgresql+psycopg://nobody@127.0.0.1:1/x", "status"]),
    ("db-malformed-url", ["--db", "not a url", "status"]),
    ("status-unreachable-mariadb", ["--db", "mysql+pymysql://nobody@127.0.0.1:1/x", "status"]),
    ("query-write", ["query", "DELETE FROM materials"]),
    ("query-unknown-table", ["query", "SELECT * FROM nosuchtable"]),
    ("query-output-no-dir", ["query", "SELECT 1 AS x", "-o", "nodir/x.csv"]),
    ("query-output-full-device", ["query", "SELECT 1 AS x", "-o", "/dev/full"]),
    ("query-parquet-no-dir", ["query", "SELECT 1 AS x", "--format", "parquet", "-o",
                              "nodir/x.parquet"]),
    ("query-output-proc", ["query", "SELECT 1 AS x", "-o", "/proc/x.csv"]),
    ("query-bad-param", ["query", "SELECT :a AS x", "--param", "a"]),
    ("ingest-missing-file", ["ingest", "nosuch.sql"]),
    ("ingest-not-a-dump", ["ingest", "garbage.sql"]),
    ("ingest-rejects-no-dir", ["ingest", "garbage.sql", "--rejects", "nodir/r.tsv"]),
    ("ingest-dataset-config-not-json", ["ingest", "ds-json"]),
    ("ingest-dataset-config-not-utf8", ["ingest", "ds-utf8"]),
    ("ingest-dataset-targets-binary", ["ingest", "ds-targets"]),
    ("ingest-dataset-empty-folder", ["ingest", "ds-empty"]),
    ("ingest-unknown-server", ["ingest", "mysql+pymysql://nobody@127.0.0.1:1/qmdb"]),
    ("sample-no-dir", ["sample", "oqmd-dump", "nodir/x.sql.gz", "--entries", "1"]),
    ("sample-full-device", ["sample", "oqmd-dump", "/dev/full", "--entries", "3"]),
    ("graphs-unknown-recipe", ["graphs", "build", "--recipe", "nosuch"]),
    ("graphs-stats-unknown-recipe", ["graphs", "stats", "--recipe", "nosuch"]),
    ("graphs-no-wait-without-broker", ["graphs", "build", "--no-wait"]),
    ("models-show-unknown", ["models", "show", "nosuch"]),
    ("models-show-bad-tag", ["models", "show", "bad tag"]),
    ("models-show-plot-proc", ["models", "show", "m1", "--plot", "/proc/plots"]),
    ("models-export-no-dir", ["models", "export", "m1", "nodir/x.zip"]),
    ("models-export-full-device", ["models", "export", "m1", "/dev/full"]),
    ("models-import-not-zip", ["models", "import", "garbage.sql"]),
    ("models-import-garbage-weights", ["models", "import", "garbage-weights.zip"]),
    ("models-import-long-tag", ["models", "import", "long-tag.zip"]),
    ("models-alias-bad-name", ["models", "alias", "m1", "bad\x1b[31mname"]),
    ("models-alias-unknown", ["models", "alias", "nosuch", "production"]),
    ("models-delete-unknown", ["models", "delete", "nosuch", "--yes"]),
    ("models-refresh-unknown", ["models", "refresh", "nosuch"]),
    ("train-empty-tag", ["train", "--model-tag", ""]),
    ("train-long-tag", ["train", "--model-tag", LONG_TAG]),
    ("train-newline-tag", ["train", "--model-tag", "v3\nforged"]),
    ("train-lr-nan", ["train", "--model-tag", "t1", "--lr", "nan"]),
    ("train-config-epochs-zero", ["train", "--model-tag", "t1", "--config", "epochs0.json"]),
    ("train-config-not-json", ["train", "--model-tag", "t1", "--config", "garbage.sql"]),
    ("train-config-bad-model", ["train", "--model-tag", "t1", "--config", "badmodel.json"]),
    ("train-no-graphs", ["train", "--model-tag", "t1", "--epochs", "1"]),
    ("train-unknown-target", ["train", "--model-tag", "t1", "--targets", "nope"]),
    ("train-existing-tag", ["train", "--model-tag", "m1", "--epochs", "1"]),
    ("predict-unknown-model", ["predict", "--model-tag", "nosuch"]),
    ("predict-neither-tag-nor-alias", ["predict"]),
    ("predict-garbage-stored-weights", ["predict", "--model-tag", "m1"]),
    ("export-predictions-no-dir", ["export", "predictions", "--model-tag", "m1",
                                   "nodir/x.csv"]),
    ("export-predictions-bad-suffix", ["export", "predictions", "--model-tag", "m1", "x.txt"]),
    ("export-predictions-full-device", ["export", "predictions", "--model-tag", "m1",
                                        "full.csv"]),
    ("export-dataset-proc", ["export", "cgnn-dataset", "/proc/dataset"]),
    ("export-dataset-unknown-recipe", ["export", "cgnn-dataset", "out", "--recipe", "nosuch"]),
    ("jobs-show-unknown", ["jobs", "show", "999"]),
    ("jobs-cancel-unknown", ["jobs", "cancel", "999"]),
    ("jobs-resume-unknown", ["jobs", "resume", "999"]),
    ("worker-without-broker", ["worker"]),
    ("worker-unreachable-broker", ["--broker", "redis://127.0.0.1:9/0", "worker"]),
    ("discover-unknown-model", ["discover", "--model-tag", "nosuch", "--elements", "Li,O"]),
    ("discover-bad-tag", ["discover", "--model-tag", "bad tag", "--elements", "Li,O"]),
    ("hull-unknown-source", ["hull", "build", "--source", "nosuch"]),
    ("serve-missing-sqlite-folder", ["--db", "sqlite:////nonexistent-dir/x.db", "serve"]),
    ("serve-bad-port", ["serve", "--port", "99999"]),
    ("export-structures-proc", ["export", "structures", "/proc/structures", "--format", "cif"]),
    ("predict-structures-output-no-dir", ["predict", "--model-tag", "m1", "--structures",
                                          "garbage.sql", "--output", "nodir/x.csv"]),
    ("ingest-structures-rejects-no-dir", ["ingest", "x.cif", "--rejects", "nodir/r.csv"]),
    ("unknown-command", ["frobnicate"]),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with a SQLite database (one registered model whose stored weights
    are garbage, one material) and the bad input files the catalogue names."""
    from workers.training import pack_ensemble

    wd = tmp_path_factory.mktemp("no-traceback")
    url = f"sqlite:///{wd / 'platform.db'}"
    assert CliRunner().invoke(cli, ["--db", url, "db", "upgrade"]).exit_code == 0
    with transaction(get_engine(url)) as s:
        make_material(s, 1)
        make_model_version(s, "m1")
    dispose_engines()
    (wd / "garbage.sql").write_bytes(b"\x00\x01 this is not a dump \xff\n" * 20)
    (wd / "epochs0.json").write_text(json.dumps({"training": {"epochs": 0}}))
    (wd / "badmodel.json").write_text(json.dumps({"model": {"n_conv": "four"}}))
    export_zip(wd / "garbage-weights.zip", b"\x00garbage" * 50)
    export_zip(wd / "long-tag.zip", pack_ensemble([b"x"]), tag=LONG_TAG)
    dataset_folder(wd / "ds-json", config=b"{not json")
    dataset_folder(wd / "ds-utf8", config=b"\xff\xfe{}")
    dataset_folder(wd / "ds-targets", targets=b"\xff\xfe\x00garbage\x00")
    (wd / "ds-empty").mkdir()
    if Path("/dev/full").exists():
        (wd / "full.csv").symlink_to("/dev/full")
    return wd


@pytest.fixture(scope="module")
def results(workdir: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every catalogue case run once, as a process, a few at a time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    env.update(PLATFORM_DATABASE_URL=f"sqlite:///{workdir / 'platform.db'}",
               PLATFORM_DEVICE="cpu", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "platform"), str(ROOT)]))

    def one(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "matplat", *args], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        done = list(pool.map(one, [args for _, args in CATALOGUE]))
    return {case: r for (case, _), r in zip(CATALOGUE, done, strict=True)}


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c, _ in CATALOGUE])
def test_user_error_is_one_line_without_traceback(results, case: str) -> None:
    r = results[case]
    shown = f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr + r.stdout, shown
    assert r.returncode not in (0, -6, -11), shown
    errors = [ln for ln in r.stderr.splitlines() if ln.lower().startswith("error:")]
    assert len(errors) == 1, shown
    assert "\x1b" not in errors[0], shown  # no terminal escapes echoed from the input


def test_every_command_is_in_the_catalogue() -> None:
    """A command added to `platform --help` without a bad invocation here fails this test."""
    out = CliRunner().invoke(cli, ["--help"]).output
    commands = set(re.findall(r"^  ([a-z][a-z-]*)\s", out.split("Commands:", 1)[1], re.M))
    assert {"db", "query", "ingest", "train", "jobs"} <= commands
    covered = set()
    for _, args in CATALOGUE:
        rest = list(args)
        while rest and rest[0].startswith("--"):  # global options and their values
            rest = rest[2:]
        if rest:
            covered.add(rest[0])
    assert commands - covered == set(), f"no bad invocation of: {commands - covered}"
