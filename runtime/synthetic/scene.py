"""Procedural street scenes as label maps: the geometry both synthetic domains share.

A pinhole camera one unit above a flat ground plane looks down a straight street. A world point (X, d, Z) —
lateral offset, depth and height, all in camera heights (~1.5 m) — projects to
``x = vx + X * p``, ``y = horizon + p * (1 - Z)`` with ``p = (H - horizon) / d``, so objects shrink toward the
horizon and the road converges to the vanishing point (vx, horizon). Every object is a set of planar polygons drawn
far to near (painter's algorithm) into four maps: Cityscapes label IDs, instance IDs (Cityscapes convention), a
material code for details such as windows, tyres and lane markings, and a per-region tone (0..255) that a style
turns into colour variation. There are no colours here: the styles (`runtime.synthetic.style`) only change
appearance, so the source and target domains share their layout statistics exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

# Cityscapes label IDs used by the scenes.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE = 7, 8, 11, 12, 13, 17
TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY = 19, 20, 21, 22, 23
PERSON, RIDER, CAR, TRUCK, BUS, BICYCLE = 24, 25, 26, 27, 28, 33
INSTANCE_LABELS = frozenset({24, 25, 26, 27, 28, 31, 32, 33})  # Cityscapes classes with instances

# Material codes: details inside a class that styles colour on their own.
MAT_BASE, MAT_GLASS, MAT_DARK, MAT_BRIGHT, MAT_SKIN = 0, 1, 2, 3, 4

NEAR, FAR = 0.25, 120.0  # depth range of the ground polygons (below the image bottom .. at the horizon)
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel polygon vertices keep small objects in proportion


@dataclass(frozen=True)
class Scene:
    """One rendered layout: label IDs and instance IDs (what gets written) plus the maps styles colour from."""

    label_ids: np.ndarray  # H x W uint8, Cityscapes label IDs
    instance_ids: np.ndarray  # H x W int32, labelId * 1000 + k for instance classes, else labelId
    material: np.ndarray  # H x W uint8, MAT_* codes
    tone: np.ndarray  # H x W uint8, per-region variation


class _Canvas:
    """The four maps plus the camera; draws world-space polygons into all of them at once."""

    def __init__(self, width: int, height: int, horizon: float, vx: float) -> None:
        self.width, self.height, self.horizon, self.vx = width, height, horizon, vx
        self.label = np.full((height, width), SKY, np.uint8)
        self.instance = np.full((height, width), SKY, np.int32)
        self.material = np.zeros((height, width), np.uint8)
        self.tone = np.full((height, width), 128, np.uint8)
        self._instances: dict[int, int] = {}

    def pixels_per_unit(self, d):
        return (self.height - self.horizon) / d

    def _fixed(self, polys: list[np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Project world polygons (a list, or an n x k x 3 array) to cv2 fixed-point contours in one pass."""
        if isinstance(polys, np.ndarray):
            n, k = polys.shape[:2]
            return list(self._project(polys.reshape(-1, 3)).reshape(n, k, 2))
        if len(polys) == 1:
            return [self._project(np.asarray(polys[0], np.float64))]
        fixed = self._project(np.concatenate(polys, axis=0))
        ends = np.cumsum([len(poly) for poly in polys]).tolist()
        return [fixed[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]

    def _project(self, pts: np.ndarray) -> np.ndarray:
        p = (self.height - self.horizon) / pts[:, 1]
        xy = np.empty((len(pts), 2))
        xy[:, 0] = self.vx + pts[:, 0] * p
        xy[:, 1] = self.horizon + p * (1.0 - pts[:, 2])
        xy *= 1 << _SHIFT
        np.clip(xy, -(2**28), 2**28, out=xy)
        return np.rint(xy).astype(np.int32)

    def new_instance(self, label: int) -> int:
        """Cityscapes instance ID: labelId * 1000 + k (k from 0) for instance classes, labelId otherwise."""
        if label not in INSTANCE_LABELS:
            return label
        k = self._instances.get(label, 0)
        self._instances[label] = k + 1
        return label * 1000 + k

    def fill(self, polys: list[np.ndarray], label: int, instance: int, tone: int, material: int = MAT_BASE) -> None:
        """Paint polygons (each N x 3 world points) as one region. Separate calls so overlaps never cancel."""
        for contour in self._fixed(polys):
            pts = [contour]
            cv2.fillPoly(self.label, pts, int(label), cv2.LINE_8, _SHIFT)
            cv2.fillPoly(self.instance, pts, int(instance), cv2.LINE_8, _SHIFT)
            cv2.fillPoly(self.material, pts, int(material), cv2.LINE_8, _SHIFT)
            cv2.fillPoly(self.tone, pts, int(tone), cv2.LINE_8, _SHIFT)

    def mark(self, polys: list[np.ndarray], material: int) -> None:
        """Paint details (windows, tyres, markings) onto what is already there: material only, label unchanged.

        One cv2 call for all of them: details of one call never overlap, so the even-odd fill cannot cancel.
        """
        if len(polys):
            cv2.fillPoly(self.material, self._fixed(polys), int(material), cv2.LINE_8, _SHIFT)

    def ring(self, outer: np.ndarray, inner: np.ndarray, label: int, instance: int, tone: int, material: int) -> None:
        """A polygon with a hole (wheels): cv2 fills two contours in one call even-odd."""
        pts = self._fixed([outer, inner])
        for target, value in ((self.label, label), (self.instance, instance), (self.material, material)):
            cv2.fillPoly(target, pts, int(value), cv2.LINE_8, _SHIFT)
        cv2.fillPoly(self.tone, pts, int(tone), cv2.LINE_8, _SHIFT)


# --- world-space polygon helpers (points are (X, d, Z)) ---


def _side_rect(x: float, d0: float, d1: float, z0: float, z1: float) -> np.ndarray:
    """A rectangle in the plane X = x (facades, side faces): runs along the street."""
    return np.array([(x, d0, z0), (x, d1, z0), (x, d1, z1), (x, d0, z1)])


def _front_rect(d: float, x0: float, x1: float, z0: float, z1: float) -> np.ndarray:
    """A rectangle facing the camera at depth d (backs of cars, signs, people)."""
    return np.array([(x0, d, z0), (x1, d, z0), (x1, d, z1), (x0, d, z1)])


def _flat_rect(z: float, x0: float, x1: float, d0: float, d1: float) -> np.ndarray:
    """A horizontal rectangle at height z (road, sidewalks, roofs below the camera)."""
    return np.array([(x0, d0, z), (x1, d0, z), (x1, d1, z), (x0, d1, z)])


def _front_ellipse(d: float, xc: float, zc: float, rx: float, rz: float, n: int = 16, jitter=None) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    r = 1.0 if jitter is None else jitter
    return np.stack([xc + rx * r * np.cos(t), np.full(n, d), zc + rz * r * np.sin(t)], axis=1)


def _side_ellipse(x: float, dc: float, zc: float, rd: float, rz: float, n: int = 16) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([np.full(n, x), dc + rd * np.cos(t), zc + rz * np.sin(t)], axis=1)


def _box(c: _Canvas, x0, x1, d0, d1, z0, z1, label, inst, tone, material=MAT_BASE) -> None:
    """The faces of an axis-aligned box that a camera at X=0, Z=1 sees (convex, so they never overlap)."""
    faces = []
    if z1 < 1.0:
        faces.append(_flat_rect(z1, x0, x1, d0, d1))
    if x1 < 0.0:
        faces.append(_side_rect(x1, d0, d1, z0, z1))
    if x0 > 0.0:
        faces.append(_side_rect(x0, d0, d1, z0, z1))
    faces.append(_front_rect(d0, x0, x1, z0, z1))
    c.fill(faces, label, inst, tone, material)


def _visible_side(x0: float, x1: float) -> float | None:
    """X of the side face the camera sees, if any."""
    return x1 if x1 < 0.0 else x0 if x0 > 0.0 else None


def _grid(u0, u1, v0, v1, du, dv, fill_u, fill_v) -> np.ndarray:
    """Cells (n x 4: u0, u1, v0, v1) of a regular pattern of windows inside a rectangle."""
    us = np.arange(u0 + 0.4 * du, u1 - fill_u * du, du)
    vs = np.arange(v0 + 0.35 * dv, v1 - fill_v * dv - 0.2, dv)
    uu, vv = (a.ravel() for a in np.meshgrid(us, vs))
    return np.stack([uu, uu + fill_u * du, vv, vv + fill_v * dv], axis=1)


def _side_rects(x: float, cells: np.ndarray) -> np.ndarray:
    """Many _side_rect at once: n x 4 x 3."""
    u0, u1, v0, v1 = cells.T
    out = np.empty((len(cells), 4, 3))
    out[:, :, 0] = x
    out[:, :, 1] = np.stack([u0, u1, u1, u0], axis=1)
    out[:, :, 2] = np.stack([v0, v0, v1, v1], axis=1)
    return out


def _front_rects(d: float, cells: np.ndarray) -> np.ndarray:
    """Many _front_rect at once: n x 4 x 3."""
    out = _side_rects(0.0, cells)
    out[:, :, 0], out[:, :, 1] = out[:, :, 1], d
    return out


# --- scene parts ---


def _ground(c: _Canvas, rng: np.random.Generator, road_c: float, road_half: float, walks: tuple[float, float]):
    """Terrain everywhere below the horizon, sidewalks along both kerbs, the road and its markings."""
    c.fill([_flat_rect(0.0, -400.0, 400.0, NEAR, FAR)], TERRAIN, TERRAIN, int(rng.integers(256)))
    left, right = road_c - road_half, road_c + road_half
    walk_tone = int(rng.integers(256))
    c.fill([_flat_rect(0.0, left - walks[0], left, NEAR, FAR)], SIDEWALK, SIDEWALK, walk_tone)
    c.fill([_flat_rect(0.0, right, right + walks[1], NEAR, FAR)], SIDEWALK, SIDEWALK, walk_tone)
    c.fill([_flat_rect(0.0, left, right, NEAR, FAR)], ROAD, ROAD, int(rng.integers(256)))
    dash, gap = rng.uniform(1.5, 3.0), rng.uniform(2.0, 4.0)
    start = rng.uniform(0.3, 1.0)
    dashes = [_flat_rect(0.0, road_c - 0.06, road_c + 0.06, d, d + dash) for d in np.arange(start, 60.0, dash + gap)]
    edges = [_flat_rect(0.0, x - 0.05, x + 0.05, NEAR, 60.0) for x in (left + 0.25, right - 0.25)]
    c.mark(dashes + (edges if rng.random() < 0.6 else []), MAT_BRIGHT)
    if rng.random() < 0.3:  # zebra crossing
        d0 = rng.uniform(3.0, 12.0)
        stripes = np.arange(left + 0.3, right - 0.3, 0.5)
        c.mark([_flat_rect(0.0, x, x + 0.25, d0, d0 + 1.8) for x in stripes], MAT_BRIGHT)
    return left, right


def _windows_side(c: _Canvas, x: float, d0: float, d1: float, height: float, rng) -> None:
    du, dv = rng.uniform(1.2, 2.0), rng.uniform(1.7, 2.3)
    cells = _grid(d0, d1, 0.0, height, du, dv, rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.6))
    cells = cells[c.pixels_per_unit(cells[:, 1]) * du > 1.5]  # windows that would be under a pixel wide
    c.mark(_side_rects(x, cells), MAT_GLASS)


