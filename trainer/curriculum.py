"""DiG curriculum: single → dual → mixed difference splits, by step budget or reward.

DiG (Differential Grounding, CVPR 2026) trains first on image pairs with a single difference,
then on pairs with two, then on a mix with any number. A stage ends when *either*

* its step budget is spent (``max_steps``), or
* the running mean reward of the stage passes ``reward_threshold`` — the mean of the last
  ``window`` recorded rewards, counted only once ``window`` rewards were recorded in this stage
  and at least ``min_steps`` steps were taken (one lucky batch does not advance it).

Either condition may be left out (``None``); the last stage never ends. Rewards differ in
scale (``dig`` sums to [0, 3] and format alone earns 1; the harmonic ``deva_*`` presets lie in
[0, 1]), so thresholds are by default *progress* fractions t ∈ [0, 1): the stage advances
when the running mean exceeds ``format_alone + t · (max − format_alone)`` of the configured
reward spec (services/reward/scoring/ranges.py). ``TrainConfig`` converts them to reward
units when the run config loads. With ``threshold_units: reward`` they are taken as given and
checked against the same range: one that format alone passes, or that can never fire, is
rejected with the range and a valid interval. The defaults (0.7, 0.6) thus mean the same
thing under every reward. Everything here is
plain Python: :class:`Curriculum` holds the state (``state_dict()/load_state_dict()`` for
resume), :class:`StagedDataset` serves the rows of the current stage, and
:class:`CurriculumCallback` connects both to a transformers/TRL trainer.

Wiring into ``GRPOTrainer`` (TRL 1.16)::

    staged = StagedDataset({"single": ds1, "dual": ds2, "mixed": ds_mix})
    cur = Curriculum(CurriculumConfig(threshold_units="reward"))   # or from the run config
    trainer = GRPOTrainer(..., train_dataset=staged.as_hf_dataset(),
                          callbacks=[CurriculumCallback(cur, staged)])

(TRL insists on a ``datasets.Dataset``; :meth:`StagedDataset.as_hf_dataset` is an index table
whose transform reads the current stage.) The trainer's sampler draws indices in
``range(len(staged))``; :class:`StagedDataset` maps an
index onto the current stage's rows (modulo its length), so switching the stage changes what
the *next* generation batch contains without rebuilding the dataloader. TRL's
``RepeatSampler`` repeats each index ``num_generations`` times, and the same index maps to the
same row, so a GRPO group always shares one prompt. This needs ``dataloader_num_workers=0``
(worker processes hold copies of the dataset; with workers the switch lands at the next epoch).
accelerate's dataloader fetches one batch ahead, so the new stage's rows arrive one generation
batch after the transition (measured with TRL 1.16 / accelerate 1.15; tested).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)

STATE_FILE = "curriculum_state.json"


class StageSpec(BaseModel):
    """One curriculum stage. ``name`` selects the dataset split served while it is active."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        description="stage name, also the task split it serves (DiG: single, dual, mixed)"
    )
    max_steps: int | None = Field(None, ge=1, description="step budget; None = no budget")
    reward_threshold: float | None = Field(
        None,
        description=(
            "advance when the running mean reward exceeds it; a fraction in [0, 1) of the way "
            "from what format alone earns to the reward's maximum (threshold_units 'progress', "
            "the default) or a value in the reward's own units ('reward')"
        ),
    )
    min_steps: int = Field(0, ge=0, description="steps before the reward rule may fire")


ThresholdUnits = Literal["progress", "reward"]


