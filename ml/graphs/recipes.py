"""Graph recipes: a name, JSON-safe parameters and a code version, stored with every graph.

A model version records the recipe (by ``params_hash``) of the graphs it was trained on, so it is
never fed graphs built another way. Bump :data:`CODE_VERSION` whenever a code change can alter
any graph of an existing recipe (radii, arithmetic, ordering, primitive-cell handling).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

CODE_VERSION = "1"

_IMAGES = ("exact", "27")


@dataclass(frozen=True)
class GraphRecipe:
    """How crystal graphs are built.

    params keys (all required):
        images: ``"exact"`` (every periodic image within the cutoff) or ``"27"`` (offsets -1..1
            only, the reference's search including its misses).
        radius_factor: 1.2, the factor on the volume-scaled radii sum.
        min_distance: 1e-8 Å, candidates at or below it (the atom itself) are dropped.
        cc_cutoff: 0.03, the least gap between 2-means centres that splits a neighbourhood.
        max_iter: 10, the most 2-means splits per atom.
        primitive_tolerance: 0.25 Å, pymatgen ``get_primitive_structure`` tolerance.
        clustering / radii / primitive: descriptive strings naming the definitions used.
    """

    name: str
    params: dict[str, Any] = field(hash=False)
    code_version: str = CODE_VERSION

    def __post_init__(self) -> None:
        params = json.loads(json.dumps(dict(self.params)))  # JSON-safe deep copy
        missing = {"images", "radius_factor", "min_distance", "cc_cutoff", "max_iter",
                   "primitive_tolerance"} - set(params)  # fmt: skip
        if missing:
            raise ValueError(f"graph recipe {self.name!r} lacks params {sorted(missing)}")
        if params["images"] not in _IMAGES:
            raise ValueError(f"graph recipe {self.name!r}: images must be one of {_IMAGES}")
        object.__setattr__(self, "params", params)

    @property
    def params_hash(self) -> str:
        """sha256 hex of the canonical JSON of ``{"code_version", "params"}``."""
        canonical = json.dumps(
            {"code_version": self.code_version, "params": self.params},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        )
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()


_COMMON: dict[str, Any] = {
    "primitive": "pymatgen get_primitive_structure until stable, kept as given if already primitive",
    "primitive_tolerance": 0.25,
    "radii": "pymatgen atomic_radius_calculated else atomic_radius (2026.10.24 table)",
    "radius_factor": 1.2,
    "min_distance": 1e-8,
    "clustering": "exact-1d-2means",
    "cc_cutoff": 0.03,
    "max_iter": 10,
}

RECIPES: Mapping[str, GraphRecipe] = MappingProxyType(
    {
        "cgc": GraphRecipe("cgc", {**_COMMON, "images": "exact"}),
        "cgc-reference27": GraphRecipe("cgc-reference27", {**_COMMON, "images": "27"}),
    }
)
"""The known recipes: ``cgc`` (exact image search, our definition) and ``cgc-reference27``
(the reference's 27-image search, misses included; clustered with the exact 1-D 2-means)."""


def get_recipe(recipe: str | GraphRecipe) -> GraphRecipe:
    """The recipe named ``recipe`` (a GraphRecipe passes through); ValueError if unknown."""
    if isinstance(recipe, GraphRecipe):
        return recipe
    try:
        return RECIPES[recipe]
    except KeyError:
        raise ValueError(
            f"unknown graph recipe {recipe!r}; known recipes: {', '.join(sorted(RECIPES))}"
        ) from None
