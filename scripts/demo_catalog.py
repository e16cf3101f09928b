#!/usr/bin/env python3
"""Generates the demo catalogue: catalog/sofa.json and its SVG templates.

The demo sofa is modelled as a handful of boxes, cylinders and tubes in
centimetres, projected orthographically for each camera view, shaded by a
fixed studio light and written out as one SVG template per layer and view.
Colours stay `{{Body.color}}`-style placeholders, so layercake's built-in
renderer substitutes the configuration at render time. Parts of other
layers that stand in front of a layer (the near arm in front of the
pillows) are cut out of it with a mask, as a real layered renderer's
holdout would.

This is a development tool: its output is committed, and nothing at run
time needs Python. Re-run it after changing the model:

    python3 scripts/demo_catalog.py
"""

import json
import math
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "catalog")
CANVAS = 1200
SCALE = 4.3  # pixels per centimetre
ORIGIN = (600.0, 820.0)  # where the floor centre lands on the canvas

ASSET_ID = "03a29397-2265-40cd-8c45-41a1c4e12574"
VIEWS = [  # name, label, yaw (deg), pitch (deg)
    ("front", "Front", 0, 12),
    ("left", "Three-quarter left", 35, 15),
    ("right", "Three-quarter right", -35, 15),
    ("side", "Side", 90, 9),
]
BODY = [("Slate", "#5d6670"), ("Oatmeal", "#cdbfa8"), ("Navy", "#2c3a55"),
        ("Forest", "#3e5a45"), ("Rust", "#a2542f"), ("Dove", "#b9b7b3")]
PILLOWS = [("Ivory", "#efe8da"), ("Mustard", "#d9a431"), ("Teal", "#2f7f7c"),
           ("Blush", "#e3b2a8"), ("Charcoal", "#3d3f44"), ("Terracotta", "#c0603e")]
LEGS = [  # value, layer id
    ("Tapered Oak", "b81a9901-9cbd-44de-b6bf-95e164f70f25"),
    ("Walnut Block", "e8611c22-a14d-49d3-a72b-6fe784313a17"),
    ("Black Hairpin", "2c9ce37b-1a29-4f34-9ee2-bd2fd2118b43"),
    ("Brass Cone", "2e0199bc-fc19-4cda-a8da-e0257f500f3a"),
    ("Chrome Sled", "7eddcee3-eb0f-498a-a481-cc0bacaad1cb"),
]
LIGHT = (-0.45, 0.72, 0.53)  # towards the light, in view space (x right, y up, z to camera)
LEG_H = 16.0
LEG_SPOTS = [(x, z) for x in (-94.0, 94.0) for z in (-36.0, 36.0)]


def norm(v):
    n = math.sqrt(sum(c * c for c in v))
    return tuple(c / n for c in v)


class Camera:
    def __init__(self, yaw, pitch):
        self.cy, self.sy = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
        self.cp, self.sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
        self.pitch = pitch

    def view(self, p):
        """World → view space: x right, y up, z towards the camera."""
        x, y, z = p
        x1, z1 = x * self.cy + z * self.sy, -x * self.sy + z * self.cy
        return (x1, y * self.cp - z1 * self.sp, z1 * self.cp + y * self.sp)

    def project(self, p):
        x, y, _ = self.view(p)
        return (ORIGIN[0] + SCALE * x, ORIGIN[1] - SCALE * y)

    def depth(self, p):
        return self.view(p)[2]

    def toward(self):
        """World direction pointing at the camera."""
        return (-self.sy * self.cp, self.sp, self.cy * self.cp)

    def facing(self, n):
        return self.view(n)[2] > 1e-6

    def shade(self, n):
        v = self.view(n)
        return max(0.0, sum(a * b for a, b in zip(v, norm(LIGHT))))


def fmt(pts):
    return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in pts) + " Z"


def overlay(light):
    """A black or white veil that turns the flat colour into a lit face."""
    if light > 0.8:
        return "#fff", (light - 0.8) * 0.6
    return "#000", (0.8 - light) * 0.55


