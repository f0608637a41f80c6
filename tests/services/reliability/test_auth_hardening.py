"""Auth under hostile credentials, and no default secret outside the dev profile.

(``tests/services/test_route_auth.py`` walks every route with no/read/write keys; here:
malformed and near-miss tokens, the dev key in prod, and prod refusing to start open.)
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.auth import DEV_API_KEY
from tests.services.reliability.helpers import in_process
from tests.services.service_apps import APPS

PREFIX = {"trainer": "PRL_TRAINER_"}
KEY = "s3cret-key-0123456789"
PROBE = {
    "reward": ("GET", "/v1/rewards"),
    "embedding": ("GET", "/v1/model"),
    "leaderboard": ("GET", "/v1/suites"),
    "trainer": ("GET", "/v1/jobs"),
}
HOSTILE = [
    "",
    " ",
    KEY[:-1],  # one character short
    KEY + "x",  # one character long
    KEY.upper(),
    KEY[:5] + " " + KEY[5:],
    "Bearer " + KEY,  # doubled scheme
    DEV_API_KEY,  # the dev key must not work once keys are configured
    "x" * 8192,
    "é" * 10,  # non-ASCII (latin-1 on the wire)
]


def prefix(service: str) -> str:
    return PREFIX.get(service, f"PRL_{service.upper()}_")


@pytest.fixture(scope="module", params=sorted(APPS))
def keyed(request, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv(prefix(request.param) + "AUTH_READ", "true")
    mp.setenv(prefix(request.param) + "PROFILE", "prod")
    mp.setenv(prefix(request.param) + "API_KEYS", f'{{"{KEY}": ["read", "write"]}}')
    try:
        app = APPS[request.param](tmp_path_factory.mktemp(request.param))
        with in_process(app) as client:
            yield request.param, client
    finally:
        mp.undo()


def test_only_the_exact_key_opens_reads(keyed):
    service, client = keyed
    method, path = PROBE[service]
    ok = client.request(method, path, headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200, ok.text[:200]
    for token in HOSTILE:
        raw = f"Bearer {token}".encode("latin-1")
        r = client.request(method, path, headers={"Authorization": raw})
        assert r.status_code in (401, 403), (token[:20], r.status_code)
        assert KEY not in r.text
    for header in ({}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}):
        r = client.request(method, path, headers={"Authorization": ""} | header)
        assert r.status_code == 401, (header, r.status_code)
    assert client.get("/healthz").status_code == 200  # probes stay open


@pytest.mark.parametrize("service", sorted(APPS))
def test_prod_profile_refuses_to_start_without_a_write_key(service, tmp_path, monkeypatch):
    monkeypatch.setenv(prefix(service) + "PROFILE", "prod")
    monkeypatch.delenv(prefix(service) + "API_KEYS", raising=False)
    with pytest.raises(ValidationError, match="write-scoped key"):
        APPS[service](tmp_path)
    monkeypatch.setenv(prefix(service) + "API_KEYS", '{"reader": ["read"]}')
    with pytest.raises(ValidationError, match="write-scoped key"):
        APPS[service](tmp_path)
