import threading

import pytest
from sqlalchemy import func, select

from schemas.leaderboard import RunUpload
from services.leaderboard import uploads
from services.store import db
from services.store import repository as repo
from services.store.models import IdempotencyRecord, Metric, Prediction, Run


def body(**over):
    data = {
        "model": {"name": "remote-vlm", "revision": "r1", "provenance": {"endpoint": "vllm"}},
        "suite": {"name": "refcoco", "version": "1", "content_hash": "c0ffee"},
        "config": {"temperature": 0.0, "max_tokens": 256},
        "seed": 1,
        "git_sha": "deadbeef",
        "lib_versions": {"vllm": "0.9"},
        "predictions": [
            {"sample_id": f"s{i}", "prediction": "[1,2,3,4]", "reward": i / 4} for i in range(4)
        ],
        "metrics": [{"name": "acc@0.5", "value": 0.5, "ci_low": 0.1, "ci_high": 0.9, "n": 4}],
    }
    data.update(over)
    return RunUpload.model_validate(data)


def count(s, model):
    return s.scalar(select(func.count()).select_from(model))


def test_upload_writes_a_completed_remote_run_with_provenance(factory):
    out = uploads.upload_idempotent(factory, body(), principal="p", key=None)
    assert out.status_code == 201 and not out.replayed
    assert out.body["predictions_added"] == 4 and out.body["predictions_total"] == 4
    with factory() as s:
        run = s.get(Run, out.body["id"])
        assert (run.status, run.source, run.seed, run.git_sha) == (
            "completed",
            "remote",
            1,
            "deadbeef",
        )
        assert run.key == repo.make_run_key(
            "remote-vlm", "refcoco", "1", "c0ffee", repo.config_hash(body().config), 1
        )
        assert run.model.provenance == {"endpoint": "vllm"} and run.model.revision == "r1"
        assert run.finished_at is not None and run.suite.content_hash == "c0ffee"


def test_reupload_without_key_never_duplicates(factory):
    first = uploads.upload_idempotent(factory, body(), principal="p", key=None)
    more = body(
        predictions=[{"sample_id": "s3", "reward": 0.0}, {"sample_id": "s9", "reward": 1.0}]
    )
    second = uploads.upload_idempotent(factory, more, principal="p", key=None)
    assert second.status_code == 200 and second.body["id"] == first.body["id"]
    assert second.body["predictions_added"] == 1 and second.body["predictions_total"] == 5
    with factory() as s:
        assert count(s, Run) == 1 and count(s, Prediction) == 5 and count(s, Metric) == 1


def test_idempotency_key_replays_and_rejects_another_body(factory):
    a = uploads.upload_idempotent(factory, body(), principal="p", key="k-1")
    b = uploads.upload_idempotent(factory, body(), principal="p", key="k-1")
    assert (b.status_code, b.body, b.replayed) == (a.status_code, a.body, True)
    with pytest.raises(uploads.IdempotencyKeyReused, match="different request body"):
        uploads.upload_idempotent(factory, body(seed=2), principal="p", key="k-1")
    # the same key from another caller is another key
    c = uploads.upload_idempotent(factory, body(seed=2), principal="q", key="k-1")
    assert not c.replayed and c.body["id"] != a.body["id"]
    with factory() as s:
        assert count(s, Run) == 2 and count(s, IdempotencyRecord) == 2


def test_a_rejected_upload_writes_nothing(factory):
    uploads.upload_idempotent(factory, body(), principal="p", key=None)
    changed = body(suite={"name": "refcoco", "version": "1", "content_hash": "other"}, seed=5)
    with pytest.raises(repo.StoreError, match="new version"):
        uploads.upload_idempotent(factory, changed, principal="p", key="k-2")
    with factory() as s:
        assert count(s, Run) == 1 and count(s, Prediction) == 4 and count(s, IdempotencyRecord) == 0


