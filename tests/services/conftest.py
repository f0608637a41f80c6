"""Database fixtures shared by the store and leaderboard tests: each test runs against SQLite
and a real PostgreSQL (``postgres`` marker; ``postgres_url`` from ``tests/pg.py``)."""

from __future__ import annotations

import pytest

from services.store import db


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """An empty database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(db_url):
    """An engine on ``db_url`` with every migration applied."""
    db.upgrade(db_url)
    eng = db.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine):
    return db.session_factory(engine)