def _windows_front(c: _Canvas, d: float, x0: float, x1: float, height: float, rng) -> None:
    du, dv = rng.uniform(1.2, 2.0), rng.uniform(1.7, 2.3)
    cells = _grid(x0, x1, 0.0, height, du, dv, rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.6))
    if c.pixels_per_unit(d) * du > 1.5:
        c.mark(_front_rects(d, cells), MAT_GLASS)


def _building(c: _Canvas, rng, side: int, x: float, d0: float, d1: float) -> None:
    """A block with a street facade at X = x and a visible near end wall reaching away from the street."""
    height = rng.uniform(2.5, 14.0)
    tone = int(rng.integers(256))
    far_x = x + side * 25.0
    end = _front_rect(d0, min(x, far_x), max(x, far_x), 0.0, height)
    c.fill([_side_rect(x, d0, d1, 0.0, height), end], BUILDING, BUILDING, tone)
    _windows_side(c, x, d0, d1, height, rng)
    _windows_front(c, d0, min(x, far_x) + 0.5, max(x, far_x) - 0.5, height, rng)
    if rng.random() < 0.5:  # shop fronts / doors at street level
        cells = _grid(d0, d1, 0.0, 1.6, rng.uniform(2.0, 4.0), 1.6, 0.6, 0.8)
        cells[:, 2] = 0.0
        c.mark(_side_rects(x, cells), MAT_DARK)


