"""Task registry: a task = sample loader + prompt + answer format + reward preset + metrics.

``get_task(name, **options)`` builds a registered task (``dig``, ``coco_detection``,
``coco_fewshot``, ``classification``, ``refcoco``, ``reasonseg``); ``tasks.hf.to_hf_dataset``
gives the TRL view.
"""

from schemas.tasks import TaskSample
from tasks.registry import Task, get_task, task_names, tasks

__all__ = ["Task", "TaskSample", "get_task", "task_names", "tasks"]
