"""Package layout (see pyproject.toml for everything else).

``platform/`` is a source root (``matplat``); ``ml/`` and ``workers/`` sit at the top; the
top-level ``migrations/`` folder ships inside the package as ``matplat.migrations`` so that
``platform db upgrade`` works from a wheel (matplat.db.migrate finds it beside the package).
"""

from setuptools import find_packages, setup

core = find_packages("platform", include=["matplat", "matplat.*"])
top = find_packages(".", include=["ml", "ml.*", "workers", "workers.*"])
setup(
    packages=[*core, *top, "matplat.migrations", "matplat.migrations.versions"],
    package_dir={
        **{name: "platform/" + name.replace(".", "/") for name in core},
        "matplat.migrations": "migrations",
        "matplat.migrations.versions": "migrations/versions",
    },
    package_data={
        "matplat": ["py.typed"],
        "matplat.serve": ["templates/*.html", "static/*"],
        "matplat.migrations": ["*.py", "script.py.mako"],
        "matplat.migrations.versions": ["*.py"],
    },
)
