"""The Blender (bpy) DiG renderer: the faithful path of the DiG paper.

bpy wheels exist for Python 3.13 (bpy 5.1–5.2) and 3.11 (bpy <= 5.0.1), not for every
interpreter, so the renderer drives a worker process (:mod:`tasks.dig.blender_worker`) in an
interpreter that has bpy: ``PRL_BLENDER_PYTHON`` (e.g. the venv made by ``make blender``), or
the current interpreter when it can import bpy.

The worker renders each scene twice with Workbench: the colour image (studio light,
8× anti-aliasing, no cast shadows so that an object changes only its own pixels) and an
instance-ID pass (flat object colours, no anti-aliasing). An object's footprint is its pixels
in the ID pass — occlusion-aware, unlike the box of its projected mesh vertices, which the
worker also reports and which bounds the visible box (checked here).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tasks.dig.render import Footprint, Rendered, renderers
from tasks.dig.scene import COLORS, Camera, Scene

ENV_PYTHON = "PRL_BLENDER_PYTHON"
WORKER = Path(__file__).with_name("blender_worker.py")
_PROJECTION_SLACK = 1.5  # px: the ID pass rasterises pixel centres, projection is continuous


def blender_python() -> str | None:
    """Interpreter with bpy: ``$PRL_BLENDER_PYTHON``, else this one if it has bpy."""
    configured = os.environ.get(ENV_PYTHON)
    if configured:
        return configured if Path(configured).exists() else None
    return sys.executable if importlib.util.find_spec("bpy") is not None else None


def blender_available() -> tuple[bool, str]:
    """Whether the blender renderer can run here, and why not."""
    python = blender_python()
    if python is None:
        hint = os.environ.get(ENV_PYTHON)
        if hint:
            return False, f"{ENV_PYTHON}={hint} does not exist"
        return False, (
            f"bpy is not importable and {ENV_PYTHON} is not set (run `make blender`, then "
            f"export {ENV_PYTHON}=.venv-bpy/bin/python)"
        )
    probe = subprocess.run(
        [python, "-c", "import bpy"], capture_output=True, text=True, timeout=120, check=False
    )
    if probe.returncode != 0:
        return False, f"{python} cannot import bpy: {probe.stderr.strip()[-300:]}"
    return True, python


def scene_request(scene: Scene) -> list[dict]:
    """Objects of a scene as the worker's JSON."""
    return [
        {
            "uid": o.uid,
            "shape": o.shape,
            "color": o.color,
            "rgb": list(COLORS[o.color]),
            "material": o.material,
            "half": o.half,
            "x": o.x,
            "y": o.y,
            "rotation": o.rotation,
        }
        for o in scene.objects
    ]


class BlenderRenderer:
    """Workbench renderer in a bpy worker process. ``size = (width, height)``."""

    name = "blender"

    def __init__(
        self,
        size: tuple[int, int] = (320, 240),
        camera: Camera | None = None,
        python: str | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        self.size = size
        self.camera = (camera or Camera()).scaled(*size)
        self.python = python or blender_python()
        if self.python is None:
            raise RuntimeError(blender_available()[1])
        self.timeout_s = timeout_s
        self._tmp = Path(tempfile.mkdtemp(prefix="prl-bpy-"))
        self._proc: subprocess.Popen[str] | None = None
        self._count = 0

    def _worker(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._log = open(self._tmp / "worker.log", "w")  # noqa: SIM115 (closed in close())
            self._proc = subprocess.Popen(
                [self.python, str(WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                text=True,
                bufsize=1,
            )
        return self._proc

    def render_many(self, scenes: Sequence[Scene]) -> list[Rendered]:
        if not scenes:
            return []
        proc = self._worker()
        cam = self.camera
        request = {
            "scenes": [scene_request(s) for s in scenes],
            "out": str(self._tmp),
            "size": list(self.size),
            "first": self._count,
            "camera": {
                "position": list(cam.position),
                "target": list(cam.target),
                "fov_deg": cam.fov_deg,
            },
        }
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        for line in proc.stdout:
            if line.strip() == "PRL_DONE":
                break
        else:
            log = (self._tmp / "worker.log").read_text()[-2000:]
            raise RuntimeError(f"blender worker exited (code {proc.poll()}):\n{log}")
        out = [self._read(self._count + i, s) for i, s in enumerate(scenes)]
        self._count += len(scenes)
        return out

    def _read(self, index: int, scene: Scene) -> Rendered:
        stem = self._tmp / str(index)
        image = np.asarray(Image.open(f"{stem}_rgb.png").convert("RGB"))
        ids = np.asarray(Image.open(f"{stem}_ids.png").convert("RGB"))[..., 0]
        projected = json.loads(Path(f"{stem}.json").read_text())["projected"]
        footprints = {}
        for obj in scene.objects:
            fp = Footprint(0, 0, ids == obj.uid + 1)
            _check_inside_projection(fp, projected.get(str(obj.uid)), obj.uid)
            footprints[obj.uid] = _crop(fp)
        for name in (f"{stem}_rgb.png", f"{stem}_ids.png", f"{stem}.json"):
            Path(name).unlink(missing_ok=True)
        return Rendered(image=image, footprints=footprints)

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._log.close()
            self._proc = None
        shutil.rmtree(self._tmp, ignore_errors=True)


def _crop(fp: Footprint) -> Footprint:
    box = fp.box()
    if box is None:
        return Footprint(0, 0, np.zeros((0, 0), dtype=bool))
    x1, y1, x2, y2 = (int(v) for v in box)
    return Footprint(y1, x1, fp.mask[y1:y2, x1:x2])


def _check_inside_projection(fp: Footprint, projected: list[float] | None, uid: int) -> None:
    """The visible pixels of an object must lie inside its projected-vertex box."""
    box = fp.box()
    if box is None:
        return
    if projected is None:
        raise RuntimeError(f"object {uid}: visible in the ID pass but behind the camera")
    s = _PROJECTION_SLACK
    if not (
        box[0] >= projected[0] - s
        and box[1] >= projected[1] - s
        and box[2] <= projected[2] + s
        and box[3] <= projected[3] + s
    ):
        raise RuntimeError(
            f"object {uid}: ID-pass box {box} exceeds its projected box {projected}; "
            "the ID pass and the camera disagree"
        )


renderers.register("blender")(BlenderRenderer)
