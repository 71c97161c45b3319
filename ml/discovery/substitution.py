"""Data-mined ion substitution probabilities as numpy tables (Hautier et al. 2011).

pymatgen's ``SubstitutionProbability`` holds a table of weights λ(s, t) for pairs of
oxidation-state species (``Fe2+``, ``O2-``) mined from the ICSD, and scores replacing the
species ``t`` of a known structure by ``s`` with the conditional probability

    P(s | t) = exp(λ(s, t)) / p(t),    p(t) = Σ_u exp(λ(t, u))    (λ symmetric),

where pairs never observed get λ = α = −5. A substitution of several species multiplies the
pair terms (``cond_prob_list``). pymatgen evaluates each pair through dictionaries of
``Species`` objects (~10 µs a pair, 1.6 s to load the table); scoring thousands of parents
against every species map of a chemical system needs the whole table as one matrix, built
here once per process from the same ``lambda.json`` that pymatgen ships (a test checks every
entry against ``SubstitutionProbability.cond_prob``).

Parents' oxidation states are guessed with ``Composition.oxi_state_guesses`` (its most likely
guess, cached per reduced composition: under 1 ms for most; formulas of more than
``MAX_GUESS_ATOMS`` atoms are not guessed). A parent whose guess is not
a set of whole-number species of the table (intermetallics, mixed valence) is scored with
element-level probabilities instead: the largest P(s | t) over the oxidation states of the
two elements, and its charge balance cannot be checked.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["SubstitutionTable", "oxidation_guess", "substitution_table"]

#: λ of pairs never observed together (pymatgen's default ``alpha``).
ALPHA = -5.0
_SPECIES_RE = re.compile(r"^([A-Z][a-z]?)(\d*)([+-])$")
N_Z = 119  # element table rows, Z = 0..118 (row 0 unused)


@dataclass(frozen=True, eq=False)
class SubstitutionTable:
    """The substitution table as arrays.

    Attributes:
        species: (S,) names as pymatgen writes them (``"Fe2+"``, ``"Ag+"``).
        z: (S,) atomic number of each species.
        oxidation: (S,) integer oxidation state of each species.
        cond: (S, S) ``cond[s, t]`` = P(s replaces t | t), pymatgen's ``cond_prob(s, t)``.
        element_cond: (119, 119) the largest ``cond`` over the species of two elements
            (``element_cond[Z_new, Z_old]``), 0 where either element has no species.
        index: species name -> row.
    """

    species: tuple[str, ...]
    z: NDArray[np.int64]
    oxidation: NDArray[np.int64]
    cond: NDArray[np.float64]
    element_cond: NDArray[np.float64]
    index: dict[str, int]

    def species_of(self, z: int) -> NDArray[np.int64]:
        """Rows of the species of element ``z`` (empty when the table has none)."""
        return np.flatnonzero(self.z == z)

    def lookup(self, z: int, oxidation: float) -> int:
        """Row of the species (Z, oxidation state), or −1 when the table lacks it."""
        if oxidation != int(oxidation):
            return -1
        hit = np.flatnonzero((self.z == z) & (self.oxidation == int(oxidation)))
        return int(hit[0]) if len(hit) else -1


def _parse(name: str) -> tuple[str, int, str]:
    """``"Fe2+"`` -> (``"Fe"``, 2, ``"Fe2+"``); ``"Ag1+"`` -> (``"Ag"``, 1, ``"Ag+"``)."""
    m = _SPECIES_RE.match(name)
    if m is None:
        raise ValueError(f"unexpected species {name!r} in the substitution table")
    symbol, amount, sign = m.groups()
    n = int(amount or 1)
    canonical = f"{symbol}{'' if n == 1 else n}{sign}"
    return symbol, n if sign == "+" else -n, canonical


def lambda_file() -> Path:
    """The ``lambda.json`` that pymatgen's ``SubstitutionProbability`` reads."""
    from pymatgen.analysis.structure_prediction.substitution_probability import (
        SubstitutionProbability,
    )

    module = sys.modules[SubstitutionProbability.__module__]
    return Path(module.__file__ or "").parent / "data" / "lambda.json"


@functools.lru_cache(maxsize=1)
def substitution_table() -> SubstitutionTable:
    """The table of pymatgen's default λ (cached per process; ~20 ms)."""
    import json

    from pymatgen.core.periodic_table import Element

    rows = json.loads(lambda_file().read_text())
    rows = [r for r in rows if "D1+" not in r]  # pymatgen skips the dummy species too
    names: dict[str, tuple[str, int]] = {}
    for a, b, _ in rows:
        for s in (a, b):
            symbol, ox, canonical = _parse(s)
            names[canonical] = (symbol, ox)
    species = tuple(sorted(names))
    index = {s: i for i, s in enumerate(species)}
    lam = np.full((len(species), len(species)), ALPHA)
    for a, b, value in rows:
        i, j = index[_parse(a)[2]], index[_parse(b)[2]]
        lam[i, j] = lam[j, i] = float(value)
    weights = np.exp(lam)
    px = weights.sum(axis=1)  # pymatgen's p(t): half of each row and column sum, λ symmetric
    cond = weights / px[None, :]
    z = np.array([Element(names[s][0]).Z for s in species], dtype=np.int64)
    oxidation = np.array([names[s][1] for s in species], dtype=np.int64)
    element_cond = np.zeros((N_Z, N_Z))
    # Largest conditional probability over the species of each element pair.
    np.maximum.at(element_cond, (z[:, None].repeat(len(z), 1), z[None, :].repeat(len(z), 0)),
                  cond)
    for arr in (z, oxidation, cond, element_cond):
        arr.setflags(write=False)
    return SubstitutionTable(species, z, oxidation, cond, element_cond, index)


#: Reduced formulas with more atoms are not guessed: pymatgen's enumeration grows with the
#: amounts (5 s for W20Gd19, 1.9 s for a 37-atom ternary, under 1 ms for most formulas up to
#: 20 atoms; bench/discover.py) and such formulas are rarely simple ionic compounds.
MAX_GUESS_ATOMS = 20


@functools.lru_cache(maxsize=65536)
def oxidation_guess(reduced: tuple[tuple[int, int], ...]) -> tuple[int, ...] | None:
    """The most likely oxidation state of each element of a reduced composition.

    ``reduced``: ``(Z, amount)`` pairs. Returns the states in the order given, or ``None``
    when pymatgen finds no charge-balanced guess, a state is not a whole number, or the
    formula has more than :data:`MAX_GUESS_ATOMS` atoms.
    """
    if sum(n for _, n in reduced) > MAX_GUESS_ATOMS:
        return None
    from pymatgen.core import Composition
    from pymatgen.core.periodic_table import Element

    comp = Composition({Element.from_Z(z): n for z, n in reduced})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guesses = comp.oxi_state_guesses()
    if not guesses:
        return None
    best = guesses[0]
    out: list[int] = []
    for z, _ in reduced:
        value = float(best.get(Element.from_Z(z).symbol, math.nan))
        if not math.isfinite(value) or value != round(value):
            return None
        out.append(round(value))
    return tuple(out)
