"""The properties of OPTIMADE ``structures`` that matplat serves, with their SQL columns.

Every property has an OPTIMADE type, a description (shown in ``/info/structures``), and
either a SQL expression over the query's tables (scalars: filterable and sortable) or a
list kind that :mod:`matplat.serve.filters` knows how to search. Provider properties carry
the prefix ``_matplat_``. ``Tables`` names the tables of one structures query: the material,
its summary, its DFT values and the predictions of the model aliased ``production``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Integer, String, Table, cast, literal
from sqlalchemy.sql.elements import ColumnElement

from matplat.db.models import DftProperty, Material, MaterialHull, MaterialSummary
from matplat.db.models.mlmodels import WidePrediction

PREFIX = "matplat"
PRODUCTION_ALIAS = "production"


@dataclass(frozen=True)
class Tables:
    """The tables one structures query joins (always the same objects: plain Core tables)."""

    m: Table = Material.__table__  # type: ignore[assignment]
    s: Table = MaterialSummary.__table__  # type: ignore[assignment]
    d: Table = DftProperty.__table__  # type: ignore[assignment]
    w: Table = WidePrediction.__table__  # type: ignore[assignment]
    h: Table = MaterialHull.__table__  # type: ignore[assignment]


T = Tables()


@dataclass(frozen=True)
class Field:
    """One served property: OPTIMADE type, SQL column (scalars) or list kind (lists)."""

    name: str
    type: str  # string, integer, float, timestamp, list, dictionary
    description: str
    column: Callable[[Tables], ColumnElement] | None = None
    list_kind: str | None = None
    unit: str | None = None

    @property
    def sortable(self) -> bool:
        return self.column is not None

    def sql(self) -> ColumnElement:
        if self.column is None:
            raise KeyError(self.name)
        return self.column(T)


def _f(name: str, type_: str, description: str, column=None, list_kind=None, unit=None) -> Field:  # type: ignore[no-untyped-def]
    return Field(name, type_, description, column, list_kind, unit)


_STANDARD = [
    _f("id", "string", "Platform material id (materials.id), as a string.",
       lambda t: cast(t.m.c.id, String(32))),
    _f("type", "string", "Always 'structures'."),
    _f("last_modified", "timestamp", "When the material's row last changed (materials.updated_at).",
       lambda t: t.m.c.updated_at),
    _f("elements", "list", "Element symbols, alphabetical.", list_kind="elements"),
    _f("nelements", "integer", "Number of distinct elements.", lambda t: t.s.c.nelements),
    _f("elements_ratios", "list", "Fraction of the sites of each element, in `elements` order.",
       list_kind="elements_ratios"),
    _f("chemical_formula_descriptive", "string",
       "pymatgen's reduced formula (ordered by electronegativity), as materials.formula.",
       lambda t: t.m.c.formula),
    _f("chemical_formula_reduced", "string", "Reduced formula, elements alphabetical.",
       lambda t: t.s.c.formula_reduced),
    _f("chemical_formula_hill", "string", "Reduced formula in Hill order.",
       lambda t: t.s.c.formula_hill),
    _f("chemical_formula_anonymous", "string", "Anonymous reduced formula (A2B3).",
       lambda t: t.s.c.formula_anonymous),
    _f("dimension_types", "list", "Always [1, 1, 1]: bulk crystals.", list_kind="dimension_types"),
    _f("nperiodic_dimensions", "integer", "Always 3.", lambda t: literal(3, Integer)),
    _f("lattice_vectors", "list", "Lattice vectors (rows), Å.", list_kind="unsupported",
       unit="Å"),
    _f("space_group_it_number", "integer", "International Tables space group number (OQMD).",
       lambda t: t.m.c.spacegroup),
    _f("cartesian_site_positions", "list", "Cartesian site positions, Å.",
       list_kind="unsupported", unit="Å"),
    _f("nsites", "integer", "Number of sites in the cell.", lambda t: t.s.c.nsites),
    _f("species", "list", "One species per element (ordered structures).",
       list_kind="unsupported"),
    _f("species_at_sites", "list", "Species (element symbol) of each site.",
       list_kind="species_at_sites"),
    _f("structure_features", "list", "Always []: ordered, no implicit atoms.",
       list_kind="structure_features"),
]

_DFT = {
    "formation_energy": ("DFT formation energy", "eV/atom"),
    "band_gap": ("DFT band gap", "eV"),
    "magnetization": ("DFT absolute magnetization per atom", "μB/atom"),
    "volume_per_atom": ("DFT volume per atom", "Å^3/atom"),
}


def _dft_column(prop: str) -> Callable[[Tables], ColumnElement]:
    return lambda t: t.d.c[prop]


def _pred_column(col: str) -> Callable[[Tables], ColumnElement]:
    return lambda t: t.w.c[col]


_PROVIDER: list[Field] = [
    _f(f"_{PREFIX}_source", "string", "Source database of the material (e.g. oqmd).",
       lambda t: t.m.c.source),
    _f(f"_{PREFIX}_source_id", "string", "The material's id in its source database.",
       lambda t: t.m.c.source_id),
]
for _prop, (_what, _unit) in _DFT.items():
    _PROVIDER.append(_f(f"_{PREFIX}_{_prop}", "float", f"{_what}.", _dft_column(_prop), unit=_unit))
for _prop, (_what, _unit) in _DFT.items():
    _name = _what.replace("DFT ", "")
    _PROVIDER.append(_f(f"_{PREFIX}_predicted_{_prop}", "float",
                        f"Predicted {_name} by the model version aliased '{PRODUCTION_ALIAS}'.",
                        _pred_column(_prop), unit=_unit))
    _PROVIDER.append(_f(f"_{PREFIX}_predicted_{_prop}_uncertainty", "float",
                        f"Uncertainty (ensemble spread) of _{PREFIX}_predicted_{_prop}.",
                        _pred_column(f"{_prop}_uncertainty"), unit=_unit))

_PROVIDER += [
    _f(f"_{PREFIX}_e_above_hull", "float",
       "DFT distance to the convex hull of the material's chemical system (`platform hull "
       "build`).", lambda t: t.h.c.e_above_hull, unit="eV/atom"),
    _f(f"_{PREFIX}_predicted_e_above_hull", "float",
       "Predicted hull distance: the DFT hull distance plus the production model's "
       "formation-energy error (Matbench Discovery's convention).",
       lambda t: t.h.c.e_above_hull + (t.w.c.formation_energy - t.d.c.formation_energy),
       unit="eV/atom"),
]

FIELDS: dict[str, Field] = {f.name: f for f in _STANDARD + _PROVIDER}

#: Properties of the OPTIMADE structures entry type that matplat has no value for: they are
#: answered as null when requested and are unknown (comparisons false) in filters.
NULL_FIELDS = (
    "immutable_id",
    "assemblies",
    "space_group_symbol_hall",
    "space_group_symbol_hermann_mauguin",
    "space_group_symbol_hermann_mauguin_extended",
    "space_group_symmetry_operations_xyz",
)

#: Returned when a request names no response_fields.
DEFAULT_RESPONSE_FIELDS = tuple(n for n in FIELDS if n not in ("id", "type"))
