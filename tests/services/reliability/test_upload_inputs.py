"""``POST /v1/runs`` bodies that once answered 500 or were wrongly accepted, exactly as sent.

A lone surrogate (JSON ``"\\ud800"``) in a prediction, in ``config`` keys or values, in
``lib_versions``, ``predictions[].extra``, ``predictions[].error`` or ``model.provenance``
crashed the upload fingerprint with ``UnicodeEncodeError`` (500). Booleans where the schema
declares numbers (``"n": false``, ``"ci_low": true``) were stored as 0 and 1. All are 422 now,
naming the field; the same bodies with valid values are stored (so the test cannot pass by
refusing everything).
"""

from __future__ import annotations

import pytest

from tests.services.reliability.helpers import in_process
from tests.services.service_apps import APPS

HEAD = '{"model":{"name":"m"%s},"suite":{"name":"s","version":"1","content_hash":"h"}'
BAD = {
    "prediction": (HEAD % "") + ',"predictions":[{"sample_id":"a","prediction":"%s"}]}',
    "config key": (HEAD % "") + ',"config":{"%s":1}}',
    "config value": (HEAD % "") + ',"config":{"a":"%s"}}',
    "lib_versions": (HEAD % "") + ',"lib_versions":{"x":"%s"}}',
    "extra": (HEAD % "") + ',"predictions":[{"sample_id":"a","extra":{"k":"%s"}}]}',
    "error": (HEAD % "") + ',"predictions":[{"sample_id":"a","error":{"m":"%s"}}]}',
    "provenance": (HEAD % ',"provenance":{"p":"%s"}') + "}",
}
WHERE = {
    "prediction": "predictions[0].prediction",
    "config key": "config (one of its keys)",
    "config value": "config.a",
    "lib_versions": "lib_versions.x",
    "extra": "predictions[0].extra.k",
    "error": "predictions[0].error.m",
    "provenance": "model.provenance.p",
}
METRIC = (HEAD % "") + ',"metrics":[{"name":"f1",%s}]}'


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with in_process(APPS["leaderboard"](tmp_path_factory.mktemp("lb"))) as c:
        yield c


def post(client, text: str):
    return client.post(
        "/v1/runs", content=text.encode("utf-8"), headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize("where", sorted(BAD))
@pytest.mark.parametrize("surrogate", ["\\ud800", "\\udfff"])
def test_lone_surrogates_are_422_naming_the_field(client, where, surrogate):
    r = post(client, BAD[where] % surrogate)
    assert r.status_code == 422, r.text
    msg = r.json()["error"]["message"]
    assert WHERE[where] in msg and "surrogate" in msg


@pytest.mark.parametrize("where", sorted(BAD))
def test_the_same_bodies_with_valid_text_are_stored(client, where):
    r = post(client, BAD[where] % "\\ud83d\\ude00")  # a surrogate *pair*: 😀, valid
    assert r.status_code in (200, 201), r.text


@pytest.mark.parametrize(
    "fields", ['"value":0.5,"n":false', '"value":0.5,"ci_low":true', '"value":true']
)
def test_booleans_are_not_numbers(client, fields):
    r = post(client, METRIC % fields)
    assert r.status_code == 422, r.text
    assert "metrics[0]" in r.json()["error"]["message"]


def test_numbers_still_accept_integers_for_floats(client):
    r = post(client, METRIC % '"value":1,"n":3,"ci_low":0,"ci_high":1')
    assert r.status_code in (200, 201), r.text
