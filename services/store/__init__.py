"""Result store: SQLAlchemy models, repository functions and Alembic migrations."""
