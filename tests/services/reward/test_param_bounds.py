"""Component parameters have validated bounds (422 naming the field and the
allowed range), and arithmetic that can still overflow is a per-sample error, never a 500."""

from __future__ import annotations

import json

from services.reward.scoring import sample_component
from tests.services.reward.test_reward_api import GOOD, GT, post

HUGE_A = {"components": [{"name": "alignment", "params": {"a": 1e200}}]}


def _is_bound_error(r, field: str) -> None:
    assert r.status_code == 422, (r.status_code, r.text)
    msg = r.json()["error"]["message"]
    assert field in msg and "must be in" in msg, msg


def test_aggregate_exact_request_is_422() -> None:
    r = post("/v1/aggregate", {"reward": HUGE_A, "values": [{"alignment": 1.0}]})
    _is_bound_error(r, "reward.components[0].params.a")


def test_score_with_huge_a_is_422() -> None:
    body = {"reward": HUGE_A, "samples": [{"id": "s", "completion": GOOD, "solution": GT}]}
    _is_bound_error(post("/v1/score", body), "reward.components[0].params.a")


def test_score_groups_with_huge_a_is_422() -> None:
    body = {
        "reward": HUGE_A,
        "groups": [{"id": "g", "solution": GT, "completions": [GOOD, GOOD]}],
    }
    _is_bound_error(post("/v1/score/groups", body), "reward.components[0].params.a")


def test_get_reward_with_the_spec_in_the_label_is_a_flagged_sample(caplog) -> None:
    """/get_reward answers OpenRLHF, which cannot survive a 4xx for one sample: the
    out-of-bounds spec in a label is that sample's error (reward 0, prl_error 1), and the
    bound error is logged with the label's index."""
    label = json.dumps({"solution": GT, "reward": HUGE_A})
    body = {"query": ["p" + GOOD, "p" + GOOD], "prompts": ["p", "p"], "labels": [label, GT]}
    with caplog.at_level("WARNING", logger="services.reward.openrlhf"):
        r = post("/get_reward", body)
    assert r.status_code == 200, r.text
    assert r.json()["rewards"][0] == 0.0 and r.json()["extra_logs"]["prl_error"] == [1.0, 0.0]
    msg = " ".join(rec.getMessage() for rec in caplog.records)
    assert "labels[0]" in msg and "params.a" in msg and "must be in" in msg, msg


PROBES = (1e200, -1e200, 1e-300, -1e-300, 0.0, -1.0, 1e6, 1e12)


def _numeric_fields(model) -> list[str]:
    return [n for n, f in model.model_fields.items() if f.annotation in (float, int)] + [
        n
        for n, f in model.model_fields.items()
        if f.annotation not in (float, int) and any(hasattr(m, "func") for m in f.metadata)
    ]


def _probe_requests(required: dict[str, dict] | None = None) -> list[tuple[str, str, dict]]:
    """(what, route, body) for every numeric parameter of every plug-in and every probe;
    ``required``: aggregator name → the parameters it cannot do without (a model file)."""
    from services.reward.scoring import aggregators, components
    from services.reward.scoring.base import advantages

    out = []
    for name in components.names():
        comp = components.get(name)
        for field in _numeric_fields(comp.params):
            for v in PROBES:
                spec = {"components": [{"name": name, "params": {field: v}}, {"name": "format"}]}
                values = [{name: 0.5, "format": 1.0}]
                out.append(
                    (f"{name}.{field}={v}", "/v1/aggregate", {"reward": spec, "values": values})
                )
    for name in aggregators.names():
        for field in _numeric_fields(aggregators.get(name).params):
            for v in PROBES:
                spec = {
                    "components": [{"name": "format"}, {"name": "f1"}],
                    "aggregate": {
                        "method": name,
                        "params": {**(required or {}).get(name, {}), field: v},
                    },
                }
                values = [{"format": 1.0, "f1": 0.5}]
                out.append(
                    (f"{name}.{field}={v}", "/v1/aggregate", {"reward": spec, "values": values})
                )
    for name in advantages.names():
        for field in _numeric_fields(advantages.get(name).params):
            for v in PROBES:
                body = {
                    "reward": "dig",
                    "advantage": name,
                    "advantage_params": {field: v},
                    "groups": [{"id": "g", "solution": GT, "completions": [GOOD, "x"]}],
                }
                out.append((f"{name}.{field}={v}", "/v1/score/groups", body))
    return out


def test_every_parameter_probe_is_200_or_a_422_naming_the_range(tmp_path) -> None:
    from services.reward.scoring.learned import FORMAT
    from tests.services.reward.test_reward_api import call

    model = tmp_path / "agg.json"
    model.write_text(
        json.dumps(
            {
                "format": FORMAT,
                "inputs": ["format", "f1"],
                "log_weights": [[[0.0, 0.0]]],
                "biases": [[0.0]],
                "log_beta": 0.0,
            }
        )
    )
    probes = _probe_requests({"learned": {"path": str(model)}})
    assert len(probes) > 100
    responses = call([("POST", route, {"json": body}) for _, route, body in probes])
    for (what, _route, _body), r in zip(probes, responses, strict=True):
        assert r.status_code in (200, 422), (what, r.status_code, r.text)
        if r.status_code == 422:
            msg = r.json()["error"]["message"]
            assert "params." in msg and "must be in" in msg, (what, msg)
        else:
            text = r.text
            assert "Infinity" not in text and "NaN" not in text, (what, text)


def _overflowing(s, p) -> float:
    """Test component: a value that overflowed float64 (only for the id "big")."""
    return float("inf") if s.id == "big" else 0.5


sample_component("bounds_test_overflow", needs="any", bounds=(0.0, 1.0))(_overflowing)


def test_an_overflowing_value_is_a_per_sample_error() -> None:
    spec = {
        "components": [{"name": "format"}, {"name": "bounds_test_overflow"}],
        "aggregate": {"method": "sum"},
    }
    samples = [{"id": i, "completion": GOOD, "solution": GT} for i in ("big", "ok")]
    r = post("/v1/score", {"reward": spec, "samples": samples})
    assert r.status_code == 200, r.text
    big, ok = r.json()["results"]
    assert big["component_errors"]["bounds_test_overflow"]["code"] == "non_finite"
    assert big["reward"] == 1.0 and big["components"] == {"format": 1.0}  # left out, not inf
    assert ok["reward"] == 1.5 and not ok["component_errors"]
