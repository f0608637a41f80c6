"""SFT data (gold completions read back to the labels), ``method: sft`` / ``init_from`` config,
and an SFT run through TRL's SFTTrainer that lowers its loss and saves a loadable checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.reward import Sample
from services.reward.scoring import score_samples
from tasks.dig import generate
from tasks.dig.scene import SceneOptions
from tasks.registry import get_task
from trainer.config import TrainConfig
from trainer.train import init_checkpoint

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def dig_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dig")
    generate(root, 9, split="all", size=(112, 84), seed=3, progress=False)
    return root


@pytest.mark.parametrize("coords", ["pixel", "norm1000", "norm1"])
@pytest.mark.parametrize("cot", [False, True])
def test_gold_completions_score_as_the_manifest_labels(dig_root, coords, cot) -> None:
    """Every SFT completion parses in the task's dialect and frame, and the reward service
    reads its boxes back to the manifest's (F1 = 1, format = 1; mIoU ≥ 0.95 after rounding)."""
    from trainer.sft import sft_rows

    task = get_task("dig", root=str(dig_root), coords=coords)
    rows = sft_rows(task, "train", cot=cot)
    manifest = {
        r["id"]: r
        for r in map(json.loads, (dig_root / "manifest.jsonl").read_text().split("\n")[:-1])
    }
    assert sorted(r["id"] for r in rows) == sorted(manifest)
    samples = {s.id: s for s in task.samples("train")}
    scored = score_samples(
        [
            Sample(
                id=r["id"],
                completion=r["completion"][0]["content"][0]["text"],
                solution=samples[r["id"]].solution,
                frame=samples[r["id"]].frame,
            )
            for r in rows
        ],
        "dig",
    )
    for row, res in zip(rows, scored, strict=True):
        assert res.error is None, res.error
        assert res.components["format"] == 1.0 and res.components["f1"] == 1.0
        assert res.components["miou"] >= 0.95
        assert len(samples[row["id"]].solution.boxes) == len(manifest[row["id"]]["boxes"])
        assert row["prompt"] == task.messages(samples[row["id"]])
        assert row["images"] == list(samples[row["id"]].images)


def test_empty_difference_list_is_an_empty_answer(tmp_path) -> None:
    from schemas.geometry import Frame
    from schemas.reward import BoxSolution
    from schemas.tasks import TaskSample
    from tasks.dig.traces import sft_completion

    sample = TaskSample(
        id="x", images=["a", "b"], prompt="p", solution=BoxSolution(boxes=[]),
        frame=Frame(coords="pixel", image_size=(10, 10)),
    )  # fmt: skip
    text = sft_completion(sample)
    assert text.endswith("<answer>[]</answer>")
    res = score_samples([Sample(id="x", completion=text, solution=sample.solution)], "dig")[0]
    assert res.components["f1"] == 1.0


def _cfg(**over):
    base = {
        "run_dir": "/tmp/x",
        "model": {"tiny": "qwen2vl"},
        "task": {"name": "dig", "root": "/tmp/d"},
        "max_steps": 1,
        "method": "sft",
    }
    base.update(over)
    return base


def test_plain_think_is_configurable_and_checked(dig_root) -> None:
    """``sft.think`` replaces the plain think text; the answer stays the gold one; a think with
    the tags, or together with CoT, is refused when the config loads."""
    from trainer.sft import sft_rows

    task = get_task("dig", root=str(dig_root))
    default = sft_rows(task, "train")
    short = sft_rows(task, "train", think="I compare.")
    for d, s in zip(default, short, strict=True):
        d_text, s_text = (r["completion"][0]["content"][0]["text"] for r in (d, s))
        assert s_text.startswith("<think>I compare.</think><answer>")
        assert s_text.split("<answer>")[1] == d_text.split("<answer>")[1]
    assert TrainConfig.model_validate(_cfg(sft={"think": "ok"})).sft.think == "ok"
    for bad, match in (
        ({"cot": True, "think": "x"}, "not both"),
        ({"think": "<think>x</think>"}, "leave the tags out"),
        ({"think": ""}, "at least 1"),
    ):
        with pytest.raises(ValidationError, match=match):
            TrainConfig.model_validate(_cfg(sft=bad))


