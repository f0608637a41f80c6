"""Hostile image inputs to the embedding service (and through the reward service's
``alignment`` component): decompression bombs and paths that leave the data root.

Promises: a bomb is refused from its header with 413 (or 422 when it is not an image at all),
never decoded and never a 500; a path outside ``PRL_EMBEDDING_DATA_ROOT`` (``..``, absolute,
a symlink pointing out) is 403 even when the file exists; the service keeps serving after.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.services.reliability.helpers import b64, bomb_png, in_process, small_png, zlib_bomb_png
from tests.services.service_apps import embedding_app


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(client, data root, a readable secret file outside the root)."""
    base = tmp_path_factory.mktemp("img")
    root = base / "root"
    root.mkdir()
    (root / "ok.png").write_bytes(small_png())
    (root / "sub").mkdir()
    secret = base / "secret.png"
    secret.write_bytes(small_png(color=(1, 2, 3)))
    os.symlink(secret, root / "link_out.png")
    os.symlink(root / "ok.png", root / "link_in.png")
    os.symlink(base, root / "dir_out")
    app = embedding_app(root)
    with in_process(app) as client:
        yield client, root, secret


def embed(client, images):
    return client.post("/v1/embed", json={"images": images})


@pytest.mark.parametrize(
    ("name", "raw", "allowed"),
    [
        ("100k x 100k declared, tiny IDAT", bomb_png(100_000, 100_000), {413}),
        ("20k x 20k: PIL's own DecompressionBombError", bomb_png(20_000, 20_000), {413}),
        ("7k x 7k: over MAX_IMAGE_PIXELS", bomb_png(7_000, 7_000), {413}),
        ("8k x 8k zeros, a few kB of zlib", zlib_bomb_png(8_000), {413}),
        ("2^31-1 wide", bomb_png(2**31 - 1, 1), {413, 422}),
        ("zero-size", bomb_png(0, 0), {422}),
        ("truncated PNG", small_png()[:40], {422}),
        ("PNG signature then garbage", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, {422}),
    ],
)
def test_image_bombs_are_refused_before_decoding(served, name, raw, allowed):
    client, _, _ = served
    for ref in (b64(raw), "data:image/png;base64," + b64(raw)):
        r = embed(client, [ref])
        assert r.status_code in allowed, (name, r.status_code, r.text[:300])
        assert r.json()["error"]["message"]
    assert embed(client, [b64(small_png())]).status_code == 200  # still serving


@pytest.mark.parametrize(
    ("ref", "status"),
    [
        ("ok.png", 200),
        ("link_in.png", 200),
        ("sub/../ok.png", 200),
        ("../secret.png", 403),
        ("sub/../../secret.png", 403),
        ("link_out.png", 403),  # a symlink inside the root that points out
        ("dir_out/secret.png", 403),  # through a symlinked directory
        ("/etc/passwd", 403),
        ("//etc/passwd", 403),
        ("../" * 40 + "etc/passwd", 403),
        ("%2e%2e/secret.png", 404),  # no URL decoding: a literal (missing) name
        ("missing.png", 404),
        ("sub", 404),  # a directory is not an image
        ("a" * 5000 + ".png", 404),  # name too long
        ("ok.png\x00.jpg", 422),  # NUL
        ("\ud800.png", 422),  # lone surrogate
    ],
)
def test_image_paths_stay_under_the_data_root(served, ref, status):
    client, _, secret = served
    if ref == "/etc/passwd":
        ref = str(secret)  # an absolute path to a real image outside the root
    body = {"images": [ref]}
    r = client.post(
        "/v1/embed",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == status, r.text[:300]
    if status != 200 and ref != str(secret):
        assert str(secret) not in r.text  # never reveal where a relative path resolved to
    r = client.post(
        "/v1/alignment",
        content=json.dumps(
            {"items": [{"id": "a", "image": ref, "query": "q", "output": "o"}]}
        ).encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == status, r.text[:300]


def test_secret_is_readable_so_403_is_the_guard_not_a_missing_file(served):
    _, root, secret = served
    assert secret.is_file() and (root / "link_out.png").resolve() == secret
    assert Path(root / "../secret.png").resolve() == secret
