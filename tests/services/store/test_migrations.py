import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.store import db
from services.store.models import Base

TABLES = {
    "models",
    "suites",
    "runs",
    "predictions",
    "metrics",
    "training_jobs",
    "training_metrics",
    "idempotency_keys",
}


def test_upgrade_from_empty_matches_the_models(db_url):
    eng = db.make_engine(db_url)
    assert db.current_revision(eng) is None
    assert db.check_database(eng).startswith("database schema at revision None")
    db.upgrade(db_url)
    assert set(sa.inspect(eng).get_table_names()) == TABLES | {"alembic_version"}
    with eng.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
    assert db.current_revision(eng) == db.head_revision()
    assert db.check_database(eng) is None
    eng.dispose()


def test_downgrade_to_base_drops_everything_and_upgrades_again(db_url):
    db.upgrade(db_url)
    db.downgrade(db_url, "base")
    eng = db.make_engine(db_url)
    assert set(sa.inspect(eng).get_table_names()) == {"alembic_version"}
    assert db.current_revision(eng) is None
    db.upgrade(db_url)  # round trip
    assert set(sa.inspect(eng).get_table_names()) >= TABLES
    eng.dispose()


def test_check_database_reports_an_unreachable_server():
    eng = db.make_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    reason = db.check_database(eng)
    assert reason is not None and reason.startswith("database unreachable")


def test_default_url_is_a_sqlite_file_and_env_overrides(monkeypatch):
    monkeypatch.delenv("PRL_DATABASE_URL", raising=False)
    assert db.StoreSettings().database_url == "sqlite:///.prl/store.db"
    monkeypatch.setenv("PRL_DATABASE_URL", "postgresql+psycopg2://u@h/d")
    assert db.StoreSettings().database_url == "postgresql+psycopg2://u@h/d"


def test_concurrent_upgrades_from_many_workers_all_succeed(db_url):
    import threading

    errors: list[BaseException] = []

    def up():
        try:
            db.upgrade(db_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=up) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    eng = db.make_engine(db_url)
    assert db.current_revision(eng) == db.head_revision()
    eng.dispose()
