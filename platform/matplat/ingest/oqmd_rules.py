"""The two OQMD selection rules, vectorised over whole tables (numpy, no database).

Inputs are the needed columns of ``calculations``, ``entries`` and ``formation_energies``
as arrays (NULL ids as -1, NULL floats as NaN); the output is one row per material, sorted
by ``source_id``. The rules (also in the README's "Ingest selection rules"):

``cgnn`` (reproduces the CGNN OQMD v1.2 data set):
  1. materials = distinct ``duplicate_of_id`` (non-NULL) of the entries owning a calculation
     labelled exactly ``static`` or ``standard`` with ``converged = 1`` and a
     formation-energy row (linked by ``calculation_id``) with ``delta_e < 5``;
  2. candidates of material M = converged calculations with at least one formation-energy
     row, of any entry whose ``duplicate_of_id`` is M, labelled ``static``; if there is
     none, labelled ``standard``;
  3. the winner has the lowest ``delta_e`` of its FIRST formation-energy row (lowest row id,
     any fit); a NULL there ranks last; ties go to the lowest calculation id;
  4. formation energy = that first row's ``delta_e`` (NaN if it is NULL).

``oqmd-api`` (what the OQMD website shows): one material per entry that has a converged
calculation labelled exactly ``static``, else ``standard``; among several, the one with the
lowest non-NULL ``delta_e`` of fit ``standard`` (those without one rank last; ties to the
lowest id); formation energy = that value (NaN if none).

Both rules also return ``oqmd_stability``: the ``stability`` (OQMD's hull distance) of the
formation-energy row whose ``delta_e`` they took (NaN where NULL or absent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LABEL_OTHER", "LABEL_STATIC", "LABEL_STANDARD", "Tables", "Selection", "select"]

LABEL_OTHER, LABEL_STATIC, LABEL_STANDARD = 0, 1, 2


@dataclass
class Tables:
    """The columns the rules need (one array per column, NULL ids as -1, NULL floats NaN)."""

    calc_id: np.ndarray  # int64
    calc_entry: np.ndarray  # int64
    calc_label: np.ndarray  # int8: LABEL_*
    calc_converged: np.ndarray  # bool: converged = 1
    calc_output: np.ndarray  # int64
    entry_id: np.ndarray  # int64
    entry_dup: np.ndarray  # int64
    fe_id: np.ndarray  # int64
    fe_calc: np.ndarray  # int64
    fe_standard: np.ndarray  # bool: fit_id = 'standard'
    fe_delta_e: np.ndarray  # float64
    fe_stability: np.ndarray | None = None  # float64; None: the dump has no such column


@dataclass
class Selection:
    """One row per material, in ``source_id`` order."""

    source_id: np.ndarray  # int64
    entry_id: np.ndarray  # int64: entry owning the chosen calculation
    calc_index: np.ndarray  # int64: row of the chosen calculation in the Tables arrays
    formation_energy: np.ndarray  # float64
    oqmd_stability: np.ndarray | None = None  # float64, NaN where unknown

    def __len__(self) -> int:
        return len(self.source_id)

    def head(self, n: int) -> Selection:
        return Selection(
            self.source_id[:n], self.entry_id[:n], self.calc_index[:n], self.formation_energy[:n],
            None if self.oqmd_stability is None else self.oqmd_stability[:n],
        )


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray, missing: float) -> np.ndarray:
    """``values`` at the position of each ``query`` in ``keys`` (``missing`` where absent)."""
    if len(keys) == 0:
        return np.full(len(query), missing, dtype=values.dtype)
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    pos = np.searchsorted(sk, query)
    pos_c = np.minimum(pos, len(sk) - 1)
    hit = (pos < len(sk)) & (sk[pos_c] == query)
    return np.where(hit, values[order][pos_c], missing)


def _per_calc_first(
    fc: np.ndarray, key: np.ndarray, fd: np.ndarray, calc_id: np.ndarray
) -> np.ndarray:
    """For each calculation id, ``fd`` of its row with the smallest ``key``; NaN if none."""
    if len(fc) == 0:
        return np.full(len(calc_id), np.nan)
    order = np.lexsort((key, fc))
    fc, fd = fc[order], fd[order]
    first = np.ones(len(fc), dtype=bool)
    first[1:] = fc[1:] != fc[:-1]
    return _lookup(fc[first], fd[first], calc_id, np.nan)


def _stability(t: Tables) -> np.ndarray:
    return t.fe_stability if t.fe_stability is not None else np.full(len(t.fe_id), np.nan)


def _first_row_delta_e(t: Tables) -> tuple[np.ndarray, np.ndarray]:
    """delta_e and stability of each calculation's first formation-energy row (lowest id,
    any fit)."""
    ok = t.fe_calc >= 0
    return (_per_calc_first(t.fe_calc[ok], t.fe_id[ok], t.fe_delta_e[ok], t.calc_id),
            _per_calc_first(t.fe_calc[ok], t.fe_id[ok], _stability(t)[ok], t.calc_id))


def _lowest_standard(t: Tables) -> tuple[np.ndarray, np.ndarray]:
    """Lowest non-NULL delta_e with fit 'standard' of each calculation (NaN if none), and the
    stability of that row."""
    ok = (t.fe_calc >= 0) & t.fe_standard & ~np.isnan(t.fe_delta_e)
    fd = t.fe_delta_e[ok]
    return (_per_calc_first(t.fe_calc[ok], fd, fd, t.calc_id),
            _per_calc_first(t.fe_calc[ok], fd, _stability(t)[ok], t.calc_id))


def _pick(group: np.ndarray, prio: np.ndarray, score: np.ndarray, t: Tables, cand: np.ndarray):
    """Index (into the calculation arrays) of the best candidate per group, groups sorted."""
    idx = np.nonzero(cand)[0]
    s = np.where(np.isnan(score[idx]), np.inf, score[idx])
    order = np.lexsort((t.calc_id[idx], s, prio[idx], group[idx]))
    idx = idx[order]
    g = group[idx]
    first = np.ones(len(idx), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    return g[first], idx[first]


def select(t: Tables, rule: str) -> Selection:
    """Apply ``rule`` ("cgnn" or "oqmd-api") to the tables."""
    has_entry_row = np.isin(t.calc_entry, t.entry_id) & (t.calc_entry >= 0)
    labelled = (t.calc_label == LABEL_STATIC) | (t.calc_label == LABEL_STANDARD)
    prio = np.where(t.calc_label == LABEL_STATIC, 0, 1).astype(np.int8)
    if rule == "cgnn":
        dup = _lookup(t.entry_id, t.entry_dup, t.calc_entry, -1)
        dup = np.where(has_entry_row, dup, -1)
        fe_ok = t.fe_calc >= 0
        has_fe = np.isin(t.calc_id, t.fe_calc[fe_ok])
        has_lt5 = np.isin(t.calc_id, t.fe_calc[fe_ok & (t.fe_delta_e < 5)])
        qualifies = labelled & t.calc_converged & has_lt5 & (dup >= 0)
        materials = np.unique(dup[qualifies])
        cand = labelled & t.calc_converged & has_fe & (dup >= 0) & np.isin(dup, materials)
        first_de, first_st = _first_row_delta_e(t)
        source, chosen = _pick(dup, prio, first_de, t, cand)
        fe, st = first_de[chosen], first_st[chosen]
    elif rule == "oqmd-api":
        cand = labelled & t.calc_converged & has_entry_row
        best, best_st = _lowest_standard(t)
        source, chosen = _pick(t.calc_entry, prio, best, t, cand)
        fe, st = best[chosen], best_st[chosen]
    else:
        raise ValueError(f"unknown selection rule {rule!r} (known: cgnn, oqmd-api)")
    return Selection(
        source_id=source.astype(np.int64),
        entry_id=t.calc_entry[chosen].astype(np.int64),
        calc_index=chosen.astype(np.int64),
        formation_energy=fe.astype(np.float64),
        oqmd_stability=st.astype(np.float64),
    )