class Box:
    """An axis-aligned box, optionally tilted about the x axis around its
    bottom-back edge, with faces that can be left out where they are hidden."""

    FACES = {  # name: (normal, corner indices)
        "left": ((-1, 0, 0), (0, 2, 6, 4)), "right": ((1, 0, 0), (1, 5, 7, 3)),
        "bottom": ((0, -1, 0), (0, 4, 5, 1)), "top": ((0, 1, 0), (2, 3, 7, 6)),
        "back": ((0, 0, -1), (0, 1, 3, 2)), "front": ((0, 0, 1), (4, 6, 7, 5)),
    }

    def __init__(self, lo, hi, color, tilt=0.0, skip=(), round_front=False):
        self.lo, self.hi, self.color, self.skip = lo, hi, color, set(skip)
        self.tilt, self.round_front = math.radians(tilt), round_front

    def _tilt(self, p):
        if not self.tilt:
            return p
        py, pz = self.lo[1], self.lo[2]
        y, z = p[1] - py, p[2] - pz
        c, s = math.cos(self.tilt), math.sin(self.tilt)
        return (p[0], py + y * c + z * s, pz - y * s + z * c)

    def corners(self):
        (x0, y0, z0), (x1, y1, z1) = self.lo, self.hi
        return [self._tilt((x, y, z)) for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)]

    def center(self):
        return self._tilt(tuple((a + b) / 2 for a, b in zip(self.lo, self.hi)))

    def silhouette(self, cam):
        return hull([cam.project(p) for p in self.corners()])

    def aabb(self):
        c = self.corners()
        return tuple(min(p[i] for p in c) for i in range(3)), tuple(max(p[i] for p in c) for i in range(3))

    def svg(self, cam):
        pts = self.corners()
        out = [f'<path d="{fmt(self.silhouette(cam))}" fill="{self.color}" stroke="{self.color}" stroke-width="1.2" stroke-linejoin="round"/>']
        for name, (n, idx) in self.FACES.items():
            n = self._tilt_normal(n)
            if name in self.skip or not cam.facing(n):
                continue
            face = [cam.project(pts[i]) for i in idx]
            ink, alpha = overlay(cam.shade(n))
            if name == "front" and self.round_front:
                out.append(f'<path d="{puffy(face)}" fill="{self.color}"/>')
                out.append(f'<path d="{puffy(face)}" fill="url(#puff)"/>')
            elif alpha > 0.01:
                out.append(f'<path d="{fmt(face)}" fill="{ink}" fill-opacity="{alpha:.3f}"/>')
            if name in ("front", "left", "right", "back") and not self.round_front:
                out.append(f'<path d="{fmt(face)}" fill="url(#fall)"/>')
        return "\n".join(out)

    def _tilt_normal(self, n):
        if not self.tilt:
            return n
        c, s = math.cos(self.tilt), math.sin(self.tilt)
        return (n[0], n[1] * c + n[2] * s, -n[1] * s + n[2] * c)


def puffy(face):
    """A pillow front: corners stay, edges bow inwards a little."""
    cx = sum(p[0] for p in face) / 4
    cy = sum(p[1] for p in face) / 4
    d = f"M{face[0][0]:.1f},{face[0][1]:.1f}"
    for i in range(4):
        a, b = face[i], face[(i + 1) % 4]
        mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
        qx, qy = mx + (cx - mx) * 0.12, my + (cy - my) * 0.12
        d += f" Q{qx:.1f},{qy:.1f} {b[0]:.1f},{b[1]:.1f}"
    return d + " Z"


def hull(points):
    pts = sorted(set((round(x, 2), round(y, 2)) for x, y in points))
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


