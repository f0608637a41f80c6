"""Request size limits (HTTP 413), checked before any scoring. Pure functions."""

from __future__ import annotations

from schemas.reward import BoxSolution, Group, Sample, Solution
from services.reward.settings import RewardSettings


class LimitExceeded(Exception):
    """A request larger than a configured limit; the message names the limit and its env var."""


def _over(text: str, limit: int, env: str) -> LimitExceeded:
    return LimitExceeded(f"{text}; the limit is {limit} (PRL_REWARD_{env})")


def _check_solution(where: str, solution: Solution, s: RewardSettings) -> None:
    if isinstance(solution, BoxSolution) and len(solution.boxes) > s.max_boxes:
        raise _over(f"{where}.solution has {len(solution.boxes)} boxes", s.max_boxes, "MAX_BOXES")


def _check_text(where: str, text: str, s: RewardSettings) -> None:
    if len(text) > s.max_completion_chars:
        raise _over(
            f"{where} has {len(text)} characters", s.max_completion_chars, "MAX_COMPLETION_CHARS"
        )


def check_samples(samples: list[Sample], s: RewardSettings) -> None:
    """Samples per request, completion length and GT boxes of a ``/v1/score`` request."""
    if len(samples) > s.max_samples:
        raise _over(f"request has {len(samples)} samples", s.max_samples, "MAX_SAMPLES")
    for i, sample in enumerate(samples):
        _check_text(f"samples[{i}].completion", sample.completion, s)
        _check_solution(f"samples[{i}]", sample.solution, s)


def check_groups(groups: list[Group], s: RewardSettings) -> None:
    """Completions per request, group size, completion length and GT boxes of a groups request."""
    total = sum(len(g.completions) for g in groups)
    if total > s.max_samples:
        raise _over(f"request has {total} completions", s.max_samples, "MAX_SAMPLES")
    for i, g in enumerate(groups):
        if len(g.completions) > s.max_group_size:
            raise _over(
                f"groups[{i}] has {len(g.completions)} completions",
                s.max_group_size,
                "MAX_GROUP_SIZE",
            )
        for j, text in enumerate(g.completions):
            _check_text(f"groups[{i}].completions[{j}]", text, s)
        _check_solution(f"groups[{i}]", g.solution, s)


def request_limits(s: RewardSettings) -> dict[str, int]:
    """What ``GET /v1/limits`` answers: every per-request limit, by the settings' names."""
    return {
        "max_samples": s.max_samples,
        "max_group_size": s.max_group_size,
        "max_completion_chars": s.max_completion_chars,
        "max_boxes": s.max_boxes,
        "max_body_bytes": s.max_body_bytes,
    }
