"""A fast numpy renderer with a 2.5-D CLEVR-like look (the default DiG renderer).

Each object is drawn in its own screen window as signed-distance shapes with analytic
anti-aliasing (coverage ``α = clip(0.5 − d, 0, 1)``, ``d`` the signed distance in pixels):

* sphere: a disc of radius ``f·r/z`` at the projected centre;
* cube: its camera-facing faces, each the projected quadrilateral of its four corners;
* cylinder: the projected bottom and top rims (ellipses) joined by their side quadrilateral,
  the top ellipse shaded as a lid.

Shading is Blinn–Phong in view space (light from the upper left): rubber is matte, metal is
dark with a tight highlight and a bright rim. Soft contact shadows are multiplied into the
ground first, then objects are composited far → near (painter's order by camera depth, ties
by uid), which gives occlusion. Every operation is per-pixel and order-stable, so the same
scene gives the same bytes, and pixels outside a changed object's footprint are bit-identical
between the two images of a pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tasks.dig.render import Footprint, Rendered, merge_footprints, renderers
from tasks.dig.scene import COLORS, Camera, Scene, SceneObject, object_centre

_LIGHT = np.array([-0.45, -0.7, 0.55], dtype=np.float32)
_LIGHT /= np.linalg.norm(_LIGHT)
_HALF = (_LIGHT + np.array([0.0, 0.0, 1.0], dtype=np.float32)) / np.linalg.norm(
    _LIGHT + np.array([0.0, 0.0, 1.0], dtype=np.float32)
)
_CIRCLE_POINTS = 28
_COS = np.cos(np.linspace(0.0, 2.0 * math.pi, _CIRCLE_POINTS, endpoint=False))
_SIN = np.sin(np.linspace(0.0, 2.0 * math.pi, _CIRCLE_POINTS, endpoint=False))
_SHADOW_STRENGTH = 0.45
_PAD = 2  # pixels of window padding around a shape's projected extent

_CUBE_FACES = (  # (normal, corner indices) of a unit cube with corners (±1, ±1, ±1)
    ((0, 0, 1), (4, 5, 7, 6)),
    ((0, 0, -1), (0, 2, 3, 1)),
    ((1, 0, 0), (1, 3, 7, 5)),
    ((-1, 0, 0), (0, 4, 6, 2)),
    ((0, 1, 0), (2, 6, 7, 3)),
    ((0, -1, 0), (0, 1, 5, 4)),
)
_CUBE_CORNERS = np.array(
    [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float
)[[0, 4, 2, 6, 1, 5, 3, 7]]  # index bits: x = bit0, y = bit1, z = bit2


@dataclass
class _Layer:
    """One object's colour and coverage in its window (rows y0.., columns x0..)."""

    uid: int
    depth: float
    y0: int
    x0: int
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    color: np.ndarray  # (h, w, 3) float32
    shadow_y0: int
    shadow_x0: int
    shadow: np.ndarray  # (hs, ws) float32 darkening in [0, _SHADOW_STRENGTH]


