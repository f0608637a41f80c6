"""A Hugging Face ``datasets.Dataset`` view of a task, in the layout TRL's GRPOTrainer reads.

Columns (TRL 1.16 ``GRPOTrainer._generate_and_score_completions`` takes ``images`` — a list per
row — when the dataset has that column, else ``image``; ``_set_signature_columns_if_needed``
keeps ``prompt``, ``image`` and ``images``; every other column reaches the reward functions as a
keyword argument):

* ``prompt``: conversational messages; every ``content`` is a list of typed parts and the user
  turn holds one ``{"type": "image"}`` placeholder per image, which TRL fills in order;
* ``image`` (single-image tasks) or ``images`` (DiG: ``[A, B]``): ``datasets.Image`` features
  built from the files, so rows decode to PIL images;
* ``solution``, ``frame``: JSON strings of :class:`~schemas.reward.BoxSolution` /
  :class:`~schemas.reward.LabelSolution` and :class:`~schemas.geometry.Frame` (wire format of
  the reward service);
* ``query`` (``""`` when the task has none) and ``id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tasks.registry import Task

if TYPE_CHECKING:
    import datasets


def hf_rows(task: Task, split: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Rows of the view and whether any sample has more than one image."""
    rows, multi = [], False
    for sample in task.samples(split):
        multi = multi or len(sample.images) > 1
        rows.append(
            {
                "id": sample.id,
                "prompt": task.messages(sample),
                "images": list(sample.images),
                "solution": sample.solution.model_dump_json(exclude_none=True),
                "frame": sample.frame.model_dump_json(exclude_none=True),
                "query": sample.query or "",
            }
        )
    return rows, multi


def to_hf_dataset(task: Task, split: str | None = None) -> datasets.Dataset:
    """The task's ``split`` as a ``datasets.Dataset`` for TRL (see the module docstring)."""
    import datasets

    rows, multi = hf_rows(task, split)
    image_feature = datasets.Image()
    columns: dict[str, list[Any]] = {
        key: [row[key] for row in rows] for key in ("id", "prompt", "solution", "frame", "query")
    }
    if multi:
        columns["images"] = [row["images"] for row in rows]
        features = {"images": datasets.Sequence(image_feature)}
    else:
        columns["image"] = [row["images"][0] for row in rows]
        features = {"image": image_feature}
    ds = datasets.Dataset.from_dict(columns)
    for name, feature in features.items():
        ds = ds.cast_column(name, feature)
    return ds
