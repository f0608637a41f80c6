import json

import pytest

from tasks import get_task
from tasks.errors import DataFormatError
from tasks.hf import to_hf_dataset
from tests.tasks.fixtures import coco_instances, write_coco


@pytest.fixture
def coco(tmp_path):
    return tmp_path, write_coco(tmp_path)


def test_detection_samples_convert_xywh_and_drop_crowd(coco):
    root, ann = coco
    task = get_task("coco_detection", root=root / "images", ann_file=ann)
    by_id = {s.id: s for s in task.samples()}
    assert set(by_id) == {"coco-7", "coco-42"}
    s = by_id["coco-42"]
    assert [list(b) for b in s.solution.boxes] == [[10, 20, 110, 70], [200, 100, 240, 180]]
    assert s.solution.labels == ["dog", "person"]  # the crowd person is not a target
    assert s.frame.image_size == (640, 480) and s.frame.coords == "pixel"
    assert s.images == [str(root / "images" / "000042.jpg")]
    assert "person" in s.prompt and "toothbrush" in s.prompt
    assert task.metrics == ["coco_map"]
    assert s.meta["areas"] == [5000, 3200] and s.meta["iscrowd"] == [0, 0]


def test_include_crowd_keeps_crowd_boxes_flagged_for_cocoeval(coco):
    root, ann = coco
    task = get_task("coco_detection", root=root, ann_file=ann, include_crowd=True)
    s = next(s for s in task.samples() if s.id == "coco-42")
    assert s.meta["iscrowd"] == [0, 0, 1] and s.meta["areas"] == [5000, 3200, 9e4]
    assert list(s.solution.boxes[2]) == [0, 0, 640, 480]


def test_detection_category_subset(coco):
    root, ann = coco
    task = get_task("coco_detection", root=root / "images", ann_file=ann, categories=["dog"])
    s = next(s for s in task.samples() if s.id == "coco-7")
    assert [list(b) for b in s.solution.boxes] == [[5.5, 6.5, 15.5, 26.5], [50, 60, 80, 90]]
    assert "person" not in s.prompt
    with pytest.raises(ValueError, match="no category named 'cat'"):
        list(get_task("coco_detection", root=root, ann_file=ann, categories=["cat"]).samples())


def test_fewshot_defaults_to_gt_exist_map_norm1000_and_confidence_prompt(coco):
    root, ann = coco
    task = get_task(
        "coco_fewshot", root=root / "images", ann_file=ann, categories=["person", "dog"]
    )
    ids = [s.id for s in task.samples()]
    assert ids == ["coco-7-18", "coco-42-1", "coco-42-18"]  # image order, then category order
    s = next(iter(task.samples()))
    assert s.frame.coords == "norm1000" and s.frame.image_size == (320, 200)
    assert "Confidence" in s.prompt and "0 to 1000" in s.prompt and "No Objects" in s.prompt
    assert s.query == "dog" and s.solution.labels == ["dog", "dog"]
    assert task.metrics[0] == "virft_fewshot_ap" and task.reward == "virft_detection"


def test_fewshot_exist_map_may_ask_for_absent_categories(coco, tmp_path):
    root, ann = coco
    exist = tmp_path / "exist_map.json"
    exist.write_text(json.dumps({"42": ["person", "toothbrush"], "000007.jpg": ["dog"]}))
    task = get_task(
        "coco_fewshot",
        root=root,
        ann_file=ann,
        exist_map=exist,
        categories=["person", "dog", "toothbrush"],
    )
    samples = {s.id: s for s in task.samples()}
    assert set(samples) == {"coco-7-18", "coco-42-1", "coco-42-90"}
    assert samples["coco-42-90"].solution.boxes == []  # absent category: empty solution
    exist.write_text(json.dumps({"42": ["unicorn"]}))
    with pytest.raises(
        DataFormatError, match=r"exist_map.json: 42: unknown categories \['unicorn'\]"
    ):
        list(task.samples())


def test_kshot_subsets_are_seeded_and_have_k_images_per_category(tmp_path):
    data = coco_instances()
    data["images"] = [
        {"id": i, "file_name": f"{i}.jpg", "width": 50, "height": 50} for i in range(1, 21)
    ]
    data["annotations"] = [
        {
            "id": i,
            "image_id": i,
            "category_id": 18 if i % 2 else 1,
            "bbox": [1, 1, 5, 5],
            "iscrowd": 0,
        }
        for i in range(1, 21)
    ]
    ann = tmp_path / "inst.json"
    ann.write_text(json.dumps(data))
    pairs = get_task(
        "coco_fewshot", root=tmp_path, ann_file=ann, shots=4, seed=1, categories=["dog", "person"]
    ).pairs()
    assert len(pairs) == 8
    assert sum(c == 18 for _, c in pairs) == 4 and all(i % 2 == 1 for i, c in pairs if c == 18)
    again = get_task(
        "coco_fewshot", root=tmp_path, ann_file=ann, shots=4, seed=1, categories=["dog", "person"]
    ).pairs()
    other = get_task(
        "coco_fewshot", root=tmp_path, ann_file=ann, shots=4, seed=2, categories=["dog", "person"]
    ).pairs()
    assert pairs == again and pairs != other


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda d: d["annotations"][3].update(bbox=[1, 2, -3, 4]),
            r"annotations\[3\].bbox: expected \[x, y, w, h\]",
        ),
        (
            lambda d: d["annotations"][0].update(image_id=999),
            r"annotations\[0\].image_id: no image with id 999",
        ),
        (
            lambda d: d["annotations"][1].update(category_id=5),
            r"annotations\[1\].category_id: no category",
        ),
        (lambda d: d["images"][1].pop("file_name"), r"images\[1\].file_name: missing"),
        (lambda d: d["images"][0].update(width="640"), r"images\[0\].width: expected an integer"),
        (lambda d: d.pop("categories"), r"categories: missing"),
        (
            lambda d: d["annotations"][2].update(area="big"),
            r"annotations\[2\].area: expected a number",
        ),
    ],
)
def test_malformed_instances_name_file_and_field(tmp_path, mutate, field):
    data = coco_instances()
    mutate(data)
    ann = tmp_path / "bad_instances.json"
    ann.write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match=r"bad_instances.json: " + field):
        list(get_task("coco_detection", root=tmp_path, ann_file=ann).samples())


def test_invalid_json_and_missing_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(DataFormatError, match=r"x.json: <json>: not valid JSON"):
        list(get_task("coco_detection", root=tmp_path, ann_file=bad).samples())
    with pytest.raises(DataFormatError, match=r"nope.json: <file>: file not found"):
        list(get_task("coco_detection", root=tmp_path, ann_file=tmp_path / "nope.json").samples())


def test_content_hash_follows_file_bytes(coco):
    root, ann = coco
    h1 = get_task("coco_detection", root=root, ann_file=ann).content_hash()
    data = coco_instances()
    data["annotations"][0]["bbox"] = [11, 20, 100, 50]
    ann.write_text(json.dumps(data))
    assert get_task("coco_detection", root=root, ann_file=ann).content_hash() != h1


def test_hf_view_single_image_column(coco):
    root, ann = coco
    ds = to_hf_dataset(get_task("coco_detection", root=root / "images", ann_file=ann))
    assert "image" in ds.column_names and "images" not in ds.column_names
    row = ds[0]
    assert row["image"].size == (640, 480) or row["image"].size == (320, 200)
    user = row["prompt"][1]["content"]
    assert [p["type"] for p in user] == ["image", "text"]
    assert json.loads(row["solution"])["labels"]
