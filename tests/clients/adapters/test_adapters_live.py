"""Every adapter called exactly as its trainer calls it, against a live `prl serve reward`.

The ``dig`` preset is format + F1 + mean IoU (sum ∈ [0, 3]): a completion with the exact
box scores 3; a well-formed answer with a disjoint box scores 1 (format only); no answer
block scores 0 with an error code.
"""

from __future__ import annotations

import asyncio
import functools
import json
import pickle

import httpx
import pytest

from clients.adapters import easyr1 as easyr1_adapter
from clients.adapters import openrlhf as openrlhf_adapter
from clients.adapters import verl as verl_adapter
from clients.adapters.trl import TRLRewardFunction
from clients.reward import RewardClient
from tests.clients.prl_client_fakes import start_service, stop_service

pytest.importorskip("services.reward.app")

SOL = {"boxes": [[10.0, 10.0, 50.0, 50.0]]}
EXACT = "<think>one change</think> <answer>[[10, 10, 50, 50]]</answer>"
DISJOINT = "<think>one change</think> <answer>[[100, 100, 120, 120]]</answer>"
GARBAGE = "I think the difference is somewhere"


@pytest.fixture(scope="module")
def reward_url():
    proc, url = start_service("reward")
    yield url
    stop_service(proc)


def test_client_scores_hand_computed_cases(reward_url):
    with RewardClient(reward_url) as rc:
        out = rc.score(
            [
                {"id": "exact", "completion": EXACT, "solution": SOL},
                {"id": "disjoint", "completion": DISJOINT, "solution": SOL},
                {"id": "garbage", "completion": GARBAGE, "solution": SOL},
            ],
            reward="dig",
        )
        exact, disjoint, garbage = out.results
        assert exact.reward == pytest.approx(3.0)
        assert exact.components == pytest.approx({"format": 1.0, "f1": 1.0, "miou": 1.0})
        assert disjoint.reward == pytest.approx(1.0) and disjoint.components["f1"] == 0.0
        assert garbage.reward == 0.0 and garbage.error is not None
        assert [c.name for c in out.reward.components] == ["format", "f1", "miou"]

        groups = rc.score_groups(
            [{"id": "g", "solution": SOL, "completions": [EXACT, DISJOINT]}], reward="dig"
        )
        g = groups.groups[0]
        assert g.rewards == pytest.approx([3.0, 1.0])
        # GRPO: (r − mean) / (std + ε), sample std of [3, 1] = √2
        assert g.advantages[0] == pytest.approx(1 / 2**0.5, rel=1e-3)
        assert g.advantages[1] == pytest.approx(-1 / 2**0.5, rel=1e-3)
        assert g.zero_variance is False
        catalog = rc.rewards()
        dig = next(p for p in catalog.presets if p.name == "dig")
        assert [c.name for c in dig.spec.components] == ["format", "f1", "miou"]
        agg = rc.aggregate([{"format": 1.0, "f1": 0.5, "miou": 0.25}], reward="dig")
        assert agg.rewards == pytest.approx([1.75])  # unweighted sum


def test_split_groups_give_the_service_own_stats(reward_url):
    completions = [EXACT, DISJOINT, GARBAGE]
    groups = [
        {"id": f"g{k}", "solution": SOL, "completions": completions[: 1 + k % 3] * 2}
        for k in range(7)
    ]
    with RewardClient(reward_url) as rc:
        whole = rc.score_groups(groups, reward="dig")
    with RewardClient(reward_url, chunk_size=6, discover_limits=False) as rc:
        split = rc.score_groups(groups, reward="dig")
    assert [g.model_dump() for g in split.groups] == [g.model_dump() for g in whole.groups]
    assert split.stats.model_dump() == pytest.approx(whole.stats.model_dump())


def test_chunked_score_matches_single_request(reward_url):
    samples = [
        {"id": f"s{i}", "completion": [EXACT, DISJOINT, GARBAGE][i % 3], "solution": SOL}
        for i in range(25)
    ]
    with RewardClient(reward_url) as rc:
        whole = rc.score(samples, reward="dig")
    with RewardClient(reward_url, chunk_size=4, discover_limits=False) as rc:
        split = rc.score(samples, reward="dig")
    assert [r.model_dump() for r in split.results] == [r.model_dump() for r in whole.results]


