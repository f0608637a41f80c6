"""The ``learned`` aggregator over HTTP: scores like any aggregator, mistakes are 422."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from services.reward.scoring.learned import FORMAT, SmoothMinMax, parse_model
from tests.services.reward.test_reward_api import GT, call, post

# G = 1, J = 2, β = 5: soft minimum of 0.2·format + f1 + 0.5·miou − 0.7 and
# 0.2·format + 0.5·f1 + miou − 0.6
MODEL = {
    "format": FORMAT,
    "inputs": ["format", "f1", "miou"],
    "log_weights": [[[math.log(0.2), 0.0, math.log(0.5)], [math.log(0.2), math.log(0.5), 0.0]]],
    "biases": [[-0.7, -0.6]],
    "log_beta": math.log(5.0),
    "provenance": {"test": "http"},
}


def box(b):
    return f"<think>t</think><answer>{json.dumps([b])}</answer>"


@pytest.fixture()
def spec(tmp_path):
    path = tmp_path / "agg.json"
    path.write_text(json.dumps(MODEL))
    return {
        "components": [{"name": "format"}, {"name": "f1"}, {"name": "miou"}],
        "aggregate": {"method": "learned", "params": {"path": str(path), "scale": 2.0}},
    }


def test_score_with_a_learned_spec_matches_the_network(spec):
    samples = [
        {"id": "exact", "completion": box([0, 0, 10, 10]), "solution": GT},
        {"id": "shifted", "completion": box([2, 0, 12, 10]), "solution": GT},
        {"id": "far", "completion": box([50, 50, 60, 60]), "solution": GT},
        {"id": "garbage", "completion": "no answer here", "solution": GT},
    ]
    r = post("/v1/score", {"reward": spec, "samples": samples})
    assert r.status_code == 200, r.text
    body = r.json()
    net = SmoothMinMax.of(parse_model(json.dumps(MODEL)))
    res = {x["id"]: x for x in body["results"]}
    for sid in ("exact", "shifted", "far"):
        c = res[sid]["components"]
        x = np.array([[c["format"], c["f1"], c["miou"]]])
        assert res[sid]["reward"] == pytest.approx(2.0 * net(x)[0], abs=1e-12)
        assert res[sid]["error"] is None
    assert res["exact"]["reward"] > res["shifted"]["reward"] > res["far"]["reward"] >= 0.0
    # a completion without an answer is data: reward 0 and its error code, not a 4xx/5xx
    assert res["garbage"]["reward"] == 0.0 and res["garbage"]["error"]["code"] == "no_answer"
    echoed = body["reward"]["aggregate"]
    assert echoed["method"] == "learned" and len(echoed["params"]["sha256"]) == 64


def test_groups_and_aggregate_endpoints_use_it(spec):
    g, a = call(
        [
            (
                "POST",
                "/v1/score/groups",
                {
                    "json": {
                        "reward": spec,
                        "groups": [
                            {
                                "id": "g",
                                "solution": GT,
                                "completions": [box([0, 0, 10, 10]), box([50, 50, 60, 60])],
                            }
                        ],
                    }
                },
            ),
            (
                "POST",
                "/v1/aggregate",
                {"json": {"reward": spec, "values": [{"format": 1, "f1": 1, "miou": 1}, {}]}},
            ),
        ]
    )
    assert g.status_code == 200 and a.status_code == 200, (g.text, a.text)
    rewards = g.json()["groups"][0]["rewards"]
    assert rewards[0] > rewards[1]
    out = a.json()
    net = SmoothMinMax.of(parse_model(json.dumps(MODEL)))
    assert out["rewards"][0] == pytest.approx(2.0 * net(np.ones((1, 3)))[0])
    assert out["rewards"][1] == 0.0 and out["errors"][1]["code"] == "no_components"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda s, p: s["aggregate"]["params"].update(path=str(p.parent / "gone.json")), "no such"),
        (lambda s, p: p.write_text("{corrupt"), "not a JSON model file"),
        (lambda s, p: s["components"].pop(), "fitted on 3 components"),
        (lambda s, p: s["aggregate"]["params"].update(sha256="a" * 64), "the spec pins"),
        (lambda s, p: s["aggregate"]["params"].update(bogus=1), "params.bogus"),
    ],
)
def test_unusable_model_is_422(spec, change, fragment):
    from pathlib import Path

    change(spec, Path(spec["aggregate"]["params"]["path"]))
    sample = {"id": "a", "completion": box([0, 0, 10, 10]), "solution": GT}
    r = post("/v1/score", {"reward": spec, "samples": [sample]})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_reward" and fragment in err["message"]


def test_catalog_lists_the_learned_aggregator():
    (r,) = call([("GET", "/v1/rewards", {})])
    (agg,) = [a for a in r.json()["aggregators"] if a["name"] == "learned"]
    assert agg["params"]["required"] == ["path"] and "monotone" in agg["description"].lower()
