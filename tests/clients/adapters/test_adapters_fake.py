"""Each adapter called exactly as its trainer calls it, against the fault-injecting fake."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import pickle
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import clients.adapters as adapters_pkg
from clients.adapters import verl as verl_adapter
from clients.adapters.common import completion_text, prompt_query, read_target
from clients.adapters.openrlhf import split_response
from clients.adapters.trl import TRLRewardFunction
from tests.clients.prl_client_fakes import Fault

GOOD = "<think>t</think> <answer>[1, 2, 3, 4]</answer>"
BAD = "nothing"
SOL = {"boxes": [[1, 2, 3, 4]]}
ADAPTERS = Path(adapters_pkg.__file__).parent


class Recorder:
    def __init__(self):
        self.extra, self.metrics = {}, {}

    def log_extra(self, column, values):
        self.extra[column] = values

    def log_metric(self, name, value):
        self.metrics[name] = value


def trl_call(fn, prompts, completions, columns, rec):
    """GRPOTrainer._calculate_rewards' async path: keyword args only, columns as lists."""
    kwargs = {
        **columns,
        "trainer_state": object(),
        "log_extra": rec.log_extra,
        "log_metric": rec.log_metric,
    }
    ids = [[1, 2, 3] for _ in completions]
    return asyncio.run(fn(prompts=prompts, completions=completions, completion_ids=ids, **kwargs))


@pytest.mark.torch  # imports trl
def test_trl_reward_function_contract(fake):
    from trl.trainer.utils import get_callable_name, is_async_callable

    fn = TRLRewardFunction(fake.url, reward="dig", name="prl_dig")
    assert is_async_callable(fn) and get_callable_name(fn) == "prl_dig"
    fn2 = pickle.loads(pickle.dumps(fn))
    prompts = [
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "find it"}]}]
    ] * 3
    completions = [[{"role": "assistant", "content": c}] for c in (GOOD, BAD, GOOD)]
    columns = {"solution": [json.dumps(SOL), SOL, None], "frame": [None, {"coords": "pixel"}, None]}
    rec = Recorder()
    out = trl_call(fn2, prompts, completions, columns, rec)
    assert out == [1.0, 0.0, None]  # the third row has no solution: not applicable
    assert rec.extra["prl_fallback"] == [False, False, False]
    assert rec.extra["prl_format"] == [1.0, 0.0, None]
    assert (
        rec.metrics["prl/component/format"] == 0.5 and rec.metrics["prl/fallback_fraction"] == 0.0
    )
    sent = json.loads(fake.state.calls("/v1/score")[0]["body"])
    assert [s["query"] for s in sent["samples"]] == ["find it", "find it"]
    assert "image" not in sent["samples"][0]


def test_trl_per_row_reward_column_makes_one_request_per_reward(fake):
    fn = TRLRewardFunction(fake.url, reward="dig")
    cols = {"solution": [SOL, SOL, SOL], "reward": ["dig", "vlmr1_rec", "dig"]}
    out = trl_call(fn, ["p"] * 3, [GOOD, BAD, GOOD], cols, Recorder())
    assert out == [1.0, 0.0, 1.0]
    sent = sorted(json.loads(c["body"])["reward"] for c in fake.state.calls("/v1/score"))
    assert sent == ["dig", "vlmr1_rec"]


def test_trl_server_down_gives_explicit_fallback_and_flag(dead_url):
    fn = TRLRewardFunction(dead_url, max_retries=1, fallback_reward=-1.0)
    rec = Recorder()
    out = trl_call(fn, ["p", "p"], [GOOD, BAD], {"solution": [SOL, SOL]}, rec)
    assert out == [-1.0, -1.0]
    assert rec.extra["prl_fallback"] == [True, True]
    assert rec.extra["prl_error"] == ["APIConnectionError"] * 2
    assert rec.metrics["prl/fallback_fraction"] == 1.0
    # default fallback is None: TRL turns it into NaN ("not applicable"), still flagged
    rec = Recorder()
    assert trl_call(
        TRLRewardFunction(dead_url, max_retries=0), ["p"], [GOOD], {"solution": [SOL]}, rec
    ) == [None]
    assert rec.extra["prl_fallback"] == [True]


