"""Image inputs: base64 (PNG/JPEG/…, optionally a ``data:`` URL) or a path under the data root.

A string is read as base64 when it is a ``data:image/…;base64,`` URL, or when it decodes as
strict base64 to bytes that start with a known image signature; otherwise it is a path.
Paths are resolved (symlinks followed) and must stay under ``data_root`` — anything else is
refused with 403, so a request cannot read arbitrary files of the server. Limits on encoded
bytes and on ``width × height`` are checked *before* pixels are decoded (413 naming the limit).
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"BM",  # BMP
    b"RIFF",  # WebP (RIFF....WEBP)
)


class ImageInputError(Exception):
    """An image reference that cannot be used; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class ImageLimits:
    data_root: Path | None
    max_bytes: int
    max_pixels: int


def _try_base64(ref: str) -> bytes | None:
    """Bytes of a ``data:`` URL or of strict base64 with an image signature, else None."""
    if ref.startswith("data:"):
        head, _, payload = ref.partition(",")
        if ";base64" not in head:
            raise ImageInputError(422, "bad_image", "data: URL must be base64-encoded")
        return _b64(payload, strict_error=True)
    if len(ref) < 16:
        return None
    raw = _b64(ref, strict_error=False)
    if raw is not None and raw.startswith(_SIGNATURES):
        return raw
    return None


def _b64(payload: str, *, strict_error: bool) -> bytes | None:
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        if strict_error:
            raise ImageInputError(
                422, "bad_image", "data: URL payload is not valid base64"
            ) from None
        return None


def resolve_under(root: Path | None, ref: str) -> Path:
    """``root / ref`` resolved; 403 when there is no root or the result escapes it."""
    if root is None:
        raise ImageInputError(
            403,
            "path_not_allowed",
            "image paths are refused: no data root is configured (PRL_EMBEDDING_DATA_ROOT); send base64",
        )
    base = root.resolve()
    try:
        path = (base / ref).resolve()
    except (ValueError, UnicodeError, OSError) as exc:  # NUL, lone surrogate, name too long
        raise ImageInputError(
            422, "bad_path", f"image path {ref[:200]!r} is not a usable path ({type(exc).__name__})"
        ) from None
    if not path.is_relative_to(base):
        raise ImageInputError(
            403, "path_not_allowed", f"image path {ref!r} is outside the data root"
        )
    return path


def read_path(path: Path, max_bytes: int, ref: str) -> bytes:
    """Bytes of a confined path; 404 when missing, 413 over ``max_bytes`` (checked via stat)."""
    try:
        if not path.is_file():
            raise ImageInputError(
                404, "not_found", f"image path {ref[:200]!r} does not exist under the data root"
            )
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageInputError(
                413,
                "image_too_large",
                f"image {ref[:200]!r} has {size} bytes; the limit is {max_bytes} (MAX_IMAGE_BYTES)",
            )
        return path.read_bytes()
    except OSError as exc:  # name too long, permission denied, vanished meanwhile
        raise ImageInputError(
            404, "not_found", f"image path {ref[:200]!r} cannot be read ({type(exc).__name__})"
        ) from None


def decode(raw: bytes, max_pixels: int, what: str) -> Image.Image:
    """RGB image from encoded bytes; the pixel limit is checked from the header before decoding."""
    try:
        img = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as exc:  # declared size over PIL's own 2x bomb limit
        raise ImageInputError(413, "image_too_large", f"{what}: {exc}") from None
    except Exception as exc:  # PIL raises several types for garbage
        raise ImageInputError(
            422, "bad_image", f"{what}: not a decodable image ({type(exc).__name__})"
        ) from None
    w, h = img.size
    if w * h > max_pixels:
        raise ImageInputError(
            413,
            "image_too_large",
            f"{what} is {w}×{h} = {w * h} pixels; the limit is {max_pixels} (MAX_IMAGE_PIXELS)",
        )
    try:
        return img.convert("RGB")
    except Exception as exc:
        raise ImageInputError(
            422, "bad_image", f"{what}: cannot decode pixels ({type(exc).__name__})"
        ) from None


def load_image(ref: str, limits: ImageLimits, what: str = "image") -> Image.Image:
    """Decode one image reference under ``limits`` (raises :class:`ImageInputError`).

    ``what`` names the input in error messages (``images[3]``, ``items[0].image``)."""
    raw = _try_base64(ref)
    if raw is None:
        raw = read_path(resolve_under(limits.data_root, ref), limits.max_bytes, ref)
    elif len(raw) > limits.max_bytes:
        raise ImageInputError(
            413,
            "image_too_large",
            f"{what} has {len(raw)} bytes; the limit is {limits.max_bytes} (MAX_IMAGE_BYTES)",
        )
    return decode(raw, limits.max_pixels, what)


def encode_png(img: Image.Image) -> str:
    """Base64 PNG of ``img`` (what clients send)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
