"""The 3D demo sofa, built from primitives inside Blender (no downloaded art).

layercake's Blender backend runs this file on an empty scene before every
render (the asset's `scene.file`); its text is part of every layer key, so
editing the model re-renders the layers. It can also be saved as a .blend
to look at or edit in Blender:

    blender -b --factory-startup --python demo/blender/sofa/scene.py \
        --python-expr "import bpy; bpy.ops.wm.save_as_mainfile(filepath='sofa.blend')"

Units are metres, Z up, the sofa centred on the origin facing -Y. What the
asset file refers to by name:

- collections "Body" (frame, arms, back, seat and back cushions), "Pillows"
  (two throw pillows), "Skirt", and one per leg style: "Legs Tapered Oak",
  "Legs Walnut Block", "Legs Black Hairpin", "Legs Brass Cone",
  "Legs Chrome Sled";
- materials "Body Fabric" and "Pillow Fabric" (colours set per request);
- the object "Floor" (the shadow catcher of the shadow layer);
- lights: a soft key from the front left, a fill from the right, a rim
  from behind, and a dim grey world.
"""

import math

import bmesh
import bpy

W, D = 2.04, 0.92          # overall width and depth
LEG_H = 0.13               # floor to the underside of the frame
BASE_H = 0.20              # frame rail height
ARM_W, ARM_H = 0.17, 0.64  # arm width, arm top above the floor
BACK_D, BACK_H = 0.20, 0.86
SEAT_W = (W - 2 * ARM_W) / 3


def collection(name):
    c = bpy.data.collections.new(name)
    bpy.context.scene.collection.children.link(c)
    return c


def srgb(hexcode):
    c = hexcode.lstrip("#")
    v = [int(c[i:i + 2], 16) / 255.0 for i in (0, 2, 4)]
    return tuple(x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in v) + (1.0,)


def principled(name, color, roughness=0.5, metallic=0.0):
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    bsdf = m.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = srgb(color)
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = metallic
    return m, bsdf


def fabric(name, color):
    """Woven upholstery: sheen, high roughness, a fine bump and a slight
    tone variation driven from a node labelled "Color"."""
    m, bsdf = principled(name, color, roughness=0.92)
    bsdf.inputs["Sheen"].default_value = 0.8
    bsdf.inputs["Sheen Tint"].default_value = 0.6
    nodes, links = m.node_tree.nodes, m.node_tree.links
    rgb = nodes.new("ShaderNodeRGB")
    rgb.label = "Color"
    rgb.outputs[0].default_value = srgb(color)
    weave = nodes.new("ShaderNodeTexWave")
    weave.inputs["Scale"].default_value = 180.0
    weave.inputs["Distortion"].default_value = 2.0
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 60.0
    mix = nodes.new("ShaderNodeMixRGB")
    mix.blend_type = "MULTIPLY"
    mix.inputs["Fac"].default_value = 0.12
    links.new(rgb.outputs[0], mix.inputs["Color1"])
    links.new(noise.outputs["Color"], mix.inputs["Color2"])
    links.new(mix.outputs[0], bsdf.inputs["Base Color"])
    bump = nodes.new("ShaderNodeBump")
    bump.inputs["Strength"].default_value = 0.18
    bump.inputs["Distance"].default_value = 0.002
    links.new(weave.outputs["Fac"], bump.inputs["Height"])
    links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    return m


