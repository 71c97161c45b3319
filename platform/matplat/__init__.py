"""matplat: a database-backed materials platform (OQMD ingest, CGNN graphs, models, predictions)."""

__version__ = "0.1.0"
