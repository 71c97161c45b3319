"""Guards of the package layout and the import rules."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_platform_source_root_is_not_a_package() -> None:
    # A `platform` package would shadow the standard library module (uuid, torch, celery...).
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_import_platform_is_the_stdlib_module() -> None:
    spec = importlib.util.find_spec("platform")
    assert spec is not None and spec.origin is not None
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(spec.origin).resolve().parent == stdlib


def test_matplat_cli_does_not_import_torch_or_ml() -> None:
    code = (
        "import sys, matplat.cli, matplat.db.models, matplat.services.query;"
        "bad = [m for m in ('torch', 'ml', 'workers', 'celery') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == ""


def test_python_dash_m_matplat_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "matplat", "--help"], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "query" in out.stdout and "db" in out.stdout
