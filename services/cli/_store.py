"""The store every ``prl`` command uses: one ``--db`` option, migrated on first use."""

from __future__ import annotations

from typing import Any

import typer

DB_HELP = "store URL (default: PRL_DATABASE_URL, else sqlite:///.prl/store.db)"


def db_option() -> Any:
    """``--db URL`` (``--url`` is kept as an alias), read from ``PRL_DATABASE_URL`` too."""
    return typer.Option(None, "--db", "--url", envvar="PRL_DATABASE_URL", help=DB_HELP)


def store_url(db: str | None) -> str:
    from services.store.db import StoreSettings

    return db or StoreSettings().database_url


def open_store(db: str | None):  # type: ignore[no-untyped-def]
    """A session factory on the store at ``db``, upgraded to the newest schema first (the
    upgrade is a no-op on a current store and takes a lock, so concurrent commands are safe)."""
    from services.store.db import make_engine, session_factory, upgrade

    url = store_url(db)
    upgrade(url)
    return session_factory(make_engine(url))