def _treeline(c: _Canvas, rng, x: float, d0: float, d1: float) -> None:
    """Hedges and tree crowns along the street: a ragged-topped vegetation band in the plane X = x."""
    n = max(3, int((d1 - d0) * 1.5))
    ds = np.linspace(d0, d1, n)
    top = np.clip(rng.uniform(1.2, 5.0) + np.cumsum(rng.normal(0.0, 0.5, n)), 0.6, 8.0)
    poly = np.concatenate([[(x, d0, 0.0), (x, d1, 0.0)], np.stack([np.full(n, x), ds, top], 1)[::-1]])
    c.fill([poly], VEGETATION, VEGETATION, int(rng.integers(256)))


def _roadside_segment(c: _Canvas, rng, side: int, x_face: float, d0: float, d1: float) -> None:
    """One stretch of what lines the street beyond the sidewalk."""
    kind = rng.choice(5, p=[0.55, 0.18, 0.09, 0.11, 0.07])
    x = x_face + side * rng.uniform(0.0, 1.0)
    if kind == 0:
        _building(c, rng, side, x, d0, d1)
    elif kind == 1:
        _treeline(c, rng, x, d0, d1)
    elif kind in (2, 3):  # wall or fence, with vegetation or a building behind it
        if rng.random() < 0.5:
            _treeline(c, rng, x + side * 1.5, d0, d1)
        else:
            _building(c, rng, side, x + side * 3.0, d0, d1)
        label = WALL if kind == 2 else FENCE
        height = rng.uniform(0.8, 2.0) if kind == 2 else rng.uniform(0.7, 1.4)
        c.fill([_side_rect(x, d0, d1, 0.0, height)], label, label, int(rng.integers(256)))
        if kind == 3:  # posts and rails of the fence
            posts = [_side_rect(x, d, d + 0.08, 0.0, height) for d in np.arange(d0, d1, rng.uniform(0.6, 1.2))]
            rails = [_side_rect(x, d0, d1, z, z + 0.06) for z in (height * 0.45, height - 0.06)]
            c.mark(posts + rails, MAT_DARK)
    # kind 4: a gap, the terrain and sky beyond show through


