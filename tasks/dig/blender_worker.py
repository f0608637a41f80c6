"""Blender worker: renders DiG scenes with bpy (run by :mod:`tasks.dig.blender`).

Runs in an interpreter that has ``bpy`` (Blender as a Python module; the wheels need
Python 3.13 for bpy 5.1+, or 3.11 for bpy <= 5.0.1), so it imports nothing from this project.
Protocol: one JSON request per stdin line ``{"scenes": [[object, ...], ...], "out": DIR,
"size": [w, h], "camera": {...}, "first": k}``; for scene ``i`` it writes
``DIR/<k+i>_rgb.png`` (Workbench, studio light, 8× anti-aliasing, no shadows or cavity so an
object changes only its own pixels) and ``DIR/<k+i>_ids.png`` (flat light, object colour
R = uid + 1, no anti-aliasing or dither, raw view transform: an instance-mask pass), plus
``DIR/<k+i>.json`` with the projected box of every object (every evaluated mesh vertex through
``world_to_camera_view``; occlusion ignored). It then prints ``PRL_DONE`` on stdout (Blender
itself also prints there, so the parent waits for that line).
"""

from __future__ import annotations

import json
import math
import sys

import bpy
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

TAG = "prl_dig"


def srgb_to_linear(value: int) -> float:
    c = value / 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def setup(size: list[int], camera: dict) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.color_depth = "8"
    scene.render.film_transparent = False
    scene.render.threads_mode = "FIXED"
    scene.render.threads = 1
    scene.render.dither_intensity = 0.0  # no noise: deterministic bytes, exact instance ids
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    world = bpy.data.worlds.new("prl_world")
    scene.world = world
    bpy.ops.mesh.primitive_plane_add(size=60.0, location=(0.0, 0.0, 0.0))
    ground = bpy.context.active_object
    ground.name = "prl_ground"
    ground.data.materials.append(material("ground", (120, 120, 124), "rubber"))
    ground.color = (0.0, 0.0, 0.0, 1.0)
    cam_data = bpy.data.cameras.new("prl_cam")
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.angle = math.radians(camera["fov_deg"])
    cam = bpy.data.objects.new("prl_cam", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.location = Vector(camera["position"])
    direction = Vector(camera["target"]) - cam.location
    cam.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()


_MATERIALS: dict[tuple, bpy.types.Material] = {}


def material(name: str, rgb: tuple[int, int, int] | list[int], kind: str) -> bpy.types.Material:
    key = (tuple(rgb), kind)
    if key not in _MATERIALS:
        mat = bpy.data.materials.new(f"prl_{name}_{kind}")
        mat.diffuse_color = (*(srgb_to_linear(v) for v in rgb), 1.0)
        mat.metallic = 1.0 if kind == "metal" else 0.0
        mat.roughness = 0.25 if kind == "metal" else 0.9
        _MATERIALS[key] = mat
    return _MATERIALS[key]


_TEMPLATES: dict[str, bpy.types.Mesh] = {}


def template(shape: str) -> bpy.types.Mesh:
    """A unit mesh per shape (half-size 1), made once with bpy.ops and shared by objects."""
    if shape not in _TEMPLATES:
        if shape == "cube":
            bpy.ops.mesh.primitive_cube_add(size=2.0)
        elif shape == "sphere":
            bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, segments=32, ring_count=16)
            bpy.ops.object.shade_smooth()
        else:
            bpy.ops.mesh.primitive_cylinder_add(radius=1.0, depth=2.0, vertices=32)
        holder = bpy.context.active_object
        mesh = holder.data
        mesh.name = f"prl_template_{shape}"
        mesh.use_fake_user = True
        mesh.materials.append(material("slot", (128, 128, 128), "rubber"))  # one slot to override
        bpy.data.objects.remove(holder, do_unlink=True)
        _TEMPLATES[shape] = mesh
    return _TEMPLATES[shape]


def clear_objects() -> None:
    for obj in [o for o in bpy.data.objects if o.get(TAG)]:
        bpy.data.objects.remove(obj, do_unlink=True)


def add_object(spec: dict) -> bpy.types.Object:
    """Link a new object to the shape's template mesh, scaled to its half-size; its material
    sits in an object-level slot so objects can share the mesh."""
    half = spec["half"]
    obj = bpy.data.objects.new(f"prl_obj_{spec['uid']}", template(spec["shape"]))
    bpy.context.scene.collection.objects.link(obj)
    obj.location = (spec["x"], spec["y"], half)
    obj.scale = (half, half, half)
    if spec["shape"] == "cube":
        obj.rotation_euler = (0.0, 0.0, math.radians(spec["rotation"]))
    obj[TAG] = True
    obj.material_slots[0].link = "OBJECT"
    obj.material_slots[0].material = material(spec["color"], spec["rgb"], spec["material"])
    obj.color = ((spec["uid"] + 1) / 255.0, 0.0, 0.0, 1.0)
    return obj


def projected_box(obj: bpy.types.Object, size: list[int]) -> list[float] | None:
    scene = bpy.context.scene
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    xs, ys = [], []
    for v in mesh.vertices:
        p = world_to_camera_view(scene, scene.camera, evaluated.matrix_world @ v.co)
        if p.z > 0:
            xs.append(min(max(p.x, 0.0), 1.0) * size[0])
            ys.append((1.0 - min(max(p.y, 0.0), 1.0)) * size[1])
    evaluated.to_mesh_clear()
    return [min(xs), min(ys), max(xs), max(ys)] if xs else None


def render(path: str, ids: bool) -> None:
    scene = bpy.context.scene
    shading = scene.display.shading
    shading.show_shadows = False
    shading.show_cavity = False
    shading.show_object_outline = False
    if ids:
        shading.light = "FLAT"
        shading.color_type = "OBJECT"
        shading.show_specular_highlight = False
        scene.display.render_aa = "OFF"
        scene.render.image_settings.color_management = "OVERRIDE"
        scene.render.image_settings.view_settings.view_transform = "Raw"
        scene.world.color = (0.0, 0.0, 0.0)
    else:
        shading.light = "STUDIO"
        shading.color_type = "MATERIAL"
        shading.show_specular_highlight = True
        scene.display.render_aa = "8"
        scene.render.image_settings.color_management = "FOLLOW_SCENE"
        scene.world.color = (0.05, 0.05, 0.06)
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)


def handle(request: dict) -> None:
    size = request["size"]
    for i, objects in enumerate(request["scenes"]):
        stem = f"{request['out']}/{request['first'] + i}"
        clear_objects()
        made = {spec["uid"]: add_object(spec) for spec in objects}
        boxes = {str(uid): projected_box(obj, size) for uid, obj in made.items()}
        render(f"{stem}_rgb.png", ids=False)
        render(f"{stem}_ids.png", ids=True)
        with open(f"{stem}.json", "w") as fh:
            json.dump({"projected": boxes}, fh)


def main() -> None:
    configured = None
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        key = json.dumps([request["size"], request["camera"]])
        if key != configured:
            _MATERIALS.clear()
            _TEMPLATES.clear()
            setup(request["size"], request["camera"])
            configured = key
        handle(request)
        sys.stdout.write("PRL_DONE\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