def test_sft_config_validates_its_trl_fields() -> None:
    cfg = TrainConfig.model_validate(_cfg(sft={"cot": True, "args": {"learning_rate": 0.01}}))
    assert cfg.method == "sft" and cfg.sft.cot and cfg.sft.args == {"learning_rate": 0.01}
    with pytest.raises(ValidationError, match="unknown SFTConfig field"):
        TrainConfig.model_validate(_cfg(sft={"args": {"learning_rat": 0.01}}))
    with pytest.raises(ValidationError, match="set 'max_steps' instead"):
        TrainConfig.model_validate(_cfg(sft={"args": {"max_steps": 3}}))


def test_tiny_shape_rejects_heads_that_do_not_fit() -> None:
    with pytest.raises(ValidationError, match="multiple of 2·heads"):
        TrainConfig.model_validate(_cfg(model={"tiny": "qwen2vl", "shape": {"hidden": 36}}))


def test_init_from_takes_a_checkpoint_or_a_run_dirs_final(tmp_path) -> None:
    (tmp_path / "run" / "final").mkdir(parents=True)
    (tmp_path / "run" / "final" / "config.json").write_text("{}")
    assert init_checkpoint(tmp_path / "run") == tmp_path / "run" / "final"
    assert init_checkpoint(tmp_path / "run" / "final") == tmp_path / "run" / "final"
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        init_checkpoint(tmp_path)


def test_scene_options_give_few_large_objects() -> None:
    from tasks.dig.generate import draw_pair

    opts = SceneOptions(n_min=1, n_max=2, sizes=("large",))
    for i in range(20):
        spec = draw_pair(0, "single", i, 0, opts)
        if spec is None:
            continue
        assert 1 <= len(spec.scene_a.objects) <= 2
        assert {o.size for o in spec.scene_a.objects} == {"large"}
    with pytest.raises(ValueError, match="n_min"):
        SceneOptions(n_min=3, n_max=2)
    with pytest.raises(ValueError, match="sizes"):
        SceneOptions(sizes=("huge",))


@pytest.mark.slow
def test_sft_run_lowers_the_loss_and_saves_a_checkpoint_grpo_can_start_from(dig_root, tmp_path):
    from trainer.tiny import load_vlm
    from trainer.train import model_path, run

    cfg = TrainConfig.model_validate(
        _cfg(
            run_dir=str(tmp_path / "sft"),
            task={"name": "dig", "root": str(dig_root), "options": {"prompt": "short"}},
            max_steps=12,
            checkpoint={"every_steps": 100},
            sft={"args": {"learning_rate": 3e-3, "per_device_train_batch_size": 4}},
        )
    )
    result = run(cfg)
    assert result.global_step == 12
    losses = [json.loads(line)["loss"] for line in (tmp_path / "sft" / "metrics.jsonl").open()]
    assert len(losses) == 12 and sum(losses[-3:]) < sum(losses[:3])
    model, processor = load_vlm(tmp_path / "sft" / "final")
    assert model.config.model_type == "qwen2_vl" and processor.tokenizer is not None
    grpo = TrainConfig.model_validate(
        {
            "run_dir": str(tmp_path / "grpo"),
            "model": {"tiny": "qwen2vl"},
            "task": {"name": "dig", "root": str(dig_root)},
            "max_steps": 1,
            "init_from": str(tmp_path / "sft"),
        }
    )
    assert model_path(grpo) == tmp_path / "sft" / "final"


def test_preflight_refuses_a_missing_init_from(tmp_path) -> None:
    from trainer.preflight import PreflightError, preflight

    cfg = TrainConfig.model_validate(
        _cfg(run_dir=str(tmp_path / "run"), init_from=str(tmp_path / "nothing"))
    )
    with pytest.raises(PreflightError, match="init_from"):
        preflight(cfg, resume=False, overwrite=False)