def _roadside(c: _Canvas, rng, side: int, kerb: float, walk: float) -> float:
    """Buildings, vegetation, walls and fences beyond one sidewalk, drawn far to near. Returns the facade X."""
    strip = rng.uniform(0.5, 3.0) if rng.random() < 0.4 else 0.0  # a grass verge before the facades
    x_face = kerb + side * (walk + strip)
    segments = []
    d = NEAR
    while d < 90.0:
        length = rng.uniform(3.0, 14.0)
        segments.append((d, d + length, rng.integers(2**31)))
        d += length
    for d0, d1, seed in reversed(segments):
        _roadside_segment(c, np.random.default_rng(seed), side, x_face, d0, d1)
    return x_face


def _tree(c: _Canvas, rng, x: float, d: float) -> None:
    z = rng.uniform(2.2, 4.5)
    r = rng.uniform(0.9, 2.0)
    tone = int(rng.integers(256))
    c.fill([_front_rect(d, x - 0.09, x + 0.09, 0.0, z)], VEGETATION, VEGETATION, tone, MAT_DARK)
    jitter = rng.uniform(0.75, 1.15, 18)
    c.fill([_front_ellipse(d - 0.1, x, z, r, r * rng.uniform(0.7, 1.1), 18, jitter)], VEGETATION, VEGETATION, tone)


