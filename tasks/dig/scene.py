"""The DiG scene model: CLEVR-like objects on a ground plane, seen by a fixed pinhole camera.

World frame: ground plane ``z = 0``, ``z`` up, units in metres as in CLEVR (large objects have
half-size 0.7, small ones 0.35). Objects never intersect: their bounding circles on the
ground (radius ``bound_radius``) keep a margin of :data:`MIN_GAP`.

Camera frame ("view"): ``x`` right, ``y`` down, ``z`` towards the viewer; image pixel
``(u, v)`` has its top-left corner at ``(0, 0)``; pixel ``(i, j)`` (row, column) covers
``[j, j+1) × [i, i+1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

SHAPES = ("cube", "sphere", "cylinder")
MATERIALS = ("rubber", "metal")
SIZES = {"small": 0.35, "large": 0.7}
COLORS: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
"""The eight CLEVR colours (sRGB)."""

GROUND_HALF_EXTENT = 3.0
"""Object centres lie in ``[-3, 3]²`` on the ground."""

MIN_GAP = 0.12
"""Minimum ground distance between two objects' bounding circles (metres)."""


@dataclass(frozen=True)
class SceneObject:
    """One object. ``uid`` identifies it across the two images of a pair."""

    uid: int
    shape: str
    color: str
    material: str
    size: str
    x: float
    y: float
    rotation: float = 0.0  # degrees about the vertical axis (cubes)

    @property
    def half(self) -> float:
        """Half-size (sphere/cylinder radius, half the cube side) in metres."""
        return SIZES[self.size]

    @property
    def bound_radius(self) -> float:
        """Radius of the object's footprint circle on the ground (cube: half-diagonal)."""
        return self.half * math.sqrt(2.0) if self.shape == "cube" else self.half


@dataclass(frozen=True)
class Scene:
    """An immutable set of objects (ordered by ``uid``)."""

    objects: tuple[SceneObject, ...]

    def by_uid(self) -> dict[int, SceneObject]:
        return {o.uid: o for o in self.objects}

    def next_uid(self) -> int:
        return max((o.uid for o in self.objects), default=-1) + 1


def fits(candidate: SceneObject, others: list[SceneObject] | tuple[SceneObject, ...]) -> bool:
    """True when ``candidate`` lies on the ground area and clears every other object."""
    lim = GROUND_HALF_EXTENT
    if not (-lim <= candidate.x <= lim and -lim <= candidate.y <= lim):
        return False
    for o in others:
        if o.uid == candidate.uid:
            continue
        if math.hypot(o.x - candidate.x, o.y - candidate.y) < (
            o.bound_radius + candidate.bound_radius + MIN_GAP
        ):
            return False
    return True


@dataclass(frozen=True)
class SceneOptions:
    """How scenes are drawn: object count ``n_min..n_max`` and the sizes new objects may take.

    The defaults are the CLEVR-like setting (4–8 objects, small and large). An easy setting for
    tiny models is e.g. ``SceneOptions(n_min=2, n_max=4, sizes=("large",))``: few, big objects.
    A *size* difference still switches an object to the other size.
    """

    n_min: int = 4
    n_max: int = 8
    sizes: tuple[str, ...] = tuple(SIZES)

    def __post_init__(self) -> None:
        if not 1 <= self.n_min <= self.n_max:
            raise ValueError(
                f"scene options: need 1 <= n_min <= n_max, got {self.n_min}, {self.n_max}"
            )
        unknown = [s for s in self.sizes if s not in SIZES]
        if unknown or not self.sizes:
            raise ValueError(f"scene options: sizes must be a non-empty subset of {list(SIZES)}")


DEFAULT_SCENE = SceneOptions()


