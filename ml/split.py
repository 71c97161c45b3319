"""Train/validation/test split grouped by reduced formula.

The rule of the reference's OQMD split (Tony-Y/cgnn ``OQMD/oqmd.py``): the unique formulas of
compounds, in order of first appearance, are shuffled by ``numpy.random.RandomState(seed)``;
the first ``int(n * test)`` go to test, the next ``int(n * val)`` to validation, the rest to
training; formulas of a single element always go to training. Given the materials in the
reference's order and the default arguments, this reproduces its ``split.json``. All
materials of one formula land in the same subset, so polymorphs never straddle the split.
Fractions are of formulas; material fractions follow closely on large sets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

__all__ = ["grouped_split", "is_unary"]

_ELEMENT = re.compile(r"[A-Z][a-z]?")


def is_unary(formula: str) -> bool:
    """Whether a formula names a single element (``"Fe"``, ``"O2"``)."""
    return len(set(_ELEMENT.findall(formula))) == 1


def grouped_split(
    formulas: Sequence[str] | np.ndarray,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 12345,
    unary_to_train: bool = True,
) -> np.ndarray:
    """Label each material ``'train'``, ``'val'`` or ``'test'`` by its reduced formula.

    Args:
        formulas: ``(G,)`` reduced formula of each material (as pymatgen's
            ``Composition.reduced_formula``; equal strings are one group).
        fractions: train, validation and test fractions of the formulas (summing to 1).
        seed: seed of the shuffle (12345 as the reference).
        unary_to_train: put single-element formulas in training (the reference's rule).

    Returns:
        ``(G,)`` array of ``str``.
    """
    f_train, f_val, f_test = (float(f) for f in fractions)
    if min(f_train, f_val, f_test) < 0 or abs(f_train + f_val + f_test - 1.0) > 1e-9:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    names = np.asarray(formulas, dtype=str)
    uniq, first = np.unique(names, return_index=True)
    uniq = uniq[np.argsort(first, kind="stable")]  # order of first appearance
    unary = np.fromiter((is_unary(f) for f in uniq), dtype=bool, count=uniq.size)
    shuffled = uniq[~unary] if unary_to_train else uniq.copy()
    np.random.RandomState(seed).shuffle(shuffled)
    n = shuffled.size
    n_test, n_val = int(n * f_test), int(n * f_val)
    label_of = dict.fromkeys(uniq.tolist(), "train")
    label_of.update(dict.fromkeys(shuffled[:n_test].tolist(), "test"))
    label_of.update(dict.fromkeys(shuffled[n_test : n_test + n_val].tolist(), "val"))
    codes = np.array([label_of[f] for f in uniq.tolist()])
    order = np.argsort(uniq)
    pos = order[np.searchsorted(uniq, names, sorter=order)]
    return codes[pos].astype("<U5")
