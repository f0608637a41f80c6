"""PPO with a critic through verl 0.9.1: our reward service's scores as verl's token-level
rewards, verl's own GAE (``core_algos.compute_gae_advantage_return``, what its
``ray_trainer.compute_advantage`` calls for ``adv_estimator=gae``) checked against a
brute-force GAE, then our ``prl_dapo`` policy loss and verl's value loss on them.

TRL 1.16 ships no PPO trainer (neither ``trl.PPOTrainer`` nor ``trl.experimental``), so this
is the platform's PPO path (docs/training.md, "Policy losses": PPO)."""

from __future__ import annotations

import pytest

verl = pytest.importorskip("verl", reason="verl is in .venv-peers only (make peers-test)")
pytestmark = pytest.mark.peers

import datasets  # noqa: E402
import torch  # noqa: E402
from verl.experimental.reward_loop import RewardLoopWorker  # noqa: E402
from verl.trainer.ppo.core_algos import (  # noqa: E402
    compute_gae_advantage_return,
    compute_value_loss,
    get_policy_loss_fn,
)
from verl.trainer.ppo.utils import need_critic  # noqa: E402

from tests.peers.test_verl_reward_loop import (  # noqa: E402
    HOST,
    adapter_path,
    compose_config,
    rollout_batch,
)
from tests.recipes import commands, recipe  # noqa: E402


def ppo_overrides(reward_url: str, model: str) -> list[str]:
    """The overrides of the docs' ``verl-ppo`` recipe, with this test's paths and URL."""
    cmd = next(c for c in commands("verl-ppo") if "verl.trainer.main_ppo" in c)
    subs = {"$PRL_VERL_ADAPTER": adapter_path(), "$PRL_MODEL": model, HOST: reward_url}
    out = []
    for w in cmd:
        if "=" in w and not w.startswith("data."):
            for k, v in subs.items():
                w = w.replace(k, v)
            out.append(w)
    return out


def brute_force_gae(rewards, values, mask, gamma, lam):
    """Returns R_t = V_t + Σ_{k≥0} (γλ)^k δ_{t+k} over the valid tokens of each row,
    δ_t = r_t + γ V_{t+1} − V_t (V past the last valid token is 0)."""
    out = torch.zeros_like(rewards)
    for i in range(rewards.shape[0]):
        n = int(mask[i].sum())
        v = [float(values[i, t]) for t in range(n)] + [0.0]
        deltas = [float(rewards[i, t]) + gamma * v[t + 1] - v[t] for t in range(n)]
        for t in range(n):
            adv = sum((gamma * lam) ** k * deltas[t + k] for k in range(n - t))
            out[i, t] = adv + v[t]
    return out


def test_ppo_with_critic_on_our_rewards(reward_url, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(recipe("verl-data"), {})  # the docs' snippet writes train.parquet
    rows = list(datasets.load_dataset("parquet", data_files="train.parquet")["train"])
    config = compose_config(ppo_overrides(reward_url, str(tiny_model_dir)))
    assert need_critic(config) and config.algorithm.adv_estimator == "gae"
    assert config.critic.model.path == str(tiny_model_dir)
    assert config.actor_rollout_ref.actor.policy_loss.loss_mode == "vanilla"
    worker = RewardLoopWorker(config)
    batch = rollout_batch(rows, worker.input_tokenizer)
    out = worker.loop.run_until_complete(worker.compute_score_batch(batch))
    scores = torch.tensor([o["reward_score"] for o in out])
    assert scores.tolist() == [3.0, 2.0]  # our reward service's scores (test_verl_reward_loop)

    resp = batch.batch["responses"]
    mask = batch.batch["attention_mask"][:, -resp.shape[1] :]
    last = mask.sum(-1) - 1
    token_rewards = torch.zeros(resp.shape, dtype=torch.float32)
    token_rewards[torch.arange(len(rows)), last] = scores  # outcome reward on the last token
    g = torch.Generator().manual_seed(0)
    values = torch.rand(resp.shape, generator=g) * mask  # the critic's V_t
    gamma, lam = config.algorithm.gamma, config.algorithm.lam
    adv, returns = compute_gae_advantage_return(token_rewards, values, mask, gamma, lam)
    expect = brute_force_gae(token_rewards, values, mask, gamma, lam)
    m = mask.bool()
    assert torch.allclose(returns[m], expect[m], atol=1e-5)
    assert abs(float(adv[m].mean())) < 1e-5  # verl whitens GAE advantages over the batch

    old = -torch.rand(resp.shape, generator=g)
    new = (old + 0.1 * torch.randn(resp.shape, generator=g)).requires_grad_()
    from omegaconf import OmegaConf

    actor = OmegaConf.create(OmegaConf.to_container(config.actor_rollout_ref.actor, resolve=True))
    actor.global_batch_info = {}  # what verl's ppo_loss sets before each call (none: one rank)
    loss_fn = get_policy_loss_fn(actor.policy_loss.loss_mode)
    pg_loss, _ = loss_fn(old, new, adv, mask, "token-mean", actor, None)
    assert torch.isfinite(pg_loss)
    pg_loss.backward()
    assert new.grad[~m].abs().sum() == 0 and new.grad[m].abs().sum() > 0
    vpreds = (values + 0.1).requires_grad_()
    vf_loss, _ = compute_value_loss(vpreds, returns, values, mask, cliprange_value=0.5)
    vf_loss.backward()
    assert torch.isfinite(vf_loss) and vpreds.grad[m].abs().sum() > 0
