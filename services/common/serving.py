"""Run a service under uvicorn so that a SIGTERM drains it without losing a connection.

With one worker uvicorn is used as is. With ``workers > 1`` uvicorn's supervisor
(``uvicorn.supervisors.Multiprocess``, 0.55) has three gaps on SIGTERM, all seen under load:

1. it queues the signal and looks at the queue every 0.5 s, so for up to half a second the
   workers go on serving and ``/readyz`` still says 200;
2. it keeps its own copy of the listening socket open until every worker has exited. Once
   the workers have closed theirs, the kernel still completes handshakes into the listen
   queue, and nobody accepts them: a client hangs until the supervisor exits, then gets a
   reset;
3. a worker closes its idle keep-alive connections as soon as it stops, so a request a client
   sends on one at that moment fails with a transport error the server never saw.

:class:`DrainingMultiprocess` fixes 1 and 2: its SIGTERM/SIGINT handler forwards SIGTERM to
every worker at once (each sets *draining* in its own signal handler, see
:mod:`services.common.lifecycle`) and closes the supervisor's copy of the listening socket,
then lets uvicorn's loop shut down as before. 3 is the drain delay
(``<P>DRAIN_DELAY_S``): for that long after SIGTERM each worker keeps accepting and answers
every new request ``503 draining`` + ``Retry-After`` + ``Connection: close``, so clients learn
to go elsewhere on an answer, not on a broken connection, and only then does uvicorn close
the listener and wait up to ``<P>DRAIN_S`` for the requests in flight.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from socket import socket
from types import FrameType

import uvicorn
from uvicorn.config import Config
from uvicorn.supervisors import Multiprocess

log = logging.getLogger("uvicorn.error")


class DrainingMultiprocess(Multiprocess):
    """uvicorn's multi-worker supervisor, with a SIGTERM that reaches the workers at once."""

    def __init__(self, config: Config, sockets: list[socket]) -> None:
        super().__init__(config, sockets)
        self.stopping = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_stop_signal)

    def _on_stop_signal(self, sig: int, frame: FrameType | None) -> None:
        """Runs in the supervisor's main thread, inside the signal handler: only os calls
        and list appends here (no locks), like uvicorn's own handler."""
        if not self.stopping:
            self.stopping = True
            for process in self.processes:
                pid = process.pid
                if pid is not None and process.exitcode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
            for sock in self.sockets:  # the workers hold their own descriptors
                with contextlib.suppress(OSError):
                    sock.close()
        self.signal_queue.append(sig)  # uvicorn's loop then terminates and joins the workers

    def keep_subprocess_alive(self) -> None:
        if self.stopping:  # the listening socket is closed: a new worker could not serve
            return
        super().keep_subprocess_alive()


def serve(
    app: str,
    *,
    host: str,
    port: int,
    workers: int = 1,
    drain_s: float = 10.0,
    log_level: str = "info",
) -> None:
    """``uvicorn.run(app, factory=True, …)`` with :class:`DrainingMultiprocess` for
    ``workers > 1``. ``app`` is a ``"module:factory"`` import string."""
    if workers <= 1:
        uvicorn.run(
            app,
            factory=True,
            host=host,
            port=port,
            timeout_graceful_shutdown=int(drain_s),
            log_level=log_level,
        )
        return
    config = Config(
        app,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_graceful_shutdown=int(drain_s),
        log_level=log_level,
    )
    sock = config.bind_socket()
    with contextlib.suppress(KeyboardInterrupt):
        DrainingMultiprocess(config, sockets=[sock]).run()
