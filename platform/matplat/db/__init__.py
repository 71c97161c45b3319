"""Database layer: declarative models, engine/session factories, migrations helpers, queries."""
