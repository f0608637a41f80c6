"""OpenRLHF 0.11.2's own ``SingleTurnAgentExecutor`` scoring VLM samples with our reward, both
ways docs/clients.md gives (``/get_reward`` URL, adapter file), recipes read from the docs.

Only the generation engine is stood in for (a scripted engine returning a fixed completion's
token ids, where OpenRLHF would call vLLM); tokenisation with the image processor, the query
decoding, the HTTP call or file loading and the reward reading are OpenRLHF's.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

pytest.importorskip("openrlhf", reason="OpenRLHF is in .venv-peers only (make peers-test)")
pytestmark = pytest.mark.peers

import httpx  # noqa: E402
import torch  # noqa: E402
from openrlhf.trainer.ppo_utils.experience import (  # noqa: E402
    Experience,
    split_experience_batch,
)
from openrlhf.utils.agent import SingleTurnAgentExecutor  # noqa: E402
from PIL import Image  # noqa: E402

from tests.recipes import commands, exports, flag, label_rows, recipe  # noqa: E402

HOST = "http://reward-host:8001"


class ScriptedEngine:
    """Stands in for vLLM's engine: always generates ``text`` (then <|im_end|>)."""

    def __init__(self, processor, text: str):
        tok = processor.tokenizer
        self.ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        self.text = text

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        assert multi_modal_data and multi_modal_data["image"]  # the image reached the engine
        out = SimpleNamespace(
            token_ids=self.ids, text=self.text, finish_reason="stop", logprobs=None
        )
        return SimpleNamespace(outputs=[out])


def vlm_prompt(processor, text: str) -> str:
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)


def remote_url_from_docs(via: str, reward_url: str) -> str:
    """``--reward.remote_url`` of the recipe, the reward host replaced by the test's."""
    cmd = next(c for c in commands(f"openrlhf-{via}") if "openrlhf.cli.train_ppo_ray" in c)
    if via == "url":
        return flag(cmd, "--reward.remote_url").replace(HOST, reward_url)
    code = re.search(r'\$\(python -c "([^"]+)"\)', recipe("openrlhf-file")).group(1)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run_rows(executor, processor) -> list[dict]:
    async def one(row):
        prompt = vlm_prompt(processor, row["prompt"])
        return await executor.execute(
            prompt,
            row["solution"],  # a nested JSONL field: OpenRLHF passes the object as it is
            SimpleNamespace(max_tokens=64, logprobs=None),
            4096,
            processor,
            ScriptedEngine(processor, row["answer"]),
            images=[Image.new("RGB", (64, 64), "white")],
        )

    async def run():
        return await asyncio.gather(*(one(r) for r in label_rows()))

    return asyncio.run(run())


def direct_rewards(reward_url: str) -> list[float]:
    """The same completions scored through ``/v1/score`` (no OpenRLHF in between)."""
    out = []
    for row in label_rows():
        label = row["solution"]
        sample = {"id": "x", "completion": row["answer"], "solution": label["solution"]}
        if "frame" in label:
            sample["frame"] = label["frame"]
        r = httpx.post(
            f"{reward_url}/v1/score",
            json={"reward": label["reward"], "samples": [sample]},
            headers={"Authorization": "Bearer prl-dev-key"},
            timeout=30,
        )
        out.append(r.json()["results"][0]["reward"])
    return out


def concat_like_openrlhf(outputs: list[dict]) -> Experience:
    """Each executor output as the samples generator wraps it (reward and every extra_logs
    value as a 1-element tensor in ``info``), then OpenRLHF's own batch concatenation and
    split, which require the same ``extra_logs`` keys in every sample."""
    exps = []
    for o in outputs:
        (reward,) = o["reward"]
        info = {"reward": torch.tensor([reward])}
        info.update({k: torch.tensor([v[0]]) for k, v in o["extra_logs"].items()})
        seq = torch.tensor([o["observation_tokens"]])
        exps.append(
            Experience(
                sequences=seq,
                attention_mask=torch.ones_like(seq),
                rewards=torch.tensor([reward]),
                info=info,
            )
        )
    batch = Experience.concat_experiences(exps, pad_token_id=0)
    assert len(split_experience_batch(batch)) == len(outputs)
    return batch