@pytest.mark.torch  # imports trl
def test_trl_adapter_as_grpo_trainer_calls_it(reward_url):
    from trl.trainer.utils import get_callable_name, is_async_callable

    fn = pickle.loads(pickle.dumps(TRLRewardFunction(reward_url, reward="dig")))
    assert is_async_callable(fn) and get_callable_name(fn) == "prl_dig"
    prompt = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "image"},
                {"type": "text", "text": "Box every difference."},
            ],
        }
    ]
    completions = [[{"role": "assistant", "content": c}] for c in (EXACT, DISJOINT, GARBAGE)]
    extras, metrics = {}, {}
    kwargs = {
        "solution": [json.dumps(SOL)] * 3,
        "frame": [json.dumps({"coords": "pixel"})] * 3,
        "query": [""] * 3,
        "id": ["a", "a", "a"],
        "trainer_state": None,
        "log_extra": extras.__setitem__,
        "log_metric": metrics.__setitem__,
    }
    out = asyncio.run(
        fn(prompts=[prompt] * 3, completions=completions, completion_ids=[[1]] * 3, **kwargs)
    )
    assert out == pytest.approx([3.0, 1.0, 0.0])
    assert extras["prl_fallback"] == [False] * 3
    assert extras["prl_error"][0] is None and extras["prl_error"][2] is not None
    assert metrics["prl/component/f1"] == pytest.approx(1 / 3)


def test_verl_adapter_as_reward_loop_calls_it(reward_url):
    async def _call_with_kwargs_async(raw_fn, extra_kwargs, *args, **kwargs):
        return await raw_fn(*args, **{**kwargs, **extra_kwargs})

    fn = functools.partial(
        _call_with_kwargs_async,
        verl_adapter.compute_score,
        {"url": reward_url, "components": ["format", "f1", "miou"]},
    )

    async def run():
        return await asyncio.gather(
            *(
                fn(data_source="dig", solution_str=s, ground_truth=SOL, extra_info={"index": i})
                for i, s in enumerate((EXACT, DISJOINT))
            )
        )

    a, b = asyncio.run(run())
    assert a == pytest.approx(
        {"score": 3.0, "format": 1.0, "f1": 1.0, "miou": 1.0, "prl_fallback": 0.0, "prl_error": 0.0}
    )
    assert b["score"] == pytest.approx(1.0) and set(b) == set(a)


def test_easyr1_adapter_as_batch_manager_calls_it(reward_url):
    reward_fn = functools.partial(easyr1_adapter.compute_score, url=reward_url, reward="dig")
    inputs = [
        {"response": r, "response_length": len(r), "ground_truth": json.dumps(SOL)}
        for r in (EXACT, GARBAGE)
    ]
    scores = reward_fn(inputs)
    assert scores[0]["overall"] == pytest.approx(3.0)
    assert scores[1]["overall"] == 0.0 and scores[1]["prl_error"] == 1.0
    assert scores[1]["prl_fallback"] == 0.0 and set(scores[0]) == set(scores[1])


def test_openrlhf_remote_url_protocol(reward_url):
    """What OpenRLHF's SingleTurnExecutor posts to --reward.remote_url, and what it reads."""
    prompt = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Box every difference.<|im_end|>\n<|im_start|>assistant\n"
    payload = {
        "query": [prompt + EXACT + "<|im_end|>", prompt + DISJOINT + "<|im_end|>"],
        "prompts": [prompt, prompt],
        "labels": [json.dumps(SOL), json.dumps(SOL)],
    }
    r = httpx.post(reward_url + "/get_reward", json=payload, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rewards"] == pytest.approx([3.0, 1.0])
    assert len(body["scores"]) == 2
    assert all(len(v) == 2 for v in body["extra_logs"].values())
    empty = httpx.post(reward_url + "/get_reward", json={"query": [], "prompts": [], "labels": []})
    assert empty.status_code == 200 and empty.json()["rewards"] == []


def test_openrlhf_reward_file(reward_url, monkeypatch):
    monkeypatch.setenv("PRL_REWARD_URL", reward_url)
    prompt = "<|im_start|>user\nBox every difference.<|im_end|>\n<|im_start|>assistant\n"
    info = openrlhf_adapter.reward_func(
        [prompt + EXACT + "<|im_end|>"], [prompt], [json.dumps(SOL)]
    )
    assert info["rewards"] == pytest.approx([3.0])
    assert info["extra_logs"]["f1"] == [1.0] and info["extra_logs"]["prl_fallback"] == [0.0]
