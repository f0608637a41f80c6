import json

import pytest

from schemas.reward import LabelSolution
from tasks import get_task
from tasks.errors import DataFormatError
from tests.tasks.fixtures import write_image


def test_image_folder_with_class_names_and_synonyms(tmp_path):
    write_image(tmp_path / "test" / "001" / "a.jpg", (30, 20))
    write_image(tmp_path / "test" / "002" / "b.png", (40, 40))
    write_image(tmp_path / "test" / "002" / "c.jpg", (40, 40))
    (tmp_path / "test" / "002" / "notes.txt").write_text("not an image")
    (tmp_path / "classes.json").write_text(
        json.dumps(
            {"001": "pink primrose", "002": {"name": "globe thistle", "synonyms": ["echinops"]}}
        )
    )
    task = get_task("classification", root=tmp_path, split="test", domain="flower")
    samples = list(task.samples())
    assert [s.solution.label for s in samples] == [
        "pink primrose",
        "globe thistle",
        "globe thistle",
    ]
    assert samples[1].solution == LabelSolution(label="globe thistle", synonyms=["echinops"])
    assert samples[0].frame.image_size == (30, 20)
    assert "flower" in samples[0].prompt and task.metrics == ["accuracy"]
    assert task.reward == "virft_classification"


def test_csv_list_and_choices(tmp_path):
    write_image(tmp_path / "img" / "x.jpg", (10, 10))
    write_image(tmp_path / "img" / "y.jpg", (10, 10))
    (tmp_path / "val.csv").write_text("image,label\nimg/x.jpg,boeing_737\nimg/y.jpg,airbus_a320\n")
    task = get_task(
        "classification", root=tmp_path, split="val", domain="aircraft", show_choices=True
    )
    samples = list(task.samples())
    assert [s.solution.label for s in samples] == ["boeing 737", "airbus a320"]
    assert "Choose from: airbus a320; boeing 737." in samples[0].prompt
    assert "val" in task.splits()


def test_json_list(tmp_path):
    write_image(tmp_path / "p.jpg", (12, 8))
    (tmp_path / "train.json").write_text(json.dumps([{"image": "p.jpg", "label": 3}]))
    (tmp_path / "classes.json").write_text(json.dumps({"3": "abyssinian"}))
    s = next(get_task("classification", root=tmp_path, split="train").samples())
    assert s.solution.label == "abyssinian" and s.meta["label"] == "3"


def test_malformed_lists_name_file_and_field(tmp_path):
    (tmp_path / "val.csv").write_text("path,label\nx.jpg,a\n")
    with pytest.raises(DataFormatError, match=r"val.csv: <header>: missing columns \['image'\]"):
        list(get_task("classification", root=tmp_path, split="val").samples())
    (tmp_path / "test.json").write_text(json.dumps([{"image": "x.jpg"}]))
    with pytest.raises(DataFormatError, match=r"test.json: \[0\].label: missing"):
        list(get_task("classification", root=tmp_path, split="test").samples())
    write_image(tmp_path / "x.jpg", (5, 5))
    (tmp_path / "test.json").write_text(json.dumps([{"image": "x.jpg", "label": "a"}]))
    (tmp_path / "classes.json").write_text(json.dumps({"b": {"synonyms": []}}))
    with pytest.raises(DataFormatError, match=r"classes.json: b.name: missing"):
        list(get_task("classification", root=tmp_path, split="test").samples())
    (tmp_path / "classes.json").write_text(json.dumps({"b": "bee"}))
    with pytest.raises(
        DataFormatError, match=r"classes.json: a: label used by the data but not listed"
    ):
        list(get_task("classification", root=tmp_path, split="test").samples())