class CurriculumConfig(BaseModel):
    """Stages in order, the running-mean window (number of recorded rewards) and the units of
    the stages' reward thresholds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stages: tuple[StageSpec, ...] = Field(
        (
            StageSpec(name="single", max_steps=200, reward_threshold=0.7, min_steps=20),
            StageSpec(name="dual", max_steps=300, reward_threshold=0.6, min_steps=20),
            StageSpec(name="mixed"),
        ),
        description="stages in order; a stage ends at its step budget or reward threshold, "
        "whichever comes first, and the last one runs to the end of training",
    )
    window: int = Field(32, ge=1, description="rewards in the running mean")
    threshold_units: ThresholdUnits = Field(
        "progress",
        description=(
            "'progress': reward_threshold t ∈ [0, 1) means format_alone + t·(max − "
            "format_alone) of the configured reward spec (converted when the run config "
            "loads); 'reward': thresholds in the reward's own units"
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> CurriculumConfig:
        if not self.stages:
            raise ValueError("a curriculum needs at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        if self.threshold_units == "progress":
            for i, st in enumerate(self.stages):
                t = st.reward_threshold
                if t is not None and not 0.0 <= t < 1.0:
                    raise ValueError(
                        f"stages[{i}] ({st.name}): reward_threshold {t:g} with threshold_units "
                        "'progress' is a fraction in [0, 1); use threshold_units 'reward' for "
                        "the reward's own units"
                    )
        return self

    def in_reward_units(self, start: float, top: float) -> CurriculumConfig:
        """The same curriculum with 'progress' thresholds t mapped to ``start + t·(top − start)``
        (``start``: what format alone earns, ``top``: the spec's maximum)."""
        if self.threshold_units == "reward":
            return self
        stages = tuple(
            st
            if st.reward_threshold is None
            else st.model_copy(
                update={"reward_threshold": start + st.reward_threshold * (top - start)}
            )
            for st in self.stages
        )
        return self.model_copy(update={"stages": stages, "threshold_units": "reward"})


class Curriculum:
    """State machine over :class:`CurriculumConfig` stages.

    Call :meth:`record` with rewards as they arrive and :meth:`step` after every optimizer
    step; :meth:`step` returns ``True`` when it moved to the next stage.
    """

    def __init__(self, config: CurriculumConfig | None = None) -> None:
        self.config = config or CurriculumConfig(threshold_units="reward")
        if self.config.threshold_units == "progress" and any(
            st.reward_threshold is not None for st in self.config.stages
        ):
            raise ValueError(
                "curriculum thresholds are in 'progress' units: convert them with "
                "CurriculumConfig.in_reward_units(format_alone, maximum) first (the run config "
                "does this when it loads)"
            )
        self.stage_index = 0
        self.steps_in_stage = 0
        self.total_steps = 0
        self.rewards: deque[float] = deque(maxlen=self.config.window)
        self.transitions: list[dict[str, Any]] = []

    @property
    def stage(self) -> StageSpec:
        return self.config.stages[self.stage_index]

    @property
    def is_last(self) -> bool:
        return self.stage_index == len(self.config.stages) - 1

    def running_mean(self) -> float | None:
        """Mean of the last ``window`` rewards of this stage; ``None`` until the window is full."""
        if len(self.rewards) < self.config.window:
            return None
        return sum(self.rewards) / len(self.rewards)

    def record(self, rewards: float | Sequence[float]) -> None:
        """Add rewards (one value, or one per completion) to the current stage's window. NaN is skipped."""
        values = [rewards] if isinstance(rewards, int | float) else list(rewards)
        self.rewards.extend(float(r) for r in values if r == r)

    def should_advance(self) -> str | None:
        """Why the current stage should end now (``"steps"`` / ``"reward"``), or ``None``."""
        if self.is_last:
            return None
        st = self.stage
        if st.max_steps is not None and self.steps_in_stage >= st.max_steps:
            return "steps"
        mean = self.running_mean()
        if (
            st.reward_threshold is not None
            and mean is not None
            and self.steps_in_stage >= st.min_steps
            and mean > st.reward_threshold
        ):
            return "reward"
        return None

    def step(self) -> bool:
        """Count one optimizer step in the current stage; advance if a rule fires."""
        self.steps_in_stage += 1
        self.total_steps += 1
        reason = self.should_advance()
        if reason is None:
            return False
        self._advance(reason)
        return True

    def _advance(self, reason: str) -> None:
        old = self.stage.name
        self.transitions.append(
            {
                "from": old,
                "to": self.config.stages[self.stage_index + 1].name,
                "reason": reason,
                "at_step": self.total_steps,
                "steps_in_stage": self.steps_in_stage,
                "running_mean": self.running_mean(),
            }
        )
        self.stage_index += 1
        self.steps_in_stage = 0
        self.rewards.clear()
        logger.info(
            "curriculum: %s -> %s (%s) at step %d", old, self.stage.name, reason, self.total_steps
        )

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (the config is included to check a resume against it)."""
        return {
            "config": self.config.model_dump(mode="json"),
            "stage_index": self.stage_index,
            "steps_in_stage": self.steps_in_stage,
            "total_steps": self.total_steps,
            "rewards": list(self.rewards),
            "transitions": list(self.transitions),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output. The stage list must match this curriculum's."""
        saved = CurriculumConfig.model_validate(state["config"])
        if [s.name for s in saved.stages] != [s.name for s in self.config.stages]:
            raise ValueError(
                f"checkpoint curriculum stages {[s.name for s in saved.stages]} differ from "
                f"the configured {[s.name for s in self.config.stages]}"
            )
        self.stage_index = int(state["stage_index"])
        self.steps_in_stage = int(state["steps_in_stage"])
        self.total_steps = int(state["total_steps"])
        self.rewards = deque((float(r) for r in state["rewards"]), maxlen=self.config.window)
        self.transitions = [dict(t) for t in state["transitions"]]

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / STATE_FILE
        path.write_text(json.dumps(self.state_dict(), indent=1))
        return path

    def load(self, directory: str | Path) -> bool:
        """Load ``directory/curriculum_state.json`` if present; return whether it was."""
        path = Path(directory) / STATE_FILE
        if not path.is_file():
            return False
        self.load_state_dict(json.loads(path.read_text()))
        return True


class StagedDataset:
    """A map-style dataset that serves the rows of its current stage.

    ``len()`` is fixed (the largest stage, or ``length``) so samplers built once keep working;
    index ``i`` maps to row ``i mod len(stage)`` of the active stage. Works with
    ``datasets.Dataset`` or any sequence of dict rows.
    """

    def __init__(
        self, stages: Mapping[str, Any], *, length: int | None = None, stage: str | None = None
    ) -> None:
        if not stages:
            raise ValueError("StagedDataset needs at least one stage")
        empty = [k for k, v in stages.items() if len(v) == 0]
        if empty:
            raise ValueError(f"empty stage datasets: {empty}")
        self.stages = dict(stages)
        self.length = length or max(len(v) for v in self.stages.values())
        self.stage = stage or next(iter(self.stages))

    def set_stage(self, name: str) -> None:
        if name not in self.stages:
            raise KeyError(f"no dataset for curriculum stage {name!r} (have {sorted(self.stages)})")
        self.stage = name

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        rows = self.stages[self.stage]
        return rows[int(index) % len(rows)]

    def as_hf_dataset(self) -> Any:
        """A ``datasets.Dataset`` view for trainers that require one (TRL's ``GRPOTrainer`` does).

        The table holds only the indices ``0..len-1``; a ``with_transform`` formatter maps each
        fetched index through :meth:`__getitem__` at access time, so :meth:`set_stage` takes
        effect on the next fetch. All stages must have the same columns.
        """
        from datasets import Dataset

        def fetch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            rows = [self[i] for i in batch["__staged_index__"]]
            return {k: [r[k] for r in rows] for k in rows[0]}

        return Dataset.from_dict({"__staged_index__": list(range(self.length))}).with_transform(
            fetch
        )


class _CurriculumHooks:
    """Feeds logged rewards into a :class:`Curriculum` and switches a :class:`StagedDataset`.

    * ``on_log``: ``logs[reward_key]`` (TRL logs the mean reward of the steps since the last
      log as ``"reward"``) is recorded. With ``logging_steps=1`` that is one value per step;
      transformers calls ``on_log`` after ``on_step_end``, so a step's reward counts from the
      next step's decision on. A reward function may also call :meth:`record` directly
      (per-completion rewards) — then set ``reward_key=None``.
    * ``on_step_end``: :meth:`Curriculum.step`; on a transition the dataset switches stage
      (the transition is kept in ``curriculum.transitions`` and logged at INFO).
    * ``on_save``: writes ``curriculum_state.json`` into ``output_dir/checkpoint-<step>``.
    * ``on_train_begin``: when the trainer resumed (``global_step > 0``), reads it back from
      that checkpoint, then puts the dataset on the current stage.
    """

    def __init__(
        self,
        curriculum: Curriculum,
        dataset: StagedDataset | None = None,
        reward_key: str | None = "reward",
    ) -> None:
        self.curriculum = curriculum
        self.dataset = dataset
        self.reward_key = reward_key
        self._sync()

    def record(self, rewards: float | Sequence[float]) -> None:
        self.curriculum.record(rewards)

    def _sync(self) -> None:
        if self.dataset is not None:
            self.dataset.set_stage(self.curriculum.stage.name)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step > 0:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if self.curriculum.load(ckpt):
                logger.info(
                    "curriculum: resumed at stage %s from %s", self.curriculum.stage.name, ckpt
                )
        self._sync()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.curriculum.step():
            self._sync()

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs is None:
            return
        if self.reward_key is not None and self.reward_key in logs:
            self.curriculum.record(float(logs[self.reward_key]))

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():
            self.curriculum.save(ckpt)


@cache
def _callback_class() -> type:
    from transformers import TrainerCallback

    return type(
        "CurriculumCallback",
        (_CurriculumHooks, TrainerCallback),
        {"__doc__": _CurriculumHooks.__doc__, "__module__": __name__},
    )


def __getattr__(name: str) -> Any:
    """``CurriculumCallback``: the hooks above on transformers' ``TrainerCallback``, built on
    first use, so that importing this module (to validate a run config) does not import
    transformers and torch."""
    if name == "CurriculumCallback":
        return _callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