def test_trl_slow_server_hits_the_deadline(fake):
    fake.state.delay_s = 2.0
    fn = TRLRewardFunction(fake.url, timeout_s=0.3, fallback_reward=0.25, max_retries=0)
    rec = Recorder()
    assert trl_call(fn, ["p"], [GOOD], {"solution": [SOL]}, rec) == [0.25]
    assert rec.extra["prl_error"] == ["timeout"] and rec.extra["prl_fallback"] == [True]


def test_trl_retries_503_then_scores(fake):
    fake.state.inject("/v1/score", Fault(503, retry_after="0"), Fault(500))
    rec = Recorder()
    assert trl_call(TRLRewardFunction(fake.url), ["p"], [GOOD], {"solution": [SOL]}, rec) == [1.0]
    assert rec.extra["prl_fallback"] == [False] and len(fake.state.calls("/v1/score")) == 3


def _verl_bind(raw_fn, reward_kwargs):
    """verl's get_custom_reward_fn for a coroutine function: partial(_call_with_kwargs_async)."""

    async def _call_with_kwargs_async(raw_fn, extra_kwargs, *args, **kwargs):
        return await raw_fn(*args, **{**kwargs, **extra_kwargs})

    return functools.partial(_call_with_kwargs_async, raw_fn, reward_kwargs)


