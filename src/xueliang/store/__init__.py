"""Persistence: ORM models, the database handle, migrations."""
