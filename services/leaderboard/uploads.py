"""Run uploads from remote runners (``POST /v1/runs``): one transaction, safe to retry.

Two layers make a retried upload harmless:

1. the data itself is keyed (run key, (run, sample), (run, metric)), so re-sending a run
   never duplicates a prediction;
2. an ``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header-06) replays the stored
   response of the first attempt. Same key with a different body → 422. A concurrent request
   with the same key blocks on the unique index until the first commits, then replays it.
   Keys are scoped per caller (``principal`` = sha256 of the API key).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from schemas.leaderboard import RunUpload, RunUploadResult
from services.benchmark.reward_key import key_reward_metrics
from services.leaderboard.queries import QueryError
from services.store import repository as repo
from services.store.db import transaction
from services.store.models import IdempotencyRecord, Prediction, utcnow


class IdempotencyKeyReused(QueryError):
    """The same Idempotency-Key was sent with a different request body (HTTP 422)."""


@dataclass(frozen=True)
class UploadOutcome:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


def fingerprint(body: RunUpload) -> str:
    """sha256 of the key-sorted compact JSON of the parsed body (field order, key order and
    spacing do not matter). pydantic writes the JSON and orjson sorts it: ~0.3 s for a
    100 000-prediction upload, where :func:`legacy_fingerprint` takes ~1.3 s."""
    try:
        canonical = orjson.dumps(orjson.loads(body.model_dump_json()), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:  # an integer past 64 bits in config/extra: orjson refuses it
        return legacy_fingerprint(body)
    return hashlib.sha256(canonical).hexdigest()


def legacy_fingerprint(body: RunUpload) -> str:
    """The fingerprint stored by earlier versions (``json.dumps`` of ``model_dump``); a
    record written by them is still replayed when the same body is retried."""
    return hashlib.sha256(repo.canonical_json(body.model_dump(mode="json")).encode()).hexdigest()


def principal_of(token: str | None) -> str:
    """Who owns an idempotency key: sha256 of the bearer token (``anonymous`` without one)."""
    return "anonymous" if not token else hashlib.sha256(token.encode()).hexdigest()


def run_key_for(body: RunUpload) -> str:
    """The upload's ``key``, or the key a local runner would derive for the same run."""
    if body.key:
        return body.key
    return repo.make_run_key(
        body.model.name,
        body.suite.name,
        body.suite.version,
        body.suite.content_hash,
        repo.config_hash(body.config),
        body.seed,
    )


def upload_run(session: Session, body: RunUpload) -> RunUploadResult:
    """Write a run, its predictions and metrics (caller's transaction); close it if finished.

    ``created`` is true only for the upload whose insert made the run row (the database's
    ``ON CONFLICT`` decides, so of many concurrent identical uploads exactly one is told
    "created"). ``predictions``: ``body``'s predictions already dumped to dicts, if the
    caller has them (one dump of the whole body instead of one per prediction).
    """
    key = run_key_for(body)
    model = repo.get_or_create_model(
        session,
        body.model.name,
        revision=body.model.revision,
        adapter=body.model.adapter,
        **body.model.provenance,
    )
    suite = repo.get_or_create_suite(
        session, body.suite.name, body.suite.version, body.suite.content_hash
    )
    run, created = repo.create_or_resume_run(
        session,
        key,
        model=model,
        suite=suite,
        config=body.config,
        seed=body.seed,
        git_sha=body.git_sha,
        lib_versions=body.lib_versions,
        n_samples=body.n_samples,
        source="remote",
    )
    # The validated fields as they are (plain JSON values; add_predictions copies what it
    # keeps): 100 000 model_dump calls would cost a second.
    added = repo.add_predictions(session, run.id, [vars(p) for p in body.predictions])
    metrics = key_reward_metrics([m.model_dump() for m in body.metrics], body.config.get("reward"))
    repo.set_metrics(session, run.id, metrics)
    if body.status != "running":
        repo.finish_run(session, run.id, body.status)
    total = session.scalar(
        select(func.count()).select_from(Prediction).where(Prediction.run_id == run.id)
    )
    return RunUploadResult(
        id=run.id,
        key=key,
        created=created,
        predictions_added=added,
        predictions_total=int(total or 0),
        metrics=len({m["name"] for m in metrics}),
    )


def prune_idempotency_records(session: Session, older_than: timedelta) -> int:
    """Forget stored responses older than ``older_than`` (a retry after that is a new upload,
    which the keyed run data still keeps from duplicating); returns how many were removed."""
    cutoff = utcnow() - older_than
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(result.rowcount or 0)


def _replay(record: IdempotencyRecord, fp: str, body: RunUpload) -> UploadOutcome:
    if record.fingerprint != fp and record.fingerprint != legacy_fingerprint(body):
        raise IdempotencyKeyReused(
            f"Idempotency-Key {record.key!r} was already used with a different request body; "
            "use a new key for a new upload"
        )
    return UploadOutcome(record.status_code, dict(record.response), replayed=True)


def upload_idempotent(
    factory: sessionmaker[Session], body: RunUpload, *, principal: str, key: str | None
) -> UploadOutcome:
    """Upload in one transaction; with ``key``, a retry replays the first attempt's response."""
    fp = fingerprint(body)
    for attempt in (1, 2):
        try:
            with transaction(factory) as s:
                if key is not None:
                    record = s.scalars(
                        select(IdempotencyRecord).where(
                            IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
                        )
                    ).first()
                    if record is not None:
                        return _replay(record, fp, body)
                result = upload_run(s, body)
                status = 201 if result.created else 200
                payload = result.model_dump(mode="json")
                if key is not None:
                    s.add(
                        IdempotencyRecord(
                            principal=principal,
                            key=key,
                            fingerprint=fp,
                            status_code=status,
                            response=payload,
                        )
                    )
                    s.flush()
            return UploadOutcome(status, payload)
        except IntegrityError:
            # a concurrent request with the same key committed first; the retry replays it
            if attempt == 2 or key is None:
                raise
    raise AssertionError("unreachable")
