"""Hulls of every chemical system of a data set: one hull per maximal system, shared.

A material of chemical system ``S`` (its set of elements) is judged against every material
whose system is a subset of ``S``. The lower hull of a system ``M`` restricted to the face of
a subsystem ``S ⊆ M`` is exactly the hull of ``S`` (points off that face carry positive
amounts of other elements and cannot mix to a composition on it), so one hull per *maximal*
system (contained in no other present system) serves all of its subsystems: the Fe-O
materials are evaluated on the Fe-Li-O hull instead of building their own. Evaluation is the
vectorised facet product of :mod:`ml.stability.hull`.

Input is a composition matrix in CSR form (entry ``i`` has elements ``z[indptr[i]:indptr[i+1]]``
with atom counts ``amount[...]``), so millions of entries travel as a few numpy arrays.
``targets`` restricts the work to some systems (an incremental rebuild after an ingest): only
their maximal target systems get hulls, built over all present subsystems.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.stability.hull import build_hull, evaluate

__all__ = ["Entries", "SystemResults", "SystemIndex", "system_name", "hull_all"]

SYMBOLS_Z: dict[int, str] = {}


def _symbols() -> dict[int, str]:
    if not SYMBOLS_Z:
        from ml.graphs.elements import SYMBOLS

        SYMBOLS_Z.update({i + 1: s for i, s in enumerate(SYMBOLS)})
    return SYMBOLS_Z


def system_name(zs: Iterable[int]) -> str:
    """``"Fe-O"``: the element symbols of a system in alphabetical order (OQMD's spelling)."""
    sym = _symbols()
    return "-".join(sorted(sym[int(z)] for z in zs))


@dataclass
class Entries:
    """Entries as CSR compositions: ``labels`` (n,) int64 ≥ 0, ``energies`` (n,) eV/atom
    (NaN: left out), ``indptr`` (n+1,), ``z`` (nnz,) atomic numbers, ``amount`` (nnz,) counts."""

    labels: NDArray[np.int64]
    energies: NDArray[np.float64]
    indptr: NDArray[np.int64]
    z: NDArray[np.int64]
    amount: NDArray[np.float64]

    @classmethod
    def from_dicts(cls, labels: ArrayLike, compositions: list[dict[int, float]],
                   energies: ArrayLike) -> Entries:
        """From ``{Z: count}`` dictionaries (tests, small inputs)."""
        indptr = np.zeros(len(compositions) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(c) for c in compositions])
        z = np.array([k for c in compositions for k in sorted(c)], dtype=np.int64)
        amount = np.array([c[k] for c in compositions for k in sorted(c)], dtype=np.float64)
        return cls(np.asarray(labels, dtype=np.int64), np.asarray(energies, dtype=np.float64),
                   indptr, z, amount)


