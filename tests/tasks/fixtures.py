"""Small dataset fixtures written in the real on-disk formats."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from PIL import Image


def write_image(path: Path, size: tuple[int, int], color=(90, 120, 150)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def coco_instances() -> dict:
    """Two images, three categories (non-contiguous ids as in COCO), one crowd box."""
    return {
        "info": {"description": "fixture"},
        "images": [
            {"id": 42, "file_name": "000042.jpg", "width": 640, "height": 480},
            {"id": 7, "file_name": "000007.jpg", "width": 320, "height": 200},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 42,
                "category_id": 18,
                "bbox": [10, 20, 100, 50],
                "area": 5000,
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 42,
                "category_id": 1,
                "bbox": [200, 100, 40, 80],
                "area": 3200,
                "iscrowd": 0,
            },
            {
                "id": 3,
                "image_id": 42,
                "category_id": 1,
                "bbox": [0, 0, 640, 480],
                "area": 9e4,
                "iscrowd": 1,
            },
            {
                "id": 4,
                "image_id": 7,
                "category_id": 18,
                "bbox": [5.5, 6.5, 10, 20],
                "area": 200,
                "iscrowd": 0,
            },
            {
                "id": 5,
                "image_id": 7,
                "category_id": 18,
                "bbox": [50, 60, 30, 30],
                "area": 900,
                "iscrowd": 0,
            },
        ],
        "categories": [
            {"id": 1, "name": "person", "supercategory": "person"},
            {"id": 18, "name": "dog", "supercategory": "animal"},
            {"id": 90, "name": "toothbrush", "supercategory": "indoor"},
        ],
    }


def write_coco(root: Path, data: dict | None = None) -> Path:
    data = data or coco_instances()
    for img in data["images"]:
        write_image(root / "images" / img["file_name"], (img["width"], img["height"]))
    ann = root / "annotations" / "instances_val2017.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps(data))
    return ann


def write_refcoco(root: Path) -> tuple[Path, Path]:
    """refs(unc).p (protocol 2, like the original Python 2 release) + instances.json."""
    images = [
        {"id": 581857, "file_name": "COCO_train2014_000000581857.jpg", "width": 640, "height": 427}
    ]
    anns = [
        {
            "id": 1718,
            "image_id": 581857,
            "category_id": 1,
            "bbox": [103.93, 299.99, 134.22, 177.42],
            "area": 1,
            "iscrowd": 0,
        },
        {
            "id": 1719,
            "image_id": 581857,
            "category_id": 1,
            "bbox": [300.0, 50.0, 100.0, 100.0],
            "area": 1,
            "iscrowd": 0,
        },
    ]
    refs = [
        {
            "ref_id": 0,
            "ann_id": 1718,
            "image_id": 581857,
            "split": "val",
            "category_id": 1,
            "file_name": "COCO_train2014_000000581857_1718.jpg",
            "sentences": [
                {
                    "sent": "the lady with the blue shirt",
                    "raw": "THE lady with the blue shirt",
                    "tokens": [],
                    "sent_id": 0,
                },
                {
                    "sent": "lady with back to us",
                    "raw": "lady w back to us",
                    "tokens": [],
                    "sent_id": 1,
                },
            ],
            "sent_ids": [0, 1],
        },
        {
            "ref_id": 1,
            "ann_id": 1719,
            "image_id": 581857,
            "split": "testA",
            "category_id": 1,
            "file_name": "COCO_train2014_000000581857_1719.jpg",
            "sentences": [
                {"sent": "man on the right", "raw": "man on the right", "tokens": [], "sent_id": 2}
            ],
            "sent_ids": [2],
        },
    ]
    write_image(root / "images" / images[0]["file_name"], (640, 427))
    refs_path = root / "refcoco" / "refs(unc).p"
    refs_path.parent.mkdir(parents=True, exist_ok=True)
    refs_path.write_bytes(pickle.dumps(refs, protocol=2))
    inst = root / "refcoco" / "instances.json"
    inst.write_text(
        json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
        )
    )
    return refs_path, inst


def write_reasonseg(root: Path) -> Path:
    """ReasonSeg layout: <split>/<name>.jpg + <name>.json (labelme polygons)."""
    val = root / "val"
    write_image(val / "a1.jpg", (100, 80))
    (val / "a1.json").write_text(
        json.dumps(
            {
                "text": ["What could you sit on here?", "something to sit on"],
                "is_sentence": True,
                "shapes": [
                    {
                        "label": "target",
                        "points": [[10, 10], [60, 10], [60, 50], [10, 50]],
                        "shape_type": "polygon",
                    },
                    {
                        "label": "ignore",
                        "points": [[20, 20], [30, 20], [30, 30], [20, 30]],
                        "shape_type": "polygon",
                    },
                    {"label": "flag", "points": [[0, 0], [5, 0], [5, 5]], "shape_type": "polygon"},
                ],
            }
        )
    )
    write_image(val / "b2.jpg", (50, 40))
    (val / "b2.json").write_text(
        json.dumps(
            {
                "text": ["the thing that gives light"],
                "is_sentence": False,
                "shapes": [
                    {
                        "label": "target",
                        "points": [[5, 5], [15, 5], [10, 25]],
                        "shape_type": "polygon",
                    }
                ],
            }
        )
    )
    train = root / "train"
    write_image(train / "c3.jpg", (30, 30))
    (train / "c3.json").write_text(
        json.dumps(
            {
                "text": ["q1", "q2", "q3"],
                "shapes": [{"label": "target", "points": [[1, 1], [9, 1], [9, 9], [1, 9]]}],
            }
        )
    )
    return root
