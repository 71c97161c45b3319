"""A plain wheel install migrates and runs without a checkout (a worker box, a container).

The wheel is built from a copy of the sources, installed with ``--no-deps`` into a fresh venv
outside the checkout; the dependencies come from the test's own environment through a ``.pth``
line (the editable install's finder there is not activated: ``.pth`` files are processed only
in site directories, so ``matplat`` resolves to the wheel). ``platform db upgrade`` and
``platform status`` then run from a directory that holds no ``migrations/`` folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from dbutil import create_database

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "alembic.ini", "platform", "ml",
           "workers", "migrations")


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    out = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = out.glob("matplat-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_installs_migrates_and_reports_status(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    revisions = sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    assert "matplat/migrations/env.py" in names
    assert [n for n in names if n.startswith("matplat/migrations/versions/")] == [
        f"matplat/migrations/versions/{r}" for r in revisions
    ]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # the dependencies of this environment, behind the new venv's own site-packages
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
         str(wheel)],
        check=True, capture_output=True, text=True,
    )

    database = create_database("postgresql", tmp_path)
    try:
        work = tmp_path / "elsewhere"
        work.mkdir()
        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
               "PLATFORM_DATABASE_URL": database.url}
        where = subprocess.run(
            [str(py), "-c", "import matplat; print(matplat.__file__)"],
            cwd=work, env=env, check=True, capture_output=True, text=True,
        ).stdout
        assert where.startswith(site), where  # the wheel, not the checkout
        exe = str(venv / "bin" / "platform")
        up = subprocess.run([exe, "db", "upgrade"], cwd=work, env=env, capture_output=True,
                            text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        status = subprocess.run([exe, "status"], cwd=work, env=env, capture_output=True,
                                text=True, timeout=300)
        assert status.returncode == 0, status.stderr
        assert revisions[-1].split("_")[0] in status.stdout
        assert "materials" in status.stdout
    finally:
        database.drop()