def wood(name, color, dark):
    m, bsdf = principled(name, color, roughness=0.45)
    nodes, links = m.node_tree.nodes, m.node_tree.links
    grain = nodes.new("ShaderNodeTexWave")
    grain.wave_type = "RINGS"
    grain.inputs["Scale"].default_value = 14.0
    grain.inputs["Distortion"].default_value = 6.0
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = srgb(dark)
    ramp.color_ramp.elements[1].color = srgb(color)
    links.new(grain.outputs["Fac"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    return m


def mesh_object(name, bm, coll, material, smooth=True):
    me = bpy.data.meshes.new(name)
    bm.to_mesh(me)
    bm.free()
    if smooth:
        for p in me.polygons:
            p.use_smooth = True
    me.materials.append(material)
    obj = bpy.data.objects.new(name, me)
    coll.objects.link(obj)
    return obj


def box(name, size, loc, coll, material, bevel=0.01, segments=3, rot=None):
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=1.0)
    bmesh.ops.scale(bm, vec=size, verts=bm.verts)
    obj = mesh_object(name, bm, coll, material)
    obj.location = loc
    if rot is not None:
        obj.rotation_euler = rot
    if bevel > 0:
        mod = obj.modifiers.new("bevel", "BEVEL")
        mod.width = bevel
        mod.segments = segments
        mod.limit_method = "NONE"
    return obj


def cushion(name, size, loc, coll, material, rot=None):
    """A box with rounded, slightly crowned faces: bevel, then subdivision."""
    obj = box(name, size, loc, coll, material, bevel=min(size) * 0.32, segments=2, rot=rot)
    sub = obj.modifiers.new("soft", "SUBSURF")
    sub.levels = sub.render_levels = 2
    return obj


def cylinder(name, r_bottom, r_top, height, loc, coll, material, segments=32, rot=None):
    bm = bmesh.new()
    bmesh.ops.create_cone(bm, cap_ends=True, segments=segments, radius1=r_bottom,
                          radius2=r_top, depth=height)
    obj = mesh_object(name, bm, coll, material)
    obj.location = loc
    if rot is not None:
        obj.rotation_euler = rot
    bev = obj.modifiers.new("bevel", "BEVEL")
    bev.width = min(r_bottom, r_top, 0.01) * 0.5 + 0.001
    bev.segments = 2
    bev.limit_method = "ANGLE"
    return obj


def tube(name, points, radius, coll, material):
    """A round rod along a polyline (a bevelled curve)."""
    cu = bpy.data.curves.new(name, "CURVE")
    cu.dimensions = "3D"
    cu.bevel_depth = radius
    cu.bevel_resolution = 4
    cu.use_fill_caps = True
    sp = cu.splines.new("POLY")
    sp.points.add(len(points) - 1)
    for p, co in zip(sp.points, points):
        p.co = (*co, 1.0)
    cu.materials.append(material)
    obj = bpy.data.objects.new(name, cu)
    coll.objects.link(obj)
    return obj


def leg_spots(inset=0.09):
    x, y = W / 2 - inset, D / 2 - inset
    return [(-x, -y), (x, -y), (-x, y), (x, y)]


def build():
    scene = bpy.context.scene
    scene.unit_settings.system = "METRIC"

    body_fabric = fabric("Body Fabric", "#5d6670")
    pillow_fabric = fabric("Pillow Fabric", "#d9a431")
    oak = wood("Oak", "#b98a55", "#8e6337")
    walnut = wood("Walnut", "#5b3a25", "#3b2416")
    black = principled("Black Steel", "#151515", roughness=0.35, metallic=1.0)[0]
    brass = principled("Brass", "#c9a14a", roughness=0.25, metallic=1.0)[0]
    chrome = principled("Chrome", "#d8dbe0", roughness=0.08, metallic=1.0)[0]
    floor_mat = principled("Floor", "#e9e6e1", roughness=0.8)[0]

    # Body: frame rails, arms, back, seat and back cushions.
    body = collection("Body")
    z0 = LEG_H
    box("Frame", (W - 0.02, D - 0.02, BASE_H), (0, 0, z0 + BASE_H / 2), body, body_fabric, bevel=0.025)
    for side in (-1, 1):
        box(f"Arm {side:+d}", (ARM_W, D, ARM_H - z0), (side * (W - ARM_W) / 2, 0, z0 + (ARM_H - z0) / 2),
            body, body_fabric, bevel=0.05, segments=4)
    box("Back", (W - 2 * ARM_W + 0.02, BACK_D, BACK_H - z0),
        (0, D / 2 - BACK_D / 2, z0 + (BACK_H - z0) / 2), body, body_fabric, bevel=0.05, segments=4)
    seat_top = z0 + BASE_H
    for i in range(3):
        x = -W / 2 + ARM_W + SEAT_W * (i + 0.5)
        cushion(f"Seat Cushion {i}", (SEAT_W - 0.01, D - BACK_D - 0.02, 0.15),
                (x, -BACK_D / 2 + 0.0, seat_top + 0.07), body, body_fabric)
        cushion(f"Back Cushion {i}", (SEAT_W - 0.02, 0.17, 0.40),
                (x, D / 2 - BACK_D - 0.06, seat_top + 0.15 + 0.19), body, body_fabric,
                rot=(math.radians(-10), 0, 0))

    # Two throw pillows leaning on the back cushions, near the arms.
    pillows = collection("Pillows")
    for side, turn in ((-1, 12), (1, -12)):
        p = cushion(f"Pillow {side:+d}", (0.44, 0.13, 0.44),
                    (side * (W / 2 - ARM_W - 0.30), D / 2 - BACK_D - 0.21, seat_top + 0.15 + 0.22),
                    pillows, pillow_fabric,
                    rot=(math.radians(-16), math.radians(side * 6), math.radians(turn)))
        cast = p.modifiers.new("puff", "CAST")
        cast.factor = 0.35
        cast.use_z = False

    # Five leg styles, four legs each (the sled is two runners).
    legs = {
        "Tapered Oak": (oak, lambda c, x, y, n: cylinder(n, 0.018, 0.03, LEG_H, (x, y, LEG_H / 2), c, oak)),
        "Walnut Block": (walnut, lambda c, x, y, n: box(n, (0.075, 0.075, LEG_H), (x, y, LEG_H / 2), c, walnut,
                                                       bevel=0.006)),
        "Brass Cone": (brass, lambda c, x, y, n: cylinder(n, 0.012, 0.04, LEG_H, (x, y, LEG_H / 2), c, brass)),
    }
    for style, (_, make) in legs.items():
        c = collection(f"Legs {style}")
        for k, (x, y) in enumerate(leg_spots()):
            make(c, x, y, f"{style} {k}")
    hairpin = collection("Legs Black Hairpin")
    for k, (x, y) in enumerate(leg_spots(0.11)):
        sx = 1 if x > 0 else -1
        tube(f"Hairpin {k}", [(x - sx * 0.05, y, LEG_H), (x + sx * 0.005, y, 0.006), (x + sx * 0.05, y, LEG_H)],
             0.006, hairpin, black)
    sled = collection("Legs Chrome Sled")
    for k, sx in enumerate((-1, 1)):
        x = sx * (W / 2 - 0.14)
        y = D / 2 - 0.1
        tube(f"Sled {k}", [(x, -y, LEG_H), (x, -y, 0.01), (x, y, 0.01), (x, y, LEG_H)], 0.009, sled, chrome)

    # The skirt: upholstery hanging from the frame to just above the floor.
    skirt = collection("Skirt")
    box("Skirt", (W - 0.01, D - 0.01, LEG_H - 0.01), (0, 0, 0.012 + (LEG_H - 0.01) / 2), skirt,
        body_fabric, bevel=0.01)

    # The floor (6 m square): seen only as the shadow catcher. Past its
    # edge nothing is shaded any more, and every pixel of floor costs a
    # shadow-catcher sample in the shadow layer.
    stage = collection("Stage")
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=3.0)
    mesh_object("Floor", bm, stage, floor_mat, smooth=False)

    def area(name, loc, size, energy, color=(1.0, 1.0, 1.0)):
        light = bpy.data.lights.new(name, "AREA")
        light.shape = "DISK"
        light.size = size
        light.energy = energy
        light.color = color
        obj = bpy.data.objects.new(name, light)
        obj.location = loc
        direction = -obj.location.copy() + __import__("mathutils").Vector((0, 0, 0.4))
        obj.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
        stage.objects.link(obj)

    area("Key", (-2.6, -3.0, 3.4), 2.6, 380, (1.0, 0.97, 0.93))
    area("Fill", (3.2, -2.2, 1.8), 3.0, 110, (0.93, 0.96, 1.0))
    area("Rim", (0.8, 3.4, 2.8), 2.0, 140)

    world = bpy.data.worlds.new("Studio")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = srgb("#d8d8dc")
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.22
    scene.world = world


build()
