"""Structure files of every supported format (and broken ones) written for the tests, with
pymatgen and ASE writers plus a few hand-written texts where a writer cannot err."""

from __future__ import annotations

import json
from pathlib import Path

from pymatgen.core import Lattice, Structure

NACL = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                 [[0, 0, 0], [0.5, 0.5, 0.5]])
CSCL = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
FE = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
TIO2 = Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"],
                                 [[0, 0, 0], [0.3053, 0.3053, 0]])

# Two data blocks; the second uses symmetry operations (rutile, 2 Ti + 4 O once expanded).
MULTI_CIF = """data_bcc_fe
_cell_length_a 2.87
_cell_length_b 2.87
_cell_length_c 2.87
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Fe1 Fe 0 0 0 1
Fe2 Fe 0.5 0.5 0.5 1

data_rutile
_cell_length_a 4.594
_cell_length_b 4.594
_cell_length_c 2.959
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 42/m n m'
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
'-x, -y, z'
'-y+1/2, x+1/2, z+1/2'
'y+1/2, -x+1/2, z+1/2'
'-x+1/2, y+1/2, -z+1/2'
'x+1/2, -y+1/2, -z+1/2'
'y, x, -z'
'-y, -x, -z'
'-x, -y, -z'
'x, y, -z'
'y+1/2, -x+1/2, -z+1/2'
'-y+1/2, x+1/2, -z+1/2'
'x+1/2, -y+1/2, z+1/2'
'-x+1/2, y+1/2, z+1/2'
'-y, -x, z'
'y, x, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Ti1 Ti 0 0 0
O1 O 0.3053 0.3053 0
"""

_P1 = """data_{name}
_cell_length_a {a}
_cell_length_b {a}
_cell_length_c {a}
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_symmetry_equiv_pos_as_xyz
'x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
{sites}
"""

PARTIAL_CIF = _P1.format(name="mixed", a=4.0, sites="M1 Fe 0 0 0 0.5\nM2 Co 0 0 0 0.5\nO1 O 0.5 0.5 0.5 1")
VACANCY_CIF = _P1.format(name="vacancy", a=4.0, sites="Fe1 Fe 0 0 0 0.9\nO1 O 0.5 0.5 0.5 1")
OVERLAP_CIF = _P1.format(name="overlap", a=4.0, sites="Fe1 Fe 0 0 0 1\nO1 O 0.05 0 0 1")

# VASP 4: no species line, the species are read from the comment line.
VASP4 = """Na Cl
1.0
5.64 0.0 0.0
0.0 5.64 0.0
0.0 0.0 5.64
1 1
Direct
0.0 0.0 0.0
0.5 0.5 0.5
"""

LEFT_HANDED = """left-handed
1.0
0.0 4.0 0.0
4.0 0.0 0.0
0.0 0.0 4.0
Fe O
1 1
Direct
0.0 0.0 0.0
0.5 0.5 0.5
"""

SINGULAR = """flat
1.0
4.0 0.0 0.0
0.0 4.0 0.0
4.0 4.0 0.0
Fe O
1 1
Direct
0.0 0.0 0.0
0.5 0.5 0.5
"""

UNKNOWN_ELEMENT_XYZ = """2
Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0" Properties=species:S:1:pos:R:3 pbc="T T T"
Fe 0.0 0.0 0.0
Xx 2.0 2.0 2.0
"""


def write_good(folder: Path) -> dict[str, Structure]:
    """One structure per format (plus a multi-block CIF and a two-frame XYZ); returns the
    expected structures by name."""
    from ase.db import connect
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.cif import CifWriter
    from pymatgen.io.vasp import Poscar

    folder.mkdir(parents=True, exist_ok=True)
    CifWriter(NACL, symprec=0.1).write_file(folder / "nacl.cif")  # symmetrised CIF
    (folder / "two.cif").write_text(MULTI_CIF)
    (folder / "run1").mkdir(exist_ok=True)
    Poscar(FE).write_file(folder / "run1" / "POSCAR")
    (folder / "vasp4.vasp").write_text(VASP4)
    a1, a2 = AseAtomsAdaptor.get_atoms(FE), AseAtomsAdaptor.get_atoms(TIO2)
    a1.info.update(formation_energy=-0.25, band_gap=0.0, note="text is ignored")
    a2.info.update(formation_energy=-3.1, band_gap=1.8)
    write(folder / "frames.xyz", [a1, a2], format="extxyz")
    entry = {"@module": "pymatgen.entries.computed_entries", "@class": "ComputedStructureEntry",
             "energy": -10.0, "structure": TIO2.as_dict(), "data": {"formation_energy_per_atom": -3.2}}
    (folder / "entries.json").write_text(json.dumps([NACL.as_dict(), entry]))
    (folder / "lines.jsonl").write_text(json.dumps(FE.as_dict()) + "\n" + json.dumps(TIO2.as_dict()) + "\n")
    with connect(folder / "set.db") as db:
        db.write(AseAtomsAdaptor.get_atoms(NACL), band_gap=5.0)
    return {
        "nacl.cif": NACL, "two.cif#bcc_fe": FE, "two.cif#rutile": TIO2, "run1/POSCAR": FE,
        "vasp4.vasp": CSCL, "frames.xyz#0": FE, "frames.xyz#1": TIO2, "entries.json#0": NACL,
        "entries.json#1": TIO2, "lines.jsonl#0": FE, "lines.jsonl#1": TIO2, "set.db": NACL,
    }


def write_bad(folder: Path) -> dict[str, str]:
    """One structure per reject reason; returns name → a word its reason contains."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mixed.cif").write_text(PARTIAL_CIF)
    (folder / "vacancy.cif").write_text(VACANCY_CIF)
    (folder / "overlap.cif").write_text(OVERLAP_CIF)
    (folder / "left.vasp").write_text(LEFT_HANDED)
    (folder / "flat.vasp").write_text(SINGULAR)
    (folder / "unknown.xyz").write_text(UNKNOWN_ELEMENT_XYZ)
    (folder / "empty.json").write_text(json.dumps({"@class": "Structure", "lattice": FE.lattice.as_dict(), "sites": []}))
    (folder / "noname.vasp").write_text(VASP4.replace("Na Cl", "relaxed cell"))
    (folder / "garbage.cif").write_text("data_x\n_cell_length_a 3\nloop_\n_atom_site_label\n")
    return {"mixed.cif": "partial occupancy", "vacancy.cif": "vacancy", "overlap.cif": "overlapping",
            "left.vasp": "left-handed", "flat.vasp": "singular", "unknown.xyz": "unknown element",
            "empty.json": "no atoms", "garbage.cif": "unreadable",
            "noname.vasp": "element names"}