@pytest.mark.parametrize("via", ["url", "file"])
def test_vlm_rows_of_every_task_score_as_directly(via, reward_url, processor, monkeypatch):
    if via == "file":
        for k, v in exports("openrlhf-file").items():
            monkeypatch.setenv(k, v.replace(HOST, reward_url))
    executor = SingleTurnAgentExecutor(remote_url_from_docs(via, reward_url))
    assert (executor.reward_func is not None) == (via == "file")
    outputs = run_rows(executor, processor)
    # the processor expanded <|image_pad|>: the query does not start with the prompt
    query = processor.tokenizer.decode(outputs[0]["observation_tokens"], skip_special_tokens=False)
    assert not query.startswith(outputs[0]["prompt"])
    assert query.count("<|image_pad|>") > 1
    rewards = [o["reward"][0] for o in outputs]
    assert rewards == direct_rewards(reward_url)
    assert rewards[0] == 3.0  # DiG: format 1 + F1 1 + mIoU 1 (was 2.0: format 0)
    assert all(o["extra_logs"]["format"] == [1.0] for o in outputs)
    assert all(o["extra_logs"]["prl_error"] == [0.0] for o in outputs)
    batch = concat_like_openrlhf(outputs)
    assert batch.info["format"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("via", ["url", "file"])
def test_a_bad_label_is_a_scored_sample_not_a_dropped_one(via, reward_url, processor, monkeypatch):
    if via == "file":
        for k, v in exports("openrlhf-file").items():
            monkeypatch.setenv(k, v.replace(HOST, reward_url))
    executor = SingleTurnAgentExecutor(remote_url_from_docs(via, reward_url))
    good, bad = label_rows()[0], {**label_rows()[0], "solution": {"boxes": [[5, 5, 1, 1]]}}

    async def run():
        return await asyncio.gather(
            *(
                executor.execute(
                    vlm_prompt(processor, row["prompt"]),
                    row["solution"],
                    SimpleNamespace(max_tokens=64, logprobs=None),
                    4096,
                    processor,
                    ScriptedEngine(processor, row["answer"]),
                    images=[Image.new("RGB", (64, 64))],
                )
                for row in (good, bad)
            )
        )

    outputs = asyncio.run(run())
    assert [o["reward"] for o in outputs] == [[3.0], [0.0]]  # never None
    assert [o["extra_logs"]["prl_error"] for o in outputs] == [[0.0], [1.0]]
    concat_like_openrlhf(outputs)  # same keys: the batch concatenates


def test_adapter_file_keeps_one_client_per_process(reward_url, monkeypatch):
    """Many calls from OpenRLHF's worker threads: one catalog look-up, no /v1/limits per call."""
    for k, v in exports("openrlhf-file").items():
        monkeypatch.setenv(k, v.replace(HOST, reward_url))
    monkeypatch.setenv("PRL_REWARD_TIMEOUT_S", "31")  # a fresh RemoteReward for this test
    from clients.adapters import openrlhf

    row = label_rows()[0]
    prompt = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"

    async def run():
        return await asyncio.gather(
            *(
                asyncio.to_thread(
                    openrlhf.reward_func, [prompt + row["answer"]], [prompt], [row["solution"]]
                )
                for _ in range(40)
            )
        )

    outs = asyncio.run(run())
    assert all(o["rewards"] == [3.0] for o in outs)
    remote = openrlhf.remote_from_env()
    assert len(remote._clients) == 1  # one event loop, one client, for all 40 calls
    assert os.environ["PRL_REWARD_TIMEOUT_S"] == "31"
