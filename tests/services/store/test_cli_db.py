import sqlalchemy as sa
from typer.testing import CliRunner

import services.cli.db  # noqa: F401  (adds the `db` group)
from services.cli.base import app
from services.store import db


def test_prl_db_upgrade_current_downgrade(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'sub' / 'store.db'}"
    monkeypatch.setenv("PRL_DATABASE_URL", url)
    runner = CliRunner()
    up = runner.invoke(app, ["db", "upgrade"])
    assert up.exit_code == 0, up.output
    assert f"at revision {db.head_revision()}" in up.output
    assert "runs" in sa.inspect(sa.create_engine(url)).get_table_names()
    cur = runner.invoke(app, ["db", "current"])
    assert cur.exit_code == 0 and "up to date" in cur.output
    down = runner.invoke(app, ["db", "downgrade", "base", "--url", url])
    assert down.exit_code == 0 and "at revision None" in down.output
    assert sa.inspect(sa.create_engine(url)).get_table_names() == ["alembic_version"]


def test_password_is_not_printed(tmp_path):
    from services.cli.db import _redact

    assert "s3cret" not in _redact("postgresql+psycopg2://u:s3cret@h/db")
