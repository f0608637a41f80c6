import pickle

import pytest

from tasks import get_task
from tasks.errors import DataFormatError, UnknownSplitError
from tests.tasks.fixtures import write_refcoco


def test_one_sample_per_sentence_with_ann_box(tmp_path):
    refs, inst = write_refcoco(tmp_path)
    task = get_task("refcoco", root=tmp_path / "images", refs_file=refs, instances_file=inst)
    samples = list(task.samples())
    assert [s.id for s in samples] == ["refcoco-val-0-0", "refcoco-val-0-1"]
    assert [s.query for s in samples] == ["the lady with the blue shirt", "lady with back to us"]
    box = samples[0].solution.boxes[0]
    assert box == pytest.approx((103.93, 299.99, 238.15, 477.41))
    assert samples[0].frame.image_size == (640, 427)
    assert '"the lady with the blue shirt"' in samples[0].prompt
    assert task.metrics == ["refcoco_acc50"] and task.reward == "vlmr1_rec"
    assert [s.query for s in task.samples("testA")] == ["man on the right"]
    assert task.splits() == ["testA", "val"]
    with pytest.raises(UnknownSplitError):
        list(task.samples("testB"))


def test_pickle_with_classes_is_refused(tmp_path):
    refs, inst = write_refcoco(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    refs.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(DataFormatError, match=r"refs\(unc\).p: <pickle>: not a plain-data pickle"):
        list(get_task("refcoco", root=tmp_path, refs_file=refs, instances_file=inst).samples())


def test_malformed_refs_and_dangling_ids(tmp_path):
    refs, inst = write_refcoco(tmp_path)
    data = pickle.loads(refs.read_bytes())
    del data[1]["sentences"][0]["sent"]
    refs.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(DataFormatError, match=r"\[1\].sentences\[0\].sent: missing"):
        list(get_task("refcoco", root=tmp_path, refs_file=refs, instances_file=inst).samples())
    data[1]["sentences"][0]["sent"] = "x"
    data[0]["ann_id"] = 5
    refs.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(DataFormatError, match=r"\[0\].ann_id: annotation 5 not in instances.json"):
        list(get_task("refcoco", root=tmp_path, refs_file=refs, instances_file=inst).samples())
