"""Both EasyR1 adapter files through a reward manager written from EasyR1's interface.

EasyR1 is not on PyPI, so its ``AutoRewardManager`` cannot be imported here. ``RewardManager``
below follows what ``verl/workers/reward/function.py`` does (hiyouga/EasyR1, July 2026):
load the file as module ``custom_reward_fn``, read ``REWARD_NAME`` / ``REWARD_TYPE`` (default
``"batch"``), bind the kwargs with ``partial``, call once per batch or once per sample with
``{"response", "response_length", "ground_truth"}``, put ``score["overall"]`` on the last
response token and append every key of every score to a per-key list.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import defaultdict
from functools import partial
from pathlib import Path

import pytest

import clients.adapters as adapters_pkg
from tests.clients.prl_client_fakes import Fault

ADAPTERS = Path(adapters_pkg.__file__).parent
GOOD = "<think>t</think> <answer>[1, 2, 3, 4]</answer>"
BAD = "nothing"
SOL = {"boxes": [[1, 2, 3, 4]]}


class RewardManager:
    """EasyR1's reward-manager contract, on plain lists instead of a ``DataProto``."""

    def __init__(self, reward_function: str, reward_function_kwargs: dict):
        path, _, name = reward_function.rpartition(":")
        if not path:
            path, name = name, "main"
        spec = importlib.util.spec_from_file_location("custom_reward_fn", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["custom_reward_fn"] = module
        spec.loader.exec_module(module)
        self.reward_name = getattr(module, "REWARD_NAME", "unknown")
        self.reward_type = getattr(module, "REWARD_TYPE", "batch")
        self.reward_fn = partial(getattr(module, name), **reward_function_kwargs)

    def compute_reward(self, responses: list[list[int]], ground_truths: list[str]):
        """(reward tensor as lists, metrics: key → one value per sample)."""
        texts = ["".join(chr(t) for t in r) for r in responses]  # the "tokenizer"
        inputs = [
            {"response": s, "response_length": len(r), "ground_truth": gt}
            for s, r, gt in zip(texts, responses, ground_truths, strict=True)
        ]
        if self.reward_type == "batch":
            scores = self.reward_fn(inputs)
        elif self.reward_type == "sequential":
            scores = [self.reward_fn(x) for x in inputs]
        else:
            raise ValueError(f"Unsupported reward type: {self.reward_type}.")
        reward = [[0.0] * len(r) for r in responses]
        metrics: dict[str, list[float]] = defaultdict(list)
        for i, score in enumerate(scores):
            reward[i][len(responses[i]) - 1] = score["overall"]
            for key, value in score.items():
                metrics[key].append(value)
        return reward, dict(metrics)


def tokens(text: str) -> list[int]:
    return [ord(c) for c in text]


@pytest.mark.parametrize("file", ["easyr1.py", "easyr1_sequential.py"])
def test_both_reward_types_score_and_keep_the_keys_aligned(fake, file):
    manager = RewardManager(f"{ADAPTERS / file}:compute_score", {"url": fake.url, "reward": "dig"})
    assert manager.reward_type == ("batch" if file == "easyr1.py" else "sequential")
    gts = [json.dumps(SOL), json.dumps({"solution": SOL}), "", "{broken"]
    reward, metrics = manager.compute_reward(
        [tokens(GOOD), tokens(BAD), tokens(GOOD), tokens(GOOD)], gts
    )
    assert [row[-1] for row in reward] == [1.0, 0.0, 0.0, 0.0]
    assert metrics["overall"] == [1.0, 0.0, 0.0, 0.0]
    # every key has one value per sample: EasyR1 reduces these lists per key
    assert set(metrics) == {"overall", "format", "f1", "prl_fallback", "prl_error"}
    assert all(len(v) == 4 for v in metrics.values())
    assert metrics["prl_error"] == [0.0, 0.0, 1.0, 1.0]  # empty and broken ground truths
    assert metrics["prl_fallback"] == [0.0, 0.0, 1.0, 1.0]
    assert all(isinstance(v, float) for vals in metrics.values() for v in vals)
    calls = fake.state.calls("/v1/score")
    assert len(calls) == (1 if file == "easyr1.py" else 2)


@pytest.mark.parametrize("file", ["easyr1.py", "easyr1_sequential.py"])
def test_fallback_samples_carry_the_same_keys(fake, file):
    """A failed call still gives every component key (learnt from the catalog first)."""
    fake.state.inject("/v1/score", *[Fault(503, retry_after="0")] * 8)
    kwargs = {"url": fake.url, "reward": "dig", "max_retries": 0, "fallback_reward": -1.0}
    manager = RewardManager(f"{ADAPTERS / file}:compute_score", kwargs)
    reward, metrics = manager.compute_reward([tokens(GOOD), tokens(BAD)], [json.dumps(SOL)] * 2)
    assert metrics["overall"] == [-1.0, -1.0] and [r[-1] for r in reward] == [-1.0, -1.0]
    assert set(metrics) == {"overall", "format", "f1", "prl_fallback", "prl_error"}
    assert metrics["prl_fallback"] == [1.0, 1.0]


def test_the_docs_recipe_as_written(fake):
    """docs/clients.md's EasyR1 config, loaded and run by the reward manager."""
    import os
    import subprocess

    import yaml

    from tests.recipes import DOC, recipe

    text = recipe("easyr1")
    code = re.search(r'PRL_EASYR1_ADAPTER=\$\(python -c "([^"]+)"\)', DOC.read_text()).group(1)
    path = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    cfg = yaml.safe_load(os.path.expandvars(text.replace("${PRL_EASYR1_ADAPTER}", path)))
    reward = cfg["worker"]["reward"]
    kwargs = {**reward["reward_function_kwargs"], "url": fake.url}
    manager = RewardManager(reward["reward_function"], kwargs)
    _, metrics = manager.compute_reward([tokens(GOOD)], [json.dumps({"solution": SOL})])
    assert metrics["overall"] == [1.0] and metrics["prl_fallback"] == [0.0]
