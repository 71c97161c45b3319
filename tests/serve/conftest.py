"""A live ``platform serve`` (uvicorn in a subprocess on a free 127.0.0.1 port) over the small
pipeline data set (ingest → graphs → train v3, v4 → predict, v3 aliased ``production``,
hull build, a discovery run ``cuse``), once per engine for the whole session.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dbutil import ENGINES  # noqa: E402
from serveutil import Served, start_server, stop_server  # noqa: E402

from matplat.db.session import dispose_engines  # noqa: E402


@pytest.fixture(scope="session", params=ENGINES)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           sample_dump: Path) -> Iterator[Served]:
    from pipeline_fixture import build_pipeline, invoke

    tmp = tmp_path_factory.mktemp(f"serve-{request.param}")
    database = build_pipeline(request.param, tmp, sample_dump)
    invoke(database.url, "models", "alias", "v3", "production")
    invoke(database.url, "hull", "build")
    invoke(database.url, "discover", "--model-tag", "v3", "--elements", "Cu,Se", "--name", "cuse")
    log = tmp / "serve.log"
    proc = None
    try:
        proc, base = start_server(database.url, log)
        yield Served(database, base, log)
    finally:
        if proc is not None:
            stop_server(proc)
        dispose_engines()
        database.drop()
