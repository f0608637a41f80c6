"""verl 0.9.1's own Reward Loop scoring with our adapter: the config composed by hydra from
verl's ``ppo_trainer.yaml`` with the overrides of docs/clients.md, the parquet written by the
docs' snippet and read back through ``datasets`` (as verl's ``RLHFDataset`` reads it), and a
real ``RewardLoopWorker`` → ``NaiveRewardManager.run_single`` on a real ``DataProto``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

verl = pytest.importorskip("verl", reason="verl is in .venv-peers only (make peers-test)")
pytestmark = pytest.mark.peers

import datasets  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.experimental.reward_loop import RewardLoopWorker  # noqa: E402

from tests.recipes import commands, recipe  # noqa: E402

HOST = "http://reward-host:8001"
ANSWERS = {
    "dig": "<think>one change</think> <answer>[[12, 40, 30, 58]]</answer>",
    "virft_classification": "<think>blue</think> <answer>Indigo Bunting</answer>",
}


def adapter_path() -> str:
    code = re.search(r'\$\(python -c "([^"]+)"\)', recipe("verl-train")).group(1)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def docs_overrides(reward_url: str) -> list[str]:
    cmd = next(c for c in commands("verl-train") if "verl.trainer.main_ppo" in c)
    words = [w for w in cmd if "=" in w and not w.startswith("data.")]
    return [w.replace("$PRL_VERL_ADAPTER", adapter_path()).replace(HOST, reward_url) for w in words]


def compose_config(overrides: list[str]):
    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def rollout_batch(rows: list[dict], tokenizer) -> DataProto:
    """A rollout batch: right-padded responses, prompt + response attention mask, rows'
    non-tensor fields (the shape verl's agent loop hands the reward loop)."""
    responses = [tokenizer(ANSWERS[r["data_source"]])["input_ids"] for r in rows]
    R, P = max(map(len, responses)), 4
    pad = tokenizer.pad_token_id
    resp = torch.full((len(rows), R), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), P + R), dtype=torch.long)
    attn[:, :P] = 1
    for i, ids in enumerate(responses):
        resp[i, : len(ids)] = torch.tensor(ids)
        attn[i, P : P + len(ids)] = 1
    return DataProto.from_dict(
        tensors={
            "prompts": torch.ones((len(rows), P), dtype=torch.long),
            "responses": resp,
            "attention_mask": attn,
        },
        non_tensors={
            "data_source": np.array([r["data_source"] for r in rows], dtype=object),
            "reward_model": np.array([r["reward_model"] for r in rows], dtype=object),
            "extra_info": np.array([r["extra_info"] for r in rows], dtype=object),
        },
    )


def direct(reward_url: str, rows: list[dict]) -> list[float]:
    out = []
    for r in rows:
        gt = {k: v for k, v in r["reward_model"]["ground_truth"].items() if v is not None}
        frame = {k: v for k, v in r["extra_info"]["frame"].items() if v is not None}
        sample = {
            "id": "x",
            "completion": ANSWERS[r["data_source"]],
            "solution": gt,
            "frame": frame,
        }
        body = {"reward": r["data_source"], "samples": [sample]}
        resp = httpx.post(
            f"{reward_url}/v1/score",
            json=body,
            headers={"Authorization": "Bearer prl-dev-key"},
            timeout=30,
        )
        out.append(resp.json()["results"][0]["reward"])
    return out


def test_reward_loop_scores_a_mixed_task_parquet(reward_url, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(recipe("verl-data"), {})  # the docs' snippet writes train.parquet
    rows = list(datasets.load_dataset("parquet", data_files="train.parquet")["train"])
    # the union of keys, None-filled: what used to be rejected
    assert rows[0]["reward_model"]["ground_truth"]["label"] is None
    assert rows[0]["extra_info"]["frame"]["image_size"] is None
    config = compose_config(
        [*docs_overrides(reward_url), f"actor_rollout_ref.model.path={tiny_model_dir}"]
    )
    assert config.actor_rollout_ref.actor.policy_loss.loss_mode == "prl_dapo"
    worker = RewardLoopWorker(config)
    assert type(worker.reward_manager).__name__ == "NaiveRewardManager"
    batch = rollout_batch(rows, worker.input_tokenizer)
    out = worker.loop.run_until_complete(worker.compute_score_batch(batch))
    scores = [o["reward_score"] for o in out]
    assert scores == direct(reward_url, rows) == [3.0, 2.0]
    extras = [o["reward_extra_info"] for o in out]
    # RewardLoopManager builds one array per key of the first sample: all keys must agree
    keys = ["score", "format", "f1", "miou", "accuracy", "prl_fallback", "prl_error"]
    assert [list(e) for e in extras] == [keys, keys]
    assert extras[1]["accuracy"] == 1.0 and extras[0]["f1"] == 1.0
    assert all(e["prl_fallback"] == 0.0 and e["prl_error"] == 0.0 for e in extras)


def test_legacy_sync_naive_manager_with_the_sync_function(reward_url, tiny_model_dir):
    """verl's legacy ``verl.workers.reward_manager.naive`` cannot await: ``compute_score_sync``."""
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.utils import hf_tokenizer
    from verl.workers.reward_manager.naive import NaiveRewardManager

    overrides = [
        w.replace("name=compute_score", "name=compute_score_sync")
        for w in docs_overrides(reward_url)
    ]
    config = compose_config(overrides)
    fn = get_custom_reward_fn(config)
    tok = hf_tokenizer(str(tiny_model_dir))
    manager = NaiveRewardManager(tokenizer=tok, num_examine=0, compute_score=fn)
    rows = [
        {
            "data_source": "dig",
            "reward_model": {"ground_truth": {"boxes": [[12, 40, 30, 58]], "label": None}},
            "extra_info": {"frame": {"coords": "pixel", "image_size": None}},
        }
    ]
    result = manager(rollout_batch(rows, tok), return_dict=True)
    assert float(result["reward_tensor"].sum()) == 3.0
    assert result["reward_extra_info"]["prl_fallback"] == [0.0]
