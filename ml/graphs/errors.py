"""The one error type of the crystal graph coordinator."""

from __future__ import annotations


class GraphBuildError(ValueError):
    """A structure cannot be turned into a crystal graph.

    Raised for invalid input (shapes, non-finite numbers, a singular lattice, atomic numbers out
    of range), for elements without an atomic radius (At, Fr and Z >= 96 in pymatgen), for
    cells whose image search would not fit in memory, and for failures of the primitive-cell
    reduction. The message names the structure's problem in one line.
    """
