"""The gemmi CIF path gives exactly pymatgen's structures (content hashes of the stored form
and rejects equal) on every test CIF, and hands everything else to pymatgen."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import structfiles as sf

from matplat.ingest.structures.cif_fast import read_cif_fast
from matplat.ingest.structures.ingest import _prepare
from matplat.ingest.structures.readers import parse_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def both(path: Path, monkeypatch, fmt: str = "cif") -> tuple[list, list]:  # type: ignore[no-untyped-def]
    from matplat.ingest.structures.canonical import content_hash

    def run() -> list:
        out = []
        for r in parse_file(path, path.name, fmt):
            _prepare(r)
            out.append((r.name, r.reject is None,
                        content_hash(r.lattice, r.frac, r.numbers, {}) if r.ok else None,
                        r.spacegroup))
        return out

    fast = run()
    monkeypatch.setenv("MATPLAT_READER", "pymatgen")
    slow = run()
    monkeypatch.delenv("MATPLAT_READER")
    return fast, slow


def test_generated_symmetric_cifs_equal_pymatgen(tmp_path: Path, monkeypatch) -> None:
    from structures import write_cifs  # bench/structures.py: the benchmark's own files

    files = write_cifs(tmp_path, 150, seed=5)
    used = 0
    for f in files:
        used += read_cif_fast(f) is not None
        fast, slow = both(f, monkeypatch)
        assert fast == slow, f.read_text()
    assert used == len(files)  # all of them plain: the fast path took every one


def test_test_files_equal_pymatgen_and_odd_ones_go_to_pymatgen(tmp_path: Path,
                                                              monkeypatch) -> None:
    sf.write_good(tmp_path / "g")
    sf.write_bad(tmp_path / "b")
    cifs = sorted((tmp_path / "g").glob("*.cif")) + sorted((tmp_path / "b").glob("*.cif"))
    assert len(cifs) == 6
    for f in cifs:
        fast, slow = both(f, monkeypatch)
        assert fast == slow, f.name
    # partial occupancies and vacancies are pymatgen's to judge; so are unparsable files
    for name in ("mixed.cif", "vacancy.cif", "garbage.cif"):
        assert read_cif_fast(tmp_path / "b" / name) is None
    assert read_cif_fast(tmp_path / "g" / "two.cif") is not None


@pytest.mark.parametrize("sites", [
    "Fe1 Fe 0 0 0\\nFe2 Fe 0.5 0.5 0.5",          # P1 plain
    "Fe1 Fe2+ 0 0 0\\nO1 O2- 0.5 0.5 0.5",          # oxidation states: pymatgen's
])
def test_symbols_beyond_plain_elements_go_to_pymatgen(tmp_path: Path, sites: str) -> None:
    text = sf._P1.format(name="x", a=4.0, sites="").replace("_atom_site_occupancy\n", "")
    f = tmp_path / "x.cif"
    f.write_text(text + sites.replace("\\n", "\n") + "\n")
    plain = "+" not in sites
    assert (read_cif_fast(f) is not None) == plain
    expected = [26, 26] if plain else [8, 26]
    assert sorted(parse_file(f, "x.cif")[0].numbers.tolist()) == expected