def _street_lamp(c: _Canvas, rng, side: int, x: float, d: float) -> None:
    z = rng.uniform(4.0, 6.0)
    arm = x - side * rng.uniform(0.6, 1.4)
    tone = int(rng.integers(256))
    c.fill(
        [_front_rect(d, x - 0.06, x + 0.06, 0.0, z), _front_rect(d, min(x, arm), max(x, arm), z - 0.08, z)],
        POLE,
        POLE,
        tone,
    )
    c.fill([_front_rect(d - 0.01, arm - 0.2, arm + 0.2, z - 0.18, z - 0.05)], POLE, POLE, tone, MAT_BRIGHT)


def _sign(c: _Canvas, rng, x: float, d: float) -> None:
    z = rng.uniform(1.8, 2.6)
    c.fill([_front_rect(d, x - 0.04, x + 0.04, 0.0, z)], POLE, POLE, int(rng.integers(256)))
    tone = int(rng.integers(256))
    for k in range(1 + int(rng.random() < 0.3)):
        zc, r = z - 0.05 - k * 0.7, rng.uniform(0.25, 0.38)
        shape = rng.integers(3)
        if shape == 0:
            plate, inner = _front_ellipse(d - 0.02, x, zc, r, r), _front_ellipse(d - 0.03, x, zc, 0.65 * r, 0.65 * r)
        elif shape == 1:
            plate = np.array([(x - r, d - 0.02, zc + 0.6 * r), (x + r, d - 0.02, zc + 0.6 * r), (x, d - 0.02, zc - r)])
            inner = np.array(
                [
                    (x - 0.5 * r, d - 0.03, zc + 0.3 * r),
                    (x + 0.5 * r, d - 0.03, zc + 0.3 * r),
                    (x, d - 0.03, zc - 0.45 * r),
                ]
            )
        else:
            plate, inner = _front_rect(d - 0.02, x - r, x + r, zc - 0.7 * r, zc + 0.7 * r), None
        c.fill([plate], TRAFFIC_SIGN, TRAFFIC_SIGN, tone)
        if inner is not None:
            c.mark([inner], MAT_BRIGHT)


def _traffic_light(c: _Canvas, rng, side: int, x: float, d: float) -> None:
    pole_tone = int(rng.integers(256))
    z = rng.uniform(2.6, 3.4)
    c.fill([_front_rect(d, x - 0.06, x + 0.06, 0.0, z)], POLE, POLE, pole_tone)
    heads = [x]
    if rng.random() < 0.35:  # mast arm reaching over the road with a second head
        tip = x - side * rng.uniform(1.5, 3.0)
        z = z + 1.2
        c.fill(
            [_front_rect(d, x - 0.06, x + 0.06, 0.0, z), _front_rect(d, min(x, tip), max(x, tip), z - 0.1, z)],
            POLE,
            POLE,
            pole_tone,
        )
        heads = [x - side * 0.3, tip]
    tone = int(rng.integers(256))
    lit = rng.integers(3)
    for hx in heads:
        top = z if hx == x else z - 0.1
        c.fill([_front_rect(d - 0.05, hx - 0.16, hx + 0.16, top - 0.85, top)], TRAFFIC_LIGHT, TRAFFIC_LIGHT, tone)
        lamps = [_front_ellipse(d - 0.06, hx, top - 0.15 - 0.27 * k, 0.09, 0.09, 10) for k in range(3)]
        c.mark([lamp for k, lamp in enumerate(lamps) if k != lit], MAT_DARK)
        c.mark([lamps[lit]], MAT_BRIGHT)