def _load_file(path: Path, module_name: str):
    """How EasyR1 / verl / OpenRLHF load a reward file: spec_from_file_location + exec_module."""
    spec = importlib.util.spec_from_file_location(module_name, str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def test_verl_compute_score_as_the_naive_manager_and_reward_loop_call_it(fake):
    module = _load_file(ADAPTERS / "verl.py", "custom_module")
    fn = _verl_bind(module.compute_score, {"url": fake.url, "components": ["format"]})

    async def run():
        return await asyncio.gather(
            fn(data_source="dig", solution_str=GOOD, ground_truth=SOL, extra_info={"index": 0}),
            fn(
                data_source="refcoco",
                solution_str=BAD,
                ground_truth=json.dumps({"solution": SOL, "frame": {"coords": "pixel"}}),
                extra_info={"reward": "vlmr1_rec", "num_turns": 1, "rollout_reward_scores": {}},
            ),
        )

    a, b = asyncio.run(run())
    # keys: exactly the components given (the fake's dig also has f1), the same for both
    assert a == {"score": 1.0, "format": 1.0, "prl_fallback": 0.0, "prl_error": 0.0}
    assert b == {"score": 0.0, "format": 0.0, "prl_fallback": 0.0, "prl_error": 0.0}
    sent = sorted(json.loads(c["body"])["reward"] for c in fake.state.calls("/v1/score"))
    assert sent == ["dig", "vlmr1_rec"]  # data_source as preset; extra_info overrides


def test_verl_concurrent_calls_are_coalesced_into_one_request(fake):
    fn = _verl_bind(verl_adapter.compute_score, {"url": fake.url, "coalesce_ms": 20.0})

    async def run():
        calls = [
            fn(data_source="dig", solution_str=[GOOD, BAD][i % 2], ground_truth=SOL, extra_info={})
            for i in range(8)
        ]
        return await asyncio.gather(*calls)

    out = asyncio.run(run())
    assert [o["score"] for o in out] == [1.0, 0.0] * 4
    (call,) = fake.state.calls("/v1/score")
    assert len(json.loads(call["body"])["samples"]) == 8


def test_verl_fallback_keeps_stable_keys(dead_url):
    fn = _verl_bind(
        verl_adapter.compute_score,
        {"url": dead_url, "max_retries": 0, "fallback_reward": 0.0, "components": ["format", "f1"]},
    )
    out = asyncio.run(fn(data_source="dig", solution_str=GOOD, ground_truth=SOL, extra_info=None))
    assert out == {"score": 0.0, "format": 0.0, "f1": 0.0, "prl_fallback": 1.0, "prl_error": 1.0}


def test_verl_fallback_learns_keys_from_the_catalog_first(fake):
    fake.state.inject("/v1/score", *[Fault(503, retry_after="0")] * 2)
    fn = _verl_bind(verl_adapter.compute_score, {"url": fake.url, "max_retries": 1})
    out = asyncio.run(fn(data_source="dig", solution_str=GOOD, ground_truth=SOL, extra_info={}))
    # the preset's components (format, f1) come from GET /v1/rewards, before any score answered
    assert out == {"score": 0.0, "format": 0.0, "f1": 0.0, "prl_fallback": 1.0, "prl_error": 1.0}


def test_verl_batch_manager_form(fake):
    out = verl_adapter.compute_score_batch(
        data_sources=["dig"] * 3,
        solution_strs=[GOOD, BAD, GOOD],
        ground_truths=[SOL] * 3,
        extra_infos=[{}] * 3,
        url=fake.url,
    )
    assert [o["score"] for o in out] == [1.0, 0.0, 1.0]
    assert len(fake.state.calls("/v1/score")) == 1


def test_easyr1_batch_function_as_easyr1_loads_and_calls_it(fake):
    module = _load_file(ADAPTERS / "easyr1.py", "custom_reward_fn")
    assert getattr(module, "REWARD_TYPE", "batch") == "batch"
    assert module.REWARD_NAME
    reward_fn = functools.partial(module.compute_score, **{"url": fake.url, "reward": "dig"})
    inputs = [
        {"response": r, "response_length": len(r), "ground_truth": json.dumps({"solution": SOL})}
        for r in (GOOD, BAD)
    ]
    scores = reward_fn(inputs)
    assert scores == [
        {"overall": 1.0, "format": 1.0, "f1": 0.0, "prl_fallback": 0.0, "prl_error": 0.0},
        {"overall": 0.0, "format": 0.0, "f1": 0.0, "prl_fallback": 0.0, "prl_error": 0.0},
    ]


def test_easyr1_slow_server_falls_back_with_flag(fake):
    fake.state.delay_s = 2.0
    module = _load_file(ADAPTERS / "easyr1.py", "custom_reward_fn")
    scores = module.compute_score(
        [{"response": GOOD, "response_length": 3, "ground_truth": json.dumps(SOL)}],
        url=fake.url,
        timeout_s=0.3,
        fallback_reward=0.1,
        max_retries=0,
    )
    assert scores == [{"overall": 0.1, "prl_fallback": 1.0, "prl_error": 1.0}]


def test_openrlhf_reward_file_as_openrlhf_calls_it(fake, monkeypatch):
    monkeypatch.setenv("PRL_REWARD_URL", fake.url)
    module = _load_file(ADAPTERS / "openrlhf.py", "reward_module")
    prompt = "<|im_start|>user\nfind<|im_end|>\n<|im_start|>assistant\n"
    query = prompt + GOOD + "<|im_end|><|endoftext|>"

    async def executor():  # SingleTurnExecutor._fetch_rewards_via_func, batch size 1
        return await asyncio.gather(
            asyncio.to_thread(module.reward_func, [query], [prompt], [json.dumps(SOL)])
        )

    (info,) = asyncio.run(executor())
    assert info["rewards"] == [1.0] and info["scores"] == [1.0]
    assert info["extra_logs"] == {
        "format": [1.0],
        "f1": [0.0],
        "prl_fallback": [0.0],
        "prl_error": [0.0],
    }
    sent = json.loads(fake.state.calls("/v1/score")[0]["body"])
    assert sent["samples"][0]["completion"] == GOOD


def test_openrlhf_reward_file_down_is_flagged_not_dropped(dead_url, monkeypatch):
    monkeypatch.setenv("PRL_REWARD_URL", dead_url)
    monkeypatch.setenv("PRL_REWARD_FALLBACK", "-0.5")
    monkeypatch.setenv("PRL_REWARD_TIMEOUT_S", "2")
    from clients.adapters import openrlhf

    monkeypatch.setattr(openrlhf.RemoteReward, "__init__", _no_retry_init(openrlhf.RemoteReward))
    info = openrlhf.reward_func(["q"], ["p"], [SOL])
    assert info["rewards"] == [-0.5]
    assert info["extra_logs"]["prl_fallback"] == [1.0]


def _no_retry_init(cls):
    original = cls.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "max_retries": 0})

    return init


