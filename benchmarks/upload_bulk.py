"""Time of one maximum-size run upload (``POST /v1/runs``, 100 000 predictions) on SQLite.

    python benchmarks/upload_bulk.py [--predictions 100000] [--repeats 1]

Target: at most 5 s end to end on SQLite. A fresh SQLite file per repeat; the
leaderboard app runs under uvicorn in this process (loopback), and the body is sent with
``LeaderboardClient.upload_run`` (the SDK: client-side validation, encoding, the scaled
timeout). Besides the end-to-end wall time (and the CPU seconds of this process, client and
server together: steadier than wall time on a shared machine) it times the server-side
stages on their own, in CPU seconds, on another fresh file: JSON parse + ``RunUpload``
validation, the idempotency fingerprint, and the whole store transaction
(``upload_idempotent``, which includes the fingerprint). Each prediction carries a 36-character
completion, a reward, two components and an ``extra`` field, like a detection benchmark.

Prints one JSON object; ``load_1m`` is the machine's 1-minute load average at the end (the
box is shared, so the figures are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clients.leaderboard import LeaderboardClient, upload_timeout_s  # noqa: E402
from schemas.leaderboard import RunUpload  # noqa: E402
from services.common.auth import DEV_API_KEY  # noqa: E402
from services.leaderboard import uploads  # noqa: E402
from services.leaderboard.app import create_app  # noqa: E402
from services.leaderboard.settings import LeaderboardSettings  # noqa: E402
from services.stack import serve_in_thread, wait_ready  # noqa: E402
from services.store import db  # noqa: E402


def upload_body(n: int, key: str) -> dict:
    preds = [
        {
            "sample_id": f"sample-{i:06d}",
            "prediction": "<answer>[[10, 20, 110, 220]]</answer>",
            "reward": (i % 100) / 100,
            "components": {"f1": (i % 7) / 7, "miou": (i % 5) / 5},
            "extra": {"n_boxes": i % 4},
        }
        for i in range(n)
    ]
    return {
        "key": key,
        "model": {"name": "bench-model"},
        "suite": {"name": "bench", "version": "1", "content_hash": "c" * 64},
        "predictions": preds,
        "metrics": [{"name": "f1", "value": 0.5, "n": n}],
    }


def stages(body: dict, url: str) -> dict:
    """Server-side stages on their own (no HTTP), on a fresh database at ``url``."""
    raw = json.dumps(body).encode()
    t = time.process_time()
    parsed = RunUpload.model_validate(json.loads(raw))  # what FastAPI does with the body
    t_validate = time.process_time() - t
    t = time.process_time()
    uploads.fingerprint(parsed)
    t_fp = time.process_time() - t
    db.upgrade(url)
    factory = db.session_factory(db.make_engine(url))
    t = time.process_time()
    out = uploads.upload_idempotent(factory, parsed, principal="bench", key="k")
    t_store = time.process_time() - t
    assert out.body["predictions_added"] == len(body["predictions"]), out.body
    return {
        "parse_validate_cpu_s": round(t_validate, 3),
        "fingerprint_cpu_s": round(t_fp, 3),
        "upload_idempotent_cpu_s": round(t_store, 3),
        "body_mib": round(len(raw) / 2**20, 1),
    }


def end_to_end(body: dict, url: str) -> tuple[float, dict]:
    app = create_app(LeaderboardSettings(database_url=url))
    with serve_in_thread(app) as base:
        wait_ready(base, timeout_s=60)
        with LeaderboardClient(base, api_key=DEV_API_KEY, discover_limits=False) as client:
            t, c = time.perf_counter(), time.process_time()
            result = client.upload_run(body)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert result.predictions_added == len(body["predictions"]), result
    return wall, cpu, result.model_dump()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predictions", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    walls, cpus, result = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            body = upload_body(args.predictions, key=f"bench-{r}")
            wall, cpu, result = end_to_end(body, f"sqlite:///{tmp}/e2e-{r}.db")
            walls.append(wall)
            cpus.append(cpu)
        parts = stages(upload_body(args.predictions, key="stages"), f"sqlite:///{tmp}/stages.db")
    n_bytes = len(json.dumps(upload_body(args.predictions, key="x")).encode())
    print(
        json.dumps(
            {
                "predictions": args.predictions,
                "end_to_end_s": round(statistics.median(walls), 3),
                "end_to_end_all_s": [round(w, 3) for w in walls],
                "end_to_end_cpu_s": round(statistics.median(cpus), 3),
                "target_s": 5.0,
                **parts,
                "sdk_upload_timeout_s": round(upload_timeout_s(n_bytes), 1),
                "created": result.get("created"),
                "load_1m": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
