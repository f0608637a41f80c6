"""SFT / SFT-CoT completions of DiG samples: label-exact against the manifest, scored by ``dig``."""

from __future__ import annotations

import json
import re

import pytest

from schemas.reward import Sample
from services.reward.scoring import score_samples
from tasks import get_task
from tasks.dig import generate
from tasks.dig.scene import COLORS, MATERIALS, SHAPES, SIZES
from tasks.dig.traces import PLAIN_THINK, location_phrase, sft_completion

VOCAB = {*COLORS, *MATERIALS, *SHAPES, *SIZES}
VERB = {
    "color": "is now",
    "size": "is now",
    "material": "is now",
    "shape": "is now",
    "add": "appeared",
    "remove": "is gone",
    "move": "moved",
}


@pytest.fixture(scope="module", params=[(0, (96, 72)), (1, (64, 64)), (7, (120, 80))])
def root(request, tmp_path_factory):
    seed, size = request.param
    out = tmp_path_factory.mktemp(f"digtraces{seed}")
    generate(out, 9, seed=seed, split="all", size=size, progress=False)  # K = 1, 2 and 1..5
    return out


def _manifest(root) -> dict[str, dict]:
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    return {r["id"]: r for r in rows}


def _third(v: float, n: float) -> int:
    return min(int(3 * v / n), 2)


def _expected_where(box: list[float], size: list[int]) -> set[str]:
    """Location words by hand: the thirds holding the box centre."""
    col = _third((box[0] + box[2]) / 2, size[0])
    row = _third((box[1] + box[3]) / 2, size[1])
    words = {("top", "", "bottom")[row], ("left", "", "right")[col]} - {""}
    return words or {"centre"}


def _score(sample, completion: str):
    wire = Sample(id=sample.id, completion=completion, solution=sample.solution, frame=sample.frame)
    (res,) = score_samples([wire], "dig")
    return res


def test_cot_traces_are_exact_against_the_manifest(root) -> None:
    rows = _manifest(root)
    ks = set()
    for sample in get_task("dig", root=root).samples():
        row = rows[sample.id]
        diffs = row["differences"]
        ks.add(len(diffs))
        text = sft_completion(sample, cot=True)
        think = re.fullmatch(r"<think>(.*)</think><answer>(.*)</answer>", text).group(1)
        count = re.search(r"I find (\d+) differences?\.", think)
        assert int(count.group(1)) == len(diffs) == len(row["boxes"])
        items = re.split(r"\s\d+\. ", " " + think.split(". ", 1)[1])[1:]
        assert len(items) == len(diffs)
        for item, d in zip(items, diffs, strict=True):
            words = set(re.findall(r"[a-z]+", item.lower()))
            obj = d["object"]
            want = {obj["size"], obj["color"], obj["material"], obj["shape"]}
            if d["kind"] in ("color", "size", "material", "shape"):
                attr = d["kind"]
                assert obj[attr] == d["before"][attr]  # the object as it was in A
                want.add(d["after"][attr])
            assert words & VOCAB == want, (item, d)
            assert VERB[d["kind"]] in item
            assert not ({"appeared", "gone", "moved", "now"} - set(VERB[d["kind"]].split())) & words
            assert words & {"top", "bottom", "left", "right", "centre"} == _expected_where(
                d["box"], row["size"]
            )
    assert len(ks) >= 2  # several K per data set


@pytest.mark.parametrize("cot", [True, False])
def test_dig_preset_scores_the_gold_completion_perfectly(root, cot: bool) -> None:
    for sample in get_task("dig", root=root).samples():
        text = sft_completion(sample, cot=cot)
        if not cot:
            assert text.startswith(f"<think>{PLAIN_THINK}</think><answer>")
        res = _score(sample, text)
        assert res.error is None
        assert res.components == {"format": 1.0, "f1": 1.0, "miou": 1.0}
        assert res.reward == 3.0


@pytest.mark.parametrize("coords", ["norm1000", "norm1", "input"])
def test_other_frames_answer_in_their_own_units(root, coords: str) -> None:
    for sample in get_task("dig", root=root, coords=coords).samples():
        text = sft_completion(sample, cot=True)
        boxes = [b["bbox_2d"] for b in json.loads(text.split("<answer>")[1][: -len("</answer>")])]
        limit = 1.0 if coords == "norm1" else 1000 if coords == "norm1000" else None
        if limit is not None:
            assert all(0 <= v <= limit for b in boxes for v in b)
        if coords != "norm1":
            assert all(isinstance(v, int) for b in boxes for v in b)
        res = _score(sample, text)
        assert res.components["format"] == 1.0 and res.components["f1"] == 1.0
        # rounding to the frame's units: ≤ half a unit per side (input pixels can be coarser
        # than image pixels on these tiny images)
        assert res.components["miou"] >= (0.8 if coords == "input" else 0.95)


def test_location_phrases() -> None:
    size = (90, 60)
    assert location_phrase([0, 0, 10, 10], size) == "at the top left"
    assert location_phrase([40, 25, 50, 35], size) == "in the centre"
    assert location_phrase([80, 25, 90, 35], size) == "on the right"
    assert location_phrase([40, 50, 50, 60], size) == "at the bottom"


def test_old_manifest_without_objects_is_refused_for_cot(root) -> None:
    sample = next(get_task("dig", root=root, split="single").samples())
    diffs = [{k: v for k, v in d.items() if k != "object"} for d in sample.meta["differences"]]
    old = sample.model_copy(update={"meta": {**sample.meta, "differences": diffs}})
    if diffs[0]["kind"] in ("add", "remove"):  # before/after hold the whole object
        assert "1 difference" in sft_completion(old, cot=True)
    else:
        with pytest.raises(ValueError, match="regenerate"):
            sft_completion(old, cot=True)
    assert sft_completion(old).startswith("<think>")  # the plain trace needs only the boxes
