"""OQMD's own hull distance (``formation_energies.stability``) kept on ingest as
``dft_properties.oqmd_stability``: the row whose ``delta_e`` each rule takes, both rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from test_oqmd_rules import Q

from matplat.ingest.batch import RowBatch
from matplat.ingest.oqmd import extract
from matplat.ingest.oqmd_stage import READ_COLUMNS


class QS(Q):
    """:class:`Q` whose formation-energy rows carry a stability."""

    def fes(self, calc: int, delta_e: float, stability: float | None, fit: str = "standard",
            fid: int | None = None) -> None:
        fid = fid if fid is not None else 1 + len(self.formation_energies)
        self.formation_energies.append((fid, calc, fit, delta_e, stability))

    def batches(self, order=("atoms", "calculations", "entries", "formation_energies",
                             "structures")):
        for t in order:
            rows = getattr(self, t)
            yield RowBatch(t, list(READ_COLUMNS[t]), rows, 0)


def _tables() -> QS:
    q = QS()
    # Material 1: two static calculations; the lower first-row delta_e wins (calc 11).
    q.entry(1)
    q.calc(10, 1)
    q.fes(10, -0.5, 0.30)
    q.calc(11, 1)
    q.fes(11, -0.9, 0.00, fid=50)   # first row of calc 11 (lowest id): cgnn takes it
    q.fes(11, -1.2, 0.07, fid=60)   # lowest standard delta_e: oqmd-api takes it
    # Material 2: stability NULL in the dump.
    q.entry(2)
    q.calc(20, 2)
    q.fes(20, -0.3, None)
    return q


@pytest.mark.parametrize(("rule", "expected"), [("cgnn", {1: 0.0, 2: None}),
                                                ("oqmd-api", {1: 0.07, 2: None})])
def test_rules_keep_the_stability_of_the_chosen_row(rule, expected, tmp_path: Path) -> None:
    chunks = list(extract(_tables().batches(), rule, workdir=tmp_path))
    got = {int(s): (None if np.isnan(v) else float(v)) for c in chunks
           for s, v in zip(c.source_id, c.oqmd_stability, strict=True)}
    assert got == expected


def test_dump_without_the_column_gives_nan(tmp_path: Path) -> None:
    q = Q()
    q.entry(1)
    q.calc(10, 1)
    q.fe(10, -0.5)
    (chunk,) = list(extract(q.batches(), "cgnn", workdir=tmp_path))
    assert np.isnan(chunk.oqmd_stability).all() and chunk.formation_energy[0] == -0.5


def test_ingested_sample_dump_has_oqmd_stability(db, sample_dump: Path) -> None:
    """Each material's oqmd_stability is the stability of a formation-energy row of its
    calculation whose delta_e is its formation energy (read here straight from the dump)."""
    from pipeline_fixture import invoke

    from matplat.ingest.reader import iter_dump

    rows: dict[int, list[tuple[float, float]]] = {}
    for b in iter_dump(sample_dump, {"formation_energies"},
                       columns={"formation_energies": ["calculation_id", "delta_e",
                                                       "stability"]}):
        for calc, de, st in zip(b.array("calculation_id", np.int64).tolist(),
                                b.array("delta_e", np.float64).tolist(),
                                b.array("stability", np.float64).tolist(), strict=True):
            rows.setdefault(calc, []).append((de, st))
    invoke(db.url, "ingest", str(sample_dump))
    with db.engine.connect() as conn:
        got = conn.execute(text("SELECT source_calculation_id, formation_energy, oqmd_stability "
                                "FROM dft_properties")).all()
    assert got and sum(r[2] is not None for r in got) > len(got) // 2
    for calc, fe, st in got:
        match = [s for de, s in rows[calc] if de == fe]
        assert match and (st in match if st is not None else any(np.isnan(match)))
