"""PGPO, curriculum, alignment masks and PIVOT end to end on CPU: tiny Qwen2-VL on DiG raster data (64×64, G = 4, 16 tokens).

* PGPO in the loop: token-level advantages (B, T), mass-conserving, metrics logged;
* DiG curriculum switching stages by step budget, logged, and resumed from a checkpoint;
* (live services, ``slow``) DEVA alignment reward with attention masks through uvicorn
  embedding + reward services, and ``prl train --method dpo`` on reward-ranked rollouts
  followed by ``prl export vision-encoder``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.torch
CONFIG = Path(__file__).parents[2] / "trainer" / "configs" / "tiny_dig_cpu.yaml"


def _cfg(tmp_path: Path, **overrides: Any) -> Any:
    from trainer.config import load_config

    base = {
        "run_dir": str(tmp_path / "run"),
        "task": {
            "name": "dig",
            "root": str(tmp_path / "data"),
            "generate": {"n": 6, "size": [64, 64], "split": "all"},
        },
        "deva": {},
        "max_steps": 2,
        "checkpoint": {"every_steps": 100},
    }
    return load_config(CONFIG, {**base, **overrides})


def _capture_batches(trainer: Any) -> list[dict[str, Any]]:
    """Record every generation batch the trainer builds (wraps the bound method)."""
    seen: list[dict[str, Any]] = []
    inner = trainer._generate_and_score_completions

    def wrapped(inputs: Any) -> dict[str, Any]:
        out = inner(inputs)
        seen.append({k: v for k, v in out.items() if isinstance(v, torch.Tensor)})
        return out

    trainer._generate_and_score_completions = wrapped
    return seen


def _length_reward(cfg: Any) -> Any:
    """A local reward with within-group variance (a random tiny model scores 0 on DiG)."""

    def length_reward(completions: list[Any], **_: Any) -> list[float]:
        return [float(len(c[0]["content"]) % 7) for c in completions]

    return length_reward


def test_pgpo_token_advantages_in_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.metrics import JsonlSink, read_jsonl
    from trainer.train import build_trainer

    monkeypatch.setattr("trainer.train.make_reward_func", _length_reward)

    pgpo = {"enabled": True, "threshold": 0.5, "threshold_mode": "quantile", "strength": 1.0}
    deva = {"diversity": {"enabled": True}, "entropy_reg": {"enabled": True}}
    cfg = _cfg(tmp_path, pgpo=pgpo, deva=deva)  # PGPO next to DEVA's reference terms
    sink = JsonlSink(tmp_path / "metrics.jsonl")
    trainer = build_trainer(cfg, [sink])
    batches = _capture_batches(trainer)
    trainer.train()

    assert len(batches) == 2
    reshaped = False
    for b in batches:
        adv, seq, mask = b["advantages"], b["sequence_advantages"], b["completion_mask"]
        assert adv.shape == mask.shape and seq.shape == (mask.shape[0],)
        assert torch.all(adv[mask == 0] == 0)
        # the signal of each sequence keeps its sign and total: Σ_t A_i w_t = A_i · n_i
        total = adv.sum(dim=1)
        assert torch.allclose(total, seq * mask.sum(dim=1), rtol=1e-4, atol=1e-6)
        live = (seq != 0) & (mask.sum(1) > 0)
        w = adv[live] / seq[live, None]
        assert torch.all(w[mask[live].bool()] >= cfg.pgpo.w_min - 1e-6)
        assert torch.all(w[mask[live].bool()] <= cfg.pgpo.w_max + 1e-6)
        reshaped |= bool((w[mask[live].bool()] - 1).abs().max() > 1e-3)
    assert reshaped  # PGPO moved signal between tokens (not plain GRPO)
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        assert r["pgpo/mean_dependency"] > 0.0  # the image changes the next-token distribution
        assert 0.0 < r["pgpo/gated_share"] < 1.0  # quantile gate: some but not all tokens
        assert r["world_size"] == 1
        assert "div/loss" in r and "ent/loss" in r


def test_curriculum_switches_stage_by_budget_and_resumes(tmp_path: Path) -> None:
    from trainer.curriculum import STATE_FILE
    from trainer.metrics import read_jsonl
    from trainer.train import run

    from .test_train_e2e import StopAt

    curriculum = {
        "stages": [
            {"name": "single", "max_steps": 1},
            {"name": "dual", "max_steps": 1},
            {"name": "mixed"},
        ],
        "window": 1,
    }
    cfg = _cfg(tmp_path, curriculum=curriculum, max_steps=3, checkpoint={"every_steps": 2})
    first = run(cfg, callbacks=[StopAt(2)])
    assert first.global_step == 2
    ckpt = tmp_path / "run" / "checkpoints" / "checkpoint-2"
    import json

    state = json.loads((ckpt / STATE_FILE).read_text())
    assert state["stage_index"] == 2 and [t["to"] for t in state["transitions"]] == [
        "dual",
        "mixed",
    ]
    second = run(cfg, resume=True)
    assert second.resumed_from == ckpt and second.global_step == 3
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    # the stage active after each step: single → dual after step 1, mixed after step 2, and
    # the resumed run starts in mixed (restored from checkpoint-2, not from the config)
    assert [(r["step"], r["curriculum/stage_index"]) for r in records] == [
        (1, 1.0),
        (2, 2.0),
        (3, 2.0),
    ]


def test_attention_masks_need_eager_attention(tmp_path: Path) -> None:
    from pydantic import ValidationError

    al = {"send_inputs": True, "mask_from_attention": True}
    with pytest.raises(ValidationError, match="eager"):
        _cfg(tmp_path, alignment=al)
    with pytest.raises(ValidationError, match="send_inputs"):
        _cfg(
            tmp_path,
            alignment={"mask_from_attention": True},
            model={"tiny": "qwen2vl", "attn_implementation": "eager"},
        )
    ok = _cfg(tmp_path, alignment=al, model={"tiny": "qwen2vl", "attn_implementation": "eager"})
    assert ok.attn_implementation == "eager"


# ------------------------------------------------------------------ live embedding + reward


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """DiG data + a tiny CLIP embedding service rooted at it + a reward service using it."""
    from services.embedding.tiny import build_tiny_encoder
    from tasks.dig import generate

    base = tmp_path_factory.mktemp("live")
    data = base / "data"
    generate(data, 4, renderer="raster", seed=0, split="mixed", size=(64, 64), progress=False)
    clip = build_tiny_encoder("clip", base / "clip", seed=0)
    from services.stack import LocalStack, ServiceSpec, free_port

    emb_port, rew_port = free_port(), free_port()
    emb_url = f"http://127.0.0.1:{emb_port}"
    specs = [
        ServiceSpec("embedding", emb_port,
                    {"PRL_EMBEDDING_MODEL_DIR": str(clip), "PRL_EMBEDDING_DATA_ROOT": str(data)}),
        ServiceSpec("reward", rew_port, {
            "PRL_REWARD_EMBEDDING_URL": emb_url,
            "PRL_REWARD_EMBEDDING_API_KEY": "prl-dev-key",
            "PRL_REWARD_LOG_LEVEL": "warning",
        }),
    ]  # fmt: skip
    with LocalStack(specs, log_dir=base / "logs").running_context(timeout_s=90) as stack:
        urls = stack.urls()
        yield {"data": data, "reward_url": urls["reward"], "embedding_url": urls["embedding"]}


@pytest.fixture
def answering(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrap each completion into a parseable DiG answer before it is scored.

    A random tiny model never writes ``<answer>[...]</answer>``, and the reward service scores
    no component (alignment included) of an answer that does not parse. The generated text
    stays in the ``<think>`` part and picks the box, so rewards still vary within a group.
    """
    from clients.adapters import trl as trl_adapter

    plain = trl_adapter.completion_text

    def wrapped(completion: Any) -> str:
        text = plain(completion)
        a = len(text) % 40
        return f"<think>{text}</think> <answer>[[{a}, {a}, {a + 20}, {a + 20}]]</answer>"

    monkeypatch.setattr(trl_adapter, "completion_text", wrapped)


