"""layercake's Blender render backend: renders one layer of a 3D scene.

Run by layercake (`render/blender.rs`, backend kind "blender"), never by
hand in production:

    blender -b --factory-startup -noaudio --python layercake.py -- --serve

reads one request per line on stdin (JSON, below), renders it, and answers
one line on stdout that starts with `@@layercake ` followed by JSON:
`{"ok": true, "seconds": 1.9}` or `{"ok": false, "error": "...",
"scene": true}` (`scene`: the request or scene is wrong, a retry will not
help). Every other line on stdout is Blender's own chatter. One process
renders many requests, one at a time; each request starts from a freshly
loaded scene (the `.blend` opened again, or the scene script run again on
an empty file), so no request sees what an earlier one changed and the
same request always gives the same pixels.

    blender -b --factory-startup -noaudio --python layercake.py -- request.json

renders one request and exits (for trying a request by hand).

A request, as layercake builds it from the asset (every name resolved in
Rust, so this script only applies and renders):

    {"scene": "/abs/path/scene.py" | "/abs/path/scene.blend",
     "output": "/abs/path/out.png",
     "width": 1200, "height": 1200, "scale": 100,
     "samples": 64, "seed": 0, "device": "CPU", "threads": 0,
     "camera": {"object": "Camera"}
             | {"azimuth": 35, "elevation": 15, "distance": 4.2,
                "target": [0, 0, 0.4], "lens": 50},
     "draw":   {"collections": [...], "objects": [...]},  # seen by the camera
     "holdout":{"collections": [...], "objects": [...]},  # cut out of the image
     "cast":   {"collections": [...], "objects": [...]},  # unseen; shadows, light
     "hide":   {"collections": [...], "objects": [...]},  # not there at all
     "floor": "Floor" | null,
     "shadow": false,         # true: the floor is a shadow catcher, seen
     "materials": {"Body Fabric": {"color": "#5d6670"}}}

Objects the request does not name keep the scene's own visibility, except
that the floor is never seen unless `shadow` is true: lights, cameras and
anything an author left in the file stay as saved.
"""

import json
import math
import os
import random
import sys
import time
import traceback

import bpy
import mathutils

MARK = "@@layercake "


class SceneError(Exception):
    """The request names something the scene does not have."""


def _load(path):
    """A fresh scene, whatever earlier requests did in this process."""
    for handlers in (bpy.app.handlers.render_pre, bpy.app.handlers.render_post,
                     bpy.app.handlers.frame_change_pre, bpy.app.handlers.frame_change_post,
                     bpy.app.handlers.depsgraph_update_pre, bpy.app.handlers.depsgraph_update_post):
        handlers.clear()
    bpy.app.driver_namespace.clear()
    random.seed(0)
    try:
        if path.endswith(".blend"):
            bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)
        else:
            bpy.ops.wm.read_factory_settings(use_empty=True)
            with open(path, encoding="utf-8") as f:
                code = compile(f.read(), path, "exec")
            exec(code, {"__name__": "__layercake_scene__", "__file__": path})
    except Exception as e:
        # A broken scene stays broken: not worth a retry.
        tail = traceback.format_exc().strip().splitlines()[-2:]
        raise SceneError(f"the scene did not load: {type(e).__name__}: {e} | {' / '.join(tail)}") from e


def _objects_of(group, field):
    names = group.get(field) or {}
    out = []
    for name in names.get("collections", []):
        coll = bpy.data.collections.get(name)
        if coll is None:
            raise SceneError(f"the scene has no collection \"{name}\" ({field})")
        out.extend(coll.all_objects)
    for name in names.get("objects", []):
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise SceneError(f"the scene has no object \"{name}\" ({field})")
        out.append(obj)
    return out


def _hex(color):
    c = color.lstrip("#")
    if len(c) != 6:
        raise SceneError(f"colour \"{color}\" is not #rrggbb")
    srgb = [int(c[i:i + 2], 16) / 255.0 for i in (0, 2, 4)]
    # Blender's colour sockets are scene-linear.
    lin = [x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in srgb]
    return (*lin, 1.0)


def _set_material(name, props):
    mat = bpy.data.materials.get(name)
    if mat is None or not mat.use_nodes:
        raise SceneError(f"the scene has no node material \"{name}\"")
    bsdf = next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        raise SceneError(f"material \"{name}\" has no Principled BSDF")
    if "color" in props:
        # A scene may drive the colour through a node labelled "Color"
        # (an RGB node feeding texture mixes); else the BSDF's input.
        node = next((n for n in mat.node_tree.nodes if n.type == "RGB" and n.label == "Color"), None)
        if node is not None:
            node.outputs[0].default_value = _hex(props["color"])
        else:
            bsdf.inputs["Base Color"].default_value = _hex(props["color"])
    for key, socket in (("roughness", "Roughness"), ("metallic", "Metallic")):
        if key in props:
            bsdf.inputs[socket].default_value = float(props[key])


