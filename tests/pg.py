"""Throwaway PostgreSQL for tests: ``initdb`` + ``pg_ctl`` in a temp dir on a free port.

The server runs as a child of the test process (never daemonised) and dies with it.

Fixtures (registered for the whole suite by ``tests/conftest.py``):

- ``postgres_server`` (session): one server per test process (xdist workers get their own);
  skips with the reason when the server binaries are absent.
- ``postgres_url`` (function): a fresh, empty database on that server, as a SQLAlchemy URL
  (``postgresql+psycopg2://postgres@127.0.0.1:<port>/<db>``), dropped afterwards.

The binaries are looked up on ``PATH``, in ``PRL_PG_BIN`` and in ``/usr/lib/postgresql/*/bin``.
PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` (or
``nobody``) user and its data directory is handed to that user.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from services.stack import free_port


def find_pg_bin() -> Path | None:
    """Folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    candidates = [os.environ.get("PRL_PG_BIN", "")]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in filter(None, candidates):
        if all((Path(folder) / exe).exists() for exe in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


PR_SET_PDEATHSIG = 1


def _child_setup(uid: int | None, gid: int | None) -> Callable[[], None]:
    """``preexec_fn``: drop to ``uid``/``gid``, then PR_SET_PDEATHSIG(SIGINT) so a killed
    test process takes its server down with it (set after setuid, which clears it).

    ``prctl`` is resolved here, in the parent: after setuid the child may not be able to
    read the Python installation to import anything."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def setup() -> None:
        if uid is not None and gid is not None:
            os.setgid(gid)
            os.setuid(uid)
        prctl(PR_SET_PDEATHSIG, signal.SIGINT)

    return setup


def _server_user() -> tuple[int | None, int | None]:
    """(uid, gid) to run PostgreSQL as when we are root (it refuses to run as root)."""
    if os.geteuid() != 0:
        return None, None
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return user.pw_uid, user.pw_gid
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL")


@dataclass
class PostgresServer:
    """A running server; ``url(db)`` gives a SQLAlchemy URL for one of its databases."""

    port: int
    root: Path
    bin: Path
    user: str = "postgres"
    proc: subprocess.Popen | None = None
    log: IO[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _demote() -> tuple[Callable[[], None] | None, int | None, int | None]:
    """(preexec_fn, uid, gid) that runs a server tool (``pg_ctl`` …) as the server's user.

    No parent-death signal here: ``pg_ctl`` daemonises the server it starts, and
    :func:`stop_postgres` stops such a server through ``postmaster.pid``."""
    uid, gid = _server_user()
    if uid is None or gid is None:
        return None, None, None

    def drop() -> None:
        os.setgid(gid)
        os.setuid(uid)

    return drop, uid, gid


def start_postgres(root: Path, bin_dir: Path, *, timeout_s: float = 60.0) -> PostgresServer:
    """``initdb`` (trust auth, no fsync) into ``root/data``; run ``postgres`` on a free port.

    The server is a direct child (not daemonised by ``pg_ctl``) with a parent-death signal,
    so it cannot outlive the test process even when that is killed.
    """
    uid, gid = _server_user()
    data, sock = root / "data", root / "sock"
    sock.mkdir(parents=True, exist_ok=True)
    if uid is not None:
        for p in (root, sock):
            os.chown(p, uid, gid)
    out = subprocess.run(
        [bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "-N"],
        preexec_fn=_child_setup(uid, gid),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if out.returncode != 0:
        raise RuntimeError(f"initdb failed ({out.returncode}): {out.stderr[-2000:]}")
    port = free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": port,
        "unix_socket_directories": sock,
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": 50,
    }
    args = [bin_dir / "postgres", "-D", data]
    for key, value in settings.items():
        args += ["-c", f"{key}={value}"]
    log = open(root / "server.log", "ab")  # noqa: SIM115  (closed in stop_postgres)
    if uid is not None:  # a later `pg_ctl restart -l server.log` runs as the server user
        os.chown(root / "server.log", uid, gid)
    proc = subprocess.Popen(
        args, preexec_fn=_child_setup(uid, gid), stdout=log, stderr=subprocess.STDOUT
    )
    server = PostgresServer(port=port, root=root, bin=bin_dir, proc=proc, log=log)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            server.admin("SELECT 1")
            return server
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_postgres(server)
                tail = (root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL did not start: {tail}") from None
            time.sleep(0.1)


def stop_postgres(server: PostgresServer) -> None:
    """Fast shutdown (SIGINT), then SIGKILL if it has not exited within 30 s.

    A server that a test restarted with ``pg_ctl`` (no longer our child) is stopped with
    ``pg_ctl stop`` while its ``postmaster.pid`` exists."""
    if server.proc is not None and server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(10)
    data = server.root / "data"
    if (data / "postmaster.pid").exists():
        preexec, _, _ = _demote()
        subprocess.run(
            [server.bin / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"],
            preexec_fn=preexec,
            capture_output=True,
            timeout=60,
        )
    if server.log is not None:
        server.log.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH, "
            "PRL_PG_BIN or /usr/lib/postgresql/*/bin: apt-get install postgresql"
        )
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("psycopg2 is not installed: pip install -e '.[store]'")
    root = Path(tempfile.mkdtemp(prefix="prl-pg-"))
    server = start_postgres(root, bin_dir)
    try:
        yield server
    finally:
        stop_postgres(server)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
