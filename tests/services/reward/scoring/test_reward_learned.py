"""The ``learned`` aggregator: hand computation, monotonicity, missing values, validation."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.reward import RewardSpec
from services.reward.scoring import aggregate_values, compiled
from services.reward.scoring.learned import FORMAT, SmoothMinMax, load_model, parse_model
from services.reward.scoring.spec import SpecError


def model_dict(log_weights, biases, log_beta, inputs, offset=0.0, gain=1.0):
    return {
        "format": FORMAT,
        "version": 1,
        "inputs": inputs,
        "log_weights": log_weights,
        "biases": biases,
        "log_beta": log_beta,
        "offset": offset,
        "gain": gain,
        "provenance": {"test": True},
    }


def write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def spec(path, names=("f1", "miou"), weights=None, **params):
    comps = [
        {"name": n, **({} if weights is None else {"weight": w})}
        for n, w in zip(names, weights or [1.0] * len(names), strict=True)
    ]
    return RewardSpec.model_validate(
        {
            "components": comps,
            "aggregate": {"method": "learned", "params": {"path": str(path), **params}},
        }
    )


def agg(c, rows, present=None):
    values = np.array(rows, dtype=np.float64)
    pres = np.ones(values.shape, bool) if present is None else np.array(present)
    rewards, errors = aggregate_values(c, values, pres)
    return rewards, errors


TWO_BY_TWO = model_dict(
    [[[math.log(1.0), math.log(2.0)], [math.log(0.5), math.log(0.25)]], [[0.0, -1.0], [-2.0, 0.5]]],
    [[0.1, 0.3], [-0.2, 0.4]],
    math.log(3.0),
    ["f1", "miou"],
    offset=0.05,
    gain=0.8,
)


def by_hand(m, x):
    """Scalar loops over the formula of the module docstring."""
    beta = math.exp(m["log_beta"])
    mins = []
    for g, units in enumerate(m["log_weights"]):
        zs = [
            sum(math.exp(a) * xk for a, xk in zip(unit, x, strict=True)) + m["biases"][g][j]
            for j, unit in enumerate(units)
        ]
        mins.append(-math.log(sum(math.exp(-beta * z) for z in zs)) / beta)
    y = math.log(sum(math.exp(beta * v) for v in mins)) / beta
    return min(max((y - m["offset"]) * m["gain"], 0.0), 1.0)


def test_matches_hand_computation(tmp_path):
    path = write(tmp_path / "m.json", TWO_BY_TWO)
    c = compiled(spec(path, scale=2.0))
    rows = [[0.0, 0.0], [0.3, 0.9], [1.0, 0.5], [1.0, 1.0]]
    rewards, errors = agg(c, rows)
    assert errors == [None] * 4
    assert rewards.tolist() == pytest.approx(
        [2.0 * by_hand(TWO_BY_TWO, r) for r in rows], abs=1e-12
    )


def test_one_unit_is_an_exact_clipped_weighted_sum(tmp_path):
    """G = J = 1: soft min and max of one value are the value, so R = clip(Σ e^a x + b)."""
    m = model_dict([[[math.log(0.5), math.log(0.25)]]], [[0.1]], 0.0, ["f1", "giou"])
    c = compiled(spec(write(tmp_path / "lin.json", m), names=("f1", "giou")))
    # giou's range is [-1, 1]: raw -1 → 0, raw 0 → 0.5, raw 1 → 1 before the network
    rewards, _ = agg(c, [[0.4, 0.0], [1.0, 1.0], [0.0, -1.0]])
    assert rewards.tolist() == pytest.approx([0.5 * 0.4 + 0.25 * 0.5 + 0.1, 0.85, 0.1])


def test_missing_component_counts_as_lowest_credit(tmp_path):
    c = compiled(spec(write(tmp_path / "m.json", TWO_BY_TWO)))
    missing, _ = agg(c, [[0.7, 0.0]], present=[[True, False]])
    zero, _ = agg(c, [[0.7, 0.0]])
    higher, _ = agg(c, [[0.7, 0.2]])
    assert missing[0] == zero[0] <= higher[0]


def test_resolved_spec_carries_the_file_hash(tmp_path):
    import hashlib

    path = write(tmp_path / "m.json", TWO_BY_TWO)
    c = compiled(spec(path))
    assert c.spec.aggregate.params["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    pinned = compiled(spec(path, sha256=c.spec.aggregate.params["sha256"]))
    assert pinned.aggregator.name == "learned"


@st.composite
def nets(draw):
    g, j, k = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    num = st.floats(-4.0, 4.0, allow_nan=False)
    a = np.array(draw(st.lists(num, min_size=g * j * k, max_size=g * j * k))).reshape(g, j, k)
    b = np.array(draw(st.lists(num, min_size=g * j, max_size=g * j))).reshape(g, j)
    beta = math.exp(draw(st.floats(-2.0, 4.0)))
    net = SmoothMinMax(tuple(f"c{i}" for i in range(k)), np.exp(a), b, beta, 0.0, 0.25)
    x = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k)))
    return net, x, draw(st.integers(0, k - 1)), draw(st.floats(0.0, 1.0))


@settings(max_examples=300, deadline=None)
@given(nets())
def test_never_decreases_when_a_component_rises(case):
    net, x, k, frac = case
    up = x.copy()
    up[k] = x[k] + frac * (1.0 - x[k])
    lo, hi = net(x[None])[0], net(up[None])[0]
    assert 0.0 <= lo <= 1.0 and 0.0 <= hi <= 1.0
    assert hi >= lo - 1e-12
    # the raw network too (before clipping), where rounding is the only slack
    assert net.raw(up[None])[0] >= net.raw(x[None])[0] - 1e-9 * (1 + abs(net.raw(x[None])[0]))


@settings(max_examples=60, deadline=None)
@given(nets(), st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3))
def test_aggregate_lies_in_its_computed_range(tmp_path_factory, case, u):
    """``ranges.aggregate_range`` relies on monotonicity: corners bound every value."""
    from services.reward.scoring.ranges import aggregate_range

    net = case[0]
    names = ["format", "giou", "alignment"]
    k = len(names)
    m = model_dict(
        np.log(np.resize(net.w, (*net.w.shape[:2], k))).tolist(),
        net.b.tolist(),
        math.log(net.beta),
        names,
    )
    path = write(tmp_path_factory.mktemp("range") / "m.json", m)
    c = compiled(spec(path, names=names))
    rng = aggregate_range(c)
    box = np.array([comp.value_range(p) for comp, p in c.components])
    values = (box[:, 0] + np.array(u) * (box[:, 1] - box[:, 0]))[None, :]
    got, _ = aggregate_values(c, values, np.ones_like(values, dtype=bool))
    assert rng.lo - 1e-12 <= got[0] <= rng.hi + 1e-12
    assert rng.format_alone is not None and rng.lo <= rng.format_alone <= rng.hi


# ---- validation: a clear SpecError (HTTP 422), never an exception of another kind -----------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such model file"),
        ("{not json", "not a JSON model file"),
        (json.dumps({"format": "other"}), "not a learned-aggregator model"),
        (json.dumps({**TWO_BY_TWO, "biases": [[0.1]]}), "corrupt model file: biases"),
        (json.dumps({**TWO_BY_TWO, "log_beta": float("nan")}), "corrupt model file: log_beta"),
        (json.dumps({**TWO_BY_TWO, "inputs": ["f1"]}), "2 weights for 1 inputs"),
        (json.dumps({**TWO_BY_TWO, "gain": -1}), "gain"),
    ],
)
def test_bad_model_file_is_a_spec_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SpecError, match=message) as err:
        compiled(spec(path))
    assert str(err.value).startswith(f"reward.aggregate.params: path {str(path)!r}")
    assert "{not json" not in str(err.value)


def test_spec_components_must_be_the_model_inputs(tmp_path):
    path = write(tmp_path / "m.json", TWO_BY_TWO)
    with pytest.raises(SpecError, match=r"fitted on 2 components \['f1', 'miou'\].*lists 3"):
        compiled(spec(path, names=("f1", "miou", "format")))
    with pytest.raises(SpecError, match="in this order"):
        compiled(spec(path, names=("miou", "f1")))
    with pytest.raises(SpecError, match="leave the weight of miou at 1"):
        compiled(spec(path, weights=[1.0, 0.5]))


def test_pin_mismatch_suffix_and_directory(tmp_path, monkeypatch):
    path = write(tmp_path / "m.json", TWO_BY_TWO)
    with pytest.raises(SpecError, match="the spec pins"):
        compiled(spec(path, sha256="0" * 64))
    txt = write(tmp_path / "m.txt", TWO_BY_TWO)
    with pytest.raises(SpecError, match=r"a \.json file"):
        compiled(spec(txt))
    with pytest.raises(SpecError, match=r"params\.path: String should have at least 1"):
        compiled(spec(""))
    inside = tmp_path / "models"
    inside.mkdir()
    write(inside / "ok.json", TWO_BY_TWO)
    monkeypatch.setenv("PRL_REWARD_AGGREGATOR_DIR", str(inside))
    assert compiled(spec("ok.json")).aggregator.name == "learned"
    with pytest.raises(SpecError, match="outside PRL_REWARD_AGGREGATOR_DIR"):
        compiled(spec("../m.json"))


def test_loaded_models_are_cached_until_the_file_changes(tmp_path):
    path = write(tmp_path / "m.json", TWO_BY_TWO)
    first, h1 = load_model(str(path))
    again, h2 = load_model(str(path))
    assert again is first and h1 == h2
    write(path, {**TWO_BY_TWO, "gain": 0.5, "provenance": {"second": "version"}})
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000))
    changed, h3 = load_model(str(path))
    assert changed is not first and h3 != h1 and changed.gain == 0.5


def test_parse_model_round_trip():
    m = parse_model(json.dumps(TWO_BY_TWO))
    assert m.inputs == ["f1", "miou"] and m.provenance == {"test": True}
