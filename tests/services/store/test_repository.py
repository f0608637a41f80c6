import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.store import db
from services.store import repository as repo
from services.store.models import Base, Metric, Prediction, Run, TrainingMetric


def _run(s, key="k1", config=None, seed=0, model="m"):
    suite = repo.get_or_create_suite(s, "dig", "1", "h" * 64)
    return repo.get_or_create_run(
        s,
        key,
        model=model,
        suite=suite,
        config=config or {"batch_size": 4},
        seed=seed,
        git_sha="abc123",
        lib_versions={"torch": "2.13.0"},
    )


def test_config_hash_ignores_key_order_but_not_values():
    a = {"x": 1, "y": {"b": [1, 2], "a": None}}
    b = {"y": {"a": None, "b": [1, 2]}, "x": 1}
    assert repo.config_hash(a) == repo.config_hash(b)
    assert repo.config_hash(a) != repo.config_hash({**a, "x": 2})
    assert len(repo.config_hash(a)) == 64


def test_run_key_depends_on_every_part():
    base = ("m", "dig", "1", "h", "c", 0)
    keys = {repo.make_run_key(*base)}
    for i in range(6):
        changed = list(base)
        changed[i] = 1 if i == 5 else changed[i] + "x"
        keys.add(repo.make_run_key(*changed))
    assert len(keys) == 7
    assert repo.make_run_key(*base) == repo.make_run_key(*base)
    assert repo.make_run_key("m", "s", "1", "h", "c", None) != repo.make_run_key(
        "m", "s", "1", "h", "c", 0
    )


def test_model_get_or_create_fills_missing_provenance_but_keeps_stored(factory):
    with db.transaction(factory) as s:
        m1 = repo.get_or_create_model(s, "qwen", revision="r1", path="/ckpt")
    with db.transaction(factory) as s:
        m2 = repo.get_or_create_model(s, "qwen", revision="r2", adapter="vllm", dtype="bf16")
        assert m2.id == m1.id
        assert (m2.revision, m2.adapter) == ("r1", "vllm")
        assert m2.provenance == {"path": "/ckpt", "dtype": "bf16"}


def test_suite_with_changed_content_needs_a_new_version(factory):
    with db.transaction(factory) as s:
        a = repo.get_or_create_suite(s, "refcoco", "1", "aaa")
        assert repo.get_or_create_suite(s, "refcoco", "1", "aaa").id == a.id
        assert repo.get_or_create_suite(s, "refcoco", "2", "bbb").id != a.id
    with pytest.raises(repo.StoreError, match="give the suite a new version"), factory() as s:
        repo.get_or_create_suite(s, "refcoco", "1", "bbb")


def test_run_resumes_by_key_and_rejects_a_reused_key(factory):
    with db.transaction(factory) as s:
        run = _run(s)
        assert run.status == "running" and run.started_at is not None
        assert run.config_hash == repo.config_hash({"batch_size": 4})
        run_id = run.id
        repo.finish_run(s, run_id, "failed")
    with db.transaction(factory) as s:
        again = _run(s)
        assert again.id == run_id and again.status == "running" and again.finished_at is None
        repo.finish_run(s, run_id)
    with db.transaction(factory) as s:
        assert _run(s).status == "completed"  # a completed run is not reopened
    with pytest.raises(repo.StoreError, match="different key"), factory() as s:
        _run(s, config={"batch_size": 8})
    with pytest.raises(repo.StoreError, match="finish status"), factory() as s:
        repo.finish_run(s, run_id, "running")


def test_predictions_are_idempotent_per_sample(factory):
    with db.transaction(factory) as s:
        run_id = _run(s).id
        rows = [{"sample_id": f"s{i}", "prediction": f"p{i}", "reward": i / 10} for i in range(3)]
        assert repo.add_predictions(s, run_id, rows) == 3
    with db.transaction(factory) as s:
        # a resumed batch re-sends s1, s2 (changed) and one new sample, plus a duplicate
        again = [
            {"sample_id": "s1", "prediction": "other", "reward": 1.0},
            {"sample_id": "s2", "reward": 0.9},
            {"sample_id": "s3", "reward": 0.5, "latency_s": 0.2},
            {"sample_id": "s3", "reward": 0.7},
        ]
        assert repo.add_predictions(s, run_id, again) == 1
        assert repo.done_sample_ids(s, run_id) == {"s0", "s1", "s2", "s3"}
    with factory() as s:
        preds = {p.sample_id: p for p in s.scalars(select(Prediction))}
        assert len(preds) == 4
        assert (preds["s1"].prediction, preds["s1"].reward) == ("p1", pytest.approx(0.1))
        assert preds["s3"].reward == pytest.approx(0.5)
        assert preds["s3"].extra == {"latency_s": 0.2}


def test_prediction_rows_are_normalised(factory):
    with db.transaction(factory) as s:
        run_id = _run(s).id
        repo.add_predictions(
            s,
            run_id,
            [
                {"sample_id": 7, "reward": float("nan"), "error": "timeout"},
                {"sample_id": "b", "reward": 0.0, "components": {"f1": 0.5, "miou": math.inf}},
            ],
        )
    with factory() as s:
        a, b = sorted(s.scalars(select(Prediction)), key=lambda p: p.sample_id)
        assert a.sample_id == "7" and a.reward is None
        assert a.error == {"code": "error", "message": "timeout"}
        assert a.extra == {"nonfinite_reward": "nan"}
        assert b.error is None and b.components == {"f1": 0.5, "miou": None}
    with pytest.raises(repo.StoreError, match="sample_id"), factory() as s:
        repo.add_predictions(s, run_id, [{"reward": 1.0}])


