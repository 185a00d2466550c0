"""Alembic migrations of the prediction store (run by :func:`core.store.migrate`)."""
