"""Drain under ``--workers 2`` (services/common/serving.py + lifecycle.py), real uvicorn.

The failure this guards against: with two workers, for ~0.4 s after SIGTERM the workers still served and
``/readyz`` said 200; then new connections were accepted into the listen queue and never
served, and clients on keep-alive connections got ReadErrors.

Here 16 keep-alive clients loop on a short request and a 2 s request is in flight when the
*supervisor alone* gets SIGTERM (what ``kill <pid>`` or an orchestrator does). A client
honours the answers: a 503 with ``Retry-After`` means "go elsewhere", so it stops. Checked:
no ``/readyz`` probe sent 0.3 s or more after the signal is answered 200, the in-flight
request completes with its answer, no client sees a transport error, the process exits
cleanly, and afterwards the port refuses connections at once (nothing left in a listen queue).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import Counter

import httpx
import pytest

from services.stack import free_port
from tests.services.reliability.helpers import served_by

pytestmark = pytest.mark.slow

SERVE = (
    "from services.common.serving import serve; "
    "serve('tests.services.common.drain_app:create_app', host='127.0.0.1', port={port}, "
    "workers=2, drain_s=10, log_level='warning')"
)


@contextlib.contextmanager
def two_workers(drain_delay_s: float):
    port = free_port()
    cmd = [sys.executable, "-c", SERVE.format(port=port)]
    with served_by(cmd, port, {"PRL_DRAIN_DELAY_S": str(drain_delay_s)}) as (proc, url):
        yield proc, url


def test_sigterm_to_the_supervisor_drains_both_workers_without_a_lost_connection():
    with two_workers(drain_delay_s=1.5) as (proc, url):
        stop = threading.Event()
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()

        def client() -> None:
            with httpx.Client(base_url=url, timeout=10) as http:
                while not stop.is_set():
                    try:
                        r = http.get("/slow", params={"seconds": 0.02})
                    except httpx.TransportError as exc:
                        with lock:
                            outcomes[f"transport:{type(exc).__name__}"] += 1
                        return
                    with lock:
                        if r.status_code == 200:
                            outcomes["ok"] += 1
                        elif r.status_code == 503 and r.headers.get("retry-after"):
                            assert r.headers["connection"] == "close"
                            outcomes[f"503:{r.json()['error']['code']}"] += 1
                            return  # honour it: this replica is going away
                        else:
                            outcomes[f"http_{r.status_code}"] += 1

        long: dict = {}

        def long_request() -> None:
            long["r"] = httpx.get(url + "/slow", params={"seconds": 2}, timeout=30)

        threads = [threading.Thread(target=client) for _ in range(16)]
        for t in threads:
            t.start()
        slow = threading.Thread(target=long_request)
        slow.start()
        time.sleep(1.0)  # load running, the 2 s request in flight
        last_ready_200 = None
        sent_at = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)  # the supervisor only
        first_503 = None
        with httpx.Client(base_url=url, timeout=5) as probe:
            while time.monotonic() - sent_at < 1.0:
                t = time.monotonic()
                code = probe.get("/readyz").status_code
                if code == 200:
                    last_ready_200 = t - sent_at
                elif first_503 is None:
                    first_503 = t - sent_at
                time.sleep(0.02)
        for t in threads:
            t.join(30)
        stop.set()
        slow.join(30)
        exit_code = proc.wait(30)

        # Times are when each probe was *sent*: no probe sent 0.3 s or more after the
        # signal was answered 200 (a slow answer on a loaded machine cannot fail this).
        assert first_503 is not None, last_ready_200
        assert last_ready_200 is None or last_ready_200 < min(0.3, first_503), (
            last_ready_200,
            first_503,
        )
        transport = {k: v for k, v in outcomes.items() if k.startswith("transport")}
        assert transport == {}, outcomes
        assert outcomes["ok"] > 0 and outcomes["503:draining"] == 16, outcomes
        assert long["r"].status_code == 200 and long["r"].json() == {"slept": 2.0}
        assert exit_code in (0, -signal.SIGTERM)
        with pytest.raises(httpx.ConnectError):  # refused at once: no listener, no queue
            httpx.get(url + "/healthz", timeout=2)
