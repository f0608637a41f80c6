"""A real TRL GRPOTrainer runs 2 steps on the tiny Qwen2-VL with the TRL adapter as its
reward, scoring against a live `prl serve reward` on generated DiG pairs."""

from __future__ import annotations

import math

import pytest

from clients.adapters.trl import TRLRewardFunction
from tests.clients.prl_client_fakes import start_service, stop_service

pytest.importorskip("trl")
pytest.importorskip("services.reward.app")

pytestmark = pytest.mark.torch  # about 20 s: under the 60 s bar for "slow"


class CountingReward(TRLRewardFunction):
    """The adapter, counting its calls and the rewards it returned."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.returned = 0, []

    async def __call__(self, prompts, completions, **kwargs):
        out = await super().__call__(prompts, completions, **kwargs)
        self.calls += 1
        self.returned.extend(out)
        return out


def test_grpo_two_steps_with_remote_reward(tmp_path):

    from tasks import get_task
    from tasks.dig.generate import generate
    from tasks.hf import to_hf_dataset
    from trainer.tiny import build_tiny_vlm

    generate(tmp_path / "dig", 4, size=(64, 64), progress=False)
    dataset = to_hf_dataset(get_task("dig", root=tmp_path / "dig"))
    model_dir = build_tiny_vlm("qwen2vl", tmp_path / "model", seed=0)
    proc, url = start_service("reward")
    run_grpo(tmp_path, dataset, model_dir, url, stop=lambda: stop_service(proc))


def run_grpo(tmp_path, dataset, model_dir, url, stop=lambda: None):
    from trl import GRPOConfig, GRPOTrainer

    from trainer.tiny import load_processor

    try:
        reward = CountingReward(url, reward="dig", timeout_s=30)
        args = GRPOConfig(
            output_dir=str(tmp_path / "out"),
            per_device_train_batch_size=2,
            num_generations=2,
            max_completion_length=8,
            max_steps=2,
            learning_rate=1e-3,
            bf16=False,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            seed=0,
            dataloader_num_workers=0,
        )
        # the checkpoint names the stock Qwen2VLProcessor, whose video part needs torchvision;
        # without it, pass the image-only processor (with torchvision, model=PATH alone works)
        trainer = GRPOTrainer(
            model=str(model_dir),
            processing_class=load_processor(model_dir),
            reward_funcs=[reward],
            args=args,
            train_dataset=dataset,
        )
        trainer.train()
    finally:
        stop()
    assert trainer.state.global_step == 2
    assert reward.calls == 2 and len(reward.returned) == 4
    # every completion was scored by the service (random text: 0 with a parse error), none fell back
    assert all(r is not None and math.isfinite(r) for r in reward.returned)
    logs = [h for h in trainer.state.log_history if "prl/fallback_fraction" in h]
    assert len(logs) == 2 and all(h["prl/fallback_fraction"] == 0.0 for h in logs)
    assert any("rewards/prl_dig/mean" in h for h in trainer.state.log_history)


def test_the_docs_recipe_as_written(tmp_path):
    """docs/clients.md's TRL recipe, executed with only its placeholders filled in."""
    from tasks.dig.generate import generate
    from tests.recipes import recipe
    from trainer.tiny import build_tiny_vlm

    generate(tmp_path / "dig", 2, size=(64, 64), progress=False)
    model_dir = build_tiny_vlm("qwen2vl", tmp_path / "model", seed=0)
    proc, url = start_service("reward")
    scope = {
        "REWARD_URL": url,
        "MODEL_DIR": str(model_dir),
        "DIG_ROOT": str(tmp_path / "dig"),
        "OUT_DIR": str(tmp_path / "out"),
    }
    try:
        exec(recipe("trl"), scope)
    finally:
        stop_service(proc)
    trainer = scope["trainer"]
    assert trainer.state.global_step == 1
    assert any("prl/fallback_fraction" in h for h in trainer.state.log_history)
