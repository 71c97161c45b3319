"""The OPTIMADE API of a live ``platform serve``, as its users meet it: the official validator,
the ``optimade`` client, pymatgen's OptimadeRester, filters against the same question in SQL,
and bad requests. Every engine (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from typing import Any

import numpy as np
import pytest
from serveutil import Served
from sqlalchemy import text


def api_ids(served: Served, flt: str) -> set[int]:
    r = served.get("/optimade/v1/structures", filter=flt, page_limit=500,
                   response_fields="nsites")
    assert r.status_code == 200, (flt, r.text)
    body = r.json()
    assert body["meta"]["more_data_available"] is False
    assert body["meta"]["data_returned"] == len(body["data"])
    return {int(e["id"]) for e in body["data"]}


def test_optimade_validator_reports_no_failure(served: Served) -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from optimade.validator import validate; validate()",
         served.optimade],
        capture_output=True, text=True, timeout=600,
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    assert "FAILURES" not in report and "Passed" in report, report


# -- filters against SQL -------------------------------------------------------------------

_BASE = "SELECT m.id FROM materials m WHERE EXISTS (SELECT 1 FROM structures s WHERE s.material_id = m.id)"
_FIRST = "(SELECT MIN(s.id) FROM structures s WHERE s.material_id = m.id)"
_NEL = "(SELECT COUNT(*) FROM material_elements e WHERE e.material_id = m.id)"
_NSITES = f"(SELECT s.natoms FROM structures s WHERE s.id = {_FIRST})"
_HAS = "EXISTS (SELECT 1 FROM material_elements e WHERE e.material_id = m.id AND e.element = {})"
_DFT = "(SELECT d.{} FROM dft_properties d WHERE d.material_id = m.id)"
_PRED = ("(SELECT p.value FROM predictions p JOIN model_aliases a ON a.model_version_id = "
         "p.model_version_id AND a.alias = 'production' AND a.replaced_at IS NULL "
         "WHERE p.material_id = m.id AND p.property = '{}')")


def _records(conn) -> dict[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Per material: element counts, first structure's size, formula (for Python oracles)."""
    recs: dict[int, dict[str, Any]] = {}
    for mid, formula, natoms in conn.execute(text(
            f"SELECT m.id, m.formula, {_NSITES} FROM materials m WHERE {_NSITES} IS NOT NULL")):
        recs[int(mid)] = {"formula": formula, "nsites": int(natoms), "counts": {}}
    for mid, el, n in conn.execute(text("SELECT material_id, element, count FROM material_elements")):
        if int(mid) in recs:
            recs[int(mid)]["counts"][el] = int(n)
    return recs


def _reduced(counts: dict[str, int]) -> str:
    g = math.gcd(*counts.values())
    return "".join(f"{e}{'' if n // g == 1 else n // g}" for e, n in sorted(counts.items()))


