"""Which reward a ``reward`` metric is the mean of: the spec's name and hash.

The mean aggregated reward of two runs is only comparable when both were scored with the same
reward spec: the DEVA harmonic reward lies in [0, 0.3] on DiG, ``dig``'s sum in [0, 3]. So the
metric is stored as ``reward[<spec name>]`` together with the spec's name and the hash of the
resolved spec (every default parameter written out), and the leaderboard refuses to rank rows
of one metric whose hashes differ.

* name: the preset name (``dig``, ``deva_detection``), or ``custom-<first 8 hex of the hash>``
  for an inline spec;
* hash: ``sha256(canonical JSON of the resolved spec)`` (64 hex digits). A preset the local
  code does not know (a newer reward service) is hashed as it was referenced.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from schemas.reward import RewardRef, RewardSpec

REWARD_METRIC = re.compile(r"^(?P<prefix>(?:.*/)?)reward(?:\[(?P<spec>[^\]]*)\])?$")
"""``reward``, ``dig/reward``, ``reward[dig]``, ``val/reward[custom-1a2b3c4d]``."""


@dataclass(frozen=True)
class RewardKey:
    """A reward spec's display name and content hash."""

    name: str
    hash: str

    def metric(self, prefix: str = "") -> str:
        """The stored metric name: ``{prefix}reward[{name}]``."""
        return f"{prefix}reward[{self.name}]"


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def reward_key(ref: RewardRef | dict[str, Any]) -> RewardKey:
    """The name and hash of a preset name, a :class:`RewardSpec` or its JSON form."""
    from services.reward.scoring import resolve_reward
    from services.reward.scoring.spec import SpecError

    if isinstance(ref, dict):
        ref = RewardSpec.model_validate(ref)
    try:
        resolved: Any = resolve_reward(ref).model_dump(mode="json")
    except SpecError:
        resolved = ref if isinstance(ref, str) else ref.model_dump(mode="json")
    digest = _digest(resolved)
    return RewardKey(ref if isinstance(ref, str) else f"custom-{digest[:8]}", digest)


def is_reward_metric(name: str) -> bool:
    """Whether ``name`` is a mean-reward metric (bare or keyed by its spec)."""
    return REWARD_METRIC.match(name) is not None


def key_reward_metrics(
    metrics: list[dict[str, Any]], reward: RewardRef | dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Name each mean-reward metric after ``reward`` (the run's reward reference) and fill in
    its spec name and hash; other metrics pass unchanged.

    ``reward`` → ``reward[<spec>]``; a metric already keyed ``reward[<x>]`` keeps its name and
    gets the hash only when ``x`` is the run's spec. Without a reward reference nothing changes.
    """
    if reward is None:
        return metrics
    try:
        key = reward_key(reward)
    except ValueError:  # not a valid spec: leave the metrics as sent
        return metrics
    out = []
    for m in metrics:
        match = REWARD_METRIC.match(str(m.get("name", "")))
        if match is None or m.get("reward_spec_hash"):
            out.append(m)
            continue
        spec = match.group("spec")
        if spec is None:
            m = {**m, "name": key.metric(match.group("prefix"))}
            spec = key.name
        if spec == key.name:
            m = {**m, "reward_spec": key.name, "reward_spec_hash": key.hash}
        else:
            m = {**m, "reward_spec": m.get("reward_spec") or spec}
        out.append(m)
    return out