def test_a_failed_transaction_leaves_nothing(factory):
    with db.transaction(factory) as s:
        run_id = _run(s).id
    with pytest.raises(repo.StoreError), db.transaction(factory) as s:
        repo.add_predictions(s, run_id, [{"sample_id": "x"}])
        repo.set_metrics(s, run_id, [{"name": "f1", "value": None}])
    with factory() as s:
        assert repo.done_sample_ids(s, run_id) == set()
        assert s.scalar(select(func.count()).select_from(Metric)) == 0


def test_metrics_are_replaced_by_name(factory):
    with db.transaction(factory) as s:
        run_id = _run(s).id
        repo.set_metrics(
            s,
            run_id,
            [
                {"name": "f1", "value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 10},
                {"name": "loss", "value": 2.0, "higher_is_better": False},
            ],
        )
    with db.transaction(factory) as s:
        repo.set_metrics(s, run_id, [{"name": "f1", "value": 0.55, "stderr": 0.01}])
    with factory() as s:
        got = {m.name: m for m in s.scalars(select(Metric))}
        assert set(got) == {"f1", "loss"}
        assert got["f1"].value == pytest.approx(0.55) and got["f1"].stderr == pytest.approx(0.01)
        assert got["f1"].ci_low is None  # replaced as a whole
        assert got["loss"].higher_is_better is False


def test_training_metrics_and_job_status(factory):
    with db.transaction(factory) as s:
        job = repo.create_training_job(s, "dig-grpo", config={"lr": 1e-6}, model="qwen", seed=3)
        assert job.status == "pending" and job.started_at is None
        job_id = job.id
        assert repo.add_training_metrics(s, job_id, 0, {"reward/mean": 0.1, "loss": 1.0}) == 2
        assert repo.add_training_metrics(s, job_id, 1, {"reward/mean": 0.2, "loss": math.nan}) == 1
        repo.set_job_status(s, job_id, "running")
    with db.transaction(factory) as s:
        assert repo.add_training_metrics(s, job_id, 1, {"reward/mean": 0.25}) == 1  # overwrite
        job = repo.set_job_status(s, job_id, "completed", message="done")
        assert job.started_at is not None and job.finished_at >= job.started_at
        assert job.model.name == "qwen"
    with factory() as s:
        rows = sorted((m.step, m.name, m.value) for m in s.scalars(select(TrainingMetric)))
        assert rows == [(0, "loss", 1.0), (0, "reward/mean", 0.1), (1, "reward/mean", 0.25)]
    with pytest.raises(repo.StoreError, match="status must be"), factory() as s:
        repo.set_job_status(s, job_id, "exploded")
    with pytest.raises(repo.NotFoundError), factory() as s:
        repo.set_job_status(s, 999, "running")


def test_timestamps_are_aware_utc(factory):
    with db.transaction(factory) as s:
        run_id = _run(s).id
    with factory() as s:
        run = s.get(Run, run_id)
        assert run.created_at.utcoffset().total_seconds() == 0


def test_concurrent_writers_never_duplicate(factory):
    with db.transaction(factory) as s:
        run_id = _run(s).id
    rows = [{"sample_id": f"s{i}", "reward": 1.0} for i in range(200)]
    added: list[int] = []
    errors: list[BaseException] = []

    def write(part):
        try:
            with db.transaction(factory) as s:
                added.append(repo.add_predictions(s, run_id, part))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(rows[i * 20 :],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(added) == 200
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Prediction)) == 200


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=12), max_size=6))
def test_resumed_batches_count_each_sample_once(batches):
    eng = db.make_engine("sqlite://")
    Base.metadata.create_all(eng)
    factory = db.session_factory(eng)
    with db.transaction(factory) as s:
        run_id = _run(s).id
    total = 0
    for batch in batches:
        with db.transaction(factory) as s:
            total += repo.add_predictions(s, run_id, [{"sample_id": str(i)} for i in batch])
    expected = {str(i) for b in batches for i in b}
    with factory() as s:
        assert repo.done_sample_ids(s, run_id) == expected
    assert total == len(expected)
    eng.dispose()


def test_extra_fields_are_stored_as_json(factory):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Box:
        box: tuple[float, ...]
        score: float | None = None

    with db.transaction(factory) as s:
        run_id = _run(s, config={"t": (1, 2), "lr": float("inf")}).id
        repo.add_predictions(
            s, run_id, [{"sample_id": "a", "boxes": (Box((1.0, 2.0, 3.0, 4.0)),), "n": {1, 2}}]
        )
    with factory() as s:
        p = s.scalars(select(Prediction)).one()
        assert p.extra == {"boxes": [{"box": [1.0, 2.0, 3.0, 4.0], "score": None}], "n": [1, 2]}
        assert s.get(Run, run_id).config == {"t": [1, 2], "lr": None}
