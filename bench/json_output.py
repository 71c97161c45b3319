"""`--format json` output: the strict writer (`matplat.cli.output.json_records`: NaN and
±infinity as null, bytes as hex, decimals as numbers) against pandas' own `to_json`, which
it replaced, on a query-shaped frame (ids, text, floats with missing values).

Both run ``--repeat`` times, interleaved, in this process; the table gives medians and the
ratio to pandas. A third line shows the pure-Python path (`json_text`) that the writer falls
back to only for values pandas cannot write.

    python bench/json_output.py --rows 100000 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from matplat.cli.output import json_records, json_text


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "material_id": np.arange(rows),
        "formula": rng.choice(["NaCl", "Fe2O3", "LiFePO4", "GaAs"], rows),
        "band_gap": rng.random(rows),
        "formation_energy": rng.normal(size=rows),
        "split": rng.choice(["train", "val", "test"], rows).astype(object),
        "uncertainty": rng.random(rows),
    })
    df.loc[::7, "band_gap"] = np.nan
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    df = frame(args.rows)
    cases = {
        "baseline: pandas to_json": lambda: df.to_json(orient="records", date_format="iso"),
        "json_records (strict)": lambda: json_records(df),
        "json_text (fallback)": lambda: json_text(df.to_dict(orient="records")),
    }
    assert cases["baseline: pandas to_json"]() == cases["json_records (strict)"]()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["baseline: pandas to_json"])
    print(f"{args.rows:,} rows; {'writer':<28} {'median s':>9} {'x baseline':>11}")
    for name, ts in times.items():
        print(f"{'':>{len(f'{args.rows:,} rows;')}} {name:<28} {statistics.median(ts):9.3f} "
              f"{statistics.median(ts) / base:11.2f}")


if __name__ == "__main__":
    main()
