"""No route is left open: every operation of every service's OpenAPI schema is called without a
key, with a read-only key and with a write key, under settings that key reads too."""

import asyncio
import re

import httpx
import pytest

from tests.services.service_apps import APPS, PUBLIC, WRITES

KEYS = {"reader": ["read"], "writer": ["read", "write"]}


def operations(app) -> list[tuple[str, str]]:
    ops = []
    for path, item in app.openapi()["paths"].items():
        for method in item:
            ops.append((method.upper(), path))
    return ops


async def statuses(app, ops, headers):
    out = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for method, path in ops:
                url = re.sub(r"\{[^}]+\}", "1", path)
                r = await c.request(
                    method, url, headers=headers, json={} if method == "POST" else None
                )
                out[(method, path)] = r.status_code
    return out


@pytest.mark.parametrize("service", sorted(APPS))
def test_no_route_is_left_open(service, tmp_path, monkeypatch):
    prefix = {"trainer": "PRL_TRAINER_"}.get(service, f"PRL_{service.upper()}_")
    monkeypatch.setenv(prefix + "AUTH_READ", "true")
    monkeypatch.setenv(prefix + "API_KEYS", '{"reader": ["read"], "writer": ["read", "write"]}')
    app = APPS[service](tmp_path)
    ops = [op for op in operations(app) if op[1] not in PUBLIC]
    assert ops, f"{service} exposes no API operations"

    anonymous = asyncio.run(statuses(app, ops, {}))
    assert {op: s for op, s in anonymous.items() if s != 401} == {}

    reader = asyncio.run(statuses(app, ops, {"Authorization": "Bearer reader"}))
    for op, status in reader.items():
        if op in WRITES:
            assert status == 403, f"{op} accepted a read-only key ({status})"
        else:
            assert status not in (401, 403), f"{op} refused a read key ({status})"

    writer = asyncio.run(
        statuses(app, [op for op in ops if op in WRITES], {"Authorization": "Bearer writer"})
    )
    assert all(s not in (401, 403) for s in writer.values()), writer


def test_write_routes_exist_where_expected(tmp_path):
    seen = set()
    for name in ("leaderboard", "trainer"):
        seen |= set(operations(APPS[name](tmp_path))) & WRITES
    assert seen == WRITES
