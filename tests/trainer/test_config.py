from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from trainer.config import TrainConfig, load_config

pytestmark = pytest.mark.torch
CONFIGS = Path(__file__).parents[2] / "trainer" / "configs"


def _cfg(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run_dir": "/tmp/x",
        "model": {"tiny": "qwen2vl"},
        "task": {"name": "dig", "root": "/tmp/d"},
        "max_steps": 1,
        "grpo": {"per_device_train_batch_size": 4, "num_generations": 4},
    }
    base.update(over)
    return base


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(CONFIGS / name)
    assert cfg.max_steps >= 1 and Path(cfg.run_dir).is_absolute()


def test_config_is_frozen() -> None:
    cfg = TrainConfig.model_validate(_cfg())
    with pytest.raises(ValidationError):
        cfg.max_steps = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (
            {
                "deva": {"entropy_reg": {"enabled": True}},
                "grpo": {"beta": 0.04, "num_generations": 4, "per_device_train_batch_size": 4},
            },
            "replaces the token-level KL",
        ),
        ({"deva": {"diversity": {"enabled": True, "gamma": 0.0}}}, "gamma"),
        ({"deva": {"diversity": {"enabled": True, "gamma": 1.5}}}, "gamma"),
        ({"grpo": {"max_steps": 3}}, "set 'max_steps' instead"),
        ({"grpo": {"importance_sampling_level": "sequence"}}, "loss_type: gspo"),
        ({"grpo": {"not_a_field": 1}}, "unknown GRPOConfig field"),
        ({"grpo": {"entropy_coef": 0.1}}, "not supported"),
        ({"grpo": {"per_device_train_batch_size": 3, "num_generations": 2}}, "multiple of"),
        ({"grpo": {"num_generations": 1, "per_device_train_batch_size": 4}}, ">= 2"),
        ({"model": {"tiny": "qwen2vl", "path": "/m"}}, "exactly one"),
        ({"loss_type": "cispo"}, "loss_type"),
        ({"reward": {"url": "localhost:8001"}}, "http"),
    ],
)
def test_invalid_combinations_are_rejected(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainConfig.model_validate(_cfg(**over))


def test_deva_terms_and_gspo_mapping(tmp_path: Path) -> None:
    from trainer.train import grpo_args

    cfg = TrainConfig.model_validate(
        _cfg(
            loss_type="gspo",
            run_dir=str(tmp_path),
            deva={"diversity": {"enabled": True, "lambda_div": 0.3, "gamma": 0.5}},
            checkpoint={"every_steps": 5, "keep": 2},
        )
    )
    terms = cfg.deva
    assert (
        terms.diversity.enabled
        and not terms.entropy_reg.enabled
        and terms.diversity.gamma == 0.5
        and terms.diversity.lambda_div == 0.3
    )
    args = grpo_args(cfg)
    assert (args.loss_type, args.importance_sampling_level) == ("grpo", "sequence")
    assert args.save_steps == 5 and args.save_total_limit == 2 and args.max_steps == 1
    assert args.output_dir == str(tmp_path / "checkpoints")


def test_validate_run_config_for_the_job_api() -> None:
    from trainer.config import validate_run_config

    raw = _cfg()
    raw.pop("run_dir")
    out = validate_run_config(raw)
    assert "run_dir" not in out and out["deva"]["diversity"]["enabled"] is False
    assert out["grpo"]["num_generations"] == 4
    with pytest.raises(ValueError, match="replaces the token-level KL"):
        validate_run_config(
            {
                **raw,
                "deva": {"entropy_reg": {"enabled": True}},
                "grpo": {**raw["grpo"], "beta": 0.1},
            }
        )


def test_json_config_with_overrides(tmp_path: Path) -> None:
    import json

    path = tmp_path / "config.json"
    raw = _cfg()
    raw.pop("run_dir")
    path.write_text(json.dumps(raw))
    cfg = load_config(path, {"run_dir": str(tmp_path / "job-1")})
    assert cfg.run_dir == str(tmp_path / "job-1") and cfg.max_steps == 1


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"alignment": {"send_inputs": True, "mask_from_attention": True}}, "eager"),
        (
            {
                "model": {"tiny": "qwen2vl", "attn_implementation": "eager"},
                "grpo": {
                    "per_device_train_batch_size": 4,
                    "num_generations": 4,
                    "model_init_kwargs": {"attn_implementation": "sdpa"},
                },
            },
            "disagree",
        ),
        (
            {
                "curriculum": {"stages": [{"name": "single"}]},
                "grpo": {
                    "per_device_train_batch_size": 4,
                    "num_generations": 4,
                    "dataloader_num_workers": 2,
                },
            },
            "dataloader_num_workers",
        ),
        (
            {
                "pgpo": {"enabled": True},
                "grpo": {"per_device_train_batch_size": 4, "num_generations": 4, "use_vllm": True},
            },
            "use_vllm",
        ),
        ({"pgpo": {"enabled": True, "w_max": 0.5}}, "w_max"),
        ({"method": "ppo"}, "method"),
    ],
)
def test_perception_term_combinations_rejected(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainConfig.model_validate(_cfg(**over))


def test_eager_from_model_init_kwargs_allows_attention_masks() -> None:
    cfg = TrainConfig.model_validate(
        _cfg(
            alignment={"send_inputs": True, "mask_from_attention": True},
            grpo={
                "per_device_train_batch_size": 4,
                "num_generations": 4,
                "model_init_kwargs": {"attn_implementation": "eager"},
            },
        )
    )
    assert cfg.attn_implementation == "eager" and cfg.pgpo.enabled is False
    assert cfg.curriculum is None and cfg.method == "grpo"


def _curriculum(*thresholds: float | None, units: str = "reward") -> dict[str, Any]:
    stages = [{"name": f"s{i}", "reward_threshold": t} for i, t in enumerate(thresholds)]
    return {"stages": [*stages, {"name": "last"}], "threshold_units": units}


@pytest.mark.parametrize(
    ("reward", "thresholds", "message"),
    [
        # dig sums format + f1 + miou ∈ [0, 3]; format alone gives 1
        ("dig", (0.7,), "reward_threshold 0.7 is passed by format alone; reward 'dig' has "
         "attainable range [0, 3], format alone gives 1: choose a threshold in [1, 3)"),
        ("dig", (2.0, 3.0), "curriculum.stages[1] (s1): reward_threshold 3 can never fire"),
        ("deva_detection", (1.0,), "reward_threshold 1 can never fire"),
        ({"components": [{"name": "iou"}], "aggregate": {"method": "sum"}}, (-0.5,),
         "is passed by any policy; reward the given spec has attainable range [0, 1]"),
    ],
)  # fmt: skip
def test_curriculum_thresholds_checked_against_the_reward_range(
    reward: Any, thresholds: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        TrainConfig.model_validate(
            _cfg(reward={"reward": reward}, curriculum=_curriculum(*thresholds))
        )


@pytest.mark.parametrize(
    ("reward", "thresholds"),
    [("dig", (1.0, 2.9)), ("deva_detection", (0.7, 0.6)), ("deva_classification", (0.99,))],
)
def test_curriculum_thresholds_inside_the_range_load(reward: str, thresholds: tuple) -> None:
    cfg = TrainConfig.model_validate(
        _cfg(reward={"reward": reward}, curriculum=_curriculum(*thresholds))
    )
    assert [s.reward_threshold for s in cfg.curriculum.stages[:-1]] == list(thresholds)


def test_curriculum_threshold_with_an_unknown_reward() -> None:
    cur = _curriculum(0.5)
    with pytest.raises(ValidationError, match=r"reward\.reward: reward: unknown reward preset"):
        TrainConfig.model_validate(_cfg(reward={"reward": "nope"}, curriculum=cur))
    remote = {"url": "http://127.0.0.1:9", "reward": "a_preset_only_the_server_has"}
    assert TrainConfig.model_validate(_cfg(reward=remote, curriculum=cur)).curriculum is not None
    with pytest.raises(ValidationError, match="'progress' thresholds need the reward's range"):
        TrainConfig.model_validate(
            _cfg(reward=remote, curriculum=_curriculum(0.5, units="progress"))
        )


@pytest.mark.parametrize(
    ("reward", "want"),
    [
        ("dig", [1 + 0.7 * 2, 1 + 0.6 * 2]),  # sum: format alone 1, maximum 3
        ("deva_detection", None),  # harmonic: format alone ≈ 0, maximum 1
    ],
)
def test_default_progress_thresholds_become_reward_units(reward: str, want) -> None:
    cfg = TrainConfig.model_validate(_cfg(reward={"reward": reward}, curriculum={}))
    cur = cfg.curriculum
    assert cur.threshold_units == "reward"
    got = [s.reward_threshold for s in cur.stages[:2]]
    from services.reward.scoring import compiled
    from services.reward.scoring.ranges import aggregate_range

    rng = aggregate_range(compiled(reward))
    if want is None:
        want = [rng.format_alone + t * (rng.hi - rng.format_alone) for t in (0.7, 0.6)]
    assert got == pytest.approx(want)
    assert all(rng.format_alone < t < rng.hi for t in got)
    # the dumped config is stable: it reloads to the same thresholds
    again = TrainConfig.model_validate(cfg.model_dump(mode="json"))
    assert [s.reward_threshold for s in again.curriculum.stages[:2]] == pytest.approx(got)


def test_diversity_switches_reach_the_trainer_terms() -> None:
    terms = TrainConfig.model_validate(_cfg()).deva.diversity
    assert (terms.reduction, terms.state_reward, terms.prompt_transition) == (
        "mean",
        "cumulative",
        True,
    )
    div = {"enabled": True, "reduction": "sum", "state_reward": "last_token"}
    terms = TrainConfig.model_validate(
        _cfg(deva={"diversity": {**div, "prompt_transition": False}})
    ).deva.diversity
    assert (terms.reduction, terms.state_reward, terms.prompt_transition) == (
        "sum",
        "last_token",
        False,
    )
    with pytest.raises(ValidationError, match="reduction"):
        TrainConfig.model_validate(_cfg(deva={"diversity": {"reduction": "max"}}))


def test_loss_type_is_checked_against_the_registry_with_a_suggestion() -> None:
    with pytest.raises(ValidationError, match="did you mean 'gmpo'"):
        TrainConfig.model_validate(_cfg(loss_type="gmp"))
    field = TrainConfig.model_fields["loss_type"]
    assert field.description and "gmpo" in field.description and "cppo" in field.description


@pytest.mark.parametrize(
    ("loss_type", "grpo", "want"),
    [
        ("gmpo", {}, ("grpo", "token", 0.4)),  # GMPO's log-space clip range by default
        ("gmpo", {"epsilon": 0.3}, ("grpo", "token", 0.3)),  # unless the run sets one
        ("cppo", {}, ("grpo", "token", 0.2)),
        ("dr_grpo", {}, ("dr_grpo", "token", 0.2)),
    ],
)
def test_new_losses_build_their_trl_settings_from_the_registry(
    tmp_path: Path, loss_type: str, grpo: dict[str, Any], want: tuple[str, str, float]
) -> None:
    from trainer.train import grpo_args

    base = {"per_device_train_batch_size": 4, "num_generations": 4, **grpo}
    cfg = TrainConfig.model_validate(_cfg(loss_type=loss_type, run_dir=str(tmp_path), grpo=base))
    args = grpo_args(cfg)
    assert (args.loss_type, args.importance_sampling_level, args.epsilon) == want


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"care": {"enabled": True}, "grpo": {"beta": 0.04, "num_generations": 4,
          "per_device_train_batch_size": 4}}, "care replaces the KL penalty"),
        ({"loss_type": "cppo", "cppo": {"keep_ratio": 0.25}, "grpo": {"num_generations": 4,
          "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2}},
         "do not split into steps_per_generation=2"),
        ({"cppo": {"keep_ratio": 0.0}}, "keep_ratio"),
        ({"papo": {"enabled": True, "view": "blank"}}, "view"),
    ],
)  # fmt: skip
def test_plugin_combinations_are_rejected(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainConfig.model_validate(_cfg(**over))


def test_config_files_read_exponent_numbers_as_floats(tmp_path) -> None:
    """``3e-5`` (YAML) and ``6e-05`` (JSON) are numbers, not strings PyYAML 1.1 would make of
    them; a malformed file is a one-line ValueError naming the file."""
    from trainer.config import load_config

    body = "run_dir: {rd}\nmethod: sft\nmax_steps: 1\nmodel: {{tiny: qwen2vl}}\n"
    body += "task: {{name: dig, root: {rd}}}\n"
    body += "sft: {{args: {{learning_rate: 3e-5, adam_beta2: 0.98}}}}\n"
    yml = tmp_path / "a.yaml"
    yml.write_text(body.format(rd=tmp_path))
    assert load_config(yml).sft.args == {"learning_rate": 3e-5, "adam_beta2": 0.98}
    js = tmp_path / "a.json"
    js.write_text(
        json.dumps(
            {
                "run_dir": str(tmp_path),
                "max_steps": 1,
                "model": {"tiny": "qwen2vl"},
                "task": {"name": "dig", "root": str(tmp_path)},
                "reward": {"url": "http://localhost:1"},
                "grpo": {"learning_rate": 6e-05, "epsilon": 1e-3, "hub_model_id": "1e5x"},
            }
        )
    )
    grpo = load_config(js).grpo
    assert grpo["learning_rate"] == 6e-05 and grpo["epsilon"] == 1e-3
    assert grpo["hub_model_id"] == "1e5x"
    (tmp_path / "b.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match=r"b.yaml: not valid YAML \(line"):
        load_config(tmp_path / "b.yaml")
    (tmp_path / "b.json").write_text('{"a": ')
    with pytest.raises(ValueError, match=r"b\.json: not valid JSON"):
        load_config(tmp_path / "b.json")
