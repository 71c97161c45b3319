"""The README's example OPTIMADE filters run against a live server and are valid."""

from __future__ import annotations

import re
from pathlib import Path

from serveutil import Served

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_filters() -> list[str]:
    text = README.read_text()
    block = re.search(r"<!-- optimade-filters -->\s*```text\n(.*?)```", text, re.S)
    assert block, "README has no optimade-filters block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_example_filters_run(served: Served) -> None:
    filters = readme_filters()
    assert len(filters) >= 6
    for flt in filters:
        r = served.get("/optimade/v1/structures", filter=flt, page_limit=5)
        assert r.status_code == 200, (flt, r.text)
        body = r.json()
        assert body["meta"]["data_returned"] >= len(body["data"])
    # the timestamp example matches everything ingested since
    r = served.get("/optimade/v1/structures", filter=filters[-1], page_limit=1).json()
    assert r["meta"]["data_returned"] == r["meta"]["data_available"] > 0