def _person(c: _Canvas, rng, x: float, d: float, label: int = PERSON, z0: float = 0.0) -> None:
    """A standing (or, for riders, seated: z0 > 0) person facing toward or away from the camera."""
    h = rng.uniform(1.05, 1.25)
    s = h / 1.15
    inst = c.new_instance(label)
    tone = int(rng.integers(256))
    stride = rng.uniform(-0.06, 0.06)
    legs_top = z0 + 0.47 * h if z0 == 0.0 else z0 + 0.1
    legs_bottom = 0.0 if z0 == 0.0 else z0 - 0.35
    legs = [
        np.array(
            [
                (x - 0.12 * s + stride, d, legs_bottom),
                (x - 0.02 * s + stride, d, legs_bottom),
                (x - 0.01 * s, d, legs_top),
                (x - 0.13 * s, d, legs_top),
            ]
        ),
        np.array(
            [
                (x + 0.02 * s - stride, d, legs_bottom),
                (x + 0.12 * s - stride, d, legs_bottom),
                (x + 0.13 * s, d, legs_top),
                (x + 0.01 * s, d, legs_top),
            ]
        ),
    ]
    base = legs_top - 0.02
    torso = np.array(
        [
            (x - 0.13 * s, d, base),
            (x + 0.13 * s, d, base),
            (x + 0.17 * s, d, base + 0.36 * h),
            (x - 0.17 * s, d, base + 0.36 * h),
        ]
    )
    arms = [_front_rect(d + 0.01, x + k * 0.17 * s, x + k * 0.22 * s, base + 0.05, base + 0.34 * h) for k in (-1, 1)]
    c.fill(legs, label, inst, tone, MAT_DARK)
    c.fill([torso, *arms], label, inst, tone)
    head_z = base + 0.36 * h + 0.1 * s
    c.fill([_front_ellipse(d, x, head_z, 0.075 * s, 0.095 * s, 12)], label, inst, tone, MAT_SKIN)


def _bicycle(c: _Canvas, rng, x: float, d: float, rider: bool) -> None:
    """A bicycle seen from the side (in the plane X = x), optionally with its rider."""
    inst = c.new_instance(BICYCLE)
    tone = int(rng.integers(256))
    r = 0.23
    for dc in (d, d + 0.75):
        c.ring(
            _side_ellipse(x, dc, r, r, r, 16),
            _side_ellipse(x, dc, r, 0.75 * r, 0.75 * r, 16),
            BICYCLE,
            inst,
            tone,
            MAT_DARK,
        )
    t = 0.03
    frame = [
        np.array([(x, d, r), (x, d + 0.4, 0.55), (x, d + 0.4 + t, 0.55), (x, d + t, r)]),  # seat stay
        np.array([(x, d + 0.4, r), (x, d + 0.75, 0.62), (x, d + 0.75, 0.62 - t), (x, d + 0.4, r - t)]),
        np.array([(x, d + 0.35, 0.55), (x, d + 0.72, 0.6), (x, d + 0.72, 0.6 - t), (x, d + 0.35, 0.55 - t)]),
        np.array([(x, d + 0.4, r), (x, d + 0.4 + t, r), (x, d + 0.4 + t, 0.58), (x, d + 0.4, 0.58)]),
    ]
    c.fill(frame, BICYCLE, inst, tone)
    if rider:
        _person(c, rng, x, d + 0.4, RIDER, z0=0.62)


