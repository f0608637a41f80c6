"""Typed FastAPI dependencies of the leaderboard service (what routes take from the app)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from services.leaderboard.settings import LeaderboardSettings


async def get_settings(request: Request) -> LeaderboardSettings:
    return request.app.state.settings


async def get_session_factory(request: Request) -> Callable[[], Session]:
    """The app's ``sessionmaker`` (for work that opens its own transactions, e.g. uploads)."""
    return request.app.state.session_factory


def get_session(factory: SessionFactory) -> Iterator[Session]:
    """One session per request, closed after the response."""
    with factory() as s:
        yield s


Settings = Annotated[LeaderboardSettings, Depends(get_settings)]
SessionFactory = Annotated[Callable[[], Session], Depends(get_session_factory)]
DbSession = Annotated[Session, Depends(get_session)]
