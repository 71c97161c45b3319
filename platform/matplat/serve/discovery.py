"""Discovery pages: the runs of ``platform discover`` and each run's ranked candidates.

Read from ``discovery_runs``, ``candidates`` and the public view ``candidate_ranking``
(rank 1 = lowest predicted hull distance); the run name reaches SQL only as a bound value.
"""

from __future__ import annotations

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from matplat.db.models.discovery import CandidateLineage, DiscoveryRun
from matplat.db.models.mlmodels import ModelVersion
from matplat.serve.errors import ApiError

#: Candidates shown per run page, best ranked first.
SHOWN = 200


def runs(request: Request) -> Response:
    from matplat.serve.web import render

    c = CandidateLineage.__table__
    stable = sa.func.sum(sa.case((c.c.e_above_hull <= 0, 1), else_=0))
    counts = (
        sa.select(c.c.run_id, sa.func.count().label("n"), stable.label("n_stable"))
        .group_by(c.c.run_id).subquery()
    )
    r = DiscoveryRun.__table__
    with request.app.state.db.read() as conn:
        rows = conn.execute(
            sa.select(r.c.name, r.c.created_at, ModelVersion.tag,
                      sa.func.coalesce(counts.c.n, 0).label("n"),
                      sa.func.coalesce(counts.c.n_stable, 0).label("n_stable"))
            .select_from(r.outerjoin(counts, counts.c.run_id == r.c.id)
                         .outerjoin(ModelVersion.__table__,
                                    ModelVersion.id == r.c.model_version_id))
            .order_by(r.c.id.desc())
        ).all()
    return render(request, "discovery.html", runs=rows)


def run(request: Request) -> Response:
    from matplat.serve.web import render

    name = request.path_params["name"]
    with request.app.state.db.read() as conn:
        found = conn.execute(
            sa.select(DiscoveryRun.id).where(DiscoveryRun.name == name)
        ).first()
        if found is None:
            raise ApiError(404, f"no discovery run {name[:40]!r}")
        ranked = conn.execute(
            sa.text("SELECT rank, material_id, formula, spacegroup, natoms, parent_id, "
                    "parent_formula, species_map, probability, charge_checked, model_tag, "
                    "formation_energy, formation_energy_uncertainty, e_above_hull, "
                    "decomposition FROM candidate_ranking WHERE run = :run "
                    "ORDER BY rank LIMIT :n"), {"run": name, "n": SHOWN}
        ).all()
        total = conn.execute(
            sa.select(sa.func.count()).select_from(CandidateLineage)
            .where(CandidateLineage.run_id == found[0])
        ).scalar_one()
    return render(request, "discovery_run.html", run_name=name, ranked=ranked, total=total,
                  shown=SHOWN)


def routes() -> list[Route]:
    return [Route("/discovery", runs), Route("/discovery/{name:path}", run)]
