"""The OPTIMADE v1.2 endpoints: versions, info, info/structures, links, structures.

Served at ``/optimade/v1/…`` and, identically, at the unversioned ``/optimade/…`` (the spec
allows both); ``/optimade/vN/…`` for another major version answers 553. Request parameters
are checked here (numbers, caps, known fields) before anything reaches the query layer.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from matplat import __version__
from matplat.serve import entries
from matplat.serve.errors import ApiError, bad_request, not_implemented
from matplat.serve.fields import DEFAULT_RESPONSE_FIELDS, FIELDS, NULL_FIELDS, PREFIX
from matplat.serve.filters import parse_filter

API_VERSION = "1.2.0"
SCHEMA_URL = "https://schemas.optimade.org/openapi/v1.2/optimade.json"
DEFAULT_PAGE_LIMIT = 20
MAX_PAGE_LIMIT = 500
MAX_OFFSET = 10**12
PROVIDER = {
    "name": "matplat",
    "description": "OQMD materials with DFT properties and CGNN predictions (matplat)",
    "prefix": PREFIX,
    "homepage": None,
}
IMPLEMENTATION = {"name": "matplat", "version": __version__}


def meta(request: Request, **extra: Any) -> dict[str, Any]:
    query = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    out = {
        "query": {"representation": query},
        "api_version": API_VERSION,
        "more_data_available": False,
        "time_stamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "provider": PROVIDER,
        "implementation": IMPLEMENTATION,
        "schema": SCHEMA_URL,
    }
    out.update(extra)
    return out


def json(payload: dict, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status, media_type="application/vnd.api+json")


def error_response(request: Request, err: ApiError) -> JSONResponse:
    return json({"errors": [err.to_json()], "meta": meta(request)}, err.status)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/optimade/v1/"


def versions(request: Request) -> Response:
    return PlainTextResponse("version\n1\n", media_type="text/csv; header=present")


def info(request: Request) -> JSONResponse:
    return json({
        "data": {
            "type": "info",
            "id": "/",
            "attributes": {
                "api_version": API_VERSION,
                "available_api_versions": [{"url": _base(request), "version": API_VERSION}],
                "formats": ["json"],
                "available_endpoints": ["info", "links", "structures"],
                "entry_types_by_format": {"json": ["structures"]},
                "is_index": False,
            },
        },
        "meta": meta(request),
    })


def _property_info(name: str) -> dict[str, Any]:
    f = FIELDS[name]
    out: dict[str, Any] = {"description": f.description, "sortable": f.sortable,
                           "type": "string" if name == "type" else f.type}
    if f.unit:
        out["unit"] = f.unit
    return out


def info_structures(request: Request) -> JSONResponse:
    return json({
        "data": {
            "id": "structures",
            "type": "info",
            "description": "Crystal structures of the platform's materials, with DFT values and "
                           "the predictions of the model aliased 'production'.",
            "properties": {name: _property_info(name) for name in FIELDS},
            "formats": ["json"],
            "output_fields_by_format": {"json": list(FIELDS)},
        },
        "meta": meta(request),
    })


def links(request: Request) -> JSONResponse:
    return json({"data": [], "meta": meta(request, data_returned=0, data_available=0)})


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, not {raw[:40]!r}", name) from None
    if value < lo:
        raise bad_request(f"{name} must be at least {lo}", name)
    if value > hi:
        if name == "page_limit":
            raise ApiError(403, f"page_limit is capped at {hi}; you asked for {value}", name)
        raise bad_request(f"{name} must be at most {hi}", name)
    return value


def response_fields(request: Request) -> tuple[str, ...]:
    raw = request.query_params.get("response_fields")
    if raw is None or not raw.strip():
        return DEFAULT_RESPONSE_FIELDS
    out: list[str] = []
    for name in (p.strip() for p in raw.split(",")):
        if not name:
            continue
        if name in FIELDS or name in NULL_FIELDS:
            out.append(name)
        elif name.startswith("_") and not name.startswith(f"_{PREFIX}_"):
            continue  # another provider's field: ignored, as the specification says
        else:
            raise bad_request(f"unknown field {name[:60]!r} in response_fields", "response_fields")
    return tuple(out)


def _check_common(request: Request) -> None:
    fmt = request.query_params.get("response_format")
    if fmt not in (None, "", "json"):
        raise bad_request(f"response_format {fmt[:20]!r} is not served (json only)",
                          "response_format")
    for name in ("page_above", "page_below", "page_cursor"):
        if request.query_params.get(name):
            raise not_implemented(f"{name} paging is not supported: use page_offset", name)


def structures(request: Request) -> JSONResponse:
    _check_common(request)
    state = request.app.state
    limit = _int_param(request, "page_limit", DEFAULT_PAGE_LIMIT, 0, MAX_PAGE_LIMIT)
    offset = _int_param(request, "page_offset", 0, 0, MAX_OFFSET)
    page_number = _int_param(request, "page_number", 0, 0, MAX_OFFSET)
    if page_number and "page_offset" not in request.query_params:
        offset = (page_number - 1) * limit
    fields = response_fields(request)
    where = parse_filter(request.query_params.get("filter", ""), state.db.backend)
    sort = request.query_params.get("sort")
    with state.db.read() as conn:
        prod = entries.production(conn, state.db_key)
        rows, more = entries.page(conn, where, prod, sort, limit, offset)
        available = entries.available(conn, state.db_key)
        returned = entries.returned(conn, where, prod, rows, more, offset, available)
    data = [entries.entry(row, fields) for row in rows]
    links_ = {"next": None}
    if more:
        links_["next"] = str(request.url.include_query_params(
            page_offset=offset + limit, page_limit=limit).remove_query_params("page_number"))
    counts = {"data_available": available}
    if returned is not None:
        counts["data_returned"] = returned
    body = {"data": data, "links": links_,
            "meta": meta(request, more_data_available=more, **counts)}
    return json(body)


def structure(request: Request) -> JSONResponse:
    _check_common(request)
    raw = request.path_params["entry_id"]
    fields = response_fields(request)
    state = request.app.state
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, f"no structure with id {raw[:40]!r}", None)
    with state.db.read() as conn:
        prod = entries.production(conn, state.db_key)
        rows = entries.rows_for(conn, [int(raw)], prod)
        available = entries.available(conn, state.db_key)
    if not rows:
        raise ApiError(404, f"no structure with id {raw!r}", None)
    (row,) = rows.values()
    return json({
        "data": entries.entry(row, fields),
        "links": {"next": None},
        "meta": meta(request, data_returned=1, data_available=available),
    })


def unsupported_version(request: Request) -> JSONResponse:
    """``/optimade/v2/…``: 553 for another version; anything else under /optimade: 404."""
    version = request.path_params["version"]
    m = re.fullmatch(r"v(\d+)(\.\d+){0,2}", version)
    if m and m.group(1) != "1":
        raise ApiError(553, f"API version {version[:20]!r} is not served: only v1 "
                            "(see /optimade/versions)")
    raise ApiError(404, f"no endpoint {request.url.path[:80]!r}")


def routes() -> list[Route]:
    out = [Route("/optimade/versions", versions)]
    for base in ("/optimade", "/optimade/v1"):
        out += [
            Route(f"{base}/info", info),
            Route(f"{base}/info/structures", info_structures),
            Route(f"{base}/links", links),
            Route(f"{base}/structures", structures),
            Route(f"{base}/structures/{{entry_id:path}}", structure),
        ]
    out.append(Route("/optimade/{version:str}/{rest:path}", unsupported_version))
    return out
