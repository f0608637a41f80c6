"""Image references: base64 / data URL / confined paths, limits named in errors."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.embedding.images import ImageInputError, ImageLimits, encode_png, load_image


def _img(w: int = 20, h: int = 10, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def _limits(
    root: Path | None = None, max_bytes: int = 10**7, max_pixels: int = 10**7
) -> ImageLimits:
    return ImageLimits(root, max_bytes, max_pixels)


def test_base64_png_roundtrips_exactly() -> None:
    img = _img()
    out = load_image(encode_png(img), _limits())
    assert np.array_equal(np.asarray(out), np.asarray(img))


def test_data_url_and_jpeg() -> None:
    buf = io.BytesIO()
    _img(32, 16).save(buf, format="JPEG")
    ref = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    assert load_image(ref, _limits()).size == (32, 16)


def test_path_under_root(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    _img().save(tmp_path / "sub" / "a.png")
    assert load_image("sub/a.png", _limits(tmp_path)).size == (20, 10)


@pytest.mark.parametrize("ref", ["../outside.png", "/etc/passwd", "sub/../../outside.png"])
def test_paths_outside_root_are_forbidden(tmp_path: Path, ref: str) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    _img().save(tmp_path / "outside.png")
    with pytest.raises(ImageInputError) as err:
        load_image(ref, _limits(root))
    assert err.value.status == 403


def test_symlink_escaping_root_is_forbidden(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _img().save(tmp_path / "secret.png")
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(ImageInputError) as err:
        load_image("link.png", _limits(root))
    assert err.value.status == 403


def test_paths_refused_without_root() -> None:
    with pytest.raises(ImageInputError, match="no data root") as err:
        load_image("a.png", _limits(None))
    assert err.value.status == 403


def test_missing_path_is_404(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError) as err:
        load_image("nope.png", _limits(tmp_path))
    assert err.value.status == 404


def test_byte_and_pixel_limits_are_413_and_named(tmp_path: Path) -> None:
    ref = encode_png(_img(20, 10))
    with pytest.raises(ImageInputError, match="MAX_IMAGE_BYTES") as err:
        load_image(ref, _limits(max_bytes=50))
    assert err.value.status == 413
    with pytest.raises(ImageInputError, match=r"20×10 = 200 pixels; the limit is 199") as err:
        load_image(ref, _limits(max_pixels=199))
    assert err.value.status == 413
    _img(20, 10).save(tmp_path / "a.png")
    with pytest.raises(ImageInputError, match="MAX_IMAGE_BYTES"):
        load_image("a.png", _limits(tmp_path, max_bytes=50))
    assert load_image(ref, _limits(max_pixels=200)).size == (20, 10)


def test_garbage_is_422() -> None:
    junk = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"not really").decode()
    with pytest.raises(ImageInputError) as err:
        load_image(junk, _limits())
    assert err.value.status == 422
    with pytest.raises(ImageInputError) as err:
        load_image("data:image/png;base64,@@@", _limits())
    assert err.value.status == 422