def _camera(scene, spec):
    if "object" in spec:
        cam = bpy.data.objects.get(spec["object"])
        if cam is None or cam.type != "CAMERA":
            raise SceneError(f"the scene has no camera \"{spec['object']}\"")
        scene.camera = cam
        return
    data = bpy.data.cameras.new("layercake view")
    data.lens = float(spec.get("lens", 50))
    data.clip_start = 0.05
    data.clip_end = 200
    cam = bpy.data.objects.new("layercake view", data)
    scene.collection.objects.link(cam)
    target = mathutils.Vector(spec.get("target", (0, 0, 0)))
    az = math.radians(float(spec["azimuth"]))
    el = math.radians(float(spec["elevation"]))
    d = float(spec["distance"])
    # Azimuth 0 looks from the front (-Y) towards +Y; positive turns the
    # camera to the viewer's left around the product.
    offset = mathutils.Vector((-math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)))
    cam.location = target + offset * d
    cam.rotation_euler = (target - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam


def _device(scene, req):
    device = req.get("device", "CPU").upper()
    scene.cycles.device = "CPU"
    if device == "CPU":
        return
    prefs = bpy.context.preferences.addons["cycles"].preferences
    prefs.compute_device_type = device
    prefs.get_devices()
    usable = [d for d in prefs.devices if d.type == device]
    if not usable:
        raise RuntimeError(f"no {device} device in this Blender (its build or drivers lack it)")
    for d in prefs.devices:
        d.use = d.type == device
    scene.cycles.device = "GPU"


def render(req):
    started = time.monotonic()
    _load(req["scene"])
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    _device(scene, req)
    cycles = scene.cycles
    cycles.samples = int(req.get("samples", 64))
    cycles.seed = int(req.get("seed", 0))
    cycles.use_animated_seed = False
    cycles.use_denoising = False
    cycles.use_adaptive_sampling = False
    threads = int(req.get("threads", 0))
    scene.render.threads_mode = "FIXED" if threads > 0 else "AUTO"
    if threads > 0:
        scene.render.threads = threads
    scene.render.film_transparent = True
    # Only the render itself: a .blend's compositor or sequencer would
    # change what a layer is.
    scene.render.use_compositing = False
    scene.render.use_sequencer = False
    scene.render.dither_intensity = 0.0
    scene.render.resolution_x = int(req["width"])
    scene.render.resolution_y = int(req["height"])
    scene.render.resolution_percentage = int(req.get("scale", 100))
    scene.render.use_border = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    scene.render.image_settings.compression = 15
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"

    for name, props in sorted((req.get("materials") or {}).items()):
        _set_material(name, props)

    floor = None
    if req.get("floor"):
        floor = bpy.data.objects.get(req["floor"])
        if floor is None:
            raise SceneError(f"the scene has no floor object \"{req['floor']}\"")

    def state(obj, render=True, camera=True, holdout=False):
        obj.hide_render = not render
        obj.visible_camera = camera
        obj.is_holdout = holdout

    # Order matters where groups overlap: what the layer draws wins.
    for obj in _objects_of(req, "hide"):
        state(obj, render=False)
    for obj in _objects_of(req, "cast"):
        state(obj, camera=False)
    for obj in _objects_of(req, "holdout"):
        state(obj, holdout=True)
    for obj in _objects_of(req, "draw"):
        state(obj)
    if floor is not None:
        shadow = bool(req.get("shadow"))
        state(floor, camera=shadow)
        floor.is_shadow_catcher = shadow
    _camera(scene, req["camera"])

    scene.render.filepath = req["output"]
    bpy.ops.render.render(write_still=True)
    if not os.path.exists(req["output"]):
        raise RuntimeError("Blender rendered nothing (no output file)")
    return time.monotonic() - started


def answer(reply):
    # On a line of its own even if Blender's own (C) output left one
    # unfinished: layercake looks for the mark anywhere in a line.
    sys.stdout.flush()
    sys.stdout.write("\n" + MARK + json.dumps(reply) + "\n")
    sys.stdout.flush()


def handle(line):
    try:
        req = json.loads(line)
        seconds = render(req)
        answer({"ok": True, "seconds": round(seconds, 3)})
    except SceneError as e:
        answer({"ok": False, "scene": True, "error": str(e)})
    except Exception as e:  # the reply names it; layercake logs it
        tail = traceback.format_exc().strip().splitlines()[-3:]
        answer({"ok": False, "scene": False, "error": f"{type(e).__name__}: {e} | {' / '.join(tail)}"})


def main():
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if args == ["--serve"]:
        answer({"ready": True, "blender": bpy.app.version_string})
        for line in sys.stdin:
            if line.strip():
                handle(line)
        return
    if len(args) == 1:
        with open(args[0], encoding="utf-8") as f:
            handle(f.read())
        return
    sys.stderr.write("usage: blender -b --python layercake.py -- --serve | request.json\n")
    sys.exit(2)


main()
