"""Server-rendered HTML pages: search, material, models, jobs (discovery: ``discovery.py``).

The search form becomes an OPTIMADE filter built only from validated tokens (element symbols
matched by a pattern, numbers parsed by ``float``) and is then parsed and parameterised like
any API filter; the page shows that filter, so the same question can be asked of the API.
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from matplat.db.models import (
    DftProperty,
    HullDecomposition,
    IngestRun,
    Job,
    Material,
    MaterialHull,
    ModelAlias,
    ModelMetric,
    ModelVersion,
    Prediction,
    TrainingRun,
)
from matplat.db.models.discovery import CandidateLineage, DiscoveryRun
from matplat.serve import entries, svg
from matplat.serve.errors import ApiError
from matplat.serve.filters import parse_filter
from matplat.serve.summaries import formulas

HERE = Path(__file__).parent
PAGE = 50
PROPERTIES = ("formation_energy", "band_gap", "magnetization", "volume_per_atom")
UNITS = {"formation_energy": "eV/atom", "band_gap": "eV", "magnetization": "μB/atom",
         "volume_per_atom": "Å³/atom", "volume_deviation": ""}
RANGES = {  # form field prefix -> OPTIMADE property
    "fe": "_matplat_formation_energy",
    "gap": "_matplat_band_gap",
    "pfe": "_matplat_predicted_formation_energy",
    "pgap": "_matplat_predicted_band_gap",
}
_ELEMENT = re.compile(r"[A-Z][a-z]?")
_FORMULA = re.compile(r"(?:[A-Z][a-z]?\d*)+")


def templates() -> Jinja2Templates:
    return Jinja2Templates(directory=str(HERE / "templates"))


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status)


def error_page(request: Request, err: ApiError) -> Response:
    return render(request, "error.html", err.status, error=err)


def _formula_filter(text: str) -> str:
    if not _FORMULA.fullmatch(text):
        raise ApiError(400, f"not a formula: {text[:40]!r} (write e.g. Fe2O3)", "formula")
    amounts: dict[str, int] = {}
    for el, n in re.findall(r"([A-Z][a-z]?)(\d*)", text):
        amounts[el] = amounts.get(el, 0) + (int(n) if n else 1)
    if any(n <= 0 for n in amounts.values()):
        raise ApiError(400, "formula amounts must be positive", "formula")
    return f'chemical_formula_reduced = "{formulas(list(amounts.items())).reduced}"'


def search_filter(params: Any) -> str:
    """The OPTIMADE filter of the search form (validated tokens only)."""
    clauses: list[str] = []
    formula = (params.get("formula") or "").strip()
    if formula:
        clauses.append(_formula_filter(formula))
    elements = [e for e in re.split(r"[\s,]+", params.get("elements") or "") if e]
    if elements:
        bad = [e for e in elements if not _ELEMENT.fullmatch(e)]
        if bad:
            raise ApiError(400, f"not an element symbol: {bad[0][:10]!r}", "elements")
        how = "ONLY" if params.get("only") else "ALL"
        clauses.append(f"elements HAS {how} " + ",".join(f'"{e}"' for e in elements))
    for key, prop in RANGES.items():
        for side, op in (("min", ">="), ("max", "<=")):
            raw = (params.get(f"{key}_{side}") or "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError:
                raise ApiError(400, f"{key}_{side}: not a number: {raw[:20]!r}", key) from None
            if not math.isfinite(value):
                raise ApiError(400, f"{key}_{side}: not a finite number", key)
            clauses.append(f"{prop} {op} {value!r}")
    advanced = (params.get("filter") or "").strip()
    if advanced:
        clauses.append(f"({advanced})")
    return " AND ".join(clauses)


def search(request: Request) -> Response:
    params = request.query_params
    page = 1
    with contextlib.suppress(ValueError):
        page = max(1, min(int(params.get("page") or 1), 10**6))
    context: dict[str, Any] = {"params": params, "results": None, "error": None, "filter": ""}
    if not any(params.get(k) for k in params if k != "page"):
        return render(request, "search.html", **context)
    try:
        text = search_filter(params)
        context["filter"] = text
        where = parse_filter(text, request.app.state.db.backend)
    except ApiError as e:
        context["error"] = e
        return render(request, "search.html", e.status, **context)
    with request.app.state.db.read() as conn:
        prod = entries.production(conn, request.app.state.db_key)
        rows, more = entries.page(conn, where, prod, None, PAGE, (page - 1) * PAGE)
        available = entries.available(conn, request.app.state.db_key)
        total = entries.returned(conn, where, prod, rows, more, (page - 1) * PAGE, available)
    context.update(results=rows, more=more, page=page,
                   total=total, cap=entries.COUNT_CAP, model=prod.tag)
    return render(request, "search.html", **context)


def _material_id(request: Request) -> int:
    raw = request.path_params["material_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, f"no material {raw[:40]!r}")
    return int(raw)


def _one_row(conn, mid: int, key: str) -> Any:  # type: ignore[no-untyped-def]
    prod = entries.production(conn, key)
    rows = entries.rows_for(conn, [mid], prod)
    if not rows:
        raise ApiError(404, f"no material with a structure has id {mid}")
    return rows[mid], prod


def material(request: Request) -> Response:
    mid = _material_id(request)
    with request.app.state.db.read() as conn:
        row, prod = _one_row(conn, mid, request.app.state.db_key)
        preds = conn.execute(
            sa.select(ModelVersion.tag, Prediction.property, Prediction.value,
                      Prediction.uncertainty)
            .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
            .where(Prediction.material_id == mid)
            .order_by(ModelVersion.id, Prediction.property)
        ).all()
        m = conn.execute(sa.select(Material.__table__).where(Material.id == mid)).one()
        hull = conn.execute(
            sa.select(MaterialHull.__table__).where(MaterialHull.material_id == mid)
        ).first()
        lineage = conn.execute(
            sa.select(DiscoveryRun.name, CandidateLineage.parent_material_id,
                      CandidateLineage.species_map, CandidateLineage.probability,
                      CandidateLineage.e_above_hull, CandidateLineage.decomposition)
            .join(DiscoveryRun, DiscoveryRun.id == CandidateLineage.run_id)
            .where(CandidateLineage.material_id == mid)
        ).first()
        decomposition = conn.execute(
            sa.select(HullDecomposition.__table__)
            .where(HullDecomposition.material_id == mid)
            .order_by(HullDecomposition.position)
        ).all()
        dft = conn.execute(
            sa.select(DftProperty.__table__).where(DftProperty.material_id == mid)
        ).first()
        run = None
        if m.ingest_run_id is not None:
            run = conn.execute(
                sa.select(IngestRun.__table__).where(IngestRun.id == m.ingest_run_id)
            ).first()
    models: dict[str, dict[str, tuple[float, float | None]]] = {}
    for tag, prop, value, unc in preds:
        models.setdefault(tag, {})[prop] = (value, unc)
    lattice, frac, z = entries.arrays(row)
    sites = [(i, entries.symbol(int(z[i])), *frac[i].tolist()) for i in range(len(z))]
    props = sorted({p for v in models.values() for p in v} | set(PROPERTIES),
                   key=lambda p: (p not in PROPERTIES, p))
    return render(request, "material.html", row=row, m=m, dft=dft, run=run, models=models,
                  props=props, units=UNITS, lattice=lattice.tolist(), sites=sites,
                  production=prod.tag, attrs=entries.attributes(row), hull=hull,
                  decomposition=decomposition, lineage=lineage)


def _pymatgen_structure(row: Any):  # type: ignore[no-untyped-def]
    from pymatgen.core import Lattice, Structure

    lattice, frac, z = entries.arrays(row)
    return Structure(Lattice(lattice), [int(i) for i in z], frac)


def _download(request: Request, kind: str) -> Response:
    mid = _material_id(request)
    with request.app.state.db.read() as conn:
        row, _ = _one_row(conn, mid, request.app.state.db_key)
    structure = _pymatgen_structure(row)
    safe = re.sub(r"[^A-Za-z0-9()]", "", row.formula)[:60]
    if kind == "cif":
        from pymatgen.io.cif import CifWriter

        body, name = str(CifWriter(structure)), f"matplat-{mid}-{safe}.cif"
    else:
        from pymatgen.io.vasp import Poscar

        body, name = Poscar(structure, comment=f"matplat {mid} {row.formula}").get_str(), f"POSCAR-{mid}"
    return PlainTextResponse(body, media_type="chemical/x-cif" if kind == "cif" else "text/plain",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


def cif(request: Request) -> Response:
    return _download(request, "cif")


def poscar(request: Request) -> Response:
    return _download(request, "poscar")


def models(request: Request) -> Response:
    with request.app.state.db.read() as conn:
        versions = conn.execute(
            sa.select(ModelVersion.id, ModelVersion.tag, ModelVersion.preset,
                      ModelVersion.ensemble_size, ModelVersion.n_parameters,
                      ModelVersion.created_at).order_by(ModelVersion.id)
        ).all()
        aliases = conn.execute(
            sa.select(ModelAlias.model_version_id, ModelAlias.alias)
            .where(ModelAlias.replaced_at.is_(None))
        ).all()
        metrics = conn.execute(
            sa.select(ModelVersion.tag, ModelMetric.property, ModelMetric.n, ModelMetric.mae,
                      ModelMetric.rmse, ModelMetric.roc_auc)
            .join(ModelVersion, ModelVersion.id == ModelMetric.model_version_id)
            .where(ModelMetric.subset == "test")
            .order_by(ModelMetric.property, ModelMetric.mae)
        ).all()
    by_version: dict[int, list[str]] = {}
    for vid, alias in aliases:
        by_version.setdefault(vid, []).append(alias)
    board: dict[str, list[Any]] = {}
    for r in metrics:
        board.setdefault(r.property, []).append(r)
    return render(request, "models.html", versions=versions, aliases=by_version, board=board,
                  units=UNITS)


def model(request: Request) -> Response:
    tag = request.path_params["tag"]
    with request.app.state.db.read() as conn:
        mv = conn.execute(
            sa.select(ModelVersion.__table__).where(ModelVersion.tag == tag)
        ).first()
        if mv is None:
            raise ApiError(404, f"no model version {tag[:60]!r}")
        metrics = conn.execute(
            sa.select(ModelMetric.__table__).where(ModelMetric.model_version_id == mv.id)
            .order_by(ModelMetric.property, ModelMetric.subset)
        ).all()
        test = conn.execute(
            sa.text("SELECT property, dft, predicted FROM prediction_results "
                    "WHERE model_tag = :t AND split = 'test' AND dft IS NOT NULL "
                    "ORDER BY material_id"), {"t": tag}
        ).all()
        runs = conn.execute(
            sa.select(TrainingRun.member, TrainingRun.history, TrainingRun.status,
                      TrainingRun.best_epoch, TrainingRun.seconds)
            .where(TrainingRun.model_version_id == mv.id).order_by(TrainingRun.member)
        ).all()
        aliases = conn.execute(
            sa.select(ModelAlias.alias).where(ModelAlias.model_version_id == mv.id,
                                              ModelAlias.replaced_at.is_(None))
        ).scalars().all()
    parity = []
    for prop in sorted({r.property for r in test}):
        pts = [(r.dft, r.predicted) for r in test if r.property == prop]
        parity.append(svg.parity(f"{prop} (test)", [p[0] for p in pts], [p[1] for p in pts]))
    series = []
    for r in runs:
        hist = r.history or []
        series.append((f"m{r.member} train", [h.get("train_loss") for h in hist]))
        if any(h.get("val_loss") is not None for h in hist):
            series.append((f"m{r.member} val", [h.get("val_loss") for h in hist]))
    curve = svg.curves(f"{tag}: learning curves", series) if series else None
    return render(request, "model.html", mv=mv, metrics=metrics, parity=parity, curve=curve,
                  runs=runs, aliases=aliases, units=UNITS)


def jobs(request: Request) -> Response:
    with request.app.state.db.read() as conn:
        rows = conn.execute(sa.select(Job.__table__).order_by(Job.id.desc()).limit(100)).all()
    return render(request, "jobs.html", jobs=rows)


def routes() -> list[Route]:
    return [
        Route("/", search),
        Route("/materials/{material_id}.cif", cif),
        Route("/materials/{material_id}/POSCAR", poscar),
        Route("/materials/{material_id}", material),
        Route("/models", models),
        Route("/models/{tag:path}", model),
        Route("/jobs", jobs),
    ]
