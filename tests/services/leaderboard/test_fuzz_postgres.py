"""Schemathesis against the leaderboard on PostgreSQL (the shared fuzz test uses SQLite).

PostgreSQL is stricter than SQLite (32-bit integer columns, no NUL in text), so generated
inputs that SQLite swallows must still give 4xx here, never 500.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from services.common.auth import DEV_API_KEY
from services.leaderboard.app import create_app
from services.leaderboard.settings import LeaderboardSettings
from services.stack import serve_in_thread, wait_ready
from tests.services.leaderboard.leaderboard_helpers import seed_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def pg_service(postgres_server):
    url = postgres_server.url(postgres_server.create_database())
    seed_database(url, n_models=2, runs_per_model=1, n_samples=5, train_steps=3)
    with serve_in_thread(create_app(LeaderboardSettings(database_url=url))) as base:
        wait_ready(base, timeout_s=60)
        yield base


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