class Post:
    """A vertical round post (cylinder or cone), shaded like a turned leg."""

    def __init__(self, x, z, r_top, r_bottom, y0, y1, color, grad):
        self.x, self.z, self.rt, self.rb, self.y0, self.y1 = x, z, r_top, r_bottom, y0, y1
        self.color, self.grad = color, grad

    def center(self):
        return (self.x, (self.y0 + self.y1) / 2, self.z)

    def aabb(self):
        r = max(self.rt, self.rb)
        return (self.x - r, self.y0, self.z - r), (self.x + r, self.y1, self.z + r)

    def svg(self, cam):
        (tx, ty), (bx, by) = cam.project((self.x, self.y1, self.z)), cam.project((self.x, self.y0, self.z))
        rt, rb = self.rt * SCALE, self.rb * SCALE
        k = cam.sp  # a horizontal circle projects to an ellipse this flat
        body = (f"M{tx - rt:.1f},{ty:.1f} L{bx - rb:.1f},{by:.1f} "
                f"A{rb:.1f},{rb * k:.1f} 0 0 0 {bx + rb:.1f},{by:.1f} L{tx + rt:.1f},{ty:.1f} Z")
        return (f'<path d="{body}" fill="{self.color}"/>\n<path d="{body}" fill="url(#{self.grad})"/>')


class Tube:
    """A round tube along a 3D polyline (hairpins, sled frames)."""

    def __init__(self, points, radius, color, shine):
        self.points, self.r, self.color, self.shine = points, radius, color, shine

    def center(self):
        return tuple(sum(p[i] for p in self.points) / len(self.points) for i in range(3))

    def aabb(self):
        return (tuple(min(p[i] for p in self.points) - self.r for i in range(3)),
                tuple(max(p[i] for p in self.points) + self.r for i in range(3)))

    def svg(self, cam):
        pts = [cam.project(p) for p in self.points]
        d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        w = 2 * self.r * SCALE
        hi = "M" + " L".join(f"{x - w * 0.18:.1f},{y - w * 0.18:.1f}" for x, y in pts)
        return (f'<path d="{d}" fill="none" stroke="{self.color}" stroke-width="{w:.1f}" stroke-linecap="round" stroke-linejoin="round"/>\n'
                f'<path d="{hi}" fill="none" stroke="{self.shine}" stroke-opacity="0.55" stroke-width="{w * 0.3:.1f}" stroke-linecap="round" stroke-linejoin="round"/>')


def body_parts(color="{{Body.color}}"):
    return [
        Box((-83, LEG_H, -46), (83, 40, 42), color, skip=("top",)),                  # plinth
        Box((-83, 40, -46), (83, 86, -24), color),                                   # back frame
        Box((-81, 54, -19), (-1, 83, -5), color, tilt=8),                          # back cushions
        Box((1, 54, -19), (81, 83, -5), color, tilt=8),
        Box((-83, 40, -10), (-0.6, 54, 45), color),                                  # seat cushions
        Box((0.6, 40, -10), (83, 54, 45), color),
        Box((-105, LEG_H, -46), (-83, 64, 46), color),                               # arms
        Box((83, LEG_H, -46), (105, 64, 46), color),
    ]


def arms():
    return body_parts("#000")[-2:]


def pillow_parts():
    c = "{{Pillows.color}}"
    return [Box((-72, 54, -3), (-28, 96, 9), c, tilt=14, round_front=True),
            Box((28, 54, -3), (72, 96, 9), c, tilt=14, round_front=True)]


def skirt_parts():
    return [Box((-106.5, 3, -47.5), (106.5, 30, 47.5), "{{Body.color}}", skip=("top", "bottom"))]


def leg_parts(style):
    parts = []
    for x, z in LEG_SPOTS:
        if style == "Tapered Oak":
            parts.append(Post(x, z, 2.6, 1.5, 0, LEG_H, "#c89b6d", "wood"))
        elif style == "Walnut Block":
            parts.append(Box((x - 3.5, 0, z - 3.5), (x + 3.5, LEG_H, z + 3.5), "#5a3a22"))
        elif style == "Brass Cone":
            parts.append(Post(x, z, 3.4, 0.7, 0, LEG_H, "#c9a24a", "brass"))
        elif style == "Black Hairpin":
            for dz in (-3.5, 3.5):
                parts.append(Tube([(x - 3, LEG_H, z + dz), (x, 0.6, z), (x + 3, LEG_H, z + dz)], 0.6, "#1d1d1f", "#8a8a90"))
    if style == "Chrome Sled":
        for x in (-94.0, 94.0):
            parts.append(Tube([(x, LEG_H, -38), (x, 1.2, -40), (x, 1.2, 40), (x, LEG_H, 38)], 1.1, "#aab0b8", "#ffffff"))
    return parts


