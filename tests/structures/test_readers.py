"""Structure readers (pymatgen/ASE), the checks and the stored form, without a database."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import structfiles as sf
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from matplat.ingest.structures.canonical import canonical_cell, content_hash
from matplat.ingest.structures.files import collect, stored_name
from matplat.ingest.structures.readers import detect_format, parse_file, parse_object
from matplat.ingest.structures.records import check


def parse_folder(folder: Path) -> dict:
    files, _, _ = collect([str(folder)])
    return {r.name: r for f in files for r in parse_file(f.path, f.display, f.fmt)}


def as_structure(rec) -> Structure:  # type: ignore[no-untyped-def]
    return Structure(Lattice(rec.lattice), rec.numbers.tolist(), rec.frac)


def test_every_format_reads_every_structure(tmp_path: Path) -> None:
    expected = sf.write_good(tmp_path / "good")
    got = parse_folder(tmp_path / "good")
    assert set(got) == set(expected)
    matcher = StructureMatcher(primitive_cell=False, scale=False, attempt_supercell=False)
    for name, want in expected.items():
        rec = got[name]
        assert rec.ok, (name, rec.reject)
        assert len(rec.numbers) == len(want), name
        assert matcher.fit(as_structure(rec), want), name
    # symmetry operations expanded: the rutile block lists 2 atoms, the cell holds 6
    assert sorted(got["two.cif#rutile"].numbers.tolist()) == [8, 8, 8, 8, 22, 22]
    assert got["two.cif#rutile"].block == "rutile"
    # numeric per-frame values are DFT values; text ones are ignored
    assert got["frames.xyz#0"].props == {"formation_energy": -0.25, "band_gap": 0.0}
    assert got["frames.xyz#1"].props == {"formation_energy": -3.1, "band_gap": 1.8}
    assert got["entries.json#1"].props == {"formation_energy": -3.2}
    assert got["set.db"].props == {"band_gap": 5.0}


def test_each_reject_reason(tmp_path: Path) -> None:
    expected = sf.write_bad(tmp_path / "bad")
    got = parse_folder(tmp_path / "bad")
    assert set(got) == set(expected)
    for name, word in expected.items():
        assert got[name].reject is not None and word in got[name].reject, (name, got[name].reject)


def test_checks_on_arrays() -> None:
    cubic = np.eye(3) * 4.0
    assert check(cubic, np.zeros((0, 3)), np.zeros(0, np.int16)) == "no atoms"
    assert "unknown element" in check(cubic, np.zeros((1, 3)), np.array([119]))
    # an atom 0.4 Å from its own image in a 0.4 Å cell
    tiny = np.diag([0.4, 4.0, 4.0])
    assert "periodic image" in check(tiny, np.zeros((1, 3)), np.array([26]))
    # the closest pair across the cell boundary counts (0.98 and 0.02 are 0.16 Å apart)
    frac = np.array([[0.98, 0, 0], [0.02, 0, 0]])
    assert "overlapping" in check(cubic, frac, np.array([26, 8]))
    assert check(cubic, np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), np.array([26, 8])) is None


def test_objects_from_pymatgen_and_ase() -> None:
    from pymatgen.entries.computed_entries import ComputedStructureEntry
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(sf.TIO2)
    atoms.info["band_gap"] = 1.5
    entry = ComputedStructureEntry(sf.NACL, -5.0, data={"formation_energy_per_atom": -2.0})
    for obj, n, props in ((sf.FE, 2, {}), (atoms, 6, {"band_gap": 1.5}),
                          (entry, 8, {"formation_energy": -2.0})):
        rec = parse_object(obj, "x")
        assert rec.ok and len(rec.numbers) == n and rec.props == props
    disordered = Structure(Lattice.cubic(4), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]])
    assert "partial occupancy" in parse_object(disordered, "d").reject


def test_json_never_decodes_objects(tmp_path: Path) -> None:
    """Site properties naming a module would make pymatgen's MontyDecoder import it; they
    are dropped, so the module is never imported."""
    d = sf.FE.as_dict()
    d["sites"][0]["properties"] = {"evil": {"@module": "tests_never_imported_module",
                                            "@class": "X"}}
    (tmp_path / "s.json").write_text(json.dumps(d))
    rec = parse_file(tmp_path / "s.json", "s.json")[0]
    assert rec.ok, rec.reject
    import sys

    assert "tests_never_imported_module" not in sys.modules


def test_ase_reader_never_writes_a_foreign_sqlite_file(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "other.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (x)")
    before = db.read_bytes()
    rec = parse_file(db, "other.db")[0]
    assert rec.reject is not None and "not an ASE database" in rec.reject
    assert db.read_bytes() == before


def test_stored_form_is_a_fixed_point_and_the_hash_ignores_order_and_rotation() -> None:
    rng = np.random.default_rng(3)
    lattice = np.array([[4.1, 0.2, 0.0], [0.3, 5.2, 0.1], [0.0, 0.4, 6.3]])
    frac = rng.random((7, 3))
    z = np.array([8, 26, 8, 26, 8, 3, 3])
    lat1, f1 = canonical_cell(lattice, frac)
    lat2, f2 = canonical_cell(lat1, f1)
    assert np.array_equal(lat1, lat2) and np.array_equal(f1, f2)
    h = content_hash(lat1, f1, z, {"band_gap": 1.0})
    perm = rng.permutation(7)
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rot *= np.sign(np.linalg.det(rot))  # a proper rotation
    assert content_hash(lat1 @ rot.T, f1[perm], z[perm], {"band_gap": 1.0}) == h
    assert content_hash(lat1, f1, z, {"band_gap": 1.1}) != h
    moved = f1.copy()
    moved[0, 0] += 1e-5
    assert content_hash(lat1, moved, z, {"band_gap": 1.0}) != h


def test_names_and_formats(tmp_path: Path) -> None:
    assert len(stored_name("x" * 80)) == 64
    assert stored_name("x" * 80) != stored_name("x" * 79 + "y")
    assert stored_name("short.cif") == "short.cif"
    (tmp_path / "CONTCAR_relaxed").write_text(sf.VASP4)
    (tmp_path / "noext").write_text(sf.MULTI_CIF)
    (tmp_path / "README").write_text("hello")
    assert detect_format(tmp_path / "CONTCAR_relaxed") == "poscar"
    assert detect_format(tmp_path / "noext") == "cif"
    assert detect_format(tmp_path / "README") is None
    files, base, skipped = collect([str(tmp_path)])
    assert [f.display for f in files] == ["CONTCAR_relaxed", "noext"] and skipped == 1


@pytest.mark.parametrize("pattern", ["*/CONTCAR", "runs/*/CONTCAR"])
def test_glob_names_are_relative_to_the_common_folder(tmp_path: Path, monkeypatch,
                                                      pattern: str) -> None:
    for run in ("a", "b"):
        (tmp_path / "runs" / run).mkdir(parents=True)
        (tmp_path / "runs" / run / "CONTCAR").write_text(sf.VASP4)
    monkeypatch.chdir(tmp_path if pattern.startswith("runs") else tmp_path / "runs")
    files, base, _ = collect([pattern])
    assert [f.display for f in files] == ["a/CONTCAR", "b/CONTCAR"]
    assert base.name == "runs"


def test_overlap_filter_agrees_with_the_27_image_search() -> None:
    """The fractional pre-filter finds exactly the pairs the exhaustive search finds."""
    from matplat.ingest.structures.records import MIN_DISTANCE, _closest_pair

    rng = np.random.default_rng(11)
    for _ in range(300):
        lattice = np.diag(rng.uniform(1.2, 6, 3)) + rng.uniform(-0.8, 0.8, (3, 3))
        if np.linalg.det(lattice) < 0.5:
            continue
        frac = rng.random((int(rng.integers(2, 12)), 3))
        cart = frac @ lattice
        shifts = np.array([(a, b, c) for a in range(-2, 3) for b in range(-2, 3)
                           for c in range(-2, 3)]) @ lattice
        d = np.linalg.norm(cart[:, None, None] - cart[None, :, None] + shifts[None, None], axis=3)
        d[np.arange(len(frac)), np.arange(len(frac)), len(shifts) // 2] = np.inf
        brute = d.min() < MIN_DISTANCE
        assert (_closest_pair(lattice, frac) is not None) == brute
