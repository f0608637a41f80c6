"""``prl db upgrade|downgrade|current``: Alembic migrations of the result store.

The database is ``--db`` (alias ``--url``) or ``PRL_DATABASE_URL`` (default: the SQLite file
``.prl/store.db``). The migrations ship inside the package, so this works from an install.
"""

from __future__ import annotations

import typer

from services.cli._store import db_option, store_url
from services.cli.base import app

db_app = typer.Typer(no_args_is_help=True, help="Result-store schema migrations.")
app.add_typer(db_app, name="db")


def _url(url: str | None) -> str:
    return store_url(url)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def upgrade(
    revision: str = typer.Argument("head", help="target revision"),
    url: str | None = db_option(),
) -> None:
    """Migrate the store up to REVISION (default: the newest)."""
    from services.store import db

    target = _url(url)
    db.upgrade(target, revision)
    typer.echo(f"{_redact(target)}: at revision {db.current_revision(db.make_engine(target))}")


@db_app.command("downgrade")
def downgrade(
    revision: str = typer.Argument(..., help="target revision ('base' drops every table)"),
    url: str | None = db_option(),
) -> None:
    """Migrate the store down to REVISION."""
    from services.store import db

    target = _url(url)
    db.downgrade(target, revision)
    typer.echo(f"{_redact(target)}: at revision {db.current_revision(db.make_engine(target))}")


@db_app.command("current")
def current(url: str | None = db_option()) -> None:
    """Print the store's revision and whether it is the newest."""
    from services.store import db

    target = _url(url)
    rev = db.current_revision(db.make_engine(target))
    head = db.head_revision()
    typer.echo(
        f"{_redact(target)}: revision {rev} (head {head}{', up to date' if rev == head else ''})"
    )
