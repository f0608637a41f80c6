"""Mean-reward metrics are keyed by the reward spec they average (name + hash of the spec)."""

from __future__ import annotations

import hashlib
import json

import pytest

from schemas.reward import RewardSpec
from services.benchmark.adapters import get_adapter
from services.benchmark.reward_key import is_reward_metric, key_reward_metrics, reward_key
from services.benchmark.runner import RunOptions, run_benchmark
from services.benchmark.scoring import InProcessScorer
from services.benchmark.store import MemoryRunStore
from services.reward.scoring import resolve_reward


def _sha(obj) -> str:  # type: ignore[no-untyped-def]
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def test_a_preset_is_named_by_itself_and_hashed_with_its_defaults_written_out():
    key = reward_key("dig")
    assert key.name == "dig" and key.metric() == "reward[dig]"
    assert key.hash == _sha(resolve_reward("dig").model_dump(mode="json"))
    assert reward_key("deva_detection").hash != key.hash


def test_an_inline_spec_equal_to_a_preset_has_the_presets_hash_and_a_custom_name():
    spec = resolve_reward("dig")
    inline = reward_key(RewardSpec.model_validate(spec.model_dump()))
    assert inline.hash == reward_key("dig").hash
    assert inline.name == f"custom-{inline.hash[:8]}"
    assert reward_key(spec.model_dump(mode="json")) == inline  # its JSON form too
    other = spec.model_copy(
        update={"aggregate": spec.aggregate.model_copy(update={"method": "mean"})}
    )
    assert reward_key(other).hash != inline.hash


def test_an_unknown_preset_is_hashed_as_named():
    key = reward_key("not_a_preset_here")
    assert key.name == "not_a_preset_here" and key.hash == _sha("not_a_preset_here")


@pytest.mark.parametrize(
    ("name", "yes"),
    [("reward", True), ("dig/reward", True), ("reward[dig]", True), ("x/reward[c-1]", True)],
)
def test_reward_metric_names(name, yes):
    assert is_reward_metric(name) is yes
    assert not is_reward_metric("mean_reward") and not is_reward_metric("rewards")


def test_uploaded_bare_reward_metrics_are_renamed_after_the_runs_reward():
    key = reward_key("dig")
    out = key_reward_metrics(
        [
            {"name": "reward", "value": 1.0},
            {"name": "val/reward", "value": 1.0},
            {"name": "reward[other]", "value": 2.0},
            {"name": "dig/f1", "value": 0.5},
        ],
        "dig",
    )
    assert out[0] == {
        "name": "reward[dig]",
        "value": 1.0,
        "reward_spec": "dig",
        "reward_spec_hash": key.hash,
    }
    assert out[1]["name"] == "val/reward[dig]"
    assert out[2] == {"name": "reward[other]", "value": 2.0, "reward_spec": "other"}
    assert out[3] == {"name": "dig/f1", "value": 0.5}
    assert key_reward_metrics([{"name": "reward", "value": 1}], None) == [
        {"name": "reward", "value": 1}
    ]


HARMONIC_DIG = RewardSpec.model_validate(
    {
        "components": [{"name": "format"}, {"name": "f1"}, {"name": "miou"}],
        "aggregate": {"method": "harmonic"},
    }
)


@pytest.mark.parametrize("reward", ["dig", HARMONIC_DIG])
def test_a_benchmark_run_stores_its_mean_reward_under_the_spec(dig_task, dig_predictions, reward):
    res = run_benchmark(
        dig_task,
        get_adapter("predictions", path=str(dig_predictions)),
        store=MemoryRunStore(),
        scorer=InProcessScorer(),
        options=RunOptions(progress=False, n_boot=20, reward=reward),
    )
    mean = next(m for m in res.metrics if m.name.startswith("reward"))
    key = reward_key(reward)
    assert mean.name == f"reward[{key.name}]"
    assert (mean.reward_spec, mean.reward_spec_hash) == (key.name, key.hash)
    assert not any(m.name == "reward" for m in res.metrics)
