"""Selection rules and material columns of :mod:`matplat.ingest.oqmd` on hand-made tables."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from matplat.ingest.batch import RowBatch
from matplat.ingest.oqmd import NEEDED_COLUMNS, MaterialChunk, atomic_volume, extract
from matplat.ingest.reader import DumpFormatError

NaN = float("nan")


@dataclass
class Q:
    """A tiny qmdb: add entries, calculations, formation energies, structures with atoms."""

    atoms: list[tuple] = field(default_factory=list)
    calculations: list[tuple] = field(default_factory=list)
    entries: list[tuple] = field(default_factory=list)
    formation_energies: list[tuple] = field(default_factory=list)
    structures: list[tuple] = field(default_factory=list)

    def entry(self, eid: int, dup: int | None = -2, proto: str | None = "NaCl") -> int:
        self.entries.append((eid, eid if dup == -2 else dup, proto))
        return eid

    def structure(self, sid: int, a: float = 4.0, sites=(("Na", 0, 0, 0), ("Cl", 0.5, 0.5, 0.5)),
                  volume: float | None = None, sg: int | None = 225, lattice=None) -> int:  # fmt: skip
        lat = lattice if lattice is not None else [a, 0, 0, 0, a, 0, 0, 0, a]
        self.structures.append((sid, *lat, volume, sg))
        for el, x, y, z in sites:
            self.atoms.append((len(self.atoms) + 1, sid, el, x, y, z))
        return sid

    def calc(self, cid: int, entry: int, label: str = "static", converged: int | None = 1,
             output: int | None = None, magmom: float | None = None, gap: float | None = 1.0) -> int:  # fmt: skip
        if output is None:
            output = self.structure(1000 + cid)
        self.calculations.append((cid, label, entry, output, magmom, gap, converged))
        return cid

    def fe(
        self, calc: int, delta_e: float | None, fit: str = "standard", fid: int | None = None
    ) -> None:
        fid = fid if fid is not None else 1 + len(self.formation_energies)
        self.formation_energies.append((fid, calc, fit, delta_e))

    def batches(
        self,
        order: tuple[str, ...] = (
            "atoms",
            "calculations",
            "entries",
            "formation_energies",
            "structures",
        ),
    ):
        for t in order:
            rows = getattr(self, t)
            for k in range(0, max(1, len(rows)), 3):  # several batches per table
                yield RowBatch(t, list(NEEDED_COLUMNS[t]), rows[k : k + 3], k)


def run(q: Q, rule: str, tmp_path: Path, **kw) -> tuple[dict[int, dict], list[tuple[int, str]]]:
    out: dict[int, dict] = {}
    rejects: list[tuple[int, str]] = []
    chunks = list(extract(q.batches(), rule, workdir=tmp_path, **kw))
    for c in chunks:
        rejects += c.rejects
        for i in range(len(c)):
            out[int(c.source_id[i])] = {
                "entry": int(c.entry_id[i]), "calc": int(c.calculation_id[i]),
                "structure": int(c.structure_id[i]), "fe": float(c.formation_energy[i]),
                "gap": float(c.band_gap[i]), "mag": float(c.magnetization[i]),
                "tmag": float(c.total_magnetization[i]), "vol": float(c.volume[i]),
                "natoms": int(c.natoms[i]), "formula": c.formula[i], "hash": c.content_hash[i],
                "proto": c.prototype[i], "sg": int(c.spacegroup[i]),
            }  # fmt: skip
    assert not list(tmp_path.iterdir()), "the staging directory must be removed"
    return out, rejects


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_static_beats_standard_and_first_row_any_fit_decides(tmp_path: Path) -> None:
    q = Q()
    q.entry(1)
    q.calc(10, 1, "standard")
    q.fe(10, -3.0)  # lower, but a standard calculation only counts without a static one
    q.calc(11, 1, "static")
    q.fe(11, -1.0, "nothing", fid=50)  # first row (lowest id), another fit
    q.fe(11, -2.5, "standard", fid=51)
    q.calc(12, 1, "static")
    q.fe(12, -1.5, "standard", fid=60)
    got, _ = run(q, "cgnn", tmp_path)
    assert got[1]["calc"] == 12 and got[1]["fe"] == -1.5  # -1.5 < -1.0 (first rows)
    api, _ = run(q, "oqmd-api", tmp_path)
    assert api[1]["calc"] == 11 and api[1]["fe"] == -2.5  # lowest standard-fit value


def test_ties_go_to_lowest_calculation_id(tmp_path: Path) -> None:
    q = Q()
    q.entry(1)
    for cid in (31, 30, 32):
        q.calc(cid, 1)
        q.fe(cid, -1.0)
    for rule in ("cgnn", "oqmd-api"):
        got, _ = run(q, rule, tmp_path)
        assert got[1]["calc"] == 30


def test_nulls(tmp_path: Path) -> None:
    q = Q()
    q.entry(1)
    q.calc(10, 1, magmom=None, gap=None)
    q.fe(10, None, fid=1)  # first row NULL: ranks last
    q.fe(10, -1.0, fid=2)
    q.calc(11, 1, magmom=-3.0, gap=None)
    q.fe(11, 0.5, "nothing")  # no standard fit at all
    q.entry(2)
    q.calc(20, 2, magmom=None, gap=None)
    q.fe(20, None)
    q.fe(20, 4.0)  # qualifies the material through this row
    cg, _ = run(q, "cgnn", tmp_path)
    assert cg[1]["calc"] == 11 and cg[1]["fe"] == 0.5
    assert cg[1]["gap"] == 0.0 and cg[1]["tmag"] == 3.0 and cg[1]["mag"] == 1.5
    assert cg[2]["calc"] == 20 and math.isnan(cg[2]["fe"])  # first row NULL
    assert cg[2]["gap"] == 0.0 and cg[2]["mag"] == 0.0
    api, _ = run(q, "oqmd-api", tmp_path)
    assert api[1]["calc"] == 10 and api[1]["fe"] == -1.0  # 11 has no standard fit: last
    assert math.isnan(api[1]["gap"]) and math.isnan(api[1]["mag"]) and math.isnan(api[1]["tmag"])
    assert api[2]["fe"] == 4.0


def test_labels_convergence_and_missing_formation_energies(tmp_path: Path) -> None:
    q = Q()
    for eid, label, conv in [(1, "static_0", 1), (2, "relaxation", 1), (3, "fine_relax", 1),
                             (4, "coarse_relax", 1), (5, "static", 0), (6, "static", None),
                             (7, "Static", 1), (8, "standard", 1), (9, "static", 1)]:  # fmt: skip
        q.entry(eid)
        q.calc(eid * 10, eid, label, conv)
        q.fe(eid * 10, -1.0)
    q.entry(10)
    q.calc(100, 10, "static")  # converged static without a formation energy
    cg, _ = run(q, "cgnn", tmp_path)
    assert sorted(cg) == [8, 9]
    api, _ = run(q, "oqmd-api", tmp_path)
    assert sorted(api) == [8, 9, 10] and math.isnan(api[10]["fe"])


def test_unphysical_formation_energies(tmp_path: Path) -> None:
    q = Q()
    q.entry(1)
    q.calc(10, 1)
    q.fe(10, 5.0)  # not < 5
    q.entry(2)
    q.calc(20, 2)
    q.fe(20, 7.0, "nothing", fid=100)  # first row >= 5 ...
    q.fe(20, 1.0, "standard", fid=101)  # ... but this row qualifies the material
    cg, _ = run(q, "cgnn", tmp_path)
    assert sorted(cg) == [2] and cg[2]["fe"] == 7.0  # the first row's value, as the reference
    api, _ = run(q, "oqmd-api", tmp_path)
    assert api[1]["fe"] == 5.0 and api[2]["fe"] == 1.0


def test_duplicates(tmp_path: Path) -> None:
    q = Q()
    q.entry(1)  # original
    q.entry(2, dup=1)
    q.entry(3, dup=None)  # no duplicate_of_id: never a cgnn material
    q.entry(4, dup=1)  # a duplicate with only a failed calculation
    q.calc(10, 1)
    q.fe(10, -1.0)
    q.calc(20, 2)
    q.fe(20, -1.2)
    q.calc(30, 3)
    q.fe(30, -5.0)
    q.calc(40, 4, converged=0)
    q.fe(40, -9.0)
    cg, _ = run(q, "cgnn", tmp_path)
    assert sorted(cg) == [1]
    assert cg[1]["calc"] == 20 and cg[1]["entry"] == 2 and cg[1]["fe"] == -1.2
    api, _ = run(q, "oqmd-api", tmp_path)
    assert sorted(api) == [1, 2, 3]
    assert [api[k]["calc"] for k in (1, 2, 3)] == [10, 20, 30]


def test_duplicate_only_group_members_qualify(tmp_path: Path) -> None:
    q = Q()
    q.entry(1)
    q.entry(2, dup=1)
    q.calc(10, 1, "standard")  # the original has only a legacy calculation ...
    q.fe(10, -1.0)
    q.calc(20, 2, "static")  # ... its duplicate a static one, which wins for material 1
    q.fe(20, -0.5)
    cg, _ = run(q, "cgnn", tmp_path)
    assert cg[1]["calc"] == 20 and cg[1]["fe"] == -0.5


def test_structure_columns(tmp_path: Path) -> None:
    q = Q()
    q.entry(1, proto="CsCl")
    lat = [4.0, 0.1, 0.0, 0.0, 4.2, 0.0, 0.3, 0.0, 3.9]
    sites = (("Fe", 0.0, 0.0, 0.0), ("Fe", 0.5, 0.5, 0.5), ("O", 0.1, 0.2, 0.3), ("O", 0.25, 0.75, 0.5),
             ("O", 0.6, 0.6, 0.6), ("O", 0.9, 0.1, 0.4))  # fmt: skip
    q.structure(500, lattice=lat, sites=sites, volume=65.5, sg=None)
    q.calc(10, 1, output=500, magmom=-4.0, gap=0.7)
    q.fe(10, -1.25)
    (chunk,) = list(extract(q.batches(), "cgnn", workdir=tmp_path))
    assert chunk.formula == ["FeO2"] and chunk.composition == ["Fe2 O4"]
    det = abs(np.linalg.det(np.array(lat).reshape(3, 3)))
    assert chunk.lattice.tolist() == [np.array(lat).reshape(3, 3).tolist()]
    assert chunk.frac_coords.tolist() == [list(s[1:]) for s in sites]
    assert chunk.atomic_numbers.tolist() == [26, 26, 8, 8, 8, 8]
    assert chunk.site_offsets.tolist() == [0, 6] and chunk.natoms.tolist() == [6]
    assert chunk.volume[0] == det and chunk.volume_per_atom[0] == det / 6
    assert chunk.spacegroup.tolist() == [-1] and chunk.prototype == ["CsCl"]
    assert chunk.total_magnetization[0] == 4.0 and chunk.magnetization[0] == 4.0 / 6
    v_atoms = atomic_volume({26: 1.0, 8: 2.0})
    assert chunk.volume_deviation[0] == pytest.approx(1 - v_atoms / (det / 6), rel=1e-12)
    (api,) = list(extract(q.batches(), "oqmd-api", workdir=tmp_path))
    assert api.volume[0] == 65.5 and api.volume_per_atom[0] == 65.5 / 6


def test_volume_deviation_matches_pymatgen(tmp_path: Path) -> None:
    from pymatgen.core import Element

    q = Q()
    q.entry(1)
    q.calc(10, 1, output=q.structure(7, a=5.64))
    q.fe(10, -2.0)
    got, _ = run(q, "cgnn", tmp_path)
    r = {s: (Element(s).atomic_radius_calculated or Element(s).atomic_radius) for s in ("Na", "Cl")}
    v_atoms = sum(4 / 3 * math.pi * float(r[s]) ** 3 for s in r) / 2
    (c,) = list(extract(q.batches(), "cgnn", workdir=tmp_path))
    assert c.volume_deviation[0] == pytest.approx(1 - v_atoms / (5.64**3 / 2), rel=1e-12)
    assert got[1]["formula"] == "NaCl"


def test_rejects_are_listed_not_dropped(tmp_path: Path) -> None:
    q = Q()
    for eid in range(1, 8):
        q.entry(eid)
    q.calc(10, 1, output=q.structure(1, sites=(("Na", 0, 0, 0), ("Xx", 0.5, 0.5, 0.5))))
    q.calc(20, 2, output=q.structure(2, lattice=[1, 0, 0, 2, 0, 0, 0, 0, 1]))
    q.calc(30, 3, output=q.structure(3, sites=()))
    q.calc(40, 4, output=q.structure(4, sites=(("Na", NaN, 0, 0),)))
    q.calc(50, 5, output=999)  # structure not in the dump
    q.calc(60, 6)
    q.calculations[-1] = (60, "static", 6, None, None, 1.0, 1)  # output_id NULL
    q.calc(70, 7)  # fine
    for cid in (10, 20, 30, 40, 50, 60, 70):
        q.fe(cid, -1.0)
    got, rejects = run(q, "cgnn", tmp_path, chunk_size=3)
    assert sorted(got) == [7]
    reasons = dict(rejects)
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6]
    assert "unknown element symbol 'Xx'" in reasons[1]
    assert "singular lattice" in reasons[2]
    assert "no atoms" in reasons[3]
    assert "NaN coordinates" in reasons[4]
    assert "not in the dump" in reasons[5]
    assert "no output structure" in reasons[6]


def test_chunks_limit_and_order(tmp_path: Path) -> None:
    q = Q()
    for eid in (9, 3, 7, 1, 5, 2, 8):
        q.entry(eid)
        q.calc(eid * 10, eid, output=q.structure(eid, sites=(("Li", 0, 0, 0),) * (eid % 3 + 1)))
        q.fe(eid * 10, -0.1 * eid)
    chunks: list[MaterialChunk] = list(extract(q.batches(), "cgnn", workdir=tmp_path, chunk_size=3))
    assert [c.source_id.tolist() for c in chunks] == [[1, 2, 3], [5, 7, 8], [9]]
    for c in chunks:
        assert c.site_offsets[-1] == len(c.frac_coords) == len(c.atomic_numbers)
        assert np.diff(c.site_offsets).tolist() == c.natoms.tolist()
    limited = list(extract(q.batches(), "cgnn", workdir=tmp_path, limit=4, chunk_size=10))
    assert [c.source_id.tolist() for c in limited] == [[1, 2, 3, 5]]


def test_content_hash(tmp_path: Path) -> None:
    def build(x: float, fe: float, eid: int) -> str:
        q = Q()
        q.entry(eid)
        q.calc(eid, eid, output=q.structure(eid, sites=(("Na", 0, 0, 0), ("Cl", x, 0.5, 0.5))))
        q.fe(eid, fe)
        (c,) = list(extract(q.batches(), "cgnn", workdir=tmp_path))
        return c.content_hash[0]

    base = build(0.5, -1.0, 1)
    assert build(0.5, -1.0, 2) == base  # ids are not content
    assert build(0.5000000000000001, -1.0, 1) != base
    assert build(0.5, -1.0000000000000002, 1) != base
    assert len(base) == 64


def test_tables_in_any_order_but_each_together(tmp_path: Path) -> None:
    q = Q()
    q.entry(1)
    q.calc(10, 1)
    q.fe(10, -1.0)
    want, _ = run(q, "cgnn", tmp_path)
    order = ("structures", "formation_energies", "entries", "calculations", "atoms")
    got = list(extract(q.batches(order), "cgnn", workdir=tmp_path))
    assert got[0].content_hash[0] == want[1]["hash"]
    bad = [*q.batches(("calculations",)), *q.batches(("entries",)), *q.batches(("calculations",))]
    with pytest.raises(DumpFormatError, match="appear again"):
        list(extract(bad, "cgnn", workdir=tmp_path))


def test_not_oqmd(tmp_path: Path) -> None:
    other = [RowBatch("users", ["id"], [(1,)])]
    with pytest.raises(DumpFormatError, match="not a qmdb"):
        list(extract(other, "cgnn", workdir=tmp_path, source="x.sql"))
    q = Q()
    q.entry(1)
    partial = list(q.batches(("atoms", "entries")))
    with pytest.raises(DumpFormatError, match="missing"):
        list(extract(partial, "cgnn", workdir=tmp_path))
    wrong = [RowBatch("entries", ["id", "duplicate_of_id"], [(1, 1)])]
    with pytest.raises(DumpFormatError, match="lacks column"):
        list(extract(wrong, "cgnn", workdir=tmp_path))
    with pytest.raises(ValueError, match="unknown selection rule"):
        list(extract([], "best", workdir=tmp_path))
