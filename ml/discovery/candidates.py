"""Candidate compounds by ion substitution into known structures (pure, no database).

A *parent* is a known structure reduced to what substitution needs: its distinct elements,
their counts in the cell and a structure-type key (its prototype, or anonymous formula and
space group). A *candidate* replaces the parent's k elements one to one by the k elements of
a target chemical system. The map is injective, so sites of one species stay one species and
the candidate keeps the parent's space group and structure type.

Scoring (Hautier et al. 2011, see :mod:`ml.discovery.substitution`): a species map
t_1..t_k -> s_1..s_k has probability Π_j P(s_j | t_j). For a parent with known oxidation
states, every assignment of target species (element permutation × oxidation states of the
table) is scored at once as a sum of log-table lookups over a ``(maps, parents)`` block, and
kept when it is charge balanced (Σ_j n_j · ox(s_j) = 0) and at least ``min_probability``;
an element map keeps its most probable species map. Parents without usable oxidation states
use the element-level table and no charge check (``charge_checked`` is False).

Duplicates: candidates with the same reduced composition and structure-type key are one
candidate (the most probable map; ties go to the first parent given), so two parents of one
prototype never yield the same compound twice.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ml.discovery.substitution import SubstitutionTable, oxidation_guess

__all__ = [
    "Candidate", "Parent", "Target", "generate_candidates", "reduced_key", "scale_lattice",
    "substitute",
]

#: Largest (maps × parents) block scored at once (memory ~ 8 bytes each, a few times).
_BLOCK = 2_000_000

Composition = tuple[tuple[int, int], ...]  # (Z, amount) pairs sorted by Z


@dataclass(frozen=True)
class Parent:
    """A known structure as substitution sees it.

    Attributes:
        key: the caller's id (a material id).
        z: distinct atomic numbers, ascending.
        counts: atoms of each element in the cell, in the order of ``z``.
        type_key: structure-type key (prototype name, or anonymous formula and space group).
    """

    key: int
    z: tuple[int, ...]
    counts: tuple[int, ...]
    type_key: str

    @functools.cached_property
    def reduced(self) -> Composition:
        """The reduced composition (computed once)."""
        return reduced_key(self.z, self.counts)


@dataclass(frozen=True)
class Target:
    """A chemical system (ascending Z) and, optionally, the reduced compositions wanted in it."""

    elements: tuple[int, ...]
    compositions: frozenset[Composition] | None = None


@dataclass(frozen=True)
class Candidate:
    """One candidate: ``new_z[j]`` replaces the parent's ``z[j]``; the species map is JSON."""

    parent: Parent
    new_z: tuple[int, ...]
    probability: float
    species_map: str
    charge_checked: bool
    composition: Composition

    @property
    def dedup_key(self) -> tuple[Composition, str]:
        return self.composition, self.parent.type_key


