import pytest

from schemas.geometry import Frame
from schemas.tasks import TaskSample
from services.common.registry import UnknownNameError
from tasks import Task, get_task, task_names
from tasks.frames import smart_resize
from tasks.prompts import chat_messages, coordinate_sentence


def test_builtin_tasks_are_registered():
    assert {
        "dig",
        "coco_detection",
        "coco_fewshot",
        "classification",
        "refcoco",
        "reasonseg",
        "lisa",
    } <= set(task_names())


def test_unknown_task_suggests_close_names():
    with pytest.raises(UnknownNameError, match="did you mean 'refcoco'"):
        get_task("refcoc", root=".")


def test_task_instances_satisfy_the_protocol(tmp_path):
    from tasks.dig import generate

    generate(tmp_path, 1, split="single", progress=False)
    assert isinstance(get_task("dig", root=tmp_path), Task)


def test_smart_resize_hand_values():
    assert smart_resize(320, 240) == (308, 252)  # round(11.43)=11, round(8.57)=9 patches of 28
    assert smart_resize(4000, 3000) == (1148, 840)  # β = √(12e6/1003520) ≈ 3.458 → floor
    assert smart_resize(20, 20) == (56, 56)  # below min_pixels 3136: β = √(3136/400) = 2.8 → ceil
    w, h = smart_resize(1920, 1080)
    assert w % 28 == 0 and h % 28 == 0 and w * h <= 28 * 28 * 1280


def test_coordinate_sentences_per_frame():
    assert "320 wide, 240 high" in coordinate_sentence(Frame(coords="pixel", image_size=(320, 240)))
    assert "0 to 1000" in coordinate_sentence(Frame(coords="norm1000", image_size=(3, 3)))
    assert "0 to 1" in coordinate_sentence(Frame(coords="norm1", image_size=(3, 3)))
    s = coordinate_sentence(Frame(coords="input", image_size=(320, 240), input_size=(308, 252)))
    assert "308×252" in s


def test_chat_messages_are_arrow_friendly():
    msgs = chat_messages(2, "hi")
    assert all(isinstance(m["content"], list) for m in msgs)
    assert [p["type"] for p in msgs[1]["content"]] == ["image", "image", "text"]


def test_task_sample_rejects_empty_images():
    with pytest.raises(ValueError):
        TaskSample(id="x", images=[], prompt="p", solution={"boxes": []})