@pytest.mark.parametrize(
    ("query", "prompt", "expected"),
    [
        ("PROMPT<answer>x</answer><|im_end|>", "PROMPT", "<answer>x</answer>"),
        ("a<|im_start|>assistant\nhello<|im_end|><|endoftext|><|endoftext|>", "zz", "hello"),
        ("bare text", None, "bare text"),
    ],
)
def test_split_response(query, prompt, expected):
    assert split_response(query, prompt) == expected


def test_read_target_shapes_and_errors():
    t = read_target(
        json.dumps(
            {
                "solution": {"label": "cat"},
                "frame": {"coords": "norm1000", "image_size": [10, 20]},
                "reward": "x",
            }
        )
    )
    assert t.solution.label == "cat" and t.frame.coords == "norm1000" and t.reward == "x"
    assert read_target(None) is None and read_target("") is None and read_target({}) is None
    with pytest.raises(ValueError, match="JSON"):
        read_target("{not json")
    with pytest.raises(ValueError, match="BoxSolution"):
        read_target({"boxes": [[3, 3, 1, 1]]})


def test_completion_and_prompt_text():
    assert completion_text("x") == "x"
    assert (
        completion_text(
            [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "image"}]}]
        )
        == "a"
    )
    assert (
        completion_text([{"role": "user", "content": "u"}, {"role": "assistant", "content": "b"}])
        == "b"
    )
    assert (
        prompt_query([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]) == "q"
    )
    assert prompt_query(5) is None


_plain = st.text(
    st.characters(blacklist_characters="<>|", blacklist_categories=("Cs",)), max_size=30
)


@given(
    before=_plain,
    after=_plain,
    response=_plain,
    pads=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    ends=st.integers(0, 2),
)
def test_split_recovers_the_response_of_an_expanded_vlm_query(before, after, response, pads, ends):
    """However many vision tokens each <|image_pad|> became, the response comes back."""
    images = "".join(f"<|vision_start|><|image_pad|><|vision_end|>{before}" for _ in pads)
    expanded = "".join(f"<|vision_start|>{'<|image_pad|>' * n}<|vision_end|>{before}" for n in pads)
    head = "<|im_start|>user\n"
    tail = f"{after}<|im_end|>\n<|im_start|>assistant\n"
    prompt, query = head + images + tail, head + expanded + tail + response + "<|im_end|>" * ends
    assert split_response(query, prompt) == response.rstrip()


def test_openrlhf_reward_file_looks_things_up_once_per_process(fake, monkeypatch):
    """OpenRLHF calls the file from a new worker thread per sample: one catalog and one limits
    look-up for all of them, and concurrent calls share /v1/score requests."""
    monkeypatch.setenv("PRL_REWARD_URL", fake.url)
    monkeypatch.setenv("PRL_REWARD_TIMEOUT_S", "59")  # a RemoteReward of this test's own
    from clients.adapters import openrlhf

    prompt = "<|im_start|>user\nfind<|im_end|>\n<|im_start|>assistant\n"

    async def executor():
        return await asyncio.gather(
            *(
                asyncio.to_thread(openrlhf.reward_func, [prompt + GOOD], [prompt], [SOL])
                for _ in range(24)
            )
        )

    outs = asyncio.run(executor())
    assert all(o["rewards"] == [1.0] for o in outs)
    assert len(fake.state.calls("/v1/rewards")) == 1
    assert len(fake.state.calls("/v1/limits")) <= 1
    assert 1 <= len(fake.state.calls("/v1/score")) < 24  # coalesced
