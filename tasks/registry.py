"""The task registry: a task = sample loader + prompt + answer format + reward preset + metrics.

Tasks register a *factory* (usually the task class) under a name, the way
lm-evaluation-harness registers tasks; :func:`get_task` builds one with options::

    task = get_task("dig", root="data/dig", split="single")
    for sample in task.samples():
        messages = task.messages(sample)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

from schemas.tasks import TaskSample
from services.common.registry import Registry


@runtime_checkable
class Task(Protocol):
    """What the trainer and the benchmark runner need from a task.

    * ``reward``: a reward preset name of the reward service (``"dig"``, ``"virft_detection"``…).
    * ``metrics``: metric names the benchmark runner resolves (``"coco_map"``, ``"dig_f1_miou"``…).
    * ``samples(split)``: typed samples; ``None`` means the task's default split.
    * ``messages(sample)``: chat messages with one ``{"type": "image"}`` placeholder per image.
    * ``content_hash()``: hex SHA-256 over the data files, options and prompt template: the
      dataset version recorded with every result.
    """

    name: str
    version: str
    reward: str
    metrics: list[str]

    def samples(self, split: str | None = None) -> Iterator[TaskSample]: ...

    def messages(self, sample: TaskSample) -> list[dict[str, Any]]: ...

    def content_hash(self) -> str: ...


TaskFactory = Callable[..., Task]

tasks: Registry[TaskFactory] = Registry(
    "task",
    builtins=(
        "tasks.dig.task",
        "tasks.coco",
        "tasks.classification",
        "tasks.refcoco",
        "tasks.lisa",
    ),
)


def get_task(name: str, /, **options: Any) -> Task:
    """Build the registered task ``name`` with its options (paths, split, frame…).

    Options are checked against the task's parameters first
    (:func:`tasks.options.check_task_options`): an unknown one is refused with the closest
    name, never kept and ignored."""
    from tasks.options import check_task_options

    factory = tasks.get(name)
    check_task_options(name, factory, options)
    return factory(**options)


def task_names() -> list[str]:
    """Names of every registered task."""
    return tasks.names()