def _car_like(c: _Canvas, rng, x: float, d: float, label: int) -> None:
    """Cars, trucks and buses seen from behind (and from the side when off-centre): boxes with glass and tyres."""
    inst = c.new_instance(label)
    tone = int(rng.integers(256))
    if label == CAR:
        width, length, body, roof = rng.uniform(1.1, 1.3), rng.uniform(2.7, 3.3), rng.uniform(0.55, 0.65), 0.95
    elif label == TRUCK:
        width, length, body, roof = rng.uniform(1.5, 1.7), rng.uniform(4.5, 7.0), rng.uniform(1.8, 2.4), 0.0
    else:
        width, length, body, roof = 1.7, rng.uniform(7.0, 9.0), rng.uniform(1.9, 2.2), 0.0
    x0, x1, d1 = x - width / 2, x + width / 2, d + length
    lift, wheel = 0.12, 0.28
    wheels = [_front_rect(d + 0.5, a, a + 0.22, 0.0, wheel) for a in (x0 + 0.04, x1 - 0.26)]
    c.fill(wheels, label, inst, tone, MAT_DARK)
    if label == TRUCK:  # the cab sits ahead of the cargo box
        _box(c, x0 + 0.05, x1 - 0.05, d1, d1 + 1.4, lift, body * 0.8, label, inst, tone)
    _box(c, x0, x1, d, d1, lift, body, label, inst, tone)
    side = _visible_side(x0, x1)
    if side is not None:
        c.mark([_side_ellipse(side, dc, wheel, wheel * 1.1, wheel) for dc in (d + 0.55, d1 - 0.6)], MAT_DARK)
        if label == BUS:
            c.mark([_side_rect(side, d + 0.4, d1 - 0.4, body * 0.5, body * 0.85)], MAT_GLASS)
    if label == CAR:
        cx0, cx1 = x0 + 0.1, x1 - 0.1
        cab_d0, cab_d1 = d + rng.uniform(0.6, 0.9), d1 - rng.uniform(0.5, 0.8)
        _box(c, cx0, cx1, cab_d0, cab_d1, body, roof, label, inst, tone)
        cab_side = _visible_side(cx0, cx1)
        glass = [_front_rect(cab_d0, cx0 + 0.06, cx1 - 0.06, body + 0.04, roof - 0.05)]
        if cab_side is not None:
            glass.append(_side_rect(cab_side, cab_d0 + 0.1, cab_d1 - 0.1, body + 0.04, roof - 0.05))
        c.mark(glass, MAT_GLASS)
        c.mark([_front_rect(d, a, a + 0.2, body - 0.18, body - 0.08) for a in (x0 + 0.05, x1 - 0.25)], MAT_BRIGHT)
    elif label == BUS:
        c.mark([_front_rect(d, x0 + 0.1, x1 - 0.1, body * 0.5, body * 0.88)], MAT_GLASS)
    else:
        c.mark([_front_rect(d, x - 0.02, x + 0.02, lift + 0.1, body - 0.1)], MAT_DARK)


def _place_on_road(rng, lanes: list[float], taken: list[tuple[float, float, float]], length: float):
    """Pick a free lane position (x, d) with some spacing from other vehicles, or None."""
    for _ in range(8):
        x = lanes[rng.integers(len(lanes))] + rng.uniform(-0.2, 0.2)
        d = float(np.exp(rng.uniform(np.log(1.8), np.log(45.0))))
        if all(abs(x - tx) > 1.5 or d + length + 1.0 < td or d > td + tl + 1.0 for tx, td, tl in taken):
            taken.append((x, d, length))
            return x, d
    return None


def draw_scene(seed: int, size: tuple[int, int]) -> Scene:
    """Render the layout for `seed` at `size` = (width, height). Same seed and size -> identical maps."""
    width, height = size
    rng = np.random.default_rng(seed)
    horizon = height * rng.uniform(0.34, 0.46)
    c = _Canvas(width, height, horizon, width * rng.uniform(0.4, 0.6))
    road_c, road_half = rng.uniform(-1.0, 1.0), rng.uniform(1.8, 3.2)
    walks = (rng.uniform(0.9, 2.2), rng.uniform(0.9, 2.2))
    left, right = _ground(c, rng, road_c, road_half, walks)
    things: list[tuple[float, Callable[[], None]]] = []
    for side, kerb, walk in ((-1, left, walks[0]), (1, right, walks[1])):
        _roadside(c, rng, side, kerb, walk)
        things += _roadside_things(c, rng, side, kerb, walk)
    things += _traffic(c, rng, road_c, road_half, left, right)
    for _, draw in sorted(things, key=lambda item: -item[0]):
        draw()
    return Scene(c.label, c.instance, c.material, c.tone)