DEFS = """<defs>
<linearGradient id="fall" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#fff" stop-opacity="0.10"/><stop offset="1" stop-color="#000" stop-opacity="0.16"/></linearGradient>
<radialGradient id="puff" cx="0.42" cy="0.38" r="0.75"><stop offset="0" stop-color="#fff" stop-opacity="0.22"/><stop offset="0.6" stop-color="#fff" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="0.28"/></radialGradient>
<linearGradient id="wood" x1="0" y1="0" x2="1" y2="0"><stop offset="0" stop-color="#000" stop-opacity="0.25"/><stop offset="0.35" stop-color="#fff" stop-opacity="0.18"/><stop offset="1" stop-color="#000" stop-opacity="0.35"/></linearGradient>
<linearGradient id="brass" x1="0" y1="0" x2="1" y2="0"><stop offset="0" stop-color="#000" stop-opacity="0.30"/><stop offset="0.3" stop-color="#fff" stop-opacity="0.55"/><stop offset="0.55" stop-color="#fff" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="0.40"/></linearGradient>
</defs>"""


def svg_doc(inner):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{CANVAS}" height="{CANVAS}" viewBox="0 0 {CANVAS} {CANVAS}">\n'
            f"{DEFS}\n{inner}\n</svg>\n")


def in_front(cam, a, b):
    """True when `a` hides `b` rather than the other way round: the two
    bounding boxes are separated along some axis and the camera looks at the
    separating plane from a's side. None when they are not separated."""
    (alo, ahi), (blo, bhi) = a.aabb(), b.aabb()
    d = cam.toward()
    for i in range(3):
        if ahi[i] <= blo[i] + 0.01 and abs(d[i]) > 1e-6:
            return d[i] < 0
        if bhi[i] <= alo[i] + 0.01 and abs(d[i]) > 1e-6:
            return d[i] > 0
    return None


def back_to_front(cam, parts):
    """Topological painter's order; centre depth breaks ties."""
    parts = sorted(parts, key=lambda p: cam.depth(p.center()))
    after = {i: set() for i in range(len(parts))}
    for i, a in enumerate(parts):
        for j, b in enumerate(parts):
            if i < j:
                f = in_front(cam, a, b)
                if f is True:
                    after[i].add(j)  # a is drawn after b
                elif f is False:
                    after[j].add(i)
    order, done = [], set()
    while len(order) < len(parts):
        ready = [i for i in range(len(parts)) if i not in done and after[i] <= done]
        i = ready[0] if ready else min(set(range(len(parts))) - done)
        order.append(i)
        done.add(i)
    return [parts[i] for i in order]


def paint(cam, parts, occluders=()):
    """Parts back to front; occluders in front of them cut out with a mask."""
    parts = back_to_front(cam, parts)
    body = "\n".join(p.svg(cam) for p in parts)
    front = [o for o in occluders if any(in_front(cam, o, p) for p in parts)]
    if not front:
        return body
    holes = "\n".join(f'<path d="{fmt(o.silhouette(cam))}" fill="#000"/>' for o in front)
    return (f'<mask id="holdout" maskUnits="userSpaceOnUse" x="0" y="0" width="{CANVAS}" height="{CANVAS}">'
            f'<rect width="{CANVAS}" height="{CANVAS}" fill="#fff"/>\n{holes}</mask>\n'
            f'<g mask="url(#holdout)">\n{body}\n</g>')


def backdrop(cam):
    horizon = ORIGIN[1] - SCALE * 150 * cam.sp - 40
    return f"""<linearGradient id="wall" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#f4f2ee"/><stop offset="1" stop-color="#e7e3dc"/></linearGradient>
<linearGradient id="floor" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#e2ddd5"/><stop offset="1" stop-color="#d6d0c6"/></linearGradient>
<radialGradient id="glow" cx="0.5" cy="0.45" r="0.6"><stop offset="0" stop-color="#fff" stop-opacity="0.55"/><stop offset="1" stop-color="#fff" stop-opacity="0"/></radialGradient>
<rect width="{CANVAS}" height="{CANVAS}" fill="url(#wall)"/>
<rect y="{horizon:.1f}" width="{CANVAS}" height="{CANVAS - horizon:.1f}" fill="url(#floor)"/>
<rect y="{horizon - 60:.1f}" width="{CANVAS}" height="120" fill="url(#wall)" opacity="0.35"/>
<rect width="{CANVAS}" height="{CANVAS}" fill="url(#glow)"/>"""


