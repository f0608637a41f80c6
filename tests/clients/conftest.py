"""Fixtures of the client tests: the fault-injecting fake server and a dead URL."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.stack import free_port, serve_in_thread
from tests.clients.prl_client_fakes import FakeState, build_fake_app


@pytest.fixture(scope="module")
def fake_server():
    state = FakeState()
    with serve_in_thread(build_fake_app(state)) as url:
        yield SimpleNamespace(url=url, state=state)


@pytest.fixture
def fake(fake_server):
    """The module's fake server with a clean state for this test."""
    st = fake_server.state
    st.faults.clear()
    st.log.clear()
    st.limits, st.max_body_bytes, st.delay_s = None, None, 0.0
    st.runs.clear()
    return fake_server


@pytest.fixture
def dead_url() -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"
