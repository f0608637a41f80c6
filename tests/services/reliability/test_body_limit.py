"""A 100 MB body is refused with 413 before it is read, under a real uvicorn server.

Two ways a client can send it: with a declared ``Content-Length`` (refused from the header,
not one body byte read) and chunked without a length (refused once the streamed bytes pass
``max_body_bytes``). In both cases the 413 must arrive while the client is still sending,
which proves the server never buffered the body: we stop as soon as an answer is readable.
"""

from __future__ import annotations

import select
import socket
from urllib.parse import urlparse

import pytest

from services.stack import serve_in_thread
from tests.services.service_apps import APPS

HUNDRED_MB = 100 * 1024 * 1024
CHUNK = 256 * 1024


def _read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        part = sock.recv(4096)
        if not part:
            break
        data += part
    return int(data.split(b" ", 2)[1])


def send_until_answered(url: str, path: str, *, chunked: bool) -> tuple[int, int]:
    """Stream up to 100 MB of JSON-looking bytes; return (status, body bytes sent before it)."""
    u = urlparse(url)
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    head = [f"POST {path} HTTP/1.1", f"Host: {u.hostname}", "Content-Type: application/json"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {HUNDRED_MB}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    sent = 0
    payload = b"[" + b"1," * (CHUNK // 2 - 1) + b"1"
    try:
        while sent < HUNDRED_MB:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            piece = payload[: min(CHUNK, HUNDRED_MB - sent)]
            frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        return _read_status(sock), sent
    finally:
        sock.close()


@pytest.fixture(scope="module", params=["reward", "leaderboard"])
def server(request, tmp_path_factory):
    app = APPS[request.param](tmp_path_factory.mktemp(request.param))
    with serve_in_thread(app) as url:
        yield request.param, url, app.state.settings.max_body_bytes


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_100mb_body_gets_413_before_being_read(server, chunked):
    name, url, limit = server
    path = {"reward": "/v1/score", "leaderboard": "/v1/runs"}[name]
    status, sent = send_until_answered(url, path, chunked=chunked)
    assert status == 413
    if chunked:
        # answered once the limit was passed (socket buffers hold a few MB more at most)
        assert limit < sent < limit + 16 * 1024 * 1024, sent
    else:
        assert sent < 8 * 1024 * 1024, sent  # refused from the header
