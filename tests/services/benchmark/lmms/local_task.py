"""A POPE-style yes/no lmms-eval task on local files, written for the tests.

lmms-eval's tasks download their data from the Hugging Face hub, which these machines cannot
reach; a task YAML may instead read local JSON (``dataset_path: json`` with
``dataset_kwargs.data_files``). Each document names a PNG on disk, which ``doc_to_visual``
opens; the metric is lmms-eval's own ``exact_match`` (mean over documents).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

TASK = "prl_yesno_local"

UTILS = """\
from PIL import Image


def doc_to_visual(doc):
    with Image.open(doc["image"]) as im:
        return [im.convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"] + "\\nAnswer with yes or no."
"""

YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
generation_kwargs:
  max_new_tokens: 4
  temperature: 0
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: {version}
"""

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}


def make_docs(root: Path, n: int) -> list[dict]:
    """``n`` documents: a 56×56 single-colour PNG each and "Is the image <colour>?"."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    names = list(COLOURS)
    docs = []
    for i in range(n):
        shown, asked = names[i % 3], names[(i // 3 + i) % 3]
        path = root / f"img{i}.png"
        Image.new("RGB", (56, 56), COLOURS[shown]).save(path)
        docs.append(
            {
                "question_id": i,
                "image": str(path),
                "question": f"Is the image {asked}?",
                "answer": "yes" if shown == asked else "no",
            }
        )
    return docs


def write_task(task_dir: Path, docs: Sequence[dict], *, version: str = "1.0") -> Path:
    """The task's YAML, ``utils.py`` and JSON data under ``task_dir`` (an --include-path)."""
    task_dir.mkdir(parents=True, exist_ok=True)
    data = task_dir / "docs.json"
    data.write_text(json.dumps(list(docs)))
    (task_dir / "utils.py").write_text(UTILS)
    (task_dir / f"{TASK}.yaml").write_text(YAML.format(task=TASK, data=data, version=version))
    return task_dir
