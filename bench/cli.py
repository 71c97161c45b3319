"""CLI start-up: `platform --help` and `platform <cmd> --help` against `import click, sqlalchemy`.

Each command runs ``--repeat`` times in a fresh interpreter, interleaved with the baseline so
that machine load hits both alike; the table gives medians and the ratio to the baseline.

    python bench/cli.py --repeat 15
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "baseline: import click, sqlalchemy": [sys.executable, "-c", "import click, sqlalchemy"],
    "platform --help": [sys.executable, "-m", "matplat", "--help"],
    "platform query --help": [sys.executable, "-m", "matplat", "query", "--help"],
    "platform train --help": [sys.executable, "-m", "matplat", "train", "--help"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.repeat):
        for name, cmd in CASES.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["baseline: import click, sqlalchemy"])
    print(f"{'command':<38} {'median s':>9} {'min s':>7} {'x baseline':>11}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<38} {med:9.3f} {min(ts):7.3f} {med / base:11.2f}")


if __name__ == "__main__":
    main()
