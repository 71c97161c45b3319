"""``platform serve``: an OPTIMADE v1.2 API and a server-rendered web UI, read-only.

Modules: ``summaries`` (the derived table OPTIMADE filters need, refreshed before serving),
``readonly`` (engines whose every request is a read-only transaction with a timeout),
``fields`` (OPTIMADE and ``_matplat_`` properties and their SQL columns), ``filters`` (the
OPTIMADE filter grammar to parameterised SQLAlchemy), ``entries`` (pages of structures),
``optimade`` (the JSON:API endpoints), ``web`` (HTML pages) and ``app`` (the ASGI factory).
Nothing here is imported by ``platform --help``: the CLI imports it inside the command.
"""
