"""Hostile JSON against every POST route of every service (in-process, lifespan run).

Deep nesting (10 000 levels), huge numbers (1e308, 10**400 as a JSON integer, 1e999),
NaN/Infinity tokens, unicode (RTL override, NUL, lone and paired surrogates, emoji) in ids,
completions and labels, and bodies that are not JSON at all. The only promise checked here
is the one a client can rely on: **never a 5xx** (a 4xx names the problem, or the input is
scored/stored as data). Read-backs after writes are included, because a value accepted on
the way in (a NaN in a stored prediction) can still break the way out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.services.reliability.helpers import in_process
from tests.services.service_apps import APPS

DEEP_ARRAY = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
NUMBERS = [
    "1e308",
    "-1e308",
    "1" + "0" * 400,
    "-" + "1" * 400,
    "1e999",
    "NaN",
    "Infinity",
    "-Infinity",
]
# JSON string literals (escaped as a client would send them, plus raw UTF-8 emoji).
UNICODE = [
    '"\\u202eevil\\u202c"',  # RTL override
    '"\\u0000"',  # NUL
    '"a\\u0000b"',
    '"\\ud800"',  # lone high surrogate
    '"\\udfff"',  # lone low surrogate
    '"\\ud83d\\ude00"',  # a valid pair (emoji)
    '"\U0001f600\u05d0\u0645"',  # raw UTF-8 emoji + Hebrew + Arabic
    '""',
]
GENERIC = [
    DEEP_ARRAY,
    DEEP_OBJECT,
    b"1" + b"0" * 400,
    b"NaN",
    b"Infinity",
    b'"\\ud800"',
    b"\xff\xfe\xfa not utf-8",
    b"",
    b"null",
    b"{",
]

POSTS = {
    "reward": ["/v1/score", "/v1/score/groups", "/v1/aggregate", "/get_reward"],
    "embedding": ["/v1/embed", "/v1/alignment"],
    "leaderboard": ["/v1/runs"],
    "trainer": ["/v1/jobs", "/v1/jobs/1/cancel"],
}


def reward_cases() -> list[tuple[str, str]]:
    box = "[[1,2,30,40]]"
    out = []
    for v in NUMBERS:
        answer = json.dumps(f"<answer>[[0,0,{v},{v}]]</answer>")
        out += [
            (
                "/v1/score",
                f'{{"reward":"dig","samples":[{{"id":"a","completion":{answer},'
                f'"solution":{{"boxes":[[0,0,{v},{v}]]}}}}]}}',
            ),
            (
                "/v1/score",
                f'{{"reward":"dig","samples":[{{"id":"a","completion":"x",'
                f'"solution":{{"boxes":{box}}},"frame":{{"coords":"pixel","image_size":[{v},{v}]}}}}]}}',
            ),
            (
                "/v1/score",
                f'{{"reward":{{"components":[{{"name":"iou","weight":{v}}},'
                f'{{"name":"format","weight":1}}]}},"samples":[{{"id":"a","completion":{answer},'
                f'"solution":{{"boxes":{box}}}}}]}}',
            ),
            (
                "/v1/score",
                f'{{"reward":{{"components":[{{"name":"f1","params":{{"threshold":{v}}}}}],'
                f'"aggregate":{{"method":"harmonic","params":{{"eps":{v}}}}}}},'
                f'"samples":[{{"id":"a","completion":{answer},"solution":{{"boxes":{box}}}}}]}}',
            ),
            (
                "/v1/score/groups",
                f'{{"reward":"dig","advantage_params":{{"eps":{v}}},"groups":'
                f'[{{"id":"g","completions":["x",{answer}],"solution":{{"boxes":{box}}}}}]}}',
            ),
            (
                "/v1/score/groups",
                f'{{"reward":"dig","advantage":"rloo","advantage_params":'
                f'{{"scale":{v}}},"groups":[{{"id":"g","completions":["x",{answer}],'
                f'"solution":{{"boxes":{box}}}}}]}}',
            ),
            ("/v1/aggregate", f'{{"reward":"dig","values":[{{"f1":{v},"miou":0.5,"format":1}}]}}'),
            (
                "/get_reward",
                f'{{"query":[{answer}],"prompts":["p"],"labels":[{json.dumps(json.dumps({"boxes": [[0, 0, 1, 1]]}))}]}}',
            ),
        ]
    for u in UNICODE:
        out += [
            (
                "/v1/score",
                f'{{"reward":"dig","samples":[{{"id":{u},"completion":{u},'
                f'"solution":{{"boxes":{box},"labels":[{u}]}}}}]}}',
            ),
            (
                "/v1/score",
                f'{{"reward":"dig","samples":[{{"id":"a","completion":{u},'
                f'"solution":{{"label":{u},"synonyms":[{u}]}}}}]}}',
            ),
            ("/v1/score", f'{{"reward":{u},"samples":[]}}'),
            (
                "/v1/score/groups",
                f'{{"reward":"dig","advantage":{u},"groups":[{{"id":{u},'
                f'"completions":[{u}],"solution":{{"boxes":{box}}},"query":{u},"image":{u}}}]}}',
            ),
            ("/get_reward", f'{{"query":[{u}],"prompts":[{u}],"labels":[{u}]}}'),
        ]
    return out


def embedding_cases() -> list[tuple[str, str]]:
    out = []
    for v in NUMBERS:
        out += [
            (
                "/v1/alignment",
                f'{{"items":[{{"id":"a","image":"x.png","query":"q","output":"o"}}],'
                f'"params":{{"a":{v},"b":{v},"c":{v},"v_min":{v}}}}}',
            ),
            (
                "/v1/embed",
                f'{{"texts":["t"],"images":["x.png"],"image_masks":'
                f'[{{"mask_boxes":[[0,0,{v},{v}]]}}]}}',
            ),
            ("/v1/embed", f'{{"texts":[{v}]}}'),
        ]
    for u in UNICODE:
        out += [
            ("/v1/embed", f'{{"texts":[{u}, "ok"]}}'),
            ("/v1/embed", f'{{"images":[{u}]}}'),
            ("/v1/alignment", f'{{"items":[{{"id":{u},"image":{u},"query":{u},"output":{u}}}]}}'),
        ]
    return out


def leaderboard_cases() -> list[tuple[str, str]]:
    def run(extra: str, pred: str = '{"sample_id":"s1","prediction":"p"}') -> str:
        return (
            '{"model":{"name":"m"},"suite":{"name":"s","version":"1","content_hash":"h"},'
            f'"predictions":[{pred}]{extra}}}'
        )

    out = []
    for v in NUMBERS:
        out += [
            ("/v1/runs", run(f',"seed":{v}')),
            ("/v1/runs", run(f',"n_samples":{v}')),
            ("/v1/runs", run(f',"config":{{"lr":{v}}},"key":"k-{abs(hash(v))}"')),
            (
                "/v1/runs",
                run(
                    f',"key":"r-{abs(hash(v))}"',
                    f'{{"sample_id":"s","reward":{v},'
                    f'"components":{{"f1":{v}}},"extra":{{"x":{v}}},"error":{{"v":{v}}}}}',
                ),
            ),
            ("/v1/runs", run(f',"metrics":[{{"name":"f1","value":{v},"stderr":{v},"n":{v}}}]')),
        ]
    for u in UNICODE:
        out += [
            ("/v1/runs", run(f',"key":{u}', f'{{"sample_id":{u},"prediction":{u}}}')),
            (
                "/v1/runs",
                '{"model":{"name":%s,"provenance":{%s:%s}},"suite":{"name":%s,'
                '"version":%s,"content_hash":%s},"lib_versions":{%s:%s}}' % ((u,) * 8),
            ),
        ]
    return out


def trainer_cases() -> list[tuple[str, str]]:
    out = []
    for v in NUMBERS:
        out += [
            ("/v1/jobs", f'{{"name":"j","config":{{"lr":{v},"steps":{v}}}}}'),
            ("/v1/jobs", f'{{"name":"j","config":{{}},"num_processes":{v}}}'),
            (f"/v1/jobs/{v}/cancel", "{}"),
        ]
    for u in UNICODE:
        out += [
            ("/v1/jobs", f'{{"name":{u},"config":{{{u}:{u}}},"launch":{u}}}'),
        ]
    return out


CASES = {
    "reward": reward_cases,
    "embedding": embedding_cases,
    "leaderboard": leaderboard_cases,
    "trainer": trainer_cases,
}
READS = {
    "reward": ["/v1/rewards"],
    "embedding": ["/v1/model"],
    "leaderboard": ["/v1/runs?limit=500", "/v1/suites", "/v1/leaderboard?suite=s&metric=f1"],
    "trainer": ["/v1/jobs"],
}


@pytest.fixture(scope="module", params=sorted(APPS))
def service(request, tmp_path_factory) -> Iterator[tuple[str, TestClient]]:
    app = APPS[request.param](tmp_path_factory.mktemp(request.param))
    with in_process(app) as client:
        yield request.param, client


def post(client: TestClient, path: str, body: bytes | str) -> int:
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return client.post(path, content=raw, headers={"content-type": "application/json"}).status_code


def test_no_server_error_on_hostile_bodies(service):
    name, client = service
    failures = {}
    for path in POSTS[name]:
        for body in GENERIC:
            status = post(client, path, body)
            if status >= 500:
                failures[(path, body[:40])] = status
    for path, body in CASES[name]():
        status = post(client, path, body)
        if status >= 500:
            failures[(path, body[:160])] = status
    # what was accepted must read back: stored NaN/huge values/odd unicode included
    for path in READS[name]:
        status = client.get(path).status_code
        if status >= 500:
            failures[("GET", path)] = status
    if name == "leaderboard":
        for run in client.get("/v1/runs?limit=500").json()["items"]:
            r = client.get(f"/v1/runs/{run['id']}")
            if r.status_code >= 500:
                failures[("GET run", run["key"])] = r.status_code
    assert failures == {}


def test_hostile_cases_are_not_vacuous(service):
    """Some hostile inputs must be *accepted* (scored/stored as data), not all refused: a
    service answering 4xx to everything would pass the test above without scoring anything.
    (The trainer validates a whole run config at submission, which none of these bodies is.)"""
    name, client = service
    if name == "trainer":
        pytest.skip("every hostile trainer body is an invalid run config by construction")
    statuses = [post(client, p, b) for p, b in CASES[name]()]
    assert any(200 <= s < 300 for s in statuses), statuses
    assert any(400 <= s < 500 for s in statuses), statuses


PATH_VALUES = ["9" * 30, str(2**63), "-1", "0", "1e308", "NaN", "%00", "%ED%A0%80", "..%2F..%2Fetc"]


def test_no_server_error_on_hostile_path_and_query_values(service):
    """Every templated path of the schema with huge/negative/non-numeric/encoded values, and
    every list route with a huge ``limit``/``cursor``: 4xx or 2xx, never 5xx."""
    _, client = service
    failures = {}
    for path, item in client.app.openapi()["paths"].items():
        for method in item:
            if "{" not in path and method != "get":
                continue
            for v in PATH_VALUES:
                url = re.sub(r"\{[^}]+\}", v, path)
                for query in ("", f"?limit={v}&cursor={v}"):
                    status = client.request(method.upper(), url + query, json={}).status_code
                    if status >= 500:
                        failures[(method, url + query)] = status
    assert failures == {}