def _anonymous(counts: dict[str, int]) -> str:
    g = math.gcd(*counts.values())
    amounts = sorted((n // g for n in counts.values()), reverse=True)
    return "".join(f"{chr(65 + i)}{'' if n == 1 else n}" for i, n in enumerate(amounts))


def test_filters_return_the_ids_sql_returns(served: Served) -> None:
    with served.db.engine.connect() as conn:
        common = [e for e, _ in conn.execute(text(
            "SELECT element, COUNT(*) AS n FROM material_elements GROUP BY element "
            "ORDER BY n DESC, element")).all()[:3]]
        a, b, c = common
        eleven = [e for (e,) in conn.execute(text(
            "SELECT element FROM material_elements GROUP BY element "
            "ORDER BY COUNT(*) DESC, element")).all()[:11]]
        recs = _records(conn)
        some = sorted(recs)[len(recs) // 2]
        formula = recs[some]["formula"]
        source_id = conn.execute(text("SELECT source_id FROM materials WHERE id = :i"),
                                 {"i": some}).scalar_one()
        reduced = _reduced(recs[some]["counts"])
        anonymous = "AB"
        cases: list[tuple[str, Any]] = [
            (f'elements HAS "{a}"', _HAS.format(f"'{a}'")),
            (f'elements HAS ALL "{a}","{b}"', _HAS.format(f"'{a}'") + " AND " + _HAS.format(f"'{b}'")),
            (f'elements HAS ANY "{a}","{b}"', f"({_HAS.format(repr(a))} OR {_HAS.format(repr(b))})"),
            (f'elements HAS ONLY "{a}","{b}","{c}"',
             "NOT EXISTS (SELECT 1 FROM material_elements e WHERE e.material_id = m.id "
             f"AND e.element NOT IN ('{a}', '{b}', '{c}'))"),
            (f'NOT elements HAS "{a}"', "NOT " + _HAS.format(f"'{a}'")),
            # more than 10 elements: NOT EXISTS instead of the list of subsets
            ("elements HAS ONLY " + ",".join(f'"{e}"' for e in eleven),
             "NOT EXISTS (SELECT 1 FROM material_elements e WHERE e.material_id = m.id "
             f"AND e.element NOT IN ({', '.join(repr(e) for e in eleven)}))"),
            ("nelements = 2", f"{_NEL} = 2"),
            ("nelements >= 3", f"{_NEL} >= 3"),
            ("elements LENGTH 2", f"{_NEL} = 2"),
            ("elements LENGTH > 2", f"{_NEL} > 2"),
            ("nsites < 5", f"{_NSITES} < 5"),
            ("4 > nsites", f"{_NSITES} < 4"),
            ("nsites >= 10 AND nelements = 2", f"{_NSITES} >= 10 AND {_NEL} = 2"),
            (f'species_at_sites HAS "{a}"',
             f"EXISTS (SELECT 1 FROM sites x WHERE x.structure_id = {_FIRST} AND x.element = '{a}')"),
            ("species_at_sites LENGTH 2", f"{_NSITES} = 2"),
            ("space_group_it_number = 225", "m.spacegroup = 225"),
            ("space_group_it_number != 225", "m.spacegroup <> 225"),
            ("NOT space_group_it_number = 225", "(m.spacegroup IS NULL OR m.spacegroup <> 225)"),
            ("_matplat_formation_energy < -1", f"{_DFT.format('formation_energy')} < -1"),
            ("_matplat_band_gap > 1 AND _matplat_band_gap <= 3",
             f"{_DFT.format('band_gap')} > 1 AND {_DFT.format('band_gap')} <= 3"),
            ("_matplat_band_gap = 0", f"{_DFT.format('band_gap')} = 0"),
            ("_matplat_magnetization > 0.1 OR _matplat_band_gap > 2",
             f"({_DFT.format('magnetization')} > 0.1 OR {_DFT.format('band_gap')} > 2)"),
            ("_matplat_volume_per_atom IS KNOWN", f"{_DFT.format('volume_per_atom')} IS NOT NULL"),
            ("_matplat_predicted_formation_energy < -1.13",
             f"{_PRED.format('formation_energy')} < -1.13"),
            (f'_matplat_predicted_band_gap > 1.26 AND elements HAS "{a}"',
             f"{_PRED.format('band_gap')} > 1.26 AND " + _HAS.format(f"'{a}'")),
            ("_matplat_predicted_volume_per_atom IS UNKNOWN",
             f"{_PRED.format('volume_per_atom')} IS NULL"),
            (f'chemical_formula_descriptive = "{formula}"', f"m.formula = '{formula}'"),
            (f'chemical_formula_descriptive STARTS WITH "{formula[:2]}"',
             lambda r: r["formula"].startswith(formula[:2])),
            (f'chemical_formula_descriptive CONTAINS "{a}"', lambda r: a in r["formula"]),
            ('chemical_formula_descriptive ENDS "3"', lambda r: r["formula"].endswith("3")),
            (f'chemical_formula_reduced = "{reduced}"',
             lambda r: _reduced(r["counts"]) == reduced),
            (f'chemical_formula_anonymous = "{anonymous}"',
             lambda r: _anonymous(r["counts"]) == anonymous),
            ('chemical_formula_anonymous STARTS "A2"',
             lambda r: _anonymous(r["counts"]).startswith("A2")),
            (f'id = "{some}"', f"m.id = {some}"),
            (f'id != "{some}"', f"m.id <> {some}"),
            (f'_matplat_source_id = "{source_id}"', f"m.source_id = '{source_id}'"),
            ('_matplat_source = "oqmd"', "m.source = 'oqmd'"),
            ("elements_ratios HAS 0.5",
             lambda r: any(n / r["nsites"] == 0.5 for n in r["counts"].values())),
            ('last_modified >= "2000-01-01T00:00:00Z"', "1 = 1"),
            ('last_modified < "2000-01-01T00:00:00Z"', "1 = 0"),
            ("dimension_types HAS 1 AND nperiodic_dimensions = 3 AND structure_features LENGTH 0",
             "1 = 1"),
            ("_otherprovider_x = 1", "1 = 0"),
            ("NOT _otherprovider_x = 1", "1 = 1"),
            ("_matplat_e_above_hull = 0",
             "EXISTS (SELECT 1 FROM material_hulls h WHERE h.material_id = m.id "
             "AND h.e_above_hull = 0)"),
            ("_matplat_e_above_hull > 0.05 AND _matplat_e_above_hull <= 0.5",
             "EXISTS (SELECT 1 FROM material_hulls h WHERE h.material_id = m.id "
             "AND h.e_above_hull > 0.05 AND h.e_above_hull <= 0.5)"),
            ("_matplat_predicted_e_above_hull < 0.3",
             "EXISTS (SELECT 1 FROM material_hulls h WHERE h.material_id = m.id AND "
             f"h.e_above_hull + {_PRED.format('formation_energy')} - "
             f"{_DFT.format('formation_energy')} < 0.3)"),
            (f'(nelements = 2 OR nelements = 3) AND NOT elements HAS "{b}"',
             f"{_NEL} IN (2, 3) AND NOT " + _HAS.format(f"'{b}'")),
        ]
        expected_sets = []
        for _flt, oracle in cases:
            if callable(oracle):
                expected_sets.append({i for i, r in recs.items() if oracle(r)})
            else:
                expected_sets.append({int(r[0]) for r in conn.execute(text(f"{_BASE} AND {oracle}"))})
    nonempty = 0
    for (flt, _), expected in zip(cases, expected_sets, strict=True):
        assert api_ids(served, flt) == expected, flt
        nonempty += bool(expected) and expected != set(recs)
    assert len(cases) >= 45 and nonempty >= 28  # most filters select a proper, non-empty subset


def test_sort_and_paging(served: Served) -> None:
    seen: list[int] = []
    url = "/optimade/v1/structures"
    params: dict[str, Any] = {"sort": "-nsites,id", "page_limit": 7, "response_fields": "nsites"}
    r = served.get(url, **params).json()
    pages = 0
    sizes = []
    while True:
        pages += 1
        seen += [int(e["id"]) for e in r["data"]]
        sizes += [e["attributes"]["nsites"] for e in r["data"]]
        nxt = r["links"]["next"]
        if not r["meta"]["more_data_available"]:
            assert nxt is None
            break
        import requests

        r = requests.get(nxt, timeout=30).json()
    assert len(seen) == len(set(seen)) == r["meta"]["data_available"] and pages > 1
    assert sizes == sorted(sizes, reverse=True)


def _db_structures(served: Served) -> dict[int, tuple[np.ndarray, np.ndarray, list[int]]]:
    with served.db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.material_id, s.lattice, s.frac_coords, s.atomic_numbers FROM structures s "
            "WHERE s.id = (SELECT MIN(t.id) FROM structures t WHERE t.material_id = s.material_id)"
        )).all()
    return {int(m): (np.frombuffer(lat, "<f8").reshape(3, 3),
                     np.frombuffer(fc, "<f8").reshape(-1, 3),
                     np.frombuffer(z, "<i2").astype(int).tolist()) for m, lat, fc, z in rows}


def test_optimade_client_gets_the_database_structures(served: Served) -> None:
    from optimade.adapters import Structure as OptimadeStructure
    from optimade.client import OptimadeClient
    from pymatgen.core import Element

    base = served.base + "/optimade"
    client = OptimadeClient(base_urls=[base], use_async=False, silent=True,
                            max_results_per_provider=1000)
    flt = "nelements >= 2"
    results = client.get(filter=flt)["structures"][flt][base]
    assert not results["errors"], results["errors"]
    data = results["data"]
    db = _db_structures(served)
    assert {int(e["id"]) for e in data} == {m for m, (_, _, z) in db.items() if len(set(z)) >= 2}
    for entry in data:
        lattice, frac, z = db[int(entry["id"])]
        pmg = OptimadeStructure(entry).as_pymatgen
        assert np.allclose(pmg.lattice.matrix, lattice, atol=1e-10)
        assert [s.symbol for s in pmg.species] == [Element.from_Z(i).symbol for i in z]
        assert np.allclose(pmg.cart_coords, frac @ lattice, atol=1e-9)


def test_pymatgen_optimade_rester_gets_the_database_structures(served: Served) -> None:
    from pymatgen.core import Element
    from pymatgen.ext.optimade import OptimadeRester

    db = _db_structures(served)
    counts = Counter(Element.from_Z(i).symbol for _, _, z in db.values() for i in set(z))
    element = counts.most_common(1)[0][0]
    rester = OptimadeRester(served.base + "/optimade/", timeout=30)
    got = rester.get_structures(elements=[element])
    (structures,) = got.values()
    expected = {m for m, (_, _, z) in db.items() if Element(element).Z in z}
    assert {int(k) for k in structures} == expected
    for key, s in structures.items():
        lattice, frac, z = db[int(key)]
        assert np.allclose(s.lattice.matrix, lattice, atol=1e-10)
        assert [site.specie.symbol for site in s] == [Element.from_Z(i).symbol for i in z]
        assert np.allclose(s.frac_coords, frac, atol=1e-9)


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/optimade/v1/structures", {"filter": "nsites <"}, 400),
        ("/optimade/v1/structures", {"filter": "nsites = = 3"}, 400),
        ("/optimade/v1/structures", {"filter": "crazyfield = 2"}, 400),
        ("/optimade/v1/structures", {"filter": "_matplat_nope > 1"}, 400),
        ("/optimade/v1/structures", {"filter": 'nsites = "three"'}, 400),
        ("/optimade/v1/structures", {"filter": 'last_modified > "yesterday"'}, 400),
        ("/optimade/v1/structures", {"filter": "nsites = 1; DROP TABLE materials"}, 400),
        ("/optimade/v1/structures", {"filter": 'elements:species_at_sites HAS "Fe":"Fe"'}, 501),
        ("/optimade/v1/structures", {"filter": "lattice_vectors HAS 1"}, 501),
        ("/optimade/v1/structures", {"filter": "nsites = nelements"}, 501),
        ("/optimade/v1/structures", {"page_limit": "100000"}, 403),
        ("/optimade/v1/structures", {"page_limit": "-1"}, 400),
        ("/optimade/v1/structures", {"page_limit": "ten"}, 400),
        ("/optimade/v1/structures", {"page_offset": "-5"}, 400),
        ("/optimade/v1/structures", {"response_fields": "nsites,bogus_field"}, 400),
        ("/optimade/v1/structures", {"sort": "elements"}, 400),
        ("/optimade/v1/structures", {"sort": "nope"}, 400),
        ("/optimade/v1/structures", {"response_format": "xml"}, 400),
        ("/optimade/v1/structures", {"page_above": "3"}, 501),
        ("/optimade/v1/structures/999999999", {}, 404),
        ("/optimade/v1/structures/../../etc/passwd", {}, 404),
        ("/optimade/v1/structures/abc", {}, 404),
        ("/optimade/v1/references", {}, 404),
        ("/optimade/v2/info", {}, 553),
        ("/optimade/v1/versions", {}, 404),
        ("/materials/999999999", {}, 404),
        ("/materials/..%2F..%2Fetc%2Fpasswd", {}, 404),
        ("/models/no-such-model", {}, 404),
        ("/", {"elements": "Xx1"}, 400),
        ("/", {"fe_min": "nan"}, 400),
        ("/", {"filter": "nsites <"}, 400),
    ],
)
def test_bad_requests_get_the_right_status_and_no_traceback(
    served: Served, path: str, params: dict, status: int
) -> None:
    r = served.get(path, **params)
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text and 'File "' not in r.text
    if path.startswith("/optimade"):
        body = r.json()
        (error,) = body["errors"]
        assert error["status"] == str(status) and error["detail"] and error["title"]
    assert "Traceback" not in served.log.read_text()


def test_single_entry_and_versions(served: Served) -> None:
    first = served.get("/optimade/v1/structures", page_limit=1).json()["data"][0]
    one = served.get(f"/optimade/v1/structures/{first['id']}").json()
    assert one["data"] == first and one["meta"]["data_returned"] == 1
    r = served.get("/optimade/versions")
    assert r.text.splitlines() == ["version", "1"] and "text/csv" in r.headers["content-type"]


def test_request_text_is_escaped_in_pages(served: Served) -> None:
    evil = '<script>alert("x")</script>'
    r = served.get("/", filter=evil, formula="")
    assert r.status_code == 400
    assert evil not in r.text and "&lt;script&gt;" in r.text
    r = served.get("/models/" + evil)
    assert r.status_code == 404 and evil not in r.text
