"""Discovery: candidate compounds by data-mined ion substitution into known structures.

Pure (numpy, pymatgen data): :mod:`ml.discovery.substitution` holds the Hautier et al. (2011)
probability table as arrays, :mod:`ml.discovery.candidates` enumerates, scores and
deduplicates species maps of parents into target chemical systems. The database side
(reading parents, predicting, storing ranked candidates) lives in ``workers.discover``.
"""

from __future__ import annotations

from ml.discovery.candidates import (
    Candidate,
    Parent,
    Target,
    generate_candidates,
    reduced_key,
    scale_lattice,
    substitute,
)
from ml.discovery.substitution import SubstitutionTable, oxidation_guess, substitution_table

__all__ = [
    "Candidate",
    "Parent",
    "SubstitutionTable",
    "Target",
    "generate_candidates",
    "oxidation_guess",
    "reduced_key",
    "scale_lattice",
    "substitute",
    "substitution_table",
]
