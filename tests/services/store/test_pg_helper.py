import sqlalchemy as sa

from tests import pg


def test_find_pg_bin_prefers_env_and_rejects_incomplete_dirs(tmp_path, monkeypatch):
    for exe in ("initdb", "pg_ctl"):
        (tmp_path / exe).touch()
    monkeypatch.setenv("PRL_PG_BIN", str(tmp_path))
    assert pg.find_pg_bin() != tmp_path  # `postgres` is missing there
    (tmp_path / "postgres").touch()
    assert pg.find_pg_bin() == tmp_path


def test_postgres_url_is_an_empty_private_database(postgres_url, postgres_server):
    eng = sa.create_engine(postgres_url)
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT current_database()")).scalar() in postgres_url
        assert sa.inspect(conn).get_table_names() == []
    eng.dispose()
    assert postgres_server.url().endswith("/postgres")
