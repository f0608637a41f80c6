import json

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


def test_0002_keys_stored_reward_metrics_by_the_runs_reward_spec(tmp_path):
    from services.benchmark.reward_key import reward_key

    url = f"sqlite:///{tmp_path / 'old.db'}"
    db.upgrade(url, "0001_initial")
    eng = db.make_engine(url)
    now = "2026-12-01 00:00:00"
    spec = {"components": [{"name": "f1"}], "aggregate": {"method": "sum"}}
    with eng.begin() as c:
        c.exec_driver_sql(
            "INSERT INTO models (id, name, provenance, created_at) VALUES (1, 'm', '{}', ?)",
            (now,),
        )
        c.exec_driver_sql(
            "INSERT INTO suites (id, name, version, content_hash, created_at)"
            " VALUES (1, 'dig', '1', 'h', ?)",
            (now,),
        )
        for run_id, cfg in [(1, {"reward": "dig"}), (2, {"reward": spec}), (3, {})]:
            c.exec_driver_sql(
                "INSERT INTO runs (id, key, model_id, suite_id, config, config_hash, "
                "lib_versions, status, source, created_at, updated_at) "
                "VALUES (?, ?, 1, 1, ?, 'c', '{}', 'completed', 'local', ?, ?)",
                (run_id, f"k{run_id}", json.dumps(cfg), now, now),
            )
            for name in ("reward", "val/reward", "dig/f1"):
                c.exec_driver_sql(
                    "INSERT INTO metrics (run_id, suite_id, model_id, run_completed, name, value,"
                    " higher_is_better, created_at) VALUES (?, 1, 1, 1, ?, 0.5, 1, ?)",
                    (run_id, name, now),
                )
    eng.dispose()
    db.upgrade(url)
    eng = db.make_engine(url)

    def rows():  # type: ignore[no-untyped-def]
        with eng.connect() as c:
            return sorted(
                c.exec_driver_sql(
                    "SELECT run_id, name, reward_spec, reward_spec_hash FROM metrics"
                ).all()
            )

    dig, custom = reward_key("dig"), reward_key(spec)
    assert rows() == sorted(
        [
            (1, "reward[dig]", "dig", dig.hash),
            (1, "val/reward[dig]", "dig", dig.hash),
            (1, "dig/f1", None, None),
            (2, f"reward[{custom.name}]", custom.name, custom.hash),
            (2, f"val/reward[{custom.name}]", custom.name, custom.hash),
            (2, "dig/f1", None, None),
            (3, "reward", None, None),  # no reward in the config: left as it was
            (3, "val/reward", None, None),
            (3, "dig/f1", None, None),
        ]
    )
    eng.dispose()
    db.downgrade(url, "0001_initial")
    eng = db.make_engine(url)
    with eng.connect() as c:
        names = sorted(c.exec_driver_sql("SELECT run_id, name FROM metrics").all())
    assert names == sorted((r, n) for r in (1, 2, 3) for n in ("reward", "val/reward", "dig/f1"))
    eng.dispose()
