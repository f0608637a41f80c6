"""Engine and session factory, and the Alembic entry points used by ``prl db`` and services.

The database is ``PRL_DATABASE_URL``; unset, it is the SQLite file ``.prl/store.db`` under
the working directory (the embedded default; docs/design.md, "Storage"). SQLite connections get
foreign keys on, WAL journaling and a busy timeout so a runner and the leaderboard can share
one file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

DEFAULT_SQLITE_PATH = Path(".prl") / "store.db"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def default_database_url() -> str:
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


class StoreSettings(BaseSettings):
    """``PRL_DATABASE_URL`` (SQLAlchemy URL; e.g. ``postgresql+psycopg2://u:p@host/db``)."""

    model_config = SettingsConfigDict(env_prefix="PRL_", extra="ignore", frozen=True)

    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL (default: the SQLite file .prl/store.db under the cwd)",
    )
    echo_sql: bool = Field(default=False, description="log every SQL statement (debugging)")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, float):  # float subclasses (numpy.float64)
        return float(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def json_serializer(obj: Any) -> str:
    """JSON columns are written with orjson (C speed: a 100 000-prediction upload serialises
    200 000 small dicts). Non-finite floats are written as null, like the repository's
    ``_jsonable`` already makes them; anything but JSON types is an error, as in ``json``."""
    try:
        return orjson.dumps(obj, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:  # integers past 64 bits, which orjson refuses
        return json.dumps(obj, default=_json_default)


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    """An engine for ``url`` (default: :class:`StoreSettings`), creating a SQLite file's folder."""
    url = url or StoreSettings().database_url
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url, echo=echo, pool_pre_ping=True, future=True, json_serializer=json_serializer
        )
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict = {
        "connect_args": {"check_same_thread": False},
        "json_serializer": json_serializer,
    }
    if in_memory:
        from sqlalchemy.pool import StaticPool

        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, echo=echo, future=True, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas)
    if not in_memory:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    return engine


UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,  # server gone or restarting, connection refused, SQLite locked
    sa_exc.InterfaceError,  # the driver lost its connection
    sa_exc.TimeoutError,  # no pooled connection within the pool timeout
)
"""Errors that mean "the store is not reachable now": services answer 503 + ``Retry-After``
(``create_service_app(unavailable_errors=…)``); the transaction was rolled back."""


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, future=True)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    """Programmatic Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


MIGRATION_LOCK_ID = 0x70726C5F6462  # "prl_db": PostgreSQL advisory lock key


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection holding an exclusive migration lock, so that several workers starting
    at once (``--workers 4``, replicas) migrate one after the other: a PostgreSQL advisory
    lock (SQLite is serialised by :func:`_sqlite_file_lock` around the whole migration)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_ID})")
            try:
                yield conn
            finally:
                conn.rollback()
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})")
        else:  # SQLite: the caller already holds _sqlite_file_lock
            yield conn


@contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    """An ``flock`` on ``<file>.lock`` next to a SQLite file, taken *before* the engine is
    made: :func:`make_engine` switches the file to WAL, which needs the database to itself,
    and would otherwise race a migration running in another worker."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        yield
        return
    import fcntl

    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    with open(f"{database}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _migrate(url: str, revision: str, direction: str) -> None:
    from alembic import command

    with _sqlite_file_lock(url):
        engine = make_engine(url)  # also creates the SQLite folder
        try:
            with _migration_lock(engine) as conn:
                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                getattr(command, direction)(cfg, revision)
                conn.commit()
        finally:
            engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (safe to run from many workers)."""
    _migrate(url, revision, "upgrade")


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at ``url`` down to ``revision`` (``base`` drops every table)."""
    _migrate(url, revision, "downgrade")


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_database(engine: Engine) -> str | None:
    """Readiness: None when the DB answers and is at the head revision, else the reason."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = current_revision(engine)
    except Exception as exc:  # any driver error means "not ready", with its message
        return f"database unreachable: {type(exc).__name__}: {exc}"
    head = head_revision()
    if current != head:
        return f"database schema at revision {current}, code expects {head}: run `prl db upgrade`"
    return None
