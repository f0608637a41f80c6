"""Checks ``prl train`` makes before any model loads or any rollout runs.

* the reward reference resolves (a typo such as ``reward.reward: dgi`` is refused here with
  "did you mean 'dig'?", not after the first rollout);
* a ``model.path`` exists as a checkpoint directory (never a hub lookup), and so does
  ``init_from`` (or its ``final/``);
* the run directory: a directory that already holds training output (``metrics.jsonl`` or a
  ``checkpoints/checkpoint-<step>``) is continued only with ``--resume`` and restarted only
  with ``--overwrite``; ``--resume`` of a run whose newest checkpoint is at ``max_steps``
  says it is finished instead of training past it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

_CKPT = re.compile(r"^checkpoint-(\d+)$")


class PreflightError(ValueError):
    """A config or run directory that cannot be trained as asked (the message says why)."""


def check_reward(reward: str | dict[str, Any]) -> None:
    from schemas.reward import RewardSpec
    from services.reward.scoring import resolve_reward
    from services.reward.scoring.spec import SpecError

    try:
        resolve_reward(reward if isinstance(reward, str) else RewardSpec.model_validate(reward))
    except SpecError as exc:
        raise PreflightError(f"config reward.{exc}") from None


def checkpoint_steps(run_dir: Path) -> list[int]:
    ckpts = run_dir / "checkpoints"
    if not ckpts.is_dir():
        return []
    return sorted(int(m.group(1)) for p in ckpts.iterdir() if (m := _CKPT.match(p.name)))


def has_output(run_dir: Path) -> bool:
    metrics = run_dir / "metrics.jsonl"
    return (metrics.is_file() and metrics.stat().st_size > 0) or bool(checkpoint_steps(run_dir))


def check_run_dir(run_dir: Path, *, resume: bool, overwrite: bool, max_steps: int) -> None:
    """Refuse to mix two runs in one directory; ``overwrite`` clears the old run's output."""
    if resume and overwrite:
        raise PreflightError("--resume and --overwrite contradict each other: choose one")
    if not has_output(run_dir):
        return
    if overwrite:
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        return
    steps = checkpoint_steps(run_dir)
    if not resume:
        where = f"checkpoint-{steps[-1]}" if steps else "metrics.jsonl"
        raise PreflightError(
            f"run dir {run_dir} already holds a run ({where}): continue it with --resume, "
            "start over with --overwrite, or give another --run-dir"
        )
    if not steps:
        raise PreflightError(
            f"--resume: run dir {run_dir} has metrics but no checkpoint to resume from; "
            "start over with --overwrite"
        )
    if steps[-1] >= max_steps:
        raise PreflightError(
            f"--resume: the run in {run_dir} already finished (checkpoint-{steps[-1]}, "
            f"max_steps {max_steps}); raise --max-steps to train further"
        )


def preflight(cfg: Any, *, resume: bool, overwrite: bool) -> None:
    """Every check above on a loaded :class:`trainer.config.TrainConfig`."""
    from services.common.model_paths import check_model_ref

    check_reward(cfg.reward.reward)
    if cfg.model.path:
        check_model_ref(cfg.model.path)
    if getattr(cfg, "init_from", None):
        from trainer.train import init_checkpoint

        try:
            init_checkpoint(cfg.init_from)
        except FileNotFoundError as exc:
            raise PreflightError(str(exc)) from None
    # Under torchrun / accelerate every rank runs this; only the main process judges (and may
    # clear) the run dir, since rank 0 may already be writing into it when another rank looks.
    if int(os.environ.get("RANK", "0")) == 0:
        check_run_dir(cfg.run_path, resume=resume, overwrite=overwrite, max_steps=cfg.max_steps)
