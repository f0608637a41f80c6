import json

import numpy as np
import pytest

from tasks import get_task
from tasks.errors import DataFormatError
from tasks.lisa import Polygon, mask_box, rasterize, reasonseg_masks
from tests.tasks.fixtures import write_reasonseg


def test_val_uses_first_query_per_image_and_target_mask_box(tmp_path):
    root = write_reasonseg(tmp_path)
    task = get_task("reasonseg", root=root)
    samples = list(task.samples())
    assert [s.id for s in samples] == ["reasonseg-val-a1-0", "reasonseg-val-b2-0"]
    assert samples[0].query == "What could you sit on here?"
    # target square [10, 60] × [10, 50] filled with its outline: pixels 10..60 → edges 10..61
    assert samples[0].solution.boxes == [(10.0, 10.0, 61.0, 51.0)]
    assert samples[0].frame.image_size == (100, 80)
    assert samples[0].meta["is_sentence"] is True
    assert task.metrics == ["lisa_giou_ciou"] and task.reward == "virft_lisa"


def test_train_yields_every_query(tmp_path):
    root = write_reasonseg(tmp_path)
    assert [s.query for s in get_task("lisa", root=root, split="train").samples()] == [
        "q1",
        "q2",
        "q3",
    ]


def test_masks_ignore_region_and_largest_first_order(tmp_path):
    root = write_reasonseg(tmp_path)
    target, ignore = reasonseg_masks(root / "val" / "a1.json", (100, 80))
    assert ignore[25, 25] and not target[25, 25]  # the small ignore square sits on top
    assert target[45, 45] and not target[5, 5]  # 'flag' shapes are skipped
    assert ignore.sum() == 11 * 11
    # a big ignore region drawn first does not hide a small target inside it
    labels = rasterize(
        [
            Polygon("target", ((2, 2), (4, 2), (4, 4), (2, 4))),
            Polygon("ignore", ((0, 0), (9, 0), (9, 9), (0, 9))),
        ],
        (10, 10),
    )
    assert labels[3, 3] == 1 and labels[8, 8] == 255


def test_mask_box_pixel_edges():
    m = np.zeros((5, 6), bool)
    m[1:3, 2:5] = True
    assert mask_box(m) == (2.0, 1.0, 5.0, 3.0)
    assert mask_box(np.zeros((3, 3), bool)) is None


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"shapes": []}, r"a1.json: text: missing"),
        ({"text": [], "shapes": []}, r"a1.json: text: expected a non-empty list"),
        (
            {"text": ["q"], "shapes": [{"label": "target", "points": [[1, 2], [3, 4]]}]},
            r"shapes\[0\].points: a polygon needs >= 3",
        ),
        (
            {"text": ["q"], "shapes": [{"label": "target", "points": [[1, 2], [3, "x"], [5, 6]]}]},
            r"shapes\[0\].points\[1\]: expected a list of 2",
        ),
    ],
)
def test_malformed_json_names_file_and_field(tmp_path, doc, field):
    root = write_reasonseg(tmp_path)
    (root / "val" / "a1.json").write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=field):
        list(get_task("reasonseg", root=root).samples())
