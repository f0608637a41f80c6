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

DIFF_KINDS = ("color", "shape", "size", "material", "add", "remove", "move")
"""The difference kinds (see :mod:`tasks.dig.diff`)."""

GROUND_HALF_EXTENT = 3.0
"""Object centres lie in ``[-3, 3]²`` on the ground."""

MIN_GAP = 0.12
"""Minimum ground distance between two objects' bounding circles (metres)."""

GRID_CELL = 2.8
"""Side of a grid cell on the ground (metres) in the cell-aligned setting (``grid``): a large
object (1.4 m wide, a cube's diagonal 2 m) with its shadow stays inside its cell."""

GRID_CAMERA_HEIGHT = 40.0
"""Height of the top-down camera of the cell-aligned setting (far, so nearly orthographic)."""


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

    ``grid = g > 0`` is the *cell-aligned* setting: objects sit only at the centres of a
    ``g × g`` grid of ground cells (side :data:`GRID_CELL`, at most one object per cell), seen
    by a top-down camera (:func:`grid_camera`) that maps cell ``(row, col)`` onto the pixel
    cell ``[col·W/g, (col+1)·W/g) × [row·H/g, (row+1)·H/g)``. The generator then boxes each
    difference with its whole cell, so the answer is one of ``g²`` boxes. With Qwen2-VL's patch
    14 and 2×2 merge, ``W = H = 28·g`` makes every cell exactly one image token.

    ``kinds`` restricts the difference kinds (default: all of them; on a grid all but
    ``move``, which would leave the cell).
    """

    n_min: int = 4
    n_max: int = 8
    sizes: tuple[str, ...] = tuple(SIZES)
    grid: int = 0
    kinds: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.n_min <= self.n_max:
            raise ValueError(
                f"scene options: need 1 <= n_min <= n_max, got {self.n_min}, {self.n_max}"
            )
        unknown = [s for s in self.sizes if s not in SIZES]
        if unknown or not self.sizes:
            raise ValueError(f"scene options: sizes must be a non-empty subset of {list(SIZES)}")
        if self.grid < 0:
            raise ValueError(
                f"scene options: grid must be >= 0 (0: free placement), got {self.grid}"
            )
        if self.grid and self.n_max > self.grid * self.grid:
            raise ValueError(
                f"scene options: n_max {self.n_max} objects do not fit a {self.grid}x{self.grid} grid"
            )
        if self.kinds is not None:
            bad = [k for k in self.kinds if k not in DIFF_KINDS]
            if bad or not self.kinds:
                raise ValueError(
                    f"scene options: kinds must be a non-empty subset of {list(DIFF_KINDS)}"
                )
            if self.grid and "move" in self.kinds:
                raise ValueError("scene options: 'move' leaves its cell; not allowed with grid")

    @property
    def difference_kinds(self) -> tuple[str, ...]:
        """The kinds differences are drawn from."""
        if self.kinds is not None:
            return self.kinds
        return tuple(k for k in DIFF_KINDS if k != "move") if self.grid else DIFF_KINDS


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


def cell_centre(grid: int, row: int, col: int) -> tuple[float, float]:
    """Ground ``(x, y)`` of grid cell ``(row, col)``; row 0 is the top of the image (``+y``)."""
    half = grid / 2.0
    return (col + 0.5 - half) * GRID_CELL, (half - row - 0.5) * GRID_CELL


def cell_of(grid: int, obj: SceneObject) -> tuple[int, int]:
    """The ``(row, col)`` of the grid cell whose centre the object stands on."""
    half = grid / 2.0
    return round(half - 0.5 - obj.y / GRID_CELL), round(obj.x / GRID_CELL + half - 0.5)


def grid_place(
    rng: np.random.Generator,
    obj: SceneObject,
    others: list[SceneObject] | tuple[SceneObject, ...],
    grid: int,
) -> SceneObject | None:
    """``obj`` at the centre of a uniformly drawn free grid cell (``None``: grid full)."""
    taken = {cell_of(grid, o) for o in others if o.uid != obj.uid}
    free = [(r, c) for r in range(grid) for c in range(grid) if (r, c) not in taken]
    if not free:
        return None
    x, y = cell_centre(grid, *free[int(rng.integers(len(free)))])
    return replace(obj, x=x, y=y)


def grid_camera(grid: int, width: int, height: int) -> Camera:
    """Top-down camera over the ``grid × grid`` cells: the grid fills the image exactly.

    It looks straight down from :data:`GRID_CAMERA_HEIGHT` (a tiny ``−y`` offset fixes the
    image's up direction to ``+y``); its field of view spans ``grid·GRID_CELL`` metres on the
    ground across the width. Use square images (``width == height``).
    """
    h = GRID_CAMERA_HEIGHT
    fov = 2.0 * math.degrees(math.atan(grid * GRID_CELL / 2.0 / h))
    return Camera(width, height, position=(0.0, -1e-4 * h, h), target=(0.0, 0.0, 0.0), fov_deg=fov)


def sample_scene(rng: np.random.Generator, options: SceneOptions = DEFAULT_SCENE) -> Scene:
    """A scene of ``options.n_min..n_max`` non-intersecting random objects (on grid cells
    when ``options.grid``)."""
    n = int(rng.integers(options.n_min, options.n_max + 1))
    objects: list[SceneObject] = []
    for uid in range(n):
        obj = random_object(rng, uid, options.sizes)
        if options.grid:
            placed = grid_place(rng, obj, objects, options.grid)
        else:
            placed = place(rng, obj, objects)
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