def _window(
    xs: np.ndarray, ys: np.ndarray, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """Integer window ``(x0, y0, x1, y1)`` (exclusive end) around points, clipped to the image."""
    x0 = max(math.floor(xs.min()) - _PAD, 0)
    y0 = max(math.floor(ys.min()) - _PAD, 0)
    x1 = min(math.ceil(xs.max()) + _PAD + 1, width)
    y1 = min(math.ceil(ys.max()) + _PAD + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _grid(win: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(1, w)`` and ``(h, 1)`` of a window."""
    x0, y0, x1, y1 = win
    px = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    py = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    return px, py


def polygon_sdf(poly: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Signed distance (≈, exact inside and along edges) to a convex polygon ``(K, 2)``.

    ``d(p) = max_k n_k·(p − v_k)`` with ``n_k`` the outward unit normal of edge ``k``;
    negative inside. Returns ``(h, w)`` float32.
    """
    poly = np.asarray(poly, dtype=float)
    centroid = poly.mean(axis=0)
    out: np.ndarray | None = None
    for k in range(len(poly)):
        (x0, y0), (x1, y1) = poly[k], poly[(k + 1) % len(poly)]
        length = math.hypot(x1 - x0, y1 - y0)
        if length < 1e-9:
            continue
        nx, ny = (y1 - y0) / length, -(x1 - x0) / length
        if nx * (centroid[0] - x0) + ny * (centroid[1] - y0) > 0:
            nx, ny = -nx, -ny
        dist = np.float32(nx) * px + np.float32(ny) * py - np.float32(nx * x0 + ny * y0)
        out = dist if out is None else np.maximum(out, dist)
    assert out is not None, "degenerate polygon"
    return out


def shade(base: np.ndarray, normal: np.ndarray, material: str) -> np.ndarray:
    """Blinn–Phong colour ``(..., 3)`` for view-space unit normals ``(..., 3)``.

    rubber: ``c·(0.42 + 0.75·max(n·L, 0)) + 14·max(n·H, 0)^8``;
    metal: ``c·(0.1 + 0.45·max(n·L, 0)) + 0.45·c·(1 − n_z)² + 235·max(n·H, 0)^40``.
    """
    lam = np.clip(normal @ _LIGHT, 0.0, 1.0)[..., None]
    spec = np.clip(normal @ _HALF, 0.0, 1.0)[..., None]
    s8 = spec * spec
    s8 *= s8
    s8 *= s8  # spec^8 by squaring (np.power with a float base is much slower)
    if material == "metal":
        rim = 1.0 - np.clip(normal[..., 2:3], 0.0, 1.0)
        s32 = s8 * s8
        s32 *= s32
        return base * (0.1 + 0.45 * lam) + 0.45 * base * (rim * rim) + 235.0 * (s32 * s8)
    return base * (0.42 + 0.75 * lam) + 14.0 * s8


class RasterRenderer:
    """numpy/PIL renderer (no extra dependency). ``size = (width, height)``."""

    name = "raster"

    def __init__(
        self,
        size: tuple[int, int] = (320, 240),
        camera: Camera | None = None,
        ground: str = "studio",
    ) -> None:
        if ground not in GROUNDS:
            raise ValueError(f"raster ground {ground!r}: use one of {', '.join(GROUNDS)}")
        self.size = size
        self.camera = (camera or Camera()).scaled(*size)
        self._ground = GROUNDS[ground](*size)

    def close(self) -> None:
        """Nothing to release."""

    def render_many(self, scenes: Sequence[Scene]) -> list[Rendered]:
        """Render scenes; an object's layer depends only on the object, so objects shared by
        the scenes (the unchanged ones of a pair) are drawn once."""
        cache: dict[SceneObject, _Layer | None] = {}
        return [self.render(s, cache) for s in scenes]

    def render(
        self, scene: Scene, cache: dict[SceneObject, _Layer | None] | None = None
    ) -> Rendered:
        """Composite the scene; footprints are the pixels each object influences."""
        width, height = self.size
        cache = {} if cache is None else cache
        img = self._ground.copy()
        for obj in scene.objects:
            if obj not in cache:
                cache[obj] = self._layer(obj, width, height)
        layers = [layer for obj in scene.objects if (layer := cache[obj]) is not None]
        for layer in sorted(layers, key=lambda lay: lay.uid):
            h, w = layer.shadow.shape
            win = img[layer.shadow_y0 : layer.shadow_y0 + h, layer.shadow_x0 : layer.shadow_x0 + w]
            win *= (1.0 - layer.shadow)[..., None]
        order = sorted(layers, key=lambda lay: (-lay.depth, lay.uid))  # far → near
        for layer in order:
            h, w = layer.alpha.shape
            win = img[layer.y0 : layer.y0 + h, layer.x0 : layer.x0 + w]
            a = layer.alpha[..., None]
            win *= 1.0 - a
            win += layer.color * a
        footprints = _footprints(order, width, height)
        img += 0.5
        np.clip(img, 0.0, 255.0, out=img)
        image = img.astype(np.uint8)
        return Rendered(image=image, footprints=footprints)

    # -- per-object geometry -------------------------------------------------------------

    def _layer(self, obj: SceneObject, width: int, height: int) -> _Layer | None:
        cam = self.camera
        _, depth = cam.project(object_centre(obj)[None, :])
        drawn = {"sphere": self._sphere, "cube": self._cube, "cylinder": self._cylinder}[obj.shape](
            obj, width, height
        )
        shadow = self._shadow(obj, width, height)
        if drawn is None and shadow is None:
            return None
        if drawn is None:
            y0, x0, alpha, color = 0, 0, np.zeros((0, 0), np.float32), np.zeros((0, 0, 3))
        else:
            y0, x0, alpha, color = drawn
        sy0, sx0, sh = shadow if shadow is not None else (0, 0, np.zeros((0, 0), np.float32))
        return _Layer(obj.uid, float(depth[0]), y0, x0, alpha, color, sy0, sx0, sh)

    def _base(self, obj: SceneObject) -> np.ndarray:
        return np.array(COLORS[obj.color], dtype=np.float32)

    def _sphere(self, obj: SceneObject, width: int, height: int):
        cam = self.camera
        uv, z = cam.project(object_centre(obj)[None, :])
        cx, cy = float(uv[0, 0]), float(uv[0, 1])
        radius = float(cam.focal * obj.half / z[0])
        win = _window(
            np.array([cx - radius, cx + radius]),
            np.array([cy - radius, cy + radius]),
            width,
            height,
        )
        if win is None:
            return None
        px, py = _grid(win)
        dx, dy = (px - cx) / radius, (py - cy) / radius
        dist = np.sqrt(dx * dx + dy * dy)
        alpha = np.clip(0.5 - (dist - 1.0) * radius, 0.0, 1.0).astype(np.float32)
        # unit normal (dx, dy, √(1 − dx² − dy²)); in the anti-aliasing fringe outside the
        # disc (dist > 1) the in-plane part is scaled back to length 1
        inv = 1.0 / np.maximum(dist, 1.0)
        nx, ny = dx * inv, dy * inv
        nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
        normal = np.stack(np.broadcast_arrays(nx, ny, nz), axis=-1)
        color = shade(self._base(obj), normal.astype(np.float32), obj.material)
        return win[1], win[0], alpha, color.astype(np.float32)

    def _cube(self, obj: SceneObject, width: int, height: int):
        cam = self.camera
        theta = math.radians(obj.rotation)
        rot = np.array(
            [
                [math.cos(theta), -math.sin(theta), 0.0],
                [math.sin(theta), math.cos(theta), 0.0],
                [0, 0, 1],
            ]
        )
        corners = (_CUBE_CORNERS * obj.half) @ rot.T + object_centre(obj)
        uv, _ = cam.project(corners)
        win = _window(uv[:, 0], uv[:, 1], width, height)
        if win is None:
            return None
        px, py = _grid(win)
        eye = np.asarray(cam.position, float)
        sdfs, colors = [], []
        for normal, idx in _CUBE_FACES:
            n_world = rot @ np.array(normal, float)
            face_centre = corners[list(idx)].mean(axis=0)
            if n_world @ (eye - face_centre) <= 0:
                continue
            sdfs.append(polygon_sdf(uv[list(idx)], px, py))
            n_view = cam.normal_to_view(n_world).astype(np.float32)
            colors.append(shade(self._base(obj), n_view, obj.material))
        sdf = np.stack(sdfs)
        face = sdf.argmin(axis=0)
        alpha = np.clip(0.5 - sdf.min(axis=0), 0.0, 1.0).astype(np.float32)
        color = np.stack(colors).astype(np.float32)[face]
        return win[1], win[0], alpha, color

    def _cylinder(self, obj: SceneObject, width: int, height: int):
        cam = self.camera
        r = obj.half
        bottom = _projected_disc(cam, obj.x, obj.y, 0.0, r)
        top = _projected_disc(cam, obj.x, obj.y, 2.0 * r, r)
        (bx, by, bax, bay), (tx, ty, tax, tay) = bottom, top
        xs = np.array([bx - bax, bx + bax, tx - tax, tx + tax])
        ys = np.array([by - bay, by + bay, ty - tay, ty + tay])
        win = _window(xs, ys, width, height)
        if win is None:
            return None
        px, py = _grid(win)
        side = np.array([[tx - tax, ty], [tx + tax, ty], [bx + bax, by], [bx - bax, by]])
        top_sdf = ellipse_sdf(top, px, py)
        sdf = np.minimum(
            np.minimum(ellipse_sdf(bottom, px, py), top_sdf), polygon_sdf(side, px, py)
        )
        alpha = np.clip(0.5 - sdf, 0.0, 1.0).astype(np.float32)
        base = self._base(obj)
        # body normal: horizontal, from the across-the-body position u ∈ [-1, 1]
        u = np.clip((px - bx) / max(bax, 1e-3), -1.0, 1.0)
        right, _, fwd = cam.basis
        back = -np.array([fwd[0], fwd[1], 0.0])
        back /= np.linalg.norm(back)
        right_h = np.array([right[0], right[1], 0.0])
        right_h /= np.linalg.norm(right_h)
        side_world = u[..., None] * right_h + np.sqrt(1.0 - u * u)[..., None] * back
        side_view = side_world @ _view_matrix(cam)
        body = shade(base, side_view.astype(np.float32), obj.material)  # (1, w, 3)
        up_view = cam.normal_to_view(np.array([0.0, 0.0, 1.0])).astype(np.float32)
        color = np.where((top_sdf < 0.0)[..., None], shade(base, up_view, obj.material), body)
        return win[1], win[0], alpha, color.astype(np.float32)

    def _shadow(self, obj: SceneObject, width: int, height: int):
        """Soft contact shadow: a ground disc slightly right-and-behind the object.

        Darkening ``s = 0.45·clip((1 − q)/0.35, 0, 1)²`` with ``q`` the normalised elliptical
        radius; zero outside the ellipse (compact support).
        """
        cx, cy = obj.x + 0.25 * obj.half, obj.y + 0.2 * obj.half
        ex, ey, ax, ay = _projected_disc(self.camera, cx, cy, 0.0, obj.bound_radius * 1.05)
        win = _window(np.array([ex - ax, ex + ax]), np.array([ey - ay, ey + ay]), width, height)
        if win is None:
            return None
        px, py = _grid(win)
        q = np.sqrt(((px - ex) / ax) ** 2 + ((py - ey) / ay) ** 2)
        fade = np.clip((1.0 - q) / 0.35, 0.0, 1.0)
        return win[1], win[0], (_SHADOW_STRENGTH * fade * fade).astype(np.float32)


def _projected_disc(
    cam: Camera, x: float, y: float, z: float, radius: float
) -> tuple[float, float, float, float]:
    """Axis-aligned ellipse ``(cx, cy, ax, ay)`` fitting the projection of a horizontal disc."""
    ring = np.stack([x + radius * _COS, y + radius * _SIN, np.full(_CIRCLE_POINTS, z)], axis=1)
    uv, _ = cam.project(ring)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    centre, half = (lo + hi) / 2.0, np.maximum((hi - lo) / 2.0, 1e-3)
    return float(centre[0]), float(centre[1]), float(half[0]), float(half[1])


def ellipse_sdf(
    ellipse: tuple[float, float, float, float], px: np.ndarray, py: np.ndarray
) -> np.ndarray:
    """First-order signed distance to an axis-aligned ellipse ``(cx, cy, ax, ay)``.

    With ``q = √((dx/ax)² + (dy/ay)²)``: ``d ≈ (q − 1)/|∇q|`` and
    ``|∇q| = √((dx/ax²)² + (dy/ay²)²)/q``; exact on the boundary, negative inside.
    """
    cx, cy, ax, ay = ellipse
    dx, dy = px - cx, py - cy
    q = np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2)
    grad = np.sqrt((dx / (ax * ax)) ** 2 + (dy / (ay * ay)) ** 2)
    return ((q - 1.0) * q / np.maximum(grad, 1e-6)).astype(np.float32)


def _view_matrix(cam: Camera) -> np.ndarray:
    """``(3, 3)`` matrix ``M`` with ``n_view = n_world @ M`` (see ``Camera.normal_to_view``)."""
    right, up, fwd = cam.basis
    return np.stack([right, -up, -fwd], axis=1)


def _footprints(order: list[_Layer], width: int, height: int) -> dict[int, Footprint]:
    """Pixels each object influences: its coverage where nearer objects let light through,
    plus its shadow where no object covers the ground completely.

    Transmittance ``T`` starts at 1 and is multiplied by ``1 − α`` near → far.
    """
    transmit = np.ones((height, width), dtype=np.float32)
    parts: dict[int, list[Footprint]] = {layer.uid: [] for layer in order}
    for layer in reversed(order):  # near → far
        h, w = layer.alpha.shape
        if h and w:
            t_win = transmit[layer.y0 : layer.y0 + h, layer.x0 : layer.x0 + w]
            parts[layer.uid].append(Footprint(layer.y0, layer.x0, (layer.alpha > 0) & (t_win > 0)))
            t_win *= 1.0 - layer.alpha
    for layer in order:
        h, w = layer.shadow.shape
        if h and w:
            t_win = transmit[
                layer.shadow_y0 : layer.shadow_y0 + h, layer.shadow_x0 : layer.shadow_x0 + w
            ]
            visible = (layer.shadow > 0) & (t_win > 0)
            parts[layer.uid].append(Footprint(layer.shadow_y0, layer.shadow_x0, visible))
    return {uid: merge_footprints(fps) for uid, fps in parts.items()}


def _ground(width: int, height: int) -> np.ndarray:
    """The ground: a soft vertical gradient with a mild vignette, float32 ``(H, W, 3)``."""
    v = (np.arange(height, dtype=np.float32) + 0.5)[:, None] / height
    u = (np.arange(width, dtype=np.float32) + 0.5)[None, :] / width
    lum = 112.0 + 40.0 * v - 18.0 * (u - 0.5) ** 2 - 10.0 * (v - 0.6) ** 2
    tint = np.array([1.0, 1.0, 1.04], dtype=np.float32)
    return (lum[..., None] * tint).astype(np.float32)


def _position_ground(width: int, height: int) -> np.ndarray:
    """A ground whose colour says where a pixel is: the studio luminance, with a red → blue
    tint across the width and a stronger vertical ramp.

    For tiny models trained from random weights: Qwen2-VL's ViT and decoder use rotary
    positions only, so a patch's features carry no absolute position unless its pixels do.
    """
    v = (np.arange(height, dtype=np.float32) + 0.5)[:, None] / height
    u = (np.arange(width, dtype=np.float32) + 0.5)[None, :] / width
    lum = 90.0 + 80.0 * v + 0.0 * u
    tint = np.stack([1.2 - 0.4 * u + 0.0 * v, np.ones_like(lum), 0.8 + 0.4 * u + 0.0 * v], axis=-1)
    return (lum[..., None] * tint).astype(np.float32)


GROUNDS = {"studio": _ground, "position": _position_ground}
"""Raster grounds: ``studio`` (default look) and ``position`` (see :func:`_position_ground`)."""

renderers.register("raster")(RasterRenderer)
