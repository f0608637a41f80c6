"""End to end on CPU: tiny Qwen2-VL, DiG raster data, DEVA on, rewards from a live service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch  # about 25 s on one core
CONFIG = Path(__file__).parents[2] / "trainer" / "configs" / "tiny_dig_cpu.yaml"


@pytest.fixture(scope="module")
def reward_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``prl serve reward`` subprocess (the local-stack supervisor starts it)."""
    pytest.importorskip("services.reward.app")
    from services.stack import LocalStack, ServiceSpec, free_port

    spec = ServiceSpec("reward", free_port(), {"PRL_REWARD_LOG_LEVEL": "warning"})
    stack = LocalStack([spec], log_dir=tmp_path_factory.mktemp("reward-logs"))
    with stack.running_context(timeout_s=60):
        yield stack.urls()["reward"]


class StopAt:
    """A TrainerCallback that interrupts training after ``step`` (a crash stand-in)."""

    def __new__(cls, step: int) -> object:
        from transformers import TrainerCallback

        class _Stop(TrainerCallback):
            def on_step_end(
                self, args: object, state: object, control: object, **_: object
            ) -> None:
                if state.global_step >= step:  # type: ignore[attr-defined]
                    control.should_training_stop = True  # type: ignore[attr-defined]

        return _Stop()


def _weights(path: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_three_steps_then_resume(reward_url: str, tmp_path: Path) -> None:
    import torch

    from trainer.config import load_config
    from trainer.metrics import read_jsonl
    from trainer.train import run

    overrides = {
        "run_dir": str(tmp_path / "run"),
        "task": {
            "name": "dig",
            "root": str(tmp_path / "data"),
            "generate": {"n": 8, "size": [64, 64]},
        },
        "reward": {"url": reward_url, "reward": "dig"},
    }
    cfg = load_config(CONFIG, {**overrides, "max_steps": 3})
    assert cfg.deva.diversity.enabled and cfg.deva.entropy_reg.enabled
    first = run(cfg, callbacks=[StopAt(2)])  # interrupted after step 2 of 3
    assert first.global_step == 2 and first.resumed_from is None
    run_dir = tmp_path / "run"
    base, ckpt2 = (
        _weights(run_dir / "base-model"),
        _weights(run_dir / "checkpoints" / "checkpoint-2"),
    )
    changed = [k for k in base if not torch.equal(base[k], ckpt2[k])]
    assert len(changed) > 10  # parameters moved

    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    for key in (
        "loss",
        "reward",
        "reward_std",
        "frac_reward_zero_std",
        "entropy",
        "div/loss",
        "ent/loss",
        "reward_service/group_std",
        "reward_service/component/format",
        "tokens_per_s",
    ):
        assert key in records[-1], key
    assert records[0]["ent/loss"] == pytest.approx(0.0, abs=1e-9)  # policy == reference at step 1

    from trainer.train import build_trainer

    # the resumed trainer starts from checkpoint-2's weights (not the base model's)
    resumed = build_trainer(cfg)
    resumed._load_from_checkpoint(str(run_dir / "checkpoints" / "checkpoint-2"))
    final2 = _weights(run_dir / "final")  # saved at the end of the first run (= step 2)
    state = {k: v.detach() for k, v in resumed.model.state_dict().items()}
    name = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(state[name], final2["model.layers.0.self_attn.q_proj.weight"])
    del resumed

    # a crash after step 3 was logged but before it was checkpointed: step 3 is redone
    with (run_dir / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 3, "loss": 123.0}\n')
    second = run(cfg, resume=True)
    assert second.resumed_from == run_dir / "checkpoints" / "checkpoint-2"
    assert second.global_step == 3
    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3] and records[-1]["loss"] != 123.0
    ckpt3 = _weights(run_dir / "checkpoints" / "checkpoint-3")
    assert any(not torch.equal(ckpt2[k], ckpt3[k]) for k in ckpt2)