def reduced_key(z: Sequence[int], counts: Sequence[int]) -> Composition:
    """The reduced composition as ``(Z, amount)`` pairs sorted by Z."""
    g = math.gcd(*(int(c) for c in counts))
    return tuple(sorted((int(a), int(c) // g) for a, c in zip(z, counts, strict=True)))


def _species_maps(table: SubstitutionTable, elements: tuple[int, ...]
                  ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Every injective assignment of the system's species to k parent positions.

    Returns ``(maps (M, k) species rows, perm (M,) element-permutation id, perms (k!, k)
    element Z)``; an element without species in the table yields no maps.
    """
    perms = np.array(list(itertools.permutations(elements)), dtype=np.int64).reshape(-1, len(elements))
    rows: list[tuple[int, ...]] = []
    perm_ids: list[int] = []
    for p, perm in enumerate(perms):
        choices = [table.species_of(int(e)).tolist() for e in perm]
        for combo in itertools.product(*choices):
            rows.append(combo)
            perm_ids.append(p)
    maps = np.array(rows, dtype=np.int64).reshape(-1, len(elements))
    return maps, np.array(perm_ids, dtype=np.int64), perms


def _parent_species(table: SubstitutionTable, parent: Parent) -> NDArray[np.int64] | None:
    """Table rows of the parent's species (its guessed oxidation states), or ``None``."""
    return _species_rows(table, parent.reduced)


@functools.lru_cache(maxsize=65536)
def _species_rows(table: SubstitutionTable, key: Composition) -> NDArray[np.int64] | None:
    guess = oxidation_guess(key)
    if guess is None:
        return None
    rows = [table.lookup(z, state) for (z, _), state in zip(key, guess, strict=True)]
    if min(rows) < 0:
        return None
    return np.array(rows, dtype=np.int64)  # in ascending Z, the order of Parent.z


def _best_per_perm(logp: NDArray[np.float64], perm: NDArray[np.int64], n_perms: int
                   ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Per parent and element permutation: the largest log-probability and its map row.

    ``logp``: (M, P) with −inf for rejected maps. Returns ``(n_perms, P)`` values and rows.
    """
    m, p = logp.shape
    best = np.full((n_perms, p), -np.inf)
    arg = np.full((n_perms, p), -1, dtype=np.int64)
    # maps of one permutation are contiguous (built in order), so reduce each block
    bounds = np.searchsorted(perm, np.arange(n_perms + 1))
    for k in range(n_perms):
        lo, hi = bounds[k], bounds[k + 1]
        if lo == hi:
            continue
        block = logp[lo:hi]
        a = block.argmax(axis=0)
        best[k] = block[a, np.arange(p)]
        arg[k] = a + lo
    return best, arg


def _score_ionic(table: SubstitutionTable, maps: NDArray[np.int64], perm: NDArray[np.int64],
                 n_perms: int, species: NDArray[np.int64], counts: NDArray[np.int64],
                 log_min: float) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Parents with oxidation states: (n_perms, P) best log-probabilities and map rows."""
    log_cond = np.log(table.cond)
    m, k = maps.shape
    logp = np.zeros((m, len(species)))
    for j in range(k):
        logp += log_cond[maps[:, j][:, None], species[None, :, j]]
    charge = table.oxidation[maps] @ counts.T  # (M, P)
    logp[(charge != 0) | (logp < log_min)] = -np.inf
    return _best_per_perm(logp, perm, n_perms)


def _score_elements(table: SubstitutionTable, perms: NDArray[np.int64], z: NDArray[np.int64],
                    log_min: float) -> NDArray[np.float64]:
    """Parents without oxidation states: (k!, P) element-level log-probabilities."""
    with np.errstate(divide="ignore"):
        log_cond = np.log(table.element_cond)
    logp = np.zeros((len(perms), len(z)))
    for j in range(perms.shape[1]):
        logp += log_cond[perms[:, j][:, None], z[None, :, j]]
    logp[logp < log_min] = -np.inf
    return logp


@functools.lru_cache(maxsize=1)
def _symbols() -> tuple[str, ...]:
    from pymatgen.core.periodic_table import Element

    return ("",) + tuple(Element.from_Z(z).symbol for z in range(1, 119))


def _species_map(table: SubstitutionTable, parent: Parent, old: Sequence[int] | None,
                 new: Sequence[int] | None, new_z: Sequence[int]) -> str:
    if old is not None and new is not None:
        pairs = {table.species[o]: table.species[n] for o, n in zip(old, new, strict=True)}
    else:
        sym = _symbols()
        pairs = {sym[a]: sym[b] for a, b in zip(parent.z, new_z, strict=True)}
    return json.dumps(pairs, separators=(",", ":"))


def generate_candidates(
    parents: Sequence[Parent],
    targets: Sequence[Target],
    table: SubstitutionTable,
    *,
    min_probability: float = 1e-3,
) -> list[Candidate]:
    """Candidates of every target from every parent with as many elements, deduplicated,
    most probable first (ties: parents in the order given).

    Args:
        parents: the known structures to substitute into.
        targets: chemical systems (and optionally the reduced compositions wanted).
        table: :func:`ml.discovery.substitution.substitution_table`.
        min_probability: species maps below this product of pair probabilities are dropped.
    """
    log_min = math.log(min_probability) if min_probability > 0 else -np.inf
    best: dict[tuple[Composition, str], tuple[float, int, tuple]] = {}
    groups: dict[int, tuple] = {}  # per element count: the parents, their Z and counts
    for target in targets:
        k = len(target.elements)
        if k not in groups:
            members = [(i, p) for i, p in enumerate(parents) if len(p.z) == k]
            groups[k] = (members,
                         np.array([p.z for _, p in members], dtype=np.int64).reshape(-1, k))
        members, all_z = groups[k]
        if not members:
            continue
        perms_z = np.array(list(itertools.permutations(target.elements)),
                           dtype=np.int64).reshape(-1, k)
        # The element-level table bounds every species map from above: parents it rules out
        # need no oxidation-state guess (pymatgen's costs ~1 ms a composition).
        bound = _score_elements(table, perms_z, all_z, log_min)
        reachable = np.flatnonzero(np.isfinite(bound).any(axis=0))
        ionic: list[tuple[int, Parent, NDArray[np.int64]]] = []
        plain: list[tuple[int, Parent]] = []
        for j in reachable.tolist():
            i, p = members[j]
            rows = _parent_species(table, p)
            if rows is None:
                plain.append((i, p))
            else:
                ionic.append((i, p, rows))
        species = (np.stack([r for _, _, r in ionic]) if ionic
                   else np.zeros((0, k), dtype=np.int64))
        counts = np.array([p.counts for _, p, _ in ionic], dtype=np.int64).reshape(-1, k)
        plain_z = np.array([p.z for _, p in plain], dtype=np.int64).reshape(-1, k)
        maps, perm, perms = _species_maps(table, target.elements)
        found: list[tuple[int, Parent, int, float, Sequence[int] | None, Sequence[int] | None]] = []
        step = max(1, _BLOCK // max(1, len(maps)))
        for b in range(0, len(ionic) if len(maps) else 0, step):
            logp, arg = _score_ionic(table, maps, perm, len(perms), species[b:b + step],
                                     counts[b:b + step], log_min)
            for pk, col in zip(*np.nonzero(np.isfinite(logp)), strict=True):
                i, p, rows = ionic[b + col]
                found.append((i, p, int(pk), float(logp[pk, col]), rows.tolist(),
                              maps[arg[pk, col]].tolist()))
        if plain:
            logp = _score_elements(table, perms, plain_z, log_min)
            for pk, col in zip(*np.nonzero(np.isfinite(logp)), strict=True):
                i, p = plain[col]
                found.append((i, p, int(pk), float(logp[pk, col]), None, None))
        for i, p, pk, lp, old, new in found:
            new_z = tuple(int(x) for x in perms[pk])
            # p.reduced is in ascending Z, the order of p.z, which new_z follows
            comp = tuple(sorted(zip(new_z, (n for _, n in p.reduced), strict=True)))
            if target.compositions is not None and comp not in target.compositions:
                continue
            key = (comp, p.type_key)
            prob = math.exp(lp)
            held = best.get(key)
            if held is not None and (held[0] > prob or held[0] == prob and held[1] <= i):
                continue
            best[key] = (prob, i, (p, new_z, comp, old, new))
    ordered = sorted(best.values(), key=lambda t: (-t[0], t[1], t[2][2]))
    return [Candidate(p, new_z, prob, _species_map(table, p, old, new, new_z), old is not None,
                      comp)
            for prob, _, (p, new_z, comp, old, new) in ordered]


def substitute(atomic_numbers: NDArray[np.integer], old_z: Sequence[int], new_z: Sequence[int]
               ) -> NDArray[np.int64]:
    """Per-site atomic numbers with every ``old_z[j]`` replaced by ``new_z[j]``."""
    z = np.asarray(atomic_numbers, dtype=np.int64)
    lut = np.arange(max(int(z.max(initial=0)), *old_z) + 1, dtype=np.int64)
    lut[list(old_z)] = list(new_z)
    return lut[z]


def scale_lattice(lattice: NDArray[np.floating], natoms: int, volume_per_atom: float
                  ) -> NDArray[np.float64]:
    """The lattice scaled uniformly to ``volume_per_atom`` (unchanged when that is not > 0)."""
    lat = np.asarray(lattice, dtype=np.float64)
    current = abs(float(np.linalg.det(lat))) / natoms
    if not (volume_per_atom > 0 and math.isfinite(volume_per_atom)) or current <= 0:
        return lat.copy()
    return lat * (volume_per_atom / current) ** (1.0 / 3.0)
