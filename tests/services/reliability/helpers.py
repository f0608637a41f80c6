"""Shared helpers of the reliability tests: servers on loopback, hostile payloads, images."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.common.auth import DEV_API_KEY
from services.stack import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[3]
AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}


@contextlib.contextmanager
def in_process(app: FastAPI) -> Iterator[TestClient]:
    """A TestClient whose lifespan ran and whose readiness is 200 (server errors come back)."""
    with TestClient(app, raise_server_exceptions=False, headers=AUTH) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").text
            time.sleep(0.05)
        yield client


@contextlib.contextmanager
def uvicorn_process(
    factory: str, env: dict[str, str], *, workers: int = 1, drain_s: int = 10
) -> Iterator[tuple[subprocess.Popen, str]]:
    """``uvicorn --factory`` in its own process group; yields (process, base URL).

    The process is SIGKILLed on exit if still alive (by its group id, which we created).
    """
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        factory,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--timeout-graceful-shutdown",
        str(int(drain_s)),
        "--log-level",
        "warning",
    ]
    with served_by(cmd, port, env) as (proc, url):
        yield proc, url


@contextlib.contextmanager
def served_by(
    cmd: list[str], port: int, env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen, str]]:
    """Run ``cmd`` (a server on ``port``) in its own process group; yield it once /readyz is
    200; SIGKILL the whole group on exit."""
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc=proc, timeout_s=120)
        yield proc, url
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def bomb_png(width: int, height: int) -> bytes:
    """A valid-looking PNG declaring ``width × height`` RGB pixels with a tiny IDAT.

    Decoding it for real would need ``3·w·h`` bytes; a server must refuse it from the header.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def zlib_bomb_png(side: int = 8000) -> bytes:
    """A PNG of ``side²`` all-zero grey pixels: a few kB on the wire, ``side²`` bytes decoded."""
    raw = (b"\x00" + b"\x00" * side) * side
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(raw, 9))
        + png_chunk(b"IEND", b"")
    )


def small_png(size: int = 16, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
