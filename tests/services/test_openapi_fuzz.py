"""Schemathesis against every service's own OpenAPI schema: no server errors, responses conform.

Each app runs in this process under a real uvicorn server on a loopback port (so its lifespan
runs: model loaded, store migrated), and schemathesis generates requests from the schema,
with a fixed budget of examples per operation.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from services.common.auth import DEV_API_KEY
from services.stack import serve_in_thread, wait_ready
from tests.services.service_apps import APPS

MAX_EXAMPLES = 25


@pytest.fixture(scope="module", params=sorted(APPS))
def live_service(request, tmp_path_factory):
    app = APPS[request.param](tmp_path_factory.mktemp(request.param))
    with serve_in_thread(app) as url:
        wait_ready(url, timeout_s=60)
        yield url


@pytest.fixture(scope="module")
def api_schema(live_service):
    return schemathesis.openapi.from_url(live_service + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_schema_conformance(case):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {DEV_API_KEY}"},
        checks=[not_a_server_error, response_schema_conformance],
        timeout=30,
    )
