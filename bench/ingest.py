"""Benchmark: `platform ingest` MB/s and entries/s against `mariadb < dump.sql` on the same dump.

Run:  python bench/ingest.py [--entries 100000] [--seed 1] [--repeat 2] [--skip-mariadb]
                             [--out DIR] [--keep] [--dump PATH.sql]

In one run, on one SYNTHETIC OQMD-format dump (``matplat.ingest.sample.write_sample_dump``,
written once as .sql and once as .sql.gz, same entries and seed; or ``--dump`` an existing
.sql, with DUMP.gz beside it or made with gzip -6):

* baseline: ``mariadb <db> < dump.sql`` into a fresh, empty MariaDB database (the dump holds
  its own DROP/CREATE TABLE statements), the way a qmdb dump is usually restored;
* ``platform --db <url> ingest dump.sql`` as a subprocess into a fresh PostgreSQL database
  (first brought to the head revision with ``platform db upgrade``, not timed);
* with ``--repeat N`` the pair (restore, PostgreSQL ingest) runs N times, interleaved, so
  that both see the same share of a machine other people use too; the ratio is taken per
  pair and the median pair is reported;
* then ``.sql.gz`` into PostgreSQL; the extraction alone (parse and select, no database:
  ``extract_dump_in_process`` in a fresh python, as the CLI runs it); ``.sql`` into a fresh
  SQLite file; ``platform ingest --dry-run dump.sql`` on SQLite (everything is written, then
  rolled back).

Wall time of each subprocess (python start-up, parsing, loading, commit; the command's own
``seconds`` line is reported too), MB/s of the plain dump's bytes (the .gz row also gives MB/s
of the compressed file), entries/s of the dump's entries, and the ratio of the restore's time
to each. The whole OQMD (56 GB plain dump, ~600k entries) is projected by MB/s (conservative:
the synthetic dump is 93 % kept tables, the real one 29 %, and skipped tables are read at
~800 MB/s) and by entries/s. ``uptime``'s load averages are recorded before and after each
run. Databases are uniquely named and dropped afterwards; generated dumps live in --out
(default: a temporary directory removed at the end unless --keep).

Services: PostgreSQL at 127.0.0.1:5432 (user postgres, trust), MariaDB at 127.0.0.1:3306
(root, no password); override with --pg-url / --mariadb-args. Subprocesses run with
OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform as _pyplatform  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))
sys.path.insert(0, str(ROOT))

from matplat.ingest.sample import write_sample_dump  # noqa: E402

OQMD_BYTES = 56e9  # the plain qmdb dump of OQMD v1.6
OQMD_ENTRIES = 600_000
MB = 1e6


def _platform_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("platform")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "matplat"]


def loadavg() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def run(cmd: list[str] | str, *, stdin_path: Path | None = None, shell: bool = False
        ) -> tuple[float, str]:
    """Run a command, return (wall seconds, stdout); raise with its stderr on failure."""
    t0 = time.perf_counter()
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, shell=shell)
    finally:
        if stdin_path:
            stdin.close()  # type: ignore[union-attr]
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
        raise RuntimeError(f"{shown} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def summary_values(stdout: str) -> dict[str, str]:
    """The ``name value`` rows of `platform ingest`'s summary table."""
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^\s*([a-zA-Z][a-zA-Z /]*?)\s{1,}(\S+)\s*$", line)
        if m:
            out[m.group(1).strip()] = m.group(2)
    return out