@dataclass
class SystemIndex:
    """Entries grouped by chemical system: ``system_of`` (n,) index into ``systems`` (tuples of
    atomic numbers, ascending); ``members[s]`` the entry indices of system ``s``."""

    systems: list[tuple[int, ...]]
    system_of: NDArray[np.int64]
    members: list[NDArray[np.int64]]

    @classmethod
    def build(cls, entries: Entries) -> SystemIndex:
        n = len(entries.labels)
        row = np.repeat(np.arange(n), np.diff(entries.indptr))
        z = entries.z.astype(np.int64)
        if len(z) and (z.min() < 1 or z.max() > 128):
            raise ValueError("atomic numbers must be within 1..128")
        words = np.zeros((n, 2), dtype=np.uint64)
        present = entries.amount > 0
        bits = np.left_shift(np.uint64(1), ((z - 1) % 64).astype(np.uint64))
        for w in (0, 1):
            sel = present & ((z - 1) // 64 == w)
            np.bitwise_or.at(words[:, w], row[sel], bits[sel])
        uniq, system_of = np.unique(words, axis=0, return_inverse=True)
        system_of = system_of.reshape(-1).astype(np.int64)
        systems = [tuple(int(b) + 1 + 64 * w for w in (0, 1)
                         for b in range(64) if int(u[w]) >> b & 1) for u in uniq]
        order = np.argsort(system_of, kind="stable")
        cuts = np.searchsorted(system_of[order], np.arange(len(systems) + 1))
        members = [order[cuts[i]:cuts[i + 1]] for i in range(len(systems))]
        return cls(systems, system_of, members)


def owners(systems: list[tuple[int, ...]], targets: Iterable[int]) -> dict[int, list[int]]:
    """{owner system: target systems it serves}: each target goes to a maximal target system
    that contains it (descending size, so a system met already owned is not maximal)."""
    index = {s: i for i, s in enumerate(systems)}
    owner: dict[int, int] = {}
    out: dict[int, list[int]] = {}
    tset = set(targets)
    for t in sorted(tset, key=lambda i: -len(systems[i])):
        if t in owner:
            continue
        owner[t] = t
        out[t] = [t]
        s = systems[t]
        for r in range(1, len(s)):
            for sub in itertools.combinations(s, r):
                j = index.get(sub)
                if j is not None and j in tset and j not in owner:
                    owner[j] = t
                    out[t].append(j)
    return out


def subsystems(systems: list[tuple[int, ...]], index: dict[tuple[int, ...], int],
               s: tuple[int, ...]) -> list[int]:
    """Indices of the present systems that are subsets of ``s`` (``s`` included)."""
    found = []
    for r in range(1, len(s) + 1):
        for sub in itertools.combinations(s, r):
            j = index.get(sub)
            if j is not None:
                found.append(j)
    return found


@dataclass
class SystemResults:
    """Per entry (n,): ``e_above_hull`` (NaN where not computed or left out), ``hull_method``
    per owner; the decomposition as flat rows ``decomp_entry``, ``decomp_label`` (the
    product's label, ``-Z`` for an element reference), ``decomp_amount``; ``left_out``:
    reason → count; ``hulls`` built; ``methods``: hull method → count."""

    e_above_hull: NDArray[np.float64]
    decomp_entry: NDArray[np.int64]
    decomp_label: NDArray[np.int64]
    decomp_amount: NDArray[np.float64]
    left_out: dict[str, int] = field(default_factory=dict)
    hulls: int = 0
    methods: dict[str, int] = field(default_factory=dict)


def hull_all(entries: Entries, *, targets: Iterable[int] | None = None,
             index: SystemIndex | None = None, method: str = "auto",
             progress: Callable[[int, int], None] | None = None) -> SystemResults:
    """Hull distances and decompositions of every entry of the ``targets`` systems (all systems
    by default; indices into ``index.systems``). Entries with a non-finite energy are left out
    of every hull and counted under ``left_out``. ``progress(done, total)`` counts owners."""
    n = len(entries.labels)
    index = index or SystemIndex.build(entries)
    ok = np.isfinite(entries.energies)
    natoms = np.add.reduceat(entries.amount, entries.indptr[:-1]) if n else np.zeros(0)
    if n:
        natoms[np.diff(entries.indptr) == 0] = 0.0
    ok &= natoms > 0
    target_list = list(range(len(index.systems))) if targets is None else list(targets)
    left_out: dict[str, int] = {}
    in_targets = np.zeros(len(index.systems), dtype=bool)
    in_targets[target_list] = True
    mask_t = in_targets[index.system_of]
    empty = natoms <= 0
    for reason, sel in (("no elements", mask_t & empty),
                        ("no formation energy", mask_t & ~empty & ~np.isfinite(entries.energies))):
        if sel.any():
            left_out[reason] = int(sel.sum())
    sysidx = {s: i for i, s in enumerate(index.systems)}
    eligible = _hull_eligible(entries, index, ok)
    eah = np.full(n, np.nan)
    d_entry: list[NDArray[np.int64]] = []
    d_label: list[NDArray[np.int64]] = []
    d_amount: list[NDArray[np.float64]] = []
    methods: dict[str, int] = {}
    plan = owners(index.systems, target_list)
    col = np.full(129, -1, dtype=np.int64)
    for done, (owner, served) in enumerate(plan.items()):
        elements = np.asarray(index.systems[owner], dtype=np.int64)
        subs = subsystems(index.systems, sysidx, index.systems[owner])
        pool = np.concatenate([index.members[j] for j in subs]) if subs else np.zeros(0, int)
        pool = pool[eligible[pool]]
        want = np.concatenate([index.members[j] for j in served])
        want = want[ok[want]]
        if len(want) and len(elements):
            col[elements] = np.arange(len(elements))
            fr_pool = _dense(entries, pool, col, len(elements), natoms)
            hull = build_hull(elements, fr_pool, entries.energies[pool], entries.labels[pool],
                              method=method)
            methods[hull.method] = methods.get(hull.method, 0) + 1
            fr_want = _dense(entries, want, col, len(elements), natoms)
            res = evaluate(hull, fr_want, entries.energies[want])
            col[elements] = -1
            # Members of the hull set lie on or above it: tiny negatives are rounding.
            eah[want] = np.maximum(res.e_above_hull, 0.0)
            has = res.products >= 0
            rows = np.nonzero(has)
            d_entry.append(want[rows[0]])
            d_label.append(hull.labels[res.products[has]])
            d_amount.append(res.amounts[has])
        if progress is not None:
            progress(done + 1, len(plan))
    return SystemResults(eah, _cat(d_entry, np.int64), _cat(d_label, np.int64),
                         _cat(d_amount, np.float64), left_out, len(plan), methods)


def _hull_eligible(entries: Entries, index: SystemIndex, ok: NDArray[np.bool_]
                   ) -> NDArray[np.bool_]:
    """Entries that can be hull vertices: compounds below 0 eV/atom (the element references
    at 0 lie below the others) and the lowest entry of each element. Dropping the rest
    before a hull is built spares copying and sorting them for every system that shares
    them (the synthetic data has hundreds of elemental polymorphs per element)."""
    out = ok & (entries.energies < -1e-11)
    for i, system in enumerate(index.systems):
        if len(system) == 1:
            m = index.members[i]
            m = m[ok[m]]
            out[m] = False
            if len(m):
                out[m[np.lexsort((entries.labels[m], entries.energies[m]))[0]]] = True
    return out


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _dense(entries: Entries, rows: NDArray[np.int64], col: NDArray[np.int64], k: int,
           natoms: NDArray[np.float64]) -> NDArray[np.float64]:
    """(len(rows), k) atom fractions of the given entries in the owner's column order."""
    starts, stops = entries.indptr[rows], entries.indptr[rows + 1]
    lens = stops - starts
    flat = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(
        lens.sum())
    r = np.repeat(np.arange(len(rows)), lens)
    out = np.zeros((len(rows), k))
    np.add.at(out, (r, col[entries.z[flat]]), entries.amount[flat])
    out /= natoms[rows][:, None]
    return out


def distances_to_hulls(reference: Entries, query: Entries,
                       index: SystemIndex | None = None) -> NDArray[np.float64]:
    """Distances of new points (``query``: compositions and energies, e.g. predicted formation
    energies of candidates) to the hulls of ``reference``: for each query system, the hull of
    every reference entry of its subsystems, elements at 0 eV/atom. Not clipped: a point below
    the known hull gets a negative distance. NaN where the query energy is not finite or the
    query has no composition.

    Args:
        reference: the data the hulls are built from (non-finite energies are left out).
        query: the points to place; labels are ignored.
        index: ``SystemIndex.build(reference)`` when the caller has it already.

    Returns:
        (len(query.labels),) distances in eV/atom.
    """
    index = index or SystemIndex.build(reference)
    sysidx = {s: i for i, s in enumerate(index.systems)}
    ok = np.isfinite(reference.energies)
    natoms_ref = np.add.reduceat(reference.amount, reference.indptr[:-1]) if len(
        reference.labels) else np.zeros(0)
    if len(reference.labels):
        natoms_ref[np.diff(reference.indptr) == 0] = 0.0
    ok &= natoms_ref > 0
    eligible = _hull_eligible(reference, index, ok)
    qindex = SystemIndex.build(query)
    nq = len(query.labels)
    natoms_q = np.add.reduceat(query.amount, query.indptr[:-1]) if nq else np.zeros(0)
    if nq:
        natoms_q[np.diff(query.indptr) == 0] = 0.0
    out = np.full(nq, np.nan)
    col = np.full(129, -1, dtype=np.int64)
    for q, system in enumerate(qindex.systems):
        rows = qindex.members[q]
        rows = rows[np.isfinite(query.energies[rows]) & (natoms_q[rows] > 0)]
        if not len(rows) or not system:
            continue
        elements = np.asarray(system, dtype=np.int64)
        subs = subsystems(index.systems, sysidx, system)
        pool = np.concatenate([index.members[j] for j in subs]) if subs else np.zeros(0, int)
        pool = pool[eligible[pool]]
        col[elements] = np.arange(len(elements))
        hull = build_hull(elements, _dense(reference, pool, col, len(elements), natoms_ref),
                          reference.energies[pool], np.arange(len(pool)))
        res = evaluate(hull, _dense(query, rows, col, len(elements), natoms_q),
                       query.energies[rows])
        col[elements] = -1
        out[rows] = res.e_above_hull
    return out
