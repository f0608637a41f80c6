"""Alembic migrations of the result store (run with ``prl db upgrade``)."""