def _later(fn, *args) -> Callable[[], None]:
    """Defer a draw call (with its own RNG stream) so all objects can be sorted far to near first."""
    sub = np.random.default_rng(args[0].integers(2**63))
    return lambda: fn(args[1], sub, *args[2:])


def _roadside_things(c: _Canvas, rng, side: int, kerb: float, walk: float) -> list:
    """Trees, lamps, signs, traffic lights, pedestrians and parked bicycles on one sidewalk."""
    out = []
    outer = kerb + side * walk
    if rng.random() < 0.6:
        for d in np.arange(rng.uniform(1.0, 5.0), 60.0, rng.uniform(4.0, 10.0)):
            out.append((d, _later(_tree, rng, c, outer - side * 0.4, d)))
    for d in np.arange(rng.uniform(1.0, 8.0), 70.0, rng.uniform(8.0, 16.0)):
        out.append((d, _later(_street_lamp, rng, c, side, kerb + side * 0.3, d)))
    for _ in range(rng.poisson(1.5)):
        d = rng.uniform(1.5, 35.0)
        out.append((d, _later(_sign, rng, c, kerb + side * rng.uniform(0.25, max(0.3, walk - 0.2)), d)))
    for _ in range(rng.poisson(0.6)):
        d = rng.uniform(2.5, 30.0)
        out.append((d, _later(_traffic_light, rng, c, side, kerb + side * 0.35, d)))
    for _ in range(rng.poisson(2.0)):
        d = float(np.exp(rng.uniform(np.log(1.5), np.log(35.0))))
        x = kerb + side * rng.uniform(0.3, max(0.35, walk - 0.2))
        out.append((d, _later(_person, rng, c, x, d)))
    if rng.random() < 0.25:
        d = rng.uniform(2.0, 20.0)
        out.append((d, _later(_bicycle, rng, c, outer - side * 0.3, d, False)))
    return out


def _traffic(c: _Canvas, rng, road_c: float, road_half: float, left: float, right: float) -> list:
    """Moving and parked vehicles, cyclists and people crossing the road."""
    out = []
    lanes = [road_c - road_half / 2, road_c + road_half / 2]
    taken: list[tuple[float, float, float]] = []
    kinds = [CAR] * int(rng.integers(0, 7)) + [TRUCK] * int(rng.random() < 0.2) + [BUS] * int(rng.random() < 0.2)
    for label in kinds:
        spot = _place_on_road(rng, lanes, taken, 3.0 if label == CAR else 8.0)
        if spot is not None:
            out.append((spot[1], _later(_car_like, rng, c, spot[0], spot[1], label)))
    for kerb, side in ((left, -1), (right, 1)):  # parked cars along the kerb
        for _ in range(rng.poisson(1.0)):
            spot = _place_on_road(rng, [kerb - side * 0.8], taken, 3.0)
            if spot is not None:
                out.append((spot[1], _later(_car_like, rng, c, spot[0], spot[1], CAR)))
    for _ in range(rng.poisson(0.4)):
        kerb, side = (left, -1) if rng.random() < 0.5 else (right, 1)
        spot = _place_on_road(rng, [kerb - side * 0.5], taken, 1.0)
        if spot is not None:
            out.append((spot[1], _later(_bicycle, rng, c, spot[0], spot[1], True)))
    for _ in range(rng.poisson(0.3)):
        d = rng.uniform(2.0, 15.0)
        out.append((d, _later(_person, rng, c, rng.uniform(left + 0.3, right - 0.3), d)))
    return out


def render_scene(seed: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(label_ids H x W uint8, instance_ids H x W int32) of the scene for `seed` at `size` = (width, height)."""
    scene = draw_scene(seed, size)
    return scene.label_ids, scene.instance_ids