def random_object(
    rng: np.random.Generator, uid: int, sizes: tuple[str, ...] = tuple(SIZES)
) -> SceneObject:
    """Attributes drawn uniformly (size from ``sizes``); the position is set by the caller."""
    return SceneObject(
        uid=uid,
        shape=SHAPES[rng.integers(len(SHAPES))],
        color=list(COLORS)[rng.integers(len(COLORS))],
        material=MATERIALS[rng.integers(len(MATERIALS))],
        size=sizes[rng.integers(len(sizes))],
        x=0.0,
        y=0.0,
        rotation=float(rng.uniform(0.0, 90.0)),
    )


def place(
    rng: np.random.Generator,
    obj: SceneObject,
    others: list[SceneObject] | tuple[SceneObject, ...],
    tries: int = 60,
) -> SceneObject | None:
    """``obj`` at a uniformly drawn free position, or ``None`` after ``tries`` failures."""
    lim = GROUND_HALF_EXTENT
    for _ in range(tries):
        cand = replace(obj, x=float(rng.uniform(-lim, lim)), y=float(rng.uniform(-lim, lim)))
        if fits(cand, others):
            return cand
    return None


def sample_scene(rng: np.random.Generator, options: SceneOptions = DEFAULT_SCENE) -> Scene:
    """A scene of ``options.n_min..n_max`` non-intersecting random objects."""
    n = int(rng.integers(options.n_min, options.n_max + 1))
    objects: list[SceneObject] = []
    for uid in range(n):
        placed = place(rng, random_object(rng, uid, options.sizes), objects)
        if placed is not None:
            objects.append(placed)
    return Scene(tuple(objects))


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking at ``target`` from ``position``.

    ``focal`` is in pixels for an image ``width × height``; the principal point is the image
    centre. ``project`` maps world points ``(N, 3)`` to pixels ``(N, 2)`` and depths ``(N,)``:
    ``u = cx + f·x_c/z_c``, ``v = cy + f·y_c/z_c`` with camera coordinates
    ``x_c = right·(p − c)``, ``y_c = −up·(p − c)``, ``z_c = forward·(p − c)``.
    """

    width: int = 320
    height: int = 240
    position: tuple[float, float, float] = (0.0, -8.6, 6.4)
    target: tuple[float, float, float] = (0.0, 0.2, 0.0)
    fov_deg: float = 44.0  # horizontal field of view
    basis: np.ndarray = field(init=False, repr=False, compare=False)
    _origin: np.ndarray = field(init=False, repr=False, compare=False)
    _to_cam: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pos, tgt = np.asarray(self.position, float), np.asarray(self.target, float)
        fwd = tgt - pos
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, np.array([0.0, 0.0, 1.0]))
        right /= np.linalg.norm(right)
        up = np.cross(right, fwd)
        object.__setattr__(self, "basis", np.stack([right, up, fwd]))
        object.__setattr__(self, "_origin", pos)
        object.__setattr__(self, "_to_cam", np.stack([right, -up, fwd], axis=1))

    @property
    def focal(self) -> float:
        return self.width / (2.0 * math.tan(math.radians(self.fov_deg) / 2.0))

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World ``(N, 3)`` → camera ``(N, 3)`` as ``(x right, y down, z depth)``."""
        return (np.asarray(points, float) - self._origin) @ self._to_cam

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World ``(N, 3)`` → pixels ``(N, 2)`` and depths ``(N,)``."""
        cam = self.to_camera(np.atleast_2d(points))
        z = cam[:, 2]
        uv = cam[:, :2] * (self.focal / z)[:, None]
        uv += (self.width / 2.0, self.height / 2.0)
        return uv, z

    def normal_to_view(self, normal: np.ndarray) -> np.ndarray:
        """A world direction → view space ``(x right, y down, z towards the viewer)``."""
        r, u, f = self.basis
        n = np.asarray(normal, float)
        return np.array([n @ r, -(n @ u), -(n @ f)])

    def scaled(self, width: int, height: int) -> Camera:
        """Same view at another resolution (keeps the horizontal field of view)."""
        return replace(self, width=width, height=height)


def object_centre(obj: SceneObject) -> np.ndarray:
    """The object's centre in world coordinates (it rests on the ground)."""
    return np.array([obj.x, obj.y, obj.half])
