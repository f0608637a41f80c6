"""DiG curriculum: stage rules, resume, dataset switching, and the trainer callback."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from trainer.curriculum import (
    STATE_FILE,
    Curriculum,
    CurriculumCallback,
    CurriculumConfig,
    StagedDataset,
    StageSpec,
)


def cfg(**kw) -> CurriculumConfig:
    stages = kw.pop(
        "stages",
        (
            StageSpec(name="single", max_steps=5),
            StageSpec(name="dual", max_steps=3),
            StageSpec(name="mixed"),
        ),
    )
    kw.setdefault("threshold_units", "reward")
    return CurriculumConfig(stages=stages, **kw)


def test_step_budget_moves_single_dual_mixed():
    cur = Curriculum(cfg())
    seen = []
    for _ in range(20):
        seen.append(cur.stage.name)
        cur.step()
    assert seen[:5] == ["single"] * 5 and seen[5:8] == ["dual"] * 3 and set(seen[8:]) == {"mixed"}
    assert [t["reason"] for t in cur.transitions] == ["steps", "steps"]
    assert [t["at_step"] for t in cur.transitions] == [5, 8]


def test_reward_threshold_needs_full_window_and_min_steps():
    stages = (StageSpec(name="single", reward_threshold=0.5, min_steps=3), StageSpec(name="mixed"))
    cur = Curriculum(cfg(stages=stages, window=2))
    cur.record(0.9)
    assert not cur.step()  # window not full
    cur.record(0.9)
    assert not cur.step()  # full, mean 0.9, but only 2 < 3 steps
    assert cur.step()  # third step: passes
    assert cur.stage.name == "mixed"
    assert cur.transitions[0]["reason"] == "reward" and cur.transitions[0][
        "running_mean"
    ] == pytest.approx(0.9)
    assert cur.running_mean() is None  # window reset in the new stage


def test_running_mean_is_over_the_last_window_and_skips_nan():
    stages = (StageSpec(name="a", reward_threshold=0.5), StageSpec(name="b"))
    cur = Curriculum(cfg(stages=stages, window=3))
    cur.record([1.0, 1.0, 0.0, 0.0, float("nan")])
    assert cur.running_mean() == pytest.approx(1 / 3)
    assert not cur.step()
    cur.record([1.0, 1.0])  # last three: 0, 1, 1
    assert cur.running_mean() == pytest.approx(2 / 3)
    assert cur.step()


def test_threshold_is_strict_and_budget_wins_either_way():
    stages = (StageSpec(name="a", reward_threshold=0.5, max_steps=4), StageSpec(name="b"))
    cur = Curriculum(cfg(stages=stages, window=1))
    for _ in range(3):
        cur.record(0.5)  # equal, not above
        assert not cur.step()
    cur.record(0.5)
    assert cur.step() and cur.transitions[0]["reason"] == "steps"


def test_last_stage_never_advances():
    cur = Curriculum(
        cfg(stages=(StageSpec(name="only", max_steps=1, reward_threshold=-1.0),), window=1)
    )
    cur.record(1.0)
    assert not any(cur.step() for _ in range(5))


@settings(max_examples=40, deadline=None)
@given(
    rewards=st.lists(st.floats(0, 1), min_size=1, max_size=60),
    cut=st.integers(0, 60),
)
def test_resume_from_state_dict_continues_identically(rewards, cut):
    config = cfg(
        stages=(
            StageSpec(name="single", max_steps=7, reward_threshold=0.6, min_steps=2),
            StageSpec(name="dual", reward_threshold=0.4, min_steps=1),
            StageSpec(name="mixed"),
        ),
        window=3,
    )
    ref, first = Curriculum(config), Curriculum(config)
    for i, r in enumerate(rewards):
        ref.record(r)
        ref.step()
        if i < cut:
            first.record(r)
            first.step()
    resumed = Curriculum(config)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    for r in rewards[cut:]:
        resumed.record(r)
        resumed.step()
    assert resumed.state_dict() == ref.state_dict()


def test_resume_rejects_other_stage_list():
    cur = Curriculum(cfg())
    other = Curriculum(cfg(stages=(StageSpec(name="x"),)))
    with pytest.raises(ValueError, match="differ"):
        other.load_state_dict(cur.state_dict())


def test_config_is_frozen_and_validated():
    c = CurriculumConfig()
    assert [s.name for s in c.stages] == ["single", "dual", "mixed"]
    with pytest.raises(ValidationError):
        c.window = 3  # type: ignore[misc]
    with pytest.raises(ValidationError, match="unique"):
        CurriculumConfig(stages=(StageSpec(name="a"), StageSpec(name="a")))
    with pytest.raises(ValidationError):
        StageSpec(name="a", max_steps=0)


def test_staged_dataset_maps_indices_onto_the_active_stage():
    ds = StagedDataset({"single": [{"k": 1}, {"k": 2}], "dual": [{"k": 10}, {"k": 20}, {"k": 30}]})
    assert len(ds) == 3 and ds.stage == "single"
    assert [ds[i]["k"] for i in range(3)] == [1, 2, 1]
    ds.set_stage("dual")
    assert [ds[i]["k"] for i in range(3)] == [10, 20, 30]
    with pytest.raises(KeyError, match="mixed"):
        ds.set_stage("mixed")


def _args(tmp_path):
    return SimpleNamespace(output_dir=str(tmp_path))


def test_callback_feeds_logged_rewards_and_switches_dataset(tmp_path):
    stages = (
        StageSpec(name="single", reward_threshold=0.8),
        StageSpec(name="dual", max_steps=2),
        StageSpec(name="mixed"),
    )
    cur = Curriculum(cfg(stages=stages, window=2))
    ds = StagedDataset({"single": ["s"], "dual": ["d"], "mixed": ["m"]})
    cb = CurriculumCallback(cur, ds)
    args, state, control = _args(tmp_path), SimpleNamespace(global_step=0), SimpleNamespace()
    cb.on_train_begin(args, state, control)
    served = []
    for step, reward in enumerate([0.2, 0.9, 0.9, 0.1, 0.1, 0.1], start=1):
        served.append(ds[0])
        state.global_step = step
        cb.on_step_end(args, state, control)
        cb.on_log(args, state, control, logs={"reward": reward, "loss": 0.0})
    # decision at step 3 sees [0.2, 0.9] (0.55); at step 4 [0.9, 0.9] (0.9 > 0.8) → dual
    assert served == ["s", "s", "s", "s", "d", "d"]
    assert ds.stage == "mixed"
    # the window was reset on entering "mixed" at step 6; step 6's reward is logged after that
    assert list(cur.rewards) == [0.1]
    cb.on_log(args, state, control, logs={"loss": 1.0})  # no reward key: ignored
    assert list(cur.rewards) == [0.1]


def test_callback_saves_into_checkpoint_and_resumes(tmp_path):
    cur = Curriculum(cfg())
    ds = StagedDataset({"single": [1], "dual": [2], "mixed": [3]})
    cb = CurriculumCallback(cur, ds)
    args, control = _args(tmp_path), SimpleNamespace()
    state = SimpleNamespace(global_step=0)
    for step in range(1, 7):
        state.global_step = step
        cb.on_step_end(args, state, control)
    (tmp_path / "checkpoint-6").mkdir()
    cb.on_save(args, state, control)
    assert (tmp_path / "checkpoint-6" / STATE_FILE).is_file()
    fresh_ds = StagedDataset({"single": [1], "dual": [2], "mixed": [3]})
    fresh = CurriculumCallback(Curriculum(cfg()), fresh_ds)
    assert fresh_ds.stage == "single"
    fresh.on_train_begin(args, SimpleNamespace(global_step=6), control)
    assert fresh_ds.stage == "dual" and fresh.curriculum.steps_in_stage == 1
    assert fresh.curriculum.state_dict() == cur.state_dict()


def test_staged_hf_dataset_reads_the_current_stage():
    pytest.importorskip("datasets")
    ds = StagedDataset({"single": [{"q": "s1"}, {"q": "s2"}], "dual": [{"q": "d1"}]})
    hf = ds.as_hf_dataset()
    assert len(hf) == 2 and hf[1] == {"q": "s2"}
    ds.set_stage("dual")
    assert hf[1] == {"q": "d1"} and hf[0:2] == {"q": ["d1", "d1"]}


def test_grpo_trainer_switches_stages(tiny_qwen2vl, tmp_path):
    pytest.importorskip("trl")
    from datasets import Dataset
    from PIL import Image
    from trl import GRPOTrainer

    from tests.trainer.helpers import grpo_args
    from trainer.tiny import load_processor

    def rows(stage):
        return Dataset.from_list(
            [
                {
                    "prompt": [{"role": "user", "content": f"Spot the differences ({stage})"}],
                    "image": Image.new("RGB", (64, 64), (60 * i, 0, 0)),
                    "stage": stage,
                }
                for i in range(4)
            ]
        )

    staged = StagedDataset({s: rows(s) for s in ("single", "dual", "mixed")})
    stages = (
        StageSpec(name="single", max_steps=1),
        StageSpec(name="dual", max_steps=1),
        StageSpec(name="mixed"),
    )
    cur = Curriculum(CurriculumConfig(stages=stages, window=1))
    seen: list[set[str]] = []

    def reward(prompts, completions, stage, **kwargs):
        seen.append(set(stage))
        return [float(len(c[0]["content"]) % 3) for c in completions]

    args = grpo_args(tmp_path, max_steps=4, learning_rate=1e-6)  # TRL default lr
    trainer = GRPOTrainer(
        model=str(tiny_qwen2vl),
        reward_funcs=[reward],
        args=args,
        train_dataset=staged.as_hf_dataset(),
        processing_class=load_processor(tiny_qwen2vl),
        callbacks=[CurriculumCallback(cur, staged)],
    )
    trainer.train()
    assert [t["at_step"] for t in cur.transitions] == [1, 2]
    assert all(len(s) == 1 for s in seen)  # a group never mixes stages
    order = ["single", "dual", "mixed"]
    names = [next(iter(s)) for s in seen]
    assert names[0] == "single" and names[-1] == "mixed"
    assert [order.index(n) for n in names] == sorted(order.index(n) for n in names)
    # accelerate prefetches one batch: each stage arrives one step after its transition
    assert names == ["single", "single", "dual", "mixed"]
    assert len(cur.rewards) >= 1  # logged "reward" reached the curriculum


def test_progress_thresholds_map_onto_the_reward_range():
    c = CurriculumConfig()  # defaults: 0.7 and 0.6 of the way from format alone to the top
    assert c.threshold_units == "progress"
    got = c.in_reward_units(1.0, 3.0)  # dig: format alone 1, maximum 3
    assert got.threshold_units == "reward"
    assert [s.reward_threshold for s in got.stages] == pytest.approx([2.4, 2.2, None])
    assert [s.max_steps for s in got.stages] == [s.max_steps for s in c.stages]
    assert got.in_reward_units(0.0, 1.0) is got  # already in reward units
    with pytest.raises(ValueError, match="in_reward_units"):
        Curriculum(c)  # unconverted progress thresholds are refused
    with pytest.raises(ValidationError, match=r"fraction in \[0, 1\)"):
        CurriculumConfig(stages=(StageSpec(name="a", reward_threshold=1.5), StageSpec(name="b")))