def test_fingerprint_ignores_field_order():
    a = RunUpload.model_validate_json(body().model_dump_json())
    data = body().model_dump(mode="json")
    b = RunUpload.model_validate(dict(reversed(list(data.items()))))
    assert uploads.fingerprint(a) == uploads.fingerprint(b)
    assert uploads.fingerprint(a) != uploads.fingerprint(body(seed=9))
    assert uploads.principal_of(None) == "anonymous"
    assert uploads.principal_of("x") != uploads.principal_of("y")


def test_concurrent_retries_with_one_key_write_once(factory):
    outs, errors = [], []

    def send():
        try:
            outs.append(uploads.upload_idempotent(factory, body(), principal="p", key="same"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({o.body["id"] for o in outs}) == 1
    assert sum(not o.replayed for o in outs) == 1
    with factory() as s:
        assert count(s, Run) == 1 and count(s, Prediction) == 4


def test_expired_idempotency_records_are_pruned(factory):
    from datetime import timedelta

    from services.store.models import utcnow

    uploads.upload_idempotent(factory, body(), principal="p", key="old")
    uploads.upload_idempotent(factory, body(seed=4), principal="p", key="new")
    with db.transaction(factory) as s:
        old = s.scalars(select(IdempotencyRecord).where(IdempotencyRecord.key == "old")).one()
        old.created_at = utcnow() - timedelta(days=10)
    with db.transaction(factory) as s:
        assert uploads.prune_idempotency_records(s, timedelta(days=7)) == 1
    with factory() as s:
        assert [r.key for r in s.scalars(select(IdempotencyRecord))] == ["new"]
    # the retry after expiry is a fresh upload that still lands on the same run
    again = uploads.upload_idempotent(factory, body(), principal="p", key="old")
    assert not again.replayed and again.status_code == 200 and again.body["predictions_added"] == 0


def test_concurrent_identical_uploads_without_a_key_report_one_creator(factory):
    """16 identical uploads at once, no Idempotency-Key (all used to be answered
    ``201 created: true``; the data was right). Exactly one insert makes the run: one 201,
    fifteen 200, one run with its 500 rows."""
    preds = [{"sample_id": f"s{i}", "prediction": "p", "reward": 0.5} for i in range(500)]
    start = threading.Barrier(16)
    outs, errors = [], []

    def send():
        try:
            start.wait()
            outs.append(
                uploads.upload_idempotent(factory, body(predictions=preds), principal="p", key=None)
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(o.status_code for o in outs) == [200] * 15 + [201]
    assert sum(o.body["created"] for o in outs) == 1
    assert sum(o.body["predictions_added"] for o in outs) == 500  # each row added once
    assert {o.body["predictions_total"] for o in outs} <= set(range(501))
    with factory() as s:
        assert count(s, Run) == 1 and count(s, Prediction) == 500


def test_fingerprint_ignores_key_order_inside_free_form_fields():
    a = body(config={"a": 1, "b": {"x": 1.5, "y": [1, 2]}})
    b = body(config={"b": {"y": [1, 2], "x": 1.5}, "a": 1})
    assert uploads.fingerprint(a) == uploads.fingerprint(b)
    assert uploads.fingerprint(a) != uploads.fingerprint(body(config={"a": 2}))


def test_a_record_with_the_legacy_fingerprint_still_replays(factory):
    """Records written before the fingerprint moved to orjson keep replaying their body."""
    first = uploads.upload_idempotent(factory, body(), principal="p", key="old")
    with db.transaction(factory) as s:
        record = s.scalars(select(IdempotencyRecord)).one()
        record.fingerprint = uploads.legacy_fingerprint(body())
    again = uploads.upload_idempotent(factory, body(), principal="p", key="old")
    assert again.replayed and again.body == first.body
    with pytest.raises(uploads.IdempotencyKeyReused):
        uploads.upload_idempotent(factory, body(seed=5), principal="p", key="old")