DEVA_DIG = {
    "components": [{"name": "format"}, {"name": "f1"}, {"name": "miou"}, {"name": "alignment"}],
    "aggregate": {"method": "harmonic"},
}


@pytest.mark.slow
def test_alignment_reward_with_attention_masks_through_live_services(
    live: Any, answering: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clients.reward import AsyncRewardClient
    from schemas.reward import PatchMask
    from trainer.metrics import JsonlSink, read_jsonl
    from trainer.train import build_trainer

    sent: list[dict[str, Any]] = []
    plain_score = AsyncRewardClient.score

    async def spy(self: Any, samples: Any, **kwargs: Any) -> Any:
        samples = list(samples)
        sent.extend(s.model_dump(mode="json") for s in samples)
        return await plain_score(self, samples, **kwargs)

    monkeypatch.setattr(AsyncRewardClient, "score", spy)

    cfg = _cfg(
        tmp_path,
        task={"name": "dig", "root": str(live["data"])},
        model={"tiny": "qwen2vl", "attn_implementation": "eager"},
        reward={"url": live["reward_url"], "reward": DEVA_DIG},
        alignment={"send_inputs": True, "mask_from_attention": True, "mask_threshold": 0.5},
    )
    trainer = build_trainer(cfg, [JsonlSink(tmp_path / "metrics.jsonl")])
    masks: list[Any] = []
    inner = trainer.alignment_masks
    trainer.alignment_masks = lambda *a: masks.extend(inner(*a)) or masks[-len(a[0]) :]
    trainer.train()

    assert len(masks) == 2 * 4  # one per completion and step
    for m in masks:
        mask = PatchMask.model_validate(m)  # the wire form the reward service accepts
        assert (len(mask.grid), len(mask.grid[0])) == (2, 2)  # 64×64 → 4×4 patches → 2×2 merged
        assert max(max(r) for r in mask.grid) == 1.0 and mask.threshold == 0.5
    # each scored sample carried its image B (relative to the data root), query and mask
    assert len(sent) == 8
    assert [PatchMask.model_validate(s["mask"]) for s in sent] == [
        PatchMask.model_validate(m) for m in masks
    ]
    for s in sent:
        assert s["image"].startswith("images/") and s["image"].endswith("_b.png")
        assert (live["data"] / s["image"]).is_file() and s["query"]
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        # alignment r_v ∈ [c, hi] = [2, 25] with the defaults; reported raw per component
        assert 2.0 <= r["reward_service/component/alignment"] <= 25.0
        assert "reward_service/component_error_frac/alignment" not in r
        assert r["reward_service/error_frac"] == 0.0 and r["reward"] > 0.0


@pytest.mark.slow
def test_dpo_on_reward_ranked_rollouts_then_export_loads_back(
    live: Any, answering: None, tmp_path: Path
) -> None:
    import json

    import yaml
    from typer.testing import CliRunner

    from services.cli import app, load_commands
    from trainer.pivot import find_visual, load_vision_encoder
    from trainer.tiny import load_vlm

    cfg = {
        "run_dir": str(tmp_path / "run"),
        "model": {"tiny": "qwen2vl"},
        "task": {"name": "dig", "root": str(live["data"])},
        "reward": {
            "url": live["reward_url"],
            "reward": {"components": [{"name": "alignment"}], "aggregate": {"method": "sum"}},
        },
        "alignment": {"send_inputs": True},
        "max_steps": 1,
        "train_projector": False,
        "dpo": {
            "generations": 4,
            "max_new_tokens": 8,
            "max_rows": 2,
            "run": {"max_steps": 2, "learning_rate": 0.01, "per_device_train_batch_size": 2},
        },
    }
    path = tmp_path / "dpo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    load_commands()
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--config", str(path), "--method", "dpo"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    run = tmp_path / "run"
    summary = json.loads((run / "dpo_result.json").read_text())
    assert summary["steps"] == 2 and summary["n_groups"] == 2 and summary["n_pairs"] >= 1
    rollouts = [json.loads(x) for x in (run / "rollouts.jsonl").read_text().splitlines()]
    assert all(len(g["rewards"]) == 4 and min(g["rewards"]) >= 2.0 for g in rollouts)
    assert summary["trainable"]["projector_trainable"] == 0  # train_projector: false

    base, _ = load_vlm(run / "base-model")
    trained, _ = load_vlm(run / "final")
    bv, tv = find_visual(base).state_dict(), find_visual(trained).state_dict()
    moved = {k for k in bv if not torch.equal(bv[k], tv[k])}
    assert moved and all(not k.startswith("merger.") for k in moved)

    res = runner.invoke(
        app,
        [
            "export",
            "vision-encoder",
            "--checkpoint",
            str(run / "final"),
            "--out",
            str(tmp_path / "enc"),
        ],
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    encoder, processor = load_vision_encoder(tmp_path / "enc")
    got = encoder.state_dict()
    assert processor is not None and all(torch.equal(got[k], tv[k]) for k in tv)


def test_dpo_from_a_rollouts_file_via_cli(tmp_path: Path) -> None:
    import json

    import yaml
    from PIL import Image
    from typer.testing import CliRunner

    from services.cli import app, load_commands
    from trainer.pivot import find_visual, load_vision_encoder
    from trainer.tiny import load_vlm

    for name, colour in (("a.png", (200, 0, 0)), ("b.png", (0, 0, 200))):
        Image.new("RGB", (64, 64), colour).save(tmp_path / name)
    groups = [
        {"id": "g1", "prompt": "Colour?", "completions": ["red", "blue", "x"],
         "rewards": [1.0, 0.0, 0.5], "images": ["a.png"]},
        {"id": "g2", "prompt": "Colour?", "completions": ["red", "blue"],
         "rewards": [0.0, 1.0], "images": ["b.png"]},
        {"id": "tie", "prompt": "Colour?", "completions": ["r", "b"],
         "rewards": [1.0, 1.0], "images": ["b.png"]},
    ]  # fmt: skip
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps(g) + "\n" for g in groups))
    cfg = {
        "run_dir": str(tmp_path / "run"),
        "model": {"tiny": "qwen2vl"},
        "task": {"name": "dig", "root": str(tmp_path / "unused")},
        "max_steps": 1,
        "train_vision_tower": True,
        "dpo": {"run": {"max_steps": 1, "learning_rate": 0.01, "per_device_train_batch_size": 2}},
    }
    (tmp_path / "dpo.yaml").write_text(yaml.safe_dump(cfg))
    load_commands()
    runner = CliRunner()
    args = ["train", "--config", str(tmp_path / "dpo.yaml"), "--method", "dpo"]
    res = runner.invoke(app, [*args, "--rollouts", str(rollouts)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    run = tmp_path / "run"
    summary = json.loads((run / "dpo_result.json").read_text())
    assert (summary["n_groups"], summary["n_pairs"], summary["steps"]) == (3, 2, 1)  # tie skipped

    res = runner.invoke(
        app, ["export", "vision-encoder", "--checkpoint", str(run / "final"), "--out", str(tmp_path / "enc")]
    )  # fmt: skip
    assert res.exit_code == 0, res.output + repr(res.exception)
    trained, _ = load_vlm(run / "final")
    tv = find_visual(trained).state_dict()
    encoder, _ = load_vision_encoder(tmp_path / "enc")
    assert all(torch.equal(encoder.state_dict()[k], tv[k]) for k in tv)
