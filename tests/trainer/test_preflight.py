"""Run-directory rules of ``prl train``: never mix two runs, never train past a finished one."""

from __future__ import annotations

import pytest

from trainer.preflight import PreflightError, check_reward, check_run_dir


def make_run(path, steps=(), metrics=True):  # type: ignore[no-untyped-def]
    path.mkdir(parents=True, exist_ok=True)
    if metrics:
        (path / "metrics.jsonl").write_text('{"step": 1}\n')
    for s in steps:
        (path / "checkpoints" / f"checkpoint-{s}").mkdir(parents=True)
    return path


def test_an_empty_or_config_only_dir_is_fine(tmp_path):
    check_run_dir(tmp_path / "new", resume=False, overwrite=False, max_steps=3)
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "config.json").write_text("{}")  # the trainer service writes this first
    check_run_dir(tmp_path / "job", resume=False, overwrite=False, max_steps=3)


def test_a_dir_with_a_run_needs_resume_or_overwrite(tmp_path):
    run = make_run(tmp_path / "r", steps=(2,))
    with pytest.raises(PreflightError, match=r"checkpoint-2.*--resume.*--overwrite"):
        check_run_dir(run, resume=False, overwrite=False, max_steps=3)
    check_run_dir(run, resume=True, overwrite=False, max_steps=3)  # 2 < 3: continue


def test_resume_of_a_finished_run_says_so(tmp_path):
    run = make_run(tmp_path / "r", steps=(2, 3))
    with pytest.raises(PreflightError, match=r"already finished .checkpoint-3, max_steps 3"):
        check_run_dir(run, resume=True, overwrite=False, max_steps=3)
    check_run_dir(run, resume=True, overwrite=False, max_steps=5)


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    run = make_run(tmp_path / "r")
    with pytest.raises(PreflightError, match="no checkpoint"):
        check_run_dir(run, resume=True, overwrite=False, max_steps=3)


def test_overwrite_clears_only_the_old_runs_output(tmp_path):
    run = make_run(tmp_path / "r", steps=(3,))
    (run / "tiny-model").mkdir()
    check_run_dir(run, resume=False, overwrite=True, max_steps=3)
    assert sorted(p.name for p in run.iterdir()) == ["tiny-model"]
    with pytest.raises(PreflightError, match="contradict"):
        check_run_dir(run, resume=True, overwrite=True, max_steps=3)


def test_reward_references_are_checked():
    check_reward("dig")
    with pytest.raises(PreflightError, match="did you mean 'dig'"):
        check_reward("dgi")
    with pytest.raises(PreflightError, match="unknown reward component"):
        check_reward({"components": [{"name": "f11"}]})


def test_the_trainer_service_validator_refuses_an_unknown_preset():
    from trainer.jobs.manager import _default_validate

    cfg = {"model": {"tiny": "qwen2vl"}, "task": {"name": "dig", "root": "d"}, "max_steps": 1}
    _default_validate({**cfg, "reward": {"reward": "dig"}})
    with pytest.raises(ValueError, match="did you mean 'dig'"):
        _default_validate({**cfg, "reward": {"reward": "dgi"}})
