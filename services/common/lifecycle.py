"""Graceful shutdown: SIGTERM flips the process into *draining*.

While draining, ``/readyz`` answers 503 (so a load balancer stops routing here), new requests
get a fast 503 + ``Retry-After`` + ``Connection: close``, and requests already in flight run
to completion.

Order of events in a worker after SIGTERM (or SIGINT):

1. at once, in the signal handler: :data:`DRAINING` is set;
2. for ``drain_delay_s`` (the service's ``<P>DRAIN_DELAY_S``) the server keeps accepting
   connections and answers each new request ``503 draining``: a client is told on an
   answer, never by a connection that disappears under it (the part a Kubernetes preStop
   ``sleep`` plays, inside the process);
3. then uvicorn's own exit handler runs: it closes the listener and waits up to
   ``timeout_graceful_shutdown`` (the service's ``<P>DRAIN_S``) for the requests in flight
   before the lifespan shutdown.

A second SIGTERM during the delay changes nothing (the multi-worker supervisor of
:mod:`services.common.serving` forwards one and uvicorn's sends another); a second SIGINT
(Ctrl-C twice) skips the rest of the delay.

uvicorn installs its SIGINT/SIGTERM handlers with ``signal.signal`` before the app's lifespan
starts, in every worker process. :func:`hook_uvicorn_signals`, called at lifespan startup,
chains a handler in front of uvicorn's. It only hooks handlers that belong to a
``uvicorn.Server`` (so in-process tests are left alone).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

DRAINING = threading.Event()


def _drain_handler(
    prev: Callable[[int, FrameType | None], None], delay_s: float
) -> Callable[[int, FrameType | None], None]:
    timer: list[threading.Timer] = []

    def drain_then_exit(s: int, frame: FrameType | None) -> None:
        if not DRAINING.is_set() or not timer:
            DRAINING.set()
            if delay_s <= 0:
                prev(s, frame)
                return
            # uvicorn's handler only sets flags its main loop polls, so a timer thread may
            # call it; the signal handler itself must not block for the delay.
            t = threading.Timer(delay_s, prev, args=(s, None))
            t.daemon = True
            timer.append(t)
            t.start()
        elif s == signal.SIGINT:  # Ctrl-C again: stop waiting
            timer[0].cancel()
            prev(s, frame)

    return drain_then_exit


def hook_uvicorn_signals(drain_delay_s: float = 0.0) -> bool:
    """Chain the drain flag (and the drain delay) in front of uvicorn's exit handlers; True
    when hooked."""
    if threading.current_thread() is not threading.main_thread():
        return False
    import uvicorn

    hooked = False
    for sig in (signal.SIGINT, signal.SIGTERM):
        prev = signal.getsignal(sig)
        if not isinstance(getattr(prev, "__self__", None), uvicorn.Server):
            continue
        signal.signal(sig, _drain_handler(prev, drain_delay_s))  # type: ignore[arg-type]
        hooked = True
    return hooked
