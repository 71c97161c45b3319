"""Benchmark: crystal graphs per second, ``ml.graphs`` (recipe cgc) against the reference algorithm.

Run:  python bench/graphs.py [--generated 300] [--nonprimitive 0.05] [--seed 0]

Structures: the 24 reference structures (tests/data/graphs_reference.json) plus generated
OQMD-like cells of 1-60 atoms (``ml.graphs.synthetic.prototype_variants``: the prototypes with
random elements, strain and displacements, some as substituted supercells; a fraction are exact
supercells that need the primitive-cell reduction). The baseline implements the reference
algorithm from its published description (not its code): pymatgen primitive cell when needed,
27-image search with the reference's arithmetic, and the sklearn KMeans(n_clusters=2) loop per
atom, with n_init=10 (the sklearn <= 1.3 default the OQMD graphs were built with) and n_init=1
(what the reference code gets from sklearn >= 1.4). Everything runs in this process on one
thread. Also measured: the candidate search alone with our numpy search, vesin and pymatgen's
``find_points_in_spheres`` (each followed by the exact per-pair filter).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.graphs import build_crystal_graph, build_crystal_graphs, neighbor_lists  # noqa: E402
from ml.graphs.builder import PreparedCell, prepare  # noqa: E402
from ml.graphs.elements import RADII  # noqa: E402
from ml.graphs.neighbors import search_cells  # noqa: E402
from ml.graphs.primitive import primitive_cell  # noqa: E402
from ml.graphs.synthetic import Cell, prototype_variants  # noqa: E402

REFERENCE_JSON = ROOT / "tests" / "data" / "graphs_reference.json"
STRUCTURES_560K = 560_000


def reference_cells() -> list[Cell]:
    """The 24 structures of the reference data (lattice, frac, Z)."""
    data = json.loads(REFERENCE_JSON.read_text())
    return [
        (np.array(s["lattice"]), np.array(s["frac_coords"]), np.array(s["atomic_numbers"]))
        for s in data["structures"]
    ]


# ---------------------------------------------------------------------------- baseline
def baseline_graph(cell: Cell, n_init: int = 10) -> list[list[int]]:
    """The reference algorithm, written from its description.

    pymatgen primitive cell when the cell reduces, radii and cutoffs as the reference, the 27
    offsets -1..1 with its arithmetic, and per atom up to 10 rounds of sklearn
    KMeans(n_clusters=2, n_init) on d / cutoff, keeping the cluster with the smaller centre
    while the centres differ by more than 0.03.
    """
    from pymatgen.core import Lattice, Structure
    from sklearn.cluster import KMeans

    lattice, frac, z = cell
    structure = Structure(Lattice(lattice), z.tolist(), frac)
    smaller = structure.get_primitive_structure()
    while len(smaller) < len(structure):
        structure, smaller = smaller, smaller.get_primitive_structure()
    radii = np.array([RADII[site.specie.Z] for site in structure])
    vol_atom = (4 * np.pi / 3) * np.array([r**3 for r in radii]).sum()
    factor = ((structure.volume / vol_atom) ** (1.0 / 3.0)) * 1.2
    cutoff = (radii[:, None] + radii[None, :]) * factor
    mat = structure.lattice.matrix
    red = np.matmul(structure.cart_coords, np.linalg.inv(mat.T).T)
    offsets = np.array(list(itertools.product((-1, 0, 1), repeat=3)))
    vec = np.matmul((red[:, None, :] - red[None, :, :])[:, :, None, :] + offsets, mat)
    dist = np.linalg.norm(vec, axis=3)  # [i, j, image]
    neighbors = []
    for j in range(len(red)):
        ii, kk = np.nonzero((dist[:, j] < cutoff[:, j, None]) & (dist[:, j] > 1e-8))
        x = (dist[ii, j, kk] / cutoff[j, ii]).reshape(-1, 1)
        idx = np.arange(len(x))
        for _ in range(10):
            if len(idx) <= 1:
                break
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                km = KMeans(n_clusters=2, n_init=n_init, random_state=0).fit(x[idx])
            centres = km.cluster_centers_[:, 0]
            if abs(centres[0] - centres[1]) <= 0.03:
                break
            near = idx[km.labels_ == np.argmin(centres)]
            if len(near) == len(idx):
                break
            idx = near
        neighbors.append(ii[idx].tolist())
    return neighbors


# ---------------------------------------------------------------------------- search backends
def _exact_filter(c: PreparedCell, red, ci, cj, shifts) -> int:  # type: ignore[no-untyped-def]
    """Count candidates after the per-pair cutoff, distances in the reference's arithmetic."""
    s = c.search
    vec = np.matmul((red[cj] - red[ci]) + shifts, s.lattice)
    d = np.sqrt((vec * vec).sum(axis=1))
    cut = (s.radii[ci] + s.radii[cj]) * s.factor
    return int(((d < cut) & (d > 1e-8)).sum())


def _red(c: PreparedCell) -> np.ndarray:
    s = c.search
    return np.matmul(np.dot(s.frac, s.lattice), np.linalg.inv(s.lattice.T).T)


def search_numpy_each(cells: Sequence[PreparedCell]) -> int:
    return sum(len(search_cells([c.search])[0].j) for c in cells)


def search_numpy_batched(cells: Sequence[PreparedCell]) -> int:
    return sum(
        len(search_cells([c.search for c in cells[k : k + 256]])[0].j)
        for k in range(0, len(cells), 256)
    )


