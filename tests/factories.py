"""Plain typed factories for hand-made rows (no ORM magic, explicit values)."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from matplat.db.models import (
    DatasetSplit,
    DftProperty,
    GraphRecipe,
    Material,
    MaterialElement,
    ModelVersion,
    Prediction,
    Site,
    SplitMember,
    Structure,
)


def make_material(
    session: Session,
    material_id: int,
    *,
    formula: str = "NaCl",
    elements: dict[str, int] | None = None,
    spacegroup: int | None = 225,
    dft: dict[str, float | None] | None = None,
    source: str = "oqmd",
) -> Material:
    """A rock-salt-like material with one structure, its sites, elements and DFT values."""
    elements = elements or {"Na": 1, "Cl": 1}
    natoms = sum(elements.values())
    material = Material(
        id=material_id,
        source=source,
        source_id=str(1000 + material_id),
        formula=formula,
        composition=" ".join(f"{e}{n}" for e, n in elements.items()),
        natoms=natoms,
        spacegroup=spacegroup,
        prototype="NaCl",
        content_hash=f"{material_id:064x}",
    )
    session.add(material)
    lattice = np.eye(3) * 4.0
    frac = np.linspace(0, 0.9, natoms * 3).reshape(natoms, 3)
    zs: list[int] = []
    from pymatgen.core import Element

    for symbol, n in elements.items():
        zs += [Element(symbol).Z] * n
    structure = Structure(
        id=material_id,
        material_id=material_id,
        source_structure_id=5000 + material_id,
        natoms=natoms,
        volume=64.0,
        lattice=lattice.astype("<f8").tobytes(),
        frac_coords=frac.astype("<f8").tobytes(),
        atomic_numbers=np.array(zs, dtype="<i2").tobytes(),
    )
    session.add(structure)
    session.flush()
    symbols = [s for s, n in elements.items() for _ in range(n)]
    for i, (symbol, z) in enumerate(zip(symbols, zs, strict=True)):
        session.add(
            Site(structure_id=material_id, site_index=i, element=symbol, atomic_number=z,
                 x=float(frac[i, 0]), y=float(frac[i, 1]), z=float(frac[i, 2]))
        )
    for symbol, n in elements.items():
        session.add(MaterialElement(material_id=material_id, element=symbol, count=n))
    values = {"formation_energy": -1.5, "volume_per_atom": 32.0, "band_gap": 2.0,
              "magnetization": 0.0}
    if dft is not None:
        values.update(dft)
    session.add(DftProperty(material_id=material_id, selection_rule="cgnn",
                            source_calculation_id=9000 + material_id, **values))
    session.flush()
    return material


def make_recipe(session: Session, name: str = "cgc") -> GraphRecipe:
    recipe = GraphRecipe(name=name, params={"scale": 1.2}, code_version="test",
                         params_hash=f"{hash(name) & 0xFFFFFFFF:064x}")
    session.add(recipe)
    session.flush()
    return recipe


def make_split(session: Session, assignment: dict[int, str], name: str = "s1") -> DatasetSplit:
    split = DatasetSplit(name=name, method="grouped-formula", seed=12345,
                         fractions={"train": 0.8, "val": 0.1, "test": 0.1})
    session.add(split)
    session.flush()
    for material_id, subset in assignment.items():
        session.add(SplitMember(split_id=split.id, material_id=material_id, subset=subset))
    session.flush()
    return split


def make_model_version(session: Session, tag: str, *, split_id: int | None = None,
                       recipe_id: int | None = None,
                       targets: list[str] | None = None) -> ModelVersion:
    mv = ModelVersion(tag=tag, name="cgnn", preset="no-edgenet", hyperparameters={"lr": 1e-3},
                      targets=targets or ["formation_energy", "band_gap"], recipe_id=recipe_id,
                      split_id=split_id, data_snapshot_hash="0" * 64, code_version="test",
                      seed=1, ensemble_size=1, n_parameters=10, metrics={"mae": 0.1},
                      artifact=b"\x00\x01weights\xff", artifact_sha256="ab" * 32)
    session.add(mv)
    session.flush()
    return mv


def make_prediction(session: Session, model_version_id: int, material_id: int, prop: str,
                    value: float, uncertainty: float | None = None) -> Prediction:
    p = Prediction(model_version_id=model_version_id, material_id=material_id, property=prop,
                   value=value, uncertainty=uncertainty)
    session.add(p)
    session.flush()
    return p