def shadow(cam):
    def foot(dx, dz):
        return fmt(hull([cam.project((sx * dx, 0, sz * dz)) for sx in (-1, 1) for sz in (-1, 1)]))
    return f"""<filter id="soft" filterUnits="userSpaceOnUse" x="0" y="0" width="{CANVAS}" height="{CANVAS}"><feGaussianBlur stdDeviation="22"/></filter>
<filter id="contact" filterUnits="userSpaceOnUse" x="0" y="0" width="{CANVAS}" height="{CANVAS}"><feGaussianBlur stdDeviation="7"/></filter>
<path d="{foot(118, 58)}" fill="#2b2118" fill-opacity="0.30" filter="url(#soft)"/>
<path d="{foot(102, 44)}" fill="#2b2118" fill-opacity="0.22" filter="url(#contact)"/>"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def main():
    layers = [
        ("29b4dae4-c6d5-43be-b79c-9c78e37a5c22", "Backdrop", "backdrop", [], None, backdrop),
        ("2f6156cc-aef8-458a-9ca7-fa773cb32b98", "Shadow", "shadow", [], None, shadow),
    ]
    for value, lid in LEGS:
        slug = "legs-" + value.lower().replace(" ", "-")
        layers.append((lid, f"Legs: {value}", slug, [], {"Legs": value},
                       lambda cam, v=value: paint(cam, leg_parts(v))))
    layers += [
        ("1b9091b2-7b79-4d38-987f-b6d63e9aea2d", "Body", "body", ["Body"], None,
         lambda cam: paint(cam, body_parts())),
        ("f9f2c712-2dd5-4a83-8e20-e96e84bb317f", "Skirt", "skirt", ["Body"], {"Skirt": True},
         lambda cam: paint(cam, skirt_parts())),
        ("c387ca69-3307-41a5-b762-f1c57870eb81", "Pillows", "pillows", ["Pillows"], None,
         lambda cam: paint(cam, pillow_parts(), occluders=arms())),
    ]
    for name, _, yaw, pitch in VIEWS:
        cam = Camera(yaw, pitch)
        for _, _, slug, _, _, draw in layers:
            write(os.path.join(ROOT, "sofa", name, slug + ".svg"), svg_doc(draw(cam)))

    def options(values):
        return [{"value": v, "metadata": {"color": c}} for v, c in values]

    asset = {
        "id": ASSET_ID,
        "name": "Harbor Sofa",
        "version": 1,
        "description": "A three-seat sofa: 6 body fabrics, 6 pillow colours, 5 leg styles and an optional skirt, on 4 camera views.",
        "width": CANVAS,
        "height": CANVAS,
        "attributes": [
            {"name": "Body", "type": "string", "label": "Body fabric", "default": "Slate", "values": options(BODY)},
            {"name": "Pillows", "type": "string", "label": "Pillow colour", "default": "Mustard", "values": options(PILLOWS)},
            {"name": "Legs", "type": "string", "label": "Leg style", "default": "Tapered Oak", "values": [v for v, _ in LEGS]},
            {"name": "Skirt", "type": "boolean", "label": "Skirt", "default": False},
        ],
        "views": [{"name": n, "label": l, "stage": {"Camera": i}} for i, (n, l, _, _) in enumerate(VIEWS)],
        "layers": [
            {k: v for k, v in {
                "id": lid, "name": name, "dependsOn": deps, "visibleWhen": vis,
                "render": {"svg": f"sofa/{{view}}/{slug}.svg"},
            }.items() if v is not None}
            for lid, name, slug, deps, vis, _ in layers
        ],
    }
    write(os.path.join(ROOT, "sofa.json"), json.dumps(asset, indent=2) + "\n")


if __name__ == "__main__":
    main()