def search_vesin(cells: Sequence[PreparedCell]) -> int:
    from vesin import NeighborList

    total = 0
    for c in cells:
        red = _red(c)
        cmax = 2 * float(c.search.radii.max()) * c.search.factor
        nl = NeighborList(cutoff=cmax * (1 + 1e-9), full_list=True)
        ci, cj, shifts = nl.compute(
            points=red @ c.search.lattice, box=c.search.lattice, periodic=True, quantities="ijS"
        )
        total += _exact_filter(c, red, ci, cj, shifts)
    return total


def search_pymatgen(cells: Sequence[PreparedCell]) -> int:
    from pymatgen.optimization.neighbors import find_points_in_spheres

    total = 0
    pbc = np.ones(3, dtype=np.int64)
    for c in cells:
        red = _red(c)
        cart = red @ c.search.lattice
        cmax = 2 * float(c.search.radii.max()) * c.search.factor
        ci, cj, shifts, _ = find_points_in_spheres(
            cart, cart, cmax * (1 + 1e-9), pbc, c.search.lattice, 1e-8
        )
        total += _exact_filter(c, red, ci, cj, shifts)
    return total


# ---------------------------------------------------------------------------- timing
def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds of this process) over ``repeat`` runs."""
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--generated", type=int, default=300, help="generated cells besides the 24")
    ap.add_argument("--nonprimitive", type=float, default=0.05, help="fraction of exact supercells")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--baseline-limit", type=int, default=0, help="baselines on the first N (0: all)"
    )
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    protos = reference_cells()
    cells = protos + prototype_variants(rng, protos, args.generated, nonprimitive=args.nonprimitive)
    reducible = [c for c in cells if primitive_cell(*c)[3]]
    primitive = [c for c in cells if not primitive_cell(*c)[3]]
    sizes = np.array([len(c[2]) for c in cells])
    print(
        f"# {len(cells)} structures ({len(reducible)} need the primitive-cell reduction); atoms "
        f"per cell mean {sizes.mean():.1f}, median {np.median(sizes):.0f}, max {sizes.max()}"
    )
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, OMP_NUM_THREADS=1, {datetime.date.today().isoformat()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )

    base_cells = cells if args.baseline_limit <= 0 else cells[: args.baseline_limit]
    baselines = {}
    for n_init in (10, 1):
        w, c = time.perf_counter(), time.process_time()
        lists = [baseline_graph(cell, n_init) for cell in base_cells]
        baselines[n_init] = (
            lists,
            (time.perf_counter() - w) / len(base_cells),
            (time.process_time() - c) / len(base_cells),
        )
    ours27 = build_crystal_graphs(base_cells, "cgc-reference27")
    ours = build_crystal_graphs(base_cells, "cgc")

    def per(
        items: list[Cell], fn: Callable[[], object], repeat: int = args.repeat
    ) -> tuple[float, float]:
        wall, cpu = best_of(fn, repeat)
        return wall / len(items), cpu / len(items)

    rows = [
        ("baseline: reference algorithm, KMeans n_init=10", baselines[10][1:]),
        ("baseline: reference algorithm, KMeans n_init=1", baselines[1][1:]),
        ("cgc, build_crystal_graphs (batched)", per(cells, lambda: build_crystal_graphs(cells))),
        (
            "cgc, build_crystal_graph one at a time",
            per(cells, lambda: [build_crystal_graph(*c) for c in cells], 2),
        ),
        (
            "cgc-reference27, build_crystal_graphs",
            per(cells, lambda: build_crystal_graphs(cells, "cgc-reference27")),
        ),
        (
            "cgc, batched, primitive inputs only",
            per(primitive, lambda: build_crystal_graphs(primitive)),
        ),
    ]
    if reducible:
        rows.append(
            (
                "cgc, batched, inputs needing reduction only",
                per(reducible, lambda: build_crystal_graphs(reducible), 2),
            )
        )
    t10 = baselines[10][1]
    print(
        f"\n{'variant':52s} {'ms/struct':>9s} {'CPU ms':>7s} {'struct/s':>9s} {'x n_init=10':>11s} {'x n_init=1':>10s} {'560k, h':>8s}"
    )
    for name, (wall, cpu) in rows:
        print(
            f"{name:52s} {wall * 1e3:9.3f} {cpu * 1e3:7.3f} {1 / wall:9.0f} {t10 / wall:11.1f} "
            f"{baselines[1][1] / wall:10.1f} {STRUCTURES_560K * wall / 3600:8.2f}"
        )

    def agree(graphs: list, lists: list) -> int:
        return sum(neighbor_lists(g) == b for g, b in zip(graphs, lists, strict=True))

    print(
        f"\nidentical neighbour lists, {len(base_cells)} structures: cgc-reference27 vs baseline "
        f"n_init=10: {agree(ours27, baselines[10][0])}, vs n_init=1: {agree(ours27, baselines[1][0])}; "
        f"cgc vs cgc-reference27: {sum(a == b for a, b in zip(ours, ours27, strict=True))}"
    )

    prepared = [prepare(*c) for c in cells]
    print("\ncandidate search only, per structure (cells prepared; same candidates from each):")
    for name, fn in (
        ("numpy (ours), batched by 256 cells", search_numpy_batched),
        ("numpy (ours), one cell at a time", search_numpy_each),
        ("vesin + exact per-pair filter", search_vesin),
        ("pymatgen find_points_in_spheres + filter", search_pymatgen),
    ):
        found = fn(prepared)
        wall, cpu = best_of(lambda fn=fn: fn(prepared), args.repeat)
        print(
            f"  {name:48s} {wall / len(prepared) * 1e6:9.1f} us  (CPU {cpu / len(prepared) * 1e6:7.1f} us, {found} candidates)"
        )
    print(f"\n# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
