"""The ASGI application: OPTIMADE under /optimade, HTML pages elsewhere, one error policy.

Every answer to a bad request is a JSON:API error document (under /optimade) or an HTML
error page, with the right status and one line of detail; an unexpected error is logged on
the server's stderr with its traceback and answered with a plain 500 that shows none.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import exc as sa_exc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from matplat.serve import discovery, optimade, web
from matplat.serve.errors import ApiError
from matplat.serve.readonly import DEFAULT_TIMEOUT_S, ReadOnlyDatabase

HERE = Path(__file__).parent
log = logging.getLogger("uvicorn.error")


def _timeout_error(e: sa_exc.DBAPIError) -> bool:
    text = str(e.orig).lower() if e.orig is not None else ""
    return any(s in text for s in ("statement timeout", "interrupted", "max_statement_time",
                                   "query execution was interrupted", "canceling statement"))


def _as_api_error(request: Request, e: Exception) -> ApiError:
    if isinstance(e, ApiError):
        return e
    if isinstance(e, HTTPException):
        return ApiError(e.status_code, str(e.detail) or "error", None)
    if isinstance(e, sa_exc.DBAPIError):
        if _timeout_error(e):
            timeout = request.app.state.db.timeout_s
            return ApiError(503, f"the query ran past the server's limit of {timeout:g} s: "
                                 "narrow the filter", None)
        log.error("database error in %s %s: %s", request.method, request.url.path,
                  str(e.orig).strip().splitlines()[0] if e.orig is not None else e)
        return ApiError(503, "database error (logged on the server)", None)
    # uvicorn logs the traceback on the server's stderr; the client gets none
    return ApiError(500, "internal error (logged on the server)", None)


async def _handle(request: Request, e: Exception) -> Response:
    err = _as_api_error(request, e)
    if request.url.path.startswith("/optimade"):
        return optimade.error_response(request, err)
    return web.error_page(request, err)


def create_app(database_url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Starlette:
    """The server for one database, read-only (see :mod:`matplat.serve.readonly`)."""
    db = ReadOnlyDatabase(database_url, timeout_s=timeout_s)
    routes = [*optimade.routes(), *web.routes(), *discovery.routes(),
              Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static")]
    # DBAPIError and ApiError are handled like HTTP errors (the response is the answer); only
    # a bare Exception goes to Starlette's server-error handler, which answers with our 500
    # and then re-raises it for uvicorn to log with its traceback.
    handlers = {Exception: _handle, HTTPException: _handle, ApiError: _handle,
                sa_exc.DBAPIError: _handle}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.db = db
    app.state.db_key = database_url
    app.state.templates = web.templates()
    return app


def app_from_env() -> Starlette:
    """The application of ``platform serve`` (uvicorn's factory, once per worker process)."""
    import os

    return create_app(os.environ["PLATFORM_SERVE_DATABASE_URL"],
                      float(os.environ.get("PLATFORM_SERVE_TIMEOUT", DEFAULT_TIMEOUT_S)))
