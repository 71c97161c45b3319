"""Benchmark: the mysqldump reader's MB/s on a generated OQMD-format dump.

    python bench/parse.py --entries 20000          # ~150 MB dump, a few minutes

Measures, on one synthetic dump (plain and gzip): skipping every table, reading the five
OQMD tables (all columns, and only the columns ``extract`` needs; in one process and with
the parse worker process of :mod:`matplat.ingest.parallel`), each numeric-heavy table
alone, gzip decompressed in a thread vs inline, ``extract_dump`` end to end, and — in the
same run — a naive per-character parser (the straightforward state machine) on the same
atoms/structures statements, as the baseline. "kept MB/s" divides by the bytes of the kept
tables' INSERT statements only; "file MB/s" by the whole file. Prints a table.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform as _platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))

from matplat.ingest.oqmd import NEEDED_COLUMNS, NEEDED_TABLES, extract_dump  # noqa: E402
from matplat.ingest.reader import iter_dump  # noqa: E402
from matplat.ingest.sample import write_sample_dump  # noqa: E402


def naive_parse(stmt: bytes) -> list[tuple]:
    """Baseline: one character at a time, the way a first implementation would."""
    rows: list[tuple] = []
    i = stmt.index(b"VALUES") + 6
    n = len(stmt)
    row: list = []
    tok = bytearray()
    in_str = quoted = False
    while i < n:
        c = stmt[i]
        if in_str:
            if c == 92:  # backslash
                i += 1
                e = stmt[i]
                tok += {48: b"\0", 110: b"\n", 114: b"\r", 116: b"\t", 90: b"\x1a"}.get(
                    e, bytes([e])
                )
            elif c == 39:
                in_str = False
            else:
                tok.append(c)
        elif c == 39:
            in_str = quoted = True
        elif c in (44, 41):  # , )
            if tok or quoted:
                s = bytes(tok)
                if quoted:
                    row.append(s.decode("utf-8", "surrogateescape"))
                elif s == b"NULL":
                    row.append(None)
                elif b"." in s or b"e" in s:
                    row.append(float(s))
                else:
                    row.append(int(s))
                tok.clear()
                quoted = False
            if c == 41:
                rows.append(tuple(row))
                row = []
        elif c not in (40, 32, 10, 59):
            tok.append(c)
        i += 1
    return rows


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def count_rows(src, tables, **kw) -> int:
    return sum(len(b) for b in iter_dump(src, tables, **kw))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None, help="keep dumps here (reused)")
    ap.add_argument(
        "--baseline-mb", type=float, default=8.0, help="MB of statements for the naive parser"
    )
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
    work = Path(tmp.name) if tmp else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    plain = work / f"bench_{args.entries}_{args.seed}.sql"
    gz = plain.with_suffix(".sql.gz")
    if not plain.exists():
        s = write_sample_dump(plain, args.entries, args.seed)
        print(
            f"generated {plain.name}: {s.bytes_written / 1e6:.0f} MB, {s.entries_per_second:,.0f} entries/s"
        )
    if not gz.exists():
        s = write_sample_dump(gz, args.entries, args.seed)
        print(
            f"generated {gz.name}: {s.bytes_written / 1e6:.0f} MB, {s.entries_per_second:,.0f} entries/s"
        )

    size = plain.stat().st_size
    kept: dict[str, int] = {}
    sample: dict[str, list[bytes]] = {"atoms": [], "structures": []}
    with open(plain, "rb") as fh:
        for line in fh:
            if line.startswith(b"INSERT INTO `"):
                t = line.split(b"`", 2)[1].decode()
                kept[t] = kept.get(t, 0) + len(line)
                if t in sample and sum(map(len, sample[t])) < args.baseline_mb * 5e5:
                    sample[t].append(line)
    kept_all = sum(kept.get(t, 0) for t in NEEDED_TABLES)
    proj = {t: list(c) for t, c in NEEDED_COLUMNS.items()}
    rows: list[tuple[str, float, str, str]] = []

    def add(name: str, seconds: float, nbytes: int, note: str = "") -> None:
        rows.append((name, seconds, f"{nbytes / seconds / 1e6:8.1f}", note))

    # Warm up: Arrow's first CSV read in a process costs ~0.3 s of one-time set-up.
    count_rows(plain, {"structures", "atoms"}, batch_rows=100)
    dt, _ = timed(lambda: count_rows(plain, set()))
    add("skip every table (file MB/s)", dt, size)
    skip_rate = size / dt
    dt, n = timed(lambda: count_rows(plain, set(NEEDED_TABLES)))
    add(
        "5 OQMD tables, all columns (kept MB/s)",
        dt,
        kept_all,
        f"{n:,} rows; file {size / dt / 1e6:.0f} MB/s",
    )
    dt, n = timed(lambda: count_rows(plain, set(NEEDED_TABLES), columns=proj))
    add(
        "5 OQMD tables, extract's columns (kept MB/s)",
        dt,
        kept_all,
        f"file {size / dt / 1e6:.0f} MB/s; parse worker as iter_dump decides",
    )
    for par, label in ((False, "one process"), (True, "with the parse worker")):
        dt, n = timed(
            lambda par=par: count_rows(plain, set(NEEDED_TABLES), columns=proj, parallel=par)
        )
        add(
            f"5 OQMD tables, extract's columns, {label} (kept MB/s)",
            dt,
            kept_all,
            f"file {size / dt / 1e6:.0f} MB/s",
        )
    for t in ("atoms", "structures"):
        # Net of the time spent skipping the other tables (at the rate measured above).
        skip = (size - kept[t]) / skip_rate
        dt, n = timed(lambda t=t: count_rows(plain, {t}))
        add(
            f"{t} only, all columns (kept MB/s)", dt - skip, kept[t], f"{n:,} rows; net of skipping"
        )
        dt, n = timed(lambda t=t: count_rows(plain, {t}, columns={t: proj[t]}))
        add(f"{t} only, extract's columns (kept MB/s)", dt - skip, kept[t], "net of skipping")
    dt, _ = timed(lambda: count_rows(gz, set(NEEDED_TABLES), columns=proj))
    add(
        "gzip, decompression thread (file MB/s)",
        dt,
        size,
        f"{gz.stat().st_size / dt / 1e6:.0f} MB/s compressed",
    )
    with gzip.open(gz, "rb") as g:
        dt, _ = timed(lambda: count_rows(g, set(NEEDED_TABLES), columns=proj))
    add("gzip, inline gzip.open (file MB/s)", dt, size)
    with tempfile.TemporaryDirectory(dir=work) as wd:
        dt, n = timed(lambda: sum(len(c) for c in extract_dump(plain, "cgnn", workdir=wd)))
    add("extract_dump cgnn end to end (file MB/s)", dt, size, f"{n:,} materials, {n / dt:,.0f}/s")
    for t, stmts in sample.items():
        nbytes = sum(map(len, stmts))
        dt, _ = timed(lambda stmts=stmts: [naive_parse(s) for s in stmts])
        base = nbytes / dt / 1e6
        fast = next(float(r[2]) for r in rows if r[0] == f"{t} only, all columns (kept MB/s)")
        add(f"BASELINE char loop, {t} (kept MB/s)", dt, nbytes, f"reader is {fast / base:.1f}x")

    import pyarrow

    load = os.getloadavg()
    print(
        f"\nmachine: {_platform.processor() or _platform.machine()}, {os.cpu_count()} cores, "
        f"load {load[0]:.2f}; Python {_platform.python_version()}, pyarrow {pyarrow.__version__}; "
        f"dump {size / 1e6:.0f} MB ({args.entries:,} entries), kept tables "
        f"{kept_all / 1e6:.0f} MB ({100 * kept_all / size:.0f} %)\n"
    )
    w = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{w}}  {'seconds':>8}  {'MB/s':>8}  note")
    print("-" * (w + 40))
    for name, sec, mbs, note in rows:
        print(f"{name:<{w}}  {sec:8.2f}  {mbs}  {note}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
