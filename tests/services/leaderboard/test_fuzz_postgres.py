"""Schemathesis against the leaderboard on PostgreSQL (the shared fuzz test uses SQLite).

PostgreSQL is stricter than SQLite (32-bit integer columns, no NUL in text), so generated
inputs that SQLite swallows must still give 4xx here, never 500.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from services.common.auth import DEV_API_KEY
from services.leaderboard.app import create_app
from services.leaderboard.sample_data import seed_example
from services.leaderboard.settings import LeaderboardSettings
from services.stack import free_port
from services.store import db

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def pg_service(postgres_server):
    url = postgres_server.url(postgres_server.create_database())
    db.upgrade(url)
    eng = db.make_engine(url)
    with db.transaction(db.session_factory(eng)) as s:
        seed_example(s, n_models=2, runs_per_model=1, n_samples=5, train_steps=3)
    eng.dispose()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(LeaderboardSettings(database_url=url)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    yield base
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def pg_schema(pg_service):
    return schemathesis.openapi.from_url(pg_service + "/openapi.json")


schema = schemathesis.pytest.from_fixture("pg_schema")


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_on_postgres(case):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {DEV_API_KEY}"},
        checks=[not_a_server_error, response_schema_conformance],
        timeout=30,
    )
