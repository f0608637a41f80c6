"""Graceful shutdown: SIGTERM flips the process into *draining*.

While draining, ``/readyz`` answers 503 (so a load balancer stops routing here), new requests
get a fast 503 + ``Retry-After``, and requests already in flight run to completion: uvicorn
waits for them up to ``timeout_graceful_shutdown`` (the service's ``drain_s``) before the
lifespan shutdown runs.

uvicorn installs its SIGINT/SIGTERM handlers with ``signal.signal`` before the app's lifespan
starts, in every worker process. :func:`hook_uvicorn_signals`, called at lifespan startup,
chains a handler in front of uvicorn's that sets :data:`DRAINING` first. It only hooks
handlers that belong to a ``uvicorn.Server`` (so in-process tests are left alone).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

DRAINING = threading.Event()


def hook_uvicorn_signals() -> bool:
    """Chain the drain flag in front of uvicorn's exit handlers; True when hooked."""
    if threading.current_thread() is not threading.main_thread():
        return False
    import uvicorn

    hooked = False
    for sig in (signal.SIGINT, signal.SIGTERM):
        prev = signal.getsignal(sig)
        if not isinstance(getattr(prev, "__self__", None), uvicorn.Server):
            continue

        def drain_then_exit(s: int, frame: FrameType | None, prev=prev) -> None:
            DRAINING.set()
            prev(s, frame)

        signal.signal(sig, drain_then_exit)
        hooked = True
    return hooked
