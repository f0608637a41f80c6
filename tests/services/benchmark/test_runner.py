"""run_benchmark on the real DiG task: metrics, resume without double counting, frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from schemas.geometry import Frame
from schemas.tasks import TaskSample
from services.benchmark.adapters import GenerationRequest, get_adapter
from services.benchmark.runner import RunOptions, resolve_frame, run_benchmark
from services.benchmark.scoring import InProcessScorer
from services.benchmark.store import MemoryRunStore, SqlRunStore


def expected_dig(task) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Hand-derived from the prediction pattern of conftest.write_predictions.

    all boxes: F1 = mIoU = 1; only the first of k: P = 1, R = 1/k, F1 = 2/(1 + k), mIoU = 1/k;
    unparseable: 0 and 0.
    """
    f1, miou = [], []
    for i, s in enumerate(task.samples()):
        k = len(s.solution.boxes)
        if i % 3 == 0:
            f1.append(1.0), miou.append(1.0)
        elif i % 3 == 1:
            f1.append(2 / (1 + k)), miou.append(1 / k)
        else:
            f1.append(0.0), miou.append(0.0)
    return float(np.mean(f1)), float(np.mean(miou))


def metric_values(result) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {m.name: m.value for m in result.metrics}


def test_dig_metrics_through_the_reward_scoring_match_hand_derivation(dig_task, dig_predictions):
    adapter = get_adapter("predictions", path=str(dig_predictions))
    res = run_benchmark(
        dig_task,
        adapter,
        store=MemoryRunStore(),
        scorer=InProcessScorer(),
        options=RunOptions(batch_size=4, progress=False, n_boot=50),
    )
    f1, miou = expected_dig(dig_task)
    vals = metric_values(res)
    assert vals["dig/f1"] == pytest.approx(f1)
    assert vals["dig/miou"] == pytest.approx(miou)
    assert vals["error_rate"] == pytest.approx(3 / 9)
    assert res.n_samples == res.n_new == 9
    f1m = next(m for m in res.metrics if m.name == "dig/f1")
    assert f1m.ci_low <= f1m.value <= f1m.ci_high


class FailingAfter:
    """Wraps an adapter; raises on the call after ``n_calls`` batches (a crash mid-run)."""

    def __init__(self, inner, n_calls: int) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.n_calls, self.calls = inner, n_calls, 0
        self.name = inner.name
        self.seen: list[str] = []

    def describe(self):  # type: ignore[no-untyped-def]
        return self.inner.describe()

    def input_size(self, size):  # type: ignore[no-untyped-def]
        return None

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        if self.calls >= self.n_calls:
            raise RuntimeError("simulated crash")
        self.calls += 1
        self.seen += [r.id for r in requests]
        return self.inner.generate(requests)


@pytest.mark.parametrize("store_kind", ["memory", "sql"])
def test_resume_skips_stored_samples_and_never_double_counts(
    dig_task, dig_predictions, tmp_path: Path, store_kind
):
    store = (
        MemoryRunStore()
        if store_kind == "memory"
        else SqlRunStore(f"sqlite:///{tmp_path / 's.db'}")
    )
    inner = get_adapter("predictions", path=str(dig_predictions))
    opts = RunOptions(batch_size=2, progress=False, n_boot=0, key="resume-test")
    crashing = FailingAfter(inner, n_calls=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_benchmark(dig_task, crashing, store=store, scorer=InProcessScorer(), options=opts)
    assert len(crashing.seen) == 4
    resumed = FailingAfter(inner, n_calls=100)
    res = run_benchmark(dig_task, resumed, store=store, scorer=InProcessScorer(), options=opts)
    assert res.n_new == 5
    assert set(resumed.seen).isdisjoint(crashing.seen)  # stored samples were not generated again
    assert sorted(resumed.seen + crashing.seen) == sorted(s.id for s in dig_task.samples())
    clean = run_benchmark(
        dig_task, inner, store=MemoryRunStore(), scorer=InProcessScorer(), options=opts
    )
    assert metric_values(res) == metric_values(clean)
    assert len(store.rows(res.run_id)) == 9
    again = run_benchmark(dig_task, inner, store=store, scorer=InProcessScorer(), options=opts)
    assert again.n_new == 0 and metric_values(again) == metric_values(clean)


def test_derived_key_ignores_batch_size_but_not_the_reward(dig_task, dig_predictions):
    adapter = get_adapter("predictions", path=str(dig_predictions))
    store = MemoryRunStore()
    a = run_benchmark(
        dig_task,
        adapter,
        store=store,
        scorer=InProcessScorer(),
        options=RunOptions(batch_size=1, progress=False, n_boot=0, limit=3),
    )
    b = run_benchmark(
        dig_task,
        adapter,
        store=store,
        scorer=InProcessScorer(),
        options=RunOptions(batch_size=5, progress=False, n_boot=0, limit=3),
    )
    assert a.key == b.key and b.n_new == 0
    c = run_benchmark(
        dig_task,
        adapter,
        store=store,
        scorer=InProcessScorer(),
        options=RunOptions(progress=False, n_boot=0, limit=3, seed=1),
    )
    assert c.key != a.key


def test_failed_run_is_marked_failed(dig_task, dig_predictions):
    store = MemoryRunStore()
    crashing = FailingAfter(get_adapter("predictions", path=str(dig_predictions)), n_calls=0)
    with pytest.raises(RuntimeError):
        run_benchmark(
            dig_task,
            crashing,
            store=store,
            scorer=InProcessScorer(),
            options=RunOptions(progress=False),
        )
    assert list(store.status.values()) == ["failed"]


class SizedAdapter:
    name = "sized"

    def __init__(self, size):  # type: ignore[no-untyped-def]
        self.size = size

    def input_size(self, image_size):  # type: ignore[no-untyped-def]
        return self.size


def _sample(frame: Frame) -> TaskSample:
    from schemas.reward import BoxSolution

    return TaskSample(
        id="s", images=["x.png"], prompt="p", solution=BoxSolution(boxes=[]), frame=frame
    )


def test_input_frame_is_checked_against_the_models_resize_and_never_guessed():
    f = Frame(coords="input", image_size=(640, 480), input_size=(644, 476))
    assert resolve_frame(_sample(f), SizedAdapter((644, 476))) is f
    assert resolve_frame(_sample(f), SizedAdapter(None)) is f  # the adapter cannot tell
    with pytest.raises(ValueError, match="resizes the 640×480 image to 448×336"):
        resolve_frame(_sample(f), SizedAdapter((448, 336)))
    pixel = Frame(coords="pixel", image_size=(640, 480))
    assert resolve_frame(_sample(pixel), SizedAdapter((1, 1))) is pixel
