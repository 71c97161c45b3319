"""The HTML pages over HTTP on every engine: what they show equals the database."""

from __future__ import annotations

import html
import re

from serveutil import Served
from sqlalchemy import text


def test_discovery_pages_list_the_ranked_candidates(served: Served) -> None:
    with served.db.engine.connect() as conn:
        ranked = conn.execute(text(
            "SELECT material_id FROM candidate_ranking WHERE run = 'cuse' ORDER BY rank")).all()
    assert ranked, "the fixture's discovery run made no candidate"
    runs = served.get("/discovery")
    assert runs.status_code == 200 and 'href="/discovery/cuse"' in runs.text
    page = served.get("/discovery/cuse")
    assert page.status_code == 200
    shown = [int(m) for m in re.findall(r'class="candidate" href="/materials/(\d+)"', page.text)]
    assert shown == [r[0] for r in ranked]
    material = served.get(f"/materials/{shown[0]}")
    assert material.status_code == 200 and 'id="lineage"' in material.text
    assert served.get("/discovery/no-such-run").status_code == 404


def test_search_page_shows_the_filter_and_the_same_ids_as_the_api(served: Served) -> None:
    r = served.get("/", formula="", elements="Se", pfe_max="0")
    assert r.status_code == 200
    flt = 'elements HAS ALL "Se" AND _matplat_predicted_formation_energy <= 0.0'
    assert f"<code>{flt}</code>" in html.unescape(r.text)
    shown = {int(m) for m in re.findall(r'class="material" href="/materials/(\d+)"', r.text)}
    api = served.get("/optimade/v1/structures", filter=flt, page_limit=500).json()
    assert shown == {int(e["id"]) for e in api["data"]}


def test_model_and_jobs_pages(served: Served) -> None:
    with served.db.engine.connect() as conn:
        tags = [t for (t,) in conn.execute(text("SELECT tag FROM model_versions ORDER BY id"))]
        jobs = conn.execute(text("SELECT COUNT(*) FROM jobs")).scalar_one()
    page = served.get("/models").text
    assert all(f'href="/models/{t}"' in page for t in tags)
    model = served.get(f"/models/{tags[0]}").text
    assert "<svg" in model and "Learning curves" in model
    rows = re.findall(r"<tr><td>\d+</td>", served.get("/jobs").text)
    assert len(rows) == min(jobs, 100)
