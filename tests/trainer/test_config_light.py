"""Validating a run config needs neither torch nor TRL (the trainer service's job API, ``prl
train --check``): the DEVA, PGPO and alignment sections are plain pydantic, and the TRL field
names come from a checked-in snapshot that is held to the installed TRL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHECK = textwrap.dedent(
    """
    import json, sys
    from pydantic import ValidationError
    from trainer.config import load_config, validate_run_config

    job = {
        "model": {"tiny": "qwen2vl"},
        "task": {"name": "dig", "root": "/tmp/d"},
        "reward": {"url": "inprocess", "reward": "dig"},
        "loss_type": "gspo",
        "max_steps": 4,
        "deva": {
            "diversity": {"enabled": True, "lambda_div": 0.3, "gamma": 0.5},
            "entropy_reg": {"enabled": True, "lambda_reg": 0.2},
        },
        "pgpo": {"enabled": True, "threshold": 0.4},
        "alignment": {"send_inputs": True},
        "curriculum": {"stages": [{"name": "single", "max_steps": 2, "reward_threshold": 0.5},
                                  {"name": "mixed"}]},
        "grpo": {"per_device_train_batch_size": 4, "num_generations": 4, "beta": 0.0,
                 "learning_rate": 1e-6},
    }
    out = validate_run_config(job)
    try:
        validate_run_config({**job, "grpo": {**job["grpo"], "beta": 0.04}})
        refused = None
    except ValidationError as exc:
        refused = str(exc)
    try:
        validate_run_config({**job, "grpo": {**job["grpo"], "no_such_field": 1}})
        unknown = None
    except ValidationError as exc:
        unknown = str(exc)
    shipped = load_config(sys.argv[1]).deva.model_dump()
    loaded = sorted(m for m in ("torch", "trl", "transformers", "accelerate") if m in sys.modules)
    print(json.dumps({"out": out, "refused": refused, "unknown": unknown, "shipped": shipped,
                      "loaded": loaded}))
    """
)


def test_validating_a_deva_job_config_imports_neither_torch_nor_trl() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    gpu_recipe = ROOT / "trainer" / "configs" / "deva_dig_gpu.yaml"
    res = subprocess.run(
        [sys.executable, "-c", CHECK, str(gpu_recipe)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["loaded"] == []
    deva = got["out"]["deva"]
    assert deva["diversity"]["enabled"] and deva["diversity"]["lambda_div"] == 0.3
    assert deva["entropy_reg"] == {"enabled": True, "lambda_reg": 0.2}
    assert got["out"]["pgpo"]["threshold"] == 0.4
    assert "deva.entropy_reg replaces the token-level KL" in got["refused"]
    assert "unknown GRPOConfig field(s) ['no_such_field']" in got["unknown"]
    assert got["shipped"]["diversity"]["gamma"] == 0.5


@pytest.mark.torch
def test_trl_field_snapshot_matches_the_installed_trl() -> None:
    from trainer.config import TRL_FIELDS_FILE, installed_trl_fields

    assert json.loads(TRL_FIELDS_FILE.read_text()) == installed_trl_fields(), (
        "TRL or transformers changed: regenerate with "
        "python -c 'from trainer.config import write_trl_fields; write_trl_fields()'"
    )
