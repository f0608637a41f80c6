import json

import pytest

from schemas.reward import BoxSolution
from tasks import get_task
from tasks.dig import generate
from tasks.errors import DataFormatError, UnknownSplitError
from tasks.hf import to_hf_dataset


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("digtask")
    generate(out, 9, seed=3, split="all", progress=False)
    return out


def test_stage_filter_and_sample_fields(root):
    task = get_task("dig", root=root, split="dual")
    samples = list(task.samples())
    assert [s.id for s in samples] == ["dual-000000", "dual-000001", "dual-000002"]
    s = samples[0]
    assert len(s.images) == 2 and s.images[0].endswith("_a.png") and s.images[1].endswith("_b.png")
    assert isinstance(s.solution, BoxSolution) and len(s.solution.boxes) == 2
    assert s.frame.coords == "pixel" and s.frame.image_size == (320, 240)
    assert "not known" in s.prompt and "2" not in s.prompt.split("differences there are")[0][-5:]
    assert task.reward == "dig" and task.metrics == ["dig_f1_miou"]
    assert len(list(get_task("dig", root=root).samples())) == 9


def test_norm1000_frame_changes_prompt_and_frame(root):
    task = get_task("dig", root=root, split="single", coords="norm1000")
    s = next(task.samples())
    assert s.frame.coords == "norm1000" and s.frame.image_size == (320, 240)
    assert "0 to 1000" in s.prompt


def test_messages_have_two_image_placeholders_then_text(root):
    task = get_task("dig", root=root, split="single")
    s = next(task.samples())
    system, user = task.messages(s)
    assert system["role"] == "system" and "<think>" in system["content"][0]["text"]
    assert [p["type"] for p in user["content"]] == ["image", "image", "text"]
    assert user["content"][2]["text"] == s.prompt


def test_content_hash_tracks_data_and_options(root, tmp_path):
    a = get_task("dig", root=root, split="single").content_hash()
    assert a == get_task("dig", root=root, split="single").content_hash()
    assert a != get_task("dig", root=root, split="single", coords="norm1000").content_hash()
    generate(tmp_path, 9, seed=4, split="all", progress=False)
    assert a != get_task("dig", root=tmp_path, split="single").content_hash()


def test_unknown_partition_names_the_known_ones(root):
    with pytest.raises(UnknownSplitError, match="available: dual, mixed, single, train"):
        list(get_task("dig", root=root).samples("val"))


def test_stage_names_work_as_splits_for_curricula(root):
    task = get_task("dig", root=root)
    assert [s.id for s in task.samples("single")] == [f"single-00000{i}" for i in range(3)]
    assert {s.meta["stage"] for s in task.samples("mixed")} == {"mixed"}


def test_malformed_manifest_names_file_line_and_field(tmp_path, root):
    (tmp_path / "images").symlink_to(root / "images")
    rows = (root / "manifest.jsonl").read_text().splitlines()
    bad = json.loads(rows[1])
    bad["boxes"][0] = [10, 10, 5, 20]  # x2 < x1
    (tmp_path / "manifest.jsonl").write_text("\n".join([rows[0], json.dumps(bad)]) + "\n")
    with pytest.raises(DataFormatError, match=r"manifest.jsonl: line 2.boxes\[0\]: expected"):
        list(get_task("dig", root=tmp_path).samples())
    del bad["image_b"]
    (tmp_path / "manifest.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(DataFormatError, match=r"line 1.image_b: missing"):
        list(get_task("dig", root=tmp_path).samples())


def test_hf_view_is_what_trl_expects(root):
    from trl.data_utils import prepare_multimodal_messages

    ds = to_hf_dataset(get_task("dig", root=root, split="mixed"))
    assert set(ds.column_names) == {"id", "prompt", "images", "solution", "frame", "query"}
    row = ds[0]
    assert len(row["images"]) == 2 and row["images"][1].size == (320, 240)
    assert BoxSolution.model_validate_json(row["solution"]).boxes
    assert json.loads(row["frame"]) == {"coords": "pixel", "image_size": [320, 240]}
    filled = prepare_multimodal_messages(row["prompt"], images=row["images"])
    parts = filled[1]["content"]
    assert [p["image"] is row["images"][i] for i, p in enumerate(parts[:2])] == [True, True]


def test_missing_image_file_is_named(tmp_path, root):
    row = json.loads((root / "manifest.jsonl").read_text().splitlines()[0])
    (tmp_path / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DataFormatError, match=r"line 1.image_a: image file not found"):
        list(get_task("dig", root=tmp_path).samples())