# ------------------------------------------------------------------ databases
class Postgres:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url.replace("postgresql+psycopg", "postgresql") + "/postgres",
                             autocommit=True) as c:
            c.execute(sql)

    def create(self, settings: dict[str, str] | None = None) -> tuple[str, str]:
        name = f"bench_ingest_{uuid.uuid4().hex[:10]}"
        self.admin(f"CREATE DATABASE {name}")
        for key, value in (settings or {}).items():
            self.admin(f"ALTER DATABASE {name} SET {key} = {value}")
        return name, f"{self.url}/{name}"

    def drop(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class MariaDB:
    def __init__(self, args: str) -> None:
        self.args = shlex.split(args)

    def sql(self, sql: str, db: str | None = None) -> str:
        cmd = ["mariadb", *self.args, "-N", "-B", "-e", sql] + ([db] if db else [])
        return run(cmd)[1]

    def create(self) -> str:
        name = f"bench_ingest_{uuid.uuid4().hex[:10]}"
        self.sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        return name

    def drop(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name}")


# ------------------------------------------------------------------ measurements
SETTLE = [0.0]  # seconds to wait before each timed run (--settle)


def platform_ingest(label: str, url: str, dump: Path, plain_bytes: int, entries: int,
                    extra: list[str] | None = None) -> dict:
    plat = _platform_cmd()
    up_s, _ = run([*plat, "--db", url, "db", "upgrade"])
    time.sleep(SETTLE[0])
    load0 = loadavg()
    cmd = [*plat, "--db", url, "ingest", *(extra or []), str(dump)]
    wall, out = run(cmd)
    vals = summary_values(out)
    row = {
        "label": label,
        "command": shlex.join(["platform", "--db", url, "ingest", *(extra or []), dump.name]),
        "upgrade_s": up_s,
        "wall_s": wall,
        "own_seconds": float(vals.get("seconds", "nan")),
        "own_mb_s": float(vals.get("MB/s", "nan")),
        "file_bytes": dump.stat().st_size,
        "mb_s": plain_bytes / MB / wall,
        "entries_s": entries / wall,
        "materials": int(vals.get("materials added", "0")),
        "sites": int(vals.get("sites written", "0")),
        "load_before": load0,
        "load_after": loadavg(),
    }
    print(f"  {label}: {wall:.1f} s wall ({row['own_seconds']:.1f} s own), "
          f"{row['mb_s']:.1f} MB/s, {row['materials']} materials, load {row['load_after']}",
          flush=True)
    return row


_EXTRACT = """
import sys, tempfile, time
t0 = time.perf_counter()
from matplat.ingest.extract_process import extract_dump_in_process
n = 0
with tempfile.TemporaryDirectory(dir=sys.argv[2]) as work:
    for chunk in extract_dump_in_process(sys.argv[1], workdir=work):
        n += len(chunk)
print(n, time.perf_counter() - t0)
"""


def extract_only(dump: Path, plain_bytes: int, entries: int, work: Path) -> dict:
    """What `platform ingest` does before any database write: parse and select, in a fresh
    python (the same child process and parse worker as the CLI), chunks discarded."""
    time.sleep(SETTLE[0])
    load0 = loadavg()
    wall, out = run([sys.executable, "-c", _EXTRACT, str(dump), str(work)])
    n, own = out.split()
    row = {
        "label": "extract only (parse + select, no database)",
        "command": "extract_dump_in_process(dump) in a fresh python",
        "wall_s": wall,
        "own_seconds": float(own),
        "file_bytes": dump.stat().st_size,
        "mb_s": plain_bytes / MB / wall,
        "entries_s": entries / wall,
        "materials": int(n),
        "load_before": load0,
        "load_after": loadavg(),
    }
    print(f"  extract only: {wall:.1f} s wall, {row['mb_s']:.1f} MB/s, {n} materials, "
          f"load {row['load_after']}", flush=True)
    return row


def mariadb_restore(maria: MariaDB, dump: Path, plain_bytes: int, entries: int) -> dict:
    db = maria.create()
    try:
        time.sleep(SETTLE[0])
        load0 = loadavg()
        wall, _ = run(["mariadb", *maria.args, db], stdin_path=dump)
        rows = 0
        for t in ("atoms", "calculations", "compositions", "dos", "entries",
                  "formation_energies", "meta_data", "spacegroups", "structures"):
            rows += int(maria.sql(f"SELECT COUNT(*) FROM {t}", db).strip())
    finally:
        maria.drop(db)
    row = {
        "label": "mariadb < dump.sql (baseline)",
        "command": shlex.join(["mariadb", *maria.args, "<db>"]) + " < " + dump.name,
        "wall_s": wall,
        "file_bytes": dump.stat().st_size,
        "mb_s": plain_bytes / MB / wall,
        "entries_s": entries / wall,
        "rows": rows,
        "rows_s": rows / wall,
        "load_before": load0,
        "load_after": loadavg(),
    }
    print(f"  mariadb restore: {wall:.1f} s, {row['mb_s']:.1f} MB/s, {rows} rows "
          f"({row['rows_s']:.0f} rows/s), load {row['load_after']}", flush=True)
    return row


def fmt_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def table(rows: list[dict], base: dict | None) -> str:
    head = ("| run | wall s | MB/s (plain bytes) | MB/s of file read | entries/s | "
            "× restore | own s | OQMD 56 GB projected | load before → after |")
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        ratio = f"{base['wall_s'] / r['wall_s']:.2f}" if base else "—"
        own = f"{r['own_seconds']:.1f}" if "own_seconds" in r else "—"
        proj = fmt_time(OQMD_BYTES / (r["mb_s"] * MB))
        lines.append(
            f"| {r['label']} | {r['wall_s']:.1f} | {r['mb_s']:.1f} | "
            f"{r['file_bytes'] / MB / r['wall_s']:.1f} | {r['entries_s']:,.0f} | {ratio} | "
            f"{own} | {proj} | {r['load_before']} → {r['load_after']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the (restore, PostgreSQL ingest) pair this many times")
    ap.add_argument("--dump", type=Path, help="use this existing plain .sql dump "
                    "(its --entries must be given) instead of generating one")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds to wait before each timed run (the previous run's database "
                    "server may still be flushing)")
    ap.add_argument("--skip-mariadb", action="store_true", help="no mariadb restore baseline")
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--skip-others", action="store_true",
                    help="only the restore and PostgreSQL .sql pair(s)")
    ap.add_argument("--out", type=Path, help="directory for the dumps and results.json "
                    "(default: a temporary directory, removed at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the dumps in --out")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    ap.add_argument("--mariadb-args", default="-h 127.0.0.1 -P 3306 -u root")
    args = ap.parse_args()
    SETTLE[0] = args.settle

    tmp = None
    if args.out is None:
        tmp = tempfile.mkdtemp(prefix="bench-ingest-")
        out = Path(tmp)
    else:
        out = args.out
        out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, {_pyplatform.processor() or _pyplatform.machine()}, "
          f"Python {_pyplatform.python_version()}; date {datetime.datetime.now():%Y-%m-%d %H:%M}; "
          f"load {loadavg()}", flush=True)
    results: dict = {"entries": args.entries, "seed": args.seed, "cores": os.cpu_count(),
                     "date": datetime.datetime.now().isoformat(timespec="seconds"),
                     "load_start": loadavg(), "argv": sys.argv}
    made: list[Path] = []
    try:
        if args.dump is not None:
            sql = args.dump
            gz = sql.with_name(sql.name + ".gz")  # DUMP.gz beside it, else made with gzip -6
            if not gz.exists() and not args.skip_others and not args.skip_postgres:
                gz = out / (sql.name + ".gz")
                run(f"gzip -6 -c {shlex.quote(str(sql))} > {shlex.quote(str(gz))}", shell=True)
                made.append(gz)
            plain, gz_bytes = sql.stat().st_size, gz.stat().st_size if gz.exists() else 0
            results["dump"] = {"plain_bytes": plain, "gz_bytes": gz_bytes, "given": str(sql)}
        else:
            sql = out / f"qmdb_synthetic_{args.entries}.sql"
            gz = out / f"qmdb_synthetic_{args.entries}.sql.gz"
            s = write_sample_dump(sql, args.entries, args.seed)
            made.append(sql)
            print(f"generated {sql.name}: {s.bytes_written / MB:.1f} MB in {s.seconds:.1f} s "
                  f"({s.entries_per_second:,.0f} entries/s); structures {s.structures}, atoms "
                  f"{s.atoms}, calculations {s.calculations}", flush=True)
            plain, gz_bytes = s.bytes_written, 0
            results["dump"] = {"plain_bytes": plain, "gen_plain_s": s.seconds,
                               "structures": s.structures, "atoms": s.atoms,
                               "calculations": s.calculations,
                               "formation_energies": s.formation_energies}
            if not args.skip_others:
                g = write_sample_dump(gz, args.entries, args.seed)
                made.append(gz)
                gz_bytes = g.bytes_written
                results["dump"]["gz_bytes"] = gz_bytes
                print(f"generated {gz.name}: {gz_bytes / MB:.1f} MB in {g.seconds:.1f} s",
                      flush=True)
        rows: list[dict] = []
        pairs: list[tuple[dict | None, dict | None]] = []
        pg = Postgres(args.pg_url)
        for k in range(args.repeat):
            tag = f" #{k + 1}" if args.repeat > 1 else ""
            base = None
            if not args.skip_mariadb:
                base = mariadb_restore(MariaDB(args.mariadb_args), sql, plain, args.entries)
                base["label"] += tag
                rows.append(base)
            ing = None
            if not args.skip_postgres:
                name, url = pg.create()
                try:
                    ing = platform_ingest("platform ingest .sql → PostgreSQL" + tag, url, sql,
                                          plain, args.entries)
                finally:
                    pg.drop(name)
                rows.append(ing)
            pairs.append((base, ing))
        if not args.skip_others:
            if not args.skip_postgres and gz.exists():
                name, url = pg.create()
                try:
                    rows.append(platform_ingest("platform ingest .sql.gz → PostgreSQL", url, gz,
                                                plain, args.entries))
                finally:
                    pg.drop(name)
            rows.append(extract_only(sql, plain, args.entries, out))
            for label, extra in (("platform ingest .sql → SQLite", []),
                                 ("platform ingest --dry-run .sql → SQLite (written, rolled "
                                  "back)", ["--dry-run"])):
                lite = out / f"bench_{uuid.uuid4().hex[:8]}.db"
                try:
                    rows.append(platform_ingest(label, f"sqlite:///{lite}", sql, plain,
                                                args.entries, extra=extra))
                finally:
                    for p in out.glob(lite.name + "*"):
                        p.unlink()
        results["rows"] = rows
        results["load_end"] = loadavg()
        ratios = sorted(b["wall_s"] / i["wall_s"] for b, i in pairs if b and i)
        base = None
        if ratios:
            med = ratios[(len(ratios) - 1) // 2]
            base, _ = next((b, i) for b, i in pairs if b and i and b["wall_s"] / i["wall_s"] == med)
            results["pair_ratios"] = ratios
        print()
        print(f"{args.entries:,} entries, {plain / MB:.1f} MB plain, {gz_bytes / MB:.1f} "
              f"MB gzip; load average start {results['load_start']}, end {results['load_end']}")
        print(table(rows, base))
        if ratios:
            print("\n× restore per pair (restore wall / PostgreSQL ingest wall of the same pair): "
                  + ", ".join(f"{r:.2f}" for r in ratios)
                  + "; the table's × column divides by the median pair's restore")
        print()
        print("projection by MB/s to the 56 GB OQMD dump; by entries/s it would be "
              + ", ".join(f"{r['label'].split(' (')[0]}: {fmt_time(OQMD_ENTRIES / r['entries_s'])}"
                          for r in rows))
        (out / "results.json").write_text(json.dumps(results, indent=2))
        print(f"results: {out / 'results.json'}" if tmp is None else "")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        elif not args.keep:
            for p in made:
                p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
