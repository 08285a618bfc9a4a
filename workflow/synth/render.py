"""Render the videos of a synthetic take: a shaded mannequin in a textured room.

:func:`render_take_videos` writes ``take_dir/frame_aligned_videos/<camera>.mp4`` for every
exo camera and the ego camera, one frame at a time (no video is ever held in memory).

The figure is built per frame from the 59 ground-truth joints (:func:`build_figure`):
tapered capsules ("round cones": the convex hull of two spheres) for the limbs, the
fingers, the neck and the shoulder and hip girdles, and ellipsoids for the chest,
abdomen, pelvis, head (with hair), face details (eye whites, pupils, eyebrows, nose,
mouth), palms and feet. A hand whose four fingers are curled around something holds
an object, a cylinder across the palm (a handle, a can), which hides parts of it from
some views. A solid is skipped when a joint it needs is NaN.

Images are ray-cast, exactly through each camera's distortion model: every pixel's
viewing ray is computed once per camera with ``model.unproject`` (the ego camera's rays
are fixed in the camera frame and only its pose changes), the solids are moved to the
camera frame, and each solid is intersected analytically with the rays of the image
tiles that its bounding spheres can reach (a conservative angular test on 32x32 tiles,
then on their 8x8 sub-tiles, valid for any field of view, even for solids beside or
behind the camera). A z-buffer (distance along the ray) keeps the nearest hit, so
occlusion between limbs is exact. Hits closer than 2 cm to the camera centre, and the
inside of a solid holding the camera, are not drawn.
Shading is Lambert with one fixed directional light, a sky/ground hemisphere term and
ambient light. The room is a box around the cameras: a tiled floor at ``z = 0``, walls
with panels, a door and posters, a ceiling with light panels. Its image is computed once
per exo camera; for the moving ego camera it is recomputed every frame (vectorised).
Each image is softened with a 3x3 Gaussian (optics) and gets slight sensor noise.

In the ego view the wearer's head, face and neck are not drawn (the camera sits inside
the head); the arms, hands, torso and legs are.

Truth visibility (:func:`joint_visibility`): a joint is seen in an exo view when the
surface at its pixel (or a neighbour) belongs to its own body part (a hand joint: its hand; an elbow:
the upper arm or forearm of its side); a hand is seen when at least
:data:`HAND_VISIBLE_SHARE` of its 21 joints are (what a person would see in the video).

All randomness (clothes, skin tone, room, noise) comes from ``seed``: the same inputs
give the same frames (and, libx264 being run reproducibly, the same video bytes).

Speed (2-core machine, CPU time per frame): rendering takes about 13-18 ms for a
960x540 exo camera with the person at 2-3 m and about 65 ms for a 512x512 ego camera
(its room image, recomputed per frame, is half of that); libx264 encoding adds about
8-14 ms per 960x540 frame. A 300-frame take with four exo cameras and one ego camera
renders and encodes in about 1-1.5 minutes.
"""

from __future__ import annotations

import colorsys
import contextlib
import os
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fitting.skeleton import LEFT_HAND, NUM_JOINTS, RIGHT_HAND
from pipeline.formats.video import VideoWriter
from triangulation.cameras import Camera, MovingCamera
from triangulation.visibility import inside_field_of_view
from workflow.synth.observations import joints_per_view

__all__ = [
    "PART_NAMES",
    "EGO_HIDDEN_PARTS",
    "FigureStyle",
    "Room",
    "Figure",
    "build_figure",
    "CameraRenderer",
    "render_take_videos",
    "joint_visibility",
    "HAND_VISIBLE_SHARE",
]

# Body parts of the label image (CameraRenderer.render(..., with_labels=True)).
PART_NAMES: tuple[str, ...] = (
    "head", "face", "neck", "torso", "hips",
    "left_upper_arm", "right_upper_arm", "left_forearm", "right_forearm",
    "left_hand", "right_hand", "left_thigh", "right_thigh", "left_shin", "right_shin",
    "left_foot", "right_foot", "held_object",
)  # fmt: skip
PART = {name: index for index, name in enumerate(PART_NAMES)}
EGO_HIDDEN_PARTS: tuple[str, ...] = ("head", "face", "neck")

MATERIAL_NAMES: tuple[str, ...] = (
    "skin", "shirt", "sleeve", "forearm", "trousers", "shoes", "head", "hair", "eye_white", "pupil", "mouth",
    "object",
)  # fmt: skip
MATERIAL = {name: index for index, name in enumerate(MATERIAL_NAMES)}

TILE = 32  # pixels per side of a coarse culling tile (images are padded to a multiple)
FINE = 8  # pixels per side of a fine culling tile
NEAR = 0.02  # metres: hits closer to the camera centre are ignored
LIGHT_DIRECTION = np.array([0.35, -0.45, 0.82]) / np.linalg.norm([0.35, -0.45, 0.82])  # towards the light
AMBIENT, DIFFUSE, SKY = 0.34, 0.58, 0.16
NOISE_SIGMA = 2.0  # sensor noise, 8-bit levels
BLUR_SIGMA = 0.6  # pixels

SKIN_TONES = np.array(
    [
        (255, 219, 190), (241, 194, 167), (229, 178, 140), (212, 158, 122),
        (190, 135, 100), (160, 108, 78), (128, 84, 58), (96, 64, 46),
    ],
    dtype=np.float64,
)  # fmt: skip
HAIR_COLOURS = np.array([(28, 22, 20), (60, 40, 28), (105, 72, 42), (170, 135, 85), (120, 115, 110)], np.float64)
TROUSER_COLOURS = np.array([(45, 60, 95), (35, 35, 40), (150, 130, 95), (90, 90, 95), (70, 80, 55)], np.float64)
SHOE_COLOURS = np.array([(235, 235, 230), (30, 30, 30), (95, 60, 35), (60, 70, 110)], np.float64)

# Body parts whose surface at a joint's pixel means the joint is seen (the others hide it).
_SEEN_AS: dict[int, tuple[str, ...]] = {
    0: ("face", "head"), 1: ("face", "head"), 2: ("face", "head"), 3: ("head", "face"), 4: ("head", "face"),
    5: ("torso", "neck", "left_upper_arm"), 6: ("torso", "neck", "right_upper_arm"),
    7: ("left_upper_arm", "left_forearm"), 8: ("right_upper_arm", "right_forearm"),
    9: ("left_forearm", "left_hand"), 10: ("right_forearm", "right_hand"),
    11: ("hips", "torso", "left_thigh"), 12: ("hips", "torso", "right_thigh"),
    13: ("left_thigh", "left_shin"), 14: ("right_thigh", "right_shin"),
    15: ("left_shin", "left_foot"), 16: ("right_shin", "right_foot"),
    **{joint: ("left_hand",) for joint in range(LEFT_HAND.start, LEFT_HAND.stop)},
    **{joint: ("right_hand",) for joint in range(RIGHT_HAND.start, RIGHT_HAND.stop)},
}  # fmt: skip
HAND_VISIBLE_SHARE = 0.5  # a hand is seen in a view when at least this share of its joints are


# --------------------------------------------------------------------------------------
# Appearance
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureStyle:
    """Colours (RGB 0..255) and build of the mannequin."""

    skin: tuple[float, float, float]
    shirt: tuple[float, float, float]
    trousers: tuple[float, float, float]
    shoes: tuple[float, float, float]
    hair: tuple[float, float, float]
    long_sleeves: bool
    build: float  # radius scale of the limbs and torso, ~0.9..1.1
    held_object: tuple[float, float, float] = (200.0, 60.0, 40.0)  # colour of objects held in a grasp

    @classmethod
    def from_seed(cls, seed: int) -> FigureStyle:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x51F]))
        hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.35, 0.8), rng.uniform(0.45, 0.9)
        shirt = tuple(255.0 * np.array(colorsys.hsv_to_rgb(hue, saturation, value)))
        return cls(
            skin=tuple(SKIN_TONES[rng.integers(len(SKIN_TONES))]),
            shirt=shirt,
            trousers=tuple(TROUSER_COLOURS[rng.integers(len(TROUSER_COLOURS))]),
            shoes=tuple(SHOE_COLOURS[rng.integers(len(SHOE_COLOURS))]),
            hair=tuple(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))]),
            long_sleeves=bool(rng.uniform() < 0.4),
            build=float(rng.uniform(0.92, 1.08)),
            held_object=tuple(255.0 * np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.85)))),
        )

    def albedo(self) -> np.ndarray:
        """``(materials, 3)`` float32 colours in :data:`MATERIAL_NAMES` order."""
        skin, shirt = np.array(self.skin), np.array(self.shirt)
        table = {
            "skin": skin,
            "shirt": shirt,
            "sleeve": shirt * 0.93,
            "forearm": shirt * 0.93 if self.long_sleeves else skin,
            "trousers": np.array(self.trousers),
            "shoes": np.array(self.shoes),
            "head": skin,
            "hair": np.array(self.hair),
            "eye_white": np.array([235.0, 235.0, 228.0]),
            "pupil": np.array([25.0, 20.0, 18.0]),
            "mouth": np.array([150.0, 60.0, 60.0]) * 0.6 + skin * 0.25,
            "object": np.array(self.held_object),
        }
        return np.array([table[name] for name in MATERIAL_NAMES], dtype=np.float32)


# --------------------------------------------------------------------------------------
# The room
# --------------------------------------------------------------------------------------


def _hash01(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) from two integer arrays."""
    h = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663) ^ (salt * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float32) / 65536.0


@dataclass(frozen=True)
class Room:
    """An axis-aligned room ``[x0, x1] x [y0, y1] x [0, height]`` (metres) with textures.

    Walls are numbered 0: ``x = x0``, 1: ``x = x1``, 2: ``y = y0``, 3: ``y = y1``.
    ``decals``: ``(n, 8)`` rectangles on walls: wall, u0, u1, v0, v1, r, g, b, where u runs
    along the wall (y for walls 0-1, x for walls 2-3) and v is the height.
    """

    x0: float
    x1: float
    y0: float
    y1: float
    height: float
    floor_tile: float
    floor_colours: np.ndarray  # (2, 3)
    grout_colour: np.ndarray  # (3,)
    wall_colours: np.ndarray  # (4, 3)
    ceiling_colour: np.ndarray  # (3,)
    decals: np.ndarray  # (n, 8)
    salt: int

    @classmethod
    def around(cls, points: np.ndarray, seed: int, margin: float = 1.2, min_size: float = 6.0) -> Room:
        """A room holding ``points (..., 3)`` (camera centres, joints) with ``margin`` to spare."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        points = points[np.all(np.isfinite(points), axis=1)]
        if len(points) == 0:
            points = np.zeros((1, 3))
        lo, hi = points[:, :2].min(axis=0) - margin, points[:, :2].max(axis=0) + margin
        centre, size = (lo + hi) / 2, np.maximum(hi - lo, min_size)
        lo, hi = centre - size / 2, centre + size / 2
        height = max(2.8, float(points[:, 2].max()) + 0.5)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x200]))
        base = rng.uniform(120, 200)
        tint = rng.uniform(-20, 20, size=3)
        floor_a = np.clip(base + tint, 0, 255)
        floor_b = np.clip(floor_a * rng.uniform(0.78, 0.88), 0, 255)
        wall_base = rng.uniform(170, 230) + rng.uniform(-18, 18, size=3)
        wall_colours = np.clip(wall_base[None] * rng.uniform(0.9, 1.0, size=(4, 1)), 0, 255)
        decals = []
        for wall in range(4):
            u_lo, u_hi = (lo[1], hi[1]) if wall < 2 else (lo[0], hi[0])
            length = u_hi - u_lo
            if wall == int(rng.integers(4)) or wall == 0:
                u = rng.uniform(u_lo + 0.5, u_hi - 1.5)
                decals.append((wall, u, u + 0.9, 0.0, 2.05, *(np.array([110, 75, 45]) * rng.uniform(0.7, 1.2))))
            for _ in range(int(rng.integers(1, 4))):
                width, tall = rng.uniform(0.4, 1.2), rng.uniform(0.4, 0.9)
                u = rng.uniform(u_lo + 0.3, u_lo + max(0.4, length - width - 0.3))
                v = rng.uniform(0.9, min(1.7, height - tall - 0.2))
                hsv = rng.uniform(), rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.9)
                colour = 255.0 * np.array(colorsys.hsv_to_rgb(*hsv))
                decals.append((wall, u, u + width, v, v + tall, *colour))
        return cls(
            x0=float(lo[0]), x1=float(hi[0]), y0=float(lo[1]), y1=float(hi[1]), height=float(height),
            floor_tile=float(rng.choice([0.4, 0.5, 0.6])),
            floor_colours=np.stack([floor_a, floor_b]), grout_colour=floor_b * 0.7,
            wall_colours=wall_colours, ceiling_colour=np.array([228.0, 228.0, 225.0]),
            decals=np.array(decals, dtype=np.float64).reshape(-1, 8), salt=int(rng.integers(1 << 30)),
        )  # fmt: skip

    def surface_points(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``(count, 3)`` points spread over the floor and the four walls (metres), like the
        semidense points a SLAM system tracks on a room's surfaces."""
        areas = np.array([(self.x1 - self.x0) * (self.y1 - self.y0)] + [(self.y1 - self.y0) * self.height] * 2 + [(self.x1 - self.x0) * self.height] * 2)
        surface = rng.choice(5, size=count, p=areas / areas.sum())
        u, v = rng.uniform(0, 1, count), rng.uniform(0, 1, count)
        x = self.x0 + u * (self.x1 - self.x0)
        y = self.y0 + u * (self.y1 - self.y0)
        z = v * self.height
        points = np.stack([x, self.y0 + v * (self.y1 - self.y0), np.zeros(count)], axis=1)  # floor
        walls = [(self.x0, None), (self.x1, None), (None, self.y0), (None, self.y1)]
        for index, (fixed_x, fixed_y) in enumerate(walls, 1):
            on = surface == index
            points[on] = np.stack(
                [np.full(on.sum(), fixed_x) if fixed_x is not None else x[on], np.full(on.sum(), fixed_y) if fixed_y is not None else y[on], z[on]], axis=1
            )
        return points[surface >= 0]

    def shade(self, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """Colours ``(N, 3)`` float32 seen along rays from ``origin (3,)`` with unit ``directions (N, 3)``.

        Rays with NaN directions are black.
        """
        d = np.asarray(directions, dtype=np.float32)
        o = np.asarray(origin, dtype=np.float64)
        n = d.shape[0]
        # Seen from inside the box, a ray leaves through one face per axis: the far one.
        bounds = ((self.x0, self.x1), (self.y0, self.y1), (0.0, self.height))
        best_t = np.full(n, np.inf, dtype=np.float32)
        surface = np.full(n, -1, dtype=np.int8)
        with np.errstate(divide="ignore", invalid="ignore"):
            for axis, (low, high) in enumerate(bounds):
                component = d[:, axis]
                positive = component > 0
                t = np.where(positive, np.float32(high - o[axis]), np.float32(low - o[axis])) / component
                better = (t > 0) & (t < best_t)
                best_t = np.where(better, t, best_t)
                # surfaces: walls 0/1 (x), 2/3 (y), floor 4, ceiling 5
                code = (2 * axis + positive) if axis < 2 else (4 + positive)
                surface[better] = code[better]
        colour = np.zeros((n, 3), dtype=np.float32)
        best_t = np.where(best_t > 0, best_t, np.inf)
        hit = o.astype(np.float32) + d * np.where(np.isfinite(best_t), best_t, 0.0)[:, None]
        floor = surface == 4
        if np.any(floor):
            colour[floor] = self._floor(hit[floor, 0], hit[floor, 1])
        ceiling = surface == 5
        if np.any(ceiling):
            colour[ceiling] = self._ceiling(hit[ceiling, 0], hit[ceiling, 1])
        for wall in range(4):
            on = surface == wall
            if np.any(on):
                u = hit[on, 1] if wall < 2 else hit[on, 0]
                colour[on] = self._wall(wall, u, hit[on, 2])
        # soft darkening with distance (light falls off away from the room centre)
        distance = np.where(np.isfinite(best_t), best_t, np.float32(0.0))
        colour *= (1.0 - 0.05 * np.clip(distance - 2.0, 0.0, 6.0))[:, None]
        return colour

    def _floor(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        s = self.floor_tile
        ix, iy = np.floor(x / s), np.floor(y / s)
        fx, fy = x / s - ix, y / s - iy
        checker = ((ix + iy).astype(np.int64) & 1).astype(bool)
        colour = np.where(checker[:, None], self.floor_colours[1], self.floor_colours[0]).astype(np.float32)
        colour *= (0.94 + 0.12 * _hash01(ix, iy, self.salt))[:, None]
        grout = (np.minimum(fx, 1 - fx) * s < 0.006) | (np.minimum(fy, 1 - fy) * s < 0.006)
        colour[grout] = self.grout_colour
        return colour

    def _ceiling(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        colour = np.broadcast_to(self.ceiling_colour.astype(np.float32), (len(x), 3)).copy()
        fx, fy = np.mod(x, 1.2) / 1.2, np.mod(y, 1.2) / 1.2
        panel = (np.abs(fx - 0.5) < 0.25) & (np.abs(fy - 0.5) < 0.25)
        colour[panel] = (252.0, 252.0, 245.0)
        return colour

    def _wall(self, wall: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        base = self.wall_colours[wall].astype(np.float32)
        colour = np.broadcast_to(base, (len(u), 3)).copy()
        colour *= (0.96 + 0.04 * np.sin(2.1 * u + 0.7 * np.sin(5.3 * v))).astype(np.float32)[:, None]
        panel_line = np.abs(np.mod(u, 1.2) - 0.6) > 0.595
        colour[panel_line] *= 0.82
        colour[np.abs(v - 1.0) < 0.012] *= 0.85  # chair rail
        colour[v < 0.12] = base * 0.55  # skirting board
        for decal in self.decals[self.decals[:, 0] == wall]:
            _, u0, u1, v0, v1 = decal[:5]
            inside = (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
            if np.any(inside):
                frame = (np.minimum(u - u0, u1 - u) < 0.03) | (np.minimum(v - v0, v1 - v) < 0.03)
                colour[inside] = decal[5:8]
                colour[inside & frame] = (40.0, 38.0, 35.0)
        # lighting by wall orientation relative to the light
        normal = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0))[wall]
        colour *= np.float32(0.8 + 0.2 * max(0.0, float(np.dot(normal, LIGHT_DIRECTION))))
        return colour


# --------------------------------------------------------------------------------------
# The figure: solids from the joints
# --------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One frame's solids in the world frame.

    Round cones ``(n,)``: ends ``cone_a``, ``cone_b (n, 3)``, radii ``cone_ra``, ``cone_rb``.
    Ellipsoids ``(m,)``: ``ell_center (m, 3)``, ``ell_axes (m, 3, 3)`` (columns: unit
    axes right/forward/up of the solid), ``ell_radii (m, 3)``. ``part`` and ``material``
    are per solid, cones first. ``spheres`` bound the solids for culling:
    ``sphere_center (s, 3)``, ``sphere_radius (s,)``, ``sphere_start (solids,)`` (the
    spheres of solid k are ``sphere_start[k]:sphere_start[k + 1]``).
    """

    cone_a: np.ndarray
    cone_b: np.ndarray
    cone_ra: np.ndarray
    cone_rb: np.ndarray
    ell_center: np.ndarray
    ell_axes: np.ndarray
    ell_radii: np.ndarray
    part: np.ndarray
    material: np.ndarray
    sphere_center: np.ndarray
    sphere_radius: np.ndarray
    sphere_start: np.ndarray
    albedo: np.ndarray  # (materials, 3) float32, the style's colours

    @property
    def sphere_owner(self) -> np.ndarray:
        """``(s,)`` the solid each bounding sphere belongs to."""
        counts = np.diff(np.append(self.sphere_start, len(self.sphere_radius)))
        return np.repeat(np.arange(len(self.sphere_start)), counts)

    @property
    def num_cones(self) -> int:
        return len(self.cone_ra)

    @property
    def num_solids(self) -> int:
        return len(self.part)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return v / norm


# Limb cones on body joints: (a, b, radius at a, radius at b, part, material).
_BODY_CONES = (
    (5, 7, 0.052, 0.042, "left_upper_arm", "sleeve"),
    (6, 8, 0.052, 0.042, "right_upper_arm", "sleeve"),
    (7, 9, 0.040, 0.030, "left_forearm", "forearm"),
    (8, 10, 0.040, 0.030, "right_forearm", "forearm"),
    (11, 13, 0.085, 0.058, "left_thigh", "trousers"),
    (12, 14, 0.085, 0.058, "right_thigh", "trousers"),
    (13, 15, 0.055, 0.042, "left_shin", "trousers"),
    (14, 16, 0.055, 0.042, "right_shin", "trousers"),
    (5, 6, 0.060, 0.060, "torso", "shirt"),
    (11, 12, 0.078, 0.078, "hips", "trousers"),
)

# Finger radii at the proximal end of segments 0..3 (metacarpal, proximal, middle,
# distal) and at the tip, per finger (thumb, index, middle, ring, pinky): diameters of
# 1.5-2 cm for the fingers.
_FINGER_RADII = np.array(
    [
        [0.016, 0.0115, 0.0105, 0.0095, 0.0085],  # thumb (CMC region is thick)
        [0.0125, 0.0100, 0.0090, 0.0082, 0.0074],
        [0.0125, 0.0102, 0.0092, 0.0084, 0.0075],
        [0.0120, 0.0096, 0.0087, 0.0080, 0.0072],
        [0.0115, 0.0085, 0.0077, 0.0071, 0.0065],
    ]
)


def _hand_cone_table(start: int, part: str):
    rows = []
    for finger in range(5):
        for segment in range(4):
            a = 0 if segment == 0 else 1 + 4 * finger + segment - 1
            b = 1 + 4 * finger + segment
            radius_a, radius_b = _FINGER_RADII[finger, segment], _FINGER_RADII[finger, segment + 1]
            rows.append((start + a, start + b, radius_a, radius_b, part))
    return rows


_HAND_CONES = _hand_cone_table(LEFT_HAND.start, "left_hand") + _hand_cone_table(RIGHT_HAND.start, "right_hand")
_CONE_TABLE_A = np.array([r[0] for r in _BODY_CONES] + [r[0] for r in _HAND_CONES])
_CONE_TABLE_B = np.array([r[1] for r in _BODY_CONES] + [r[1] for r in _HAND_CONES])
_CONE_TABLE_RA = np.array([r[2] for r in _BODY_CONES] + [r[2] for r in _HAND_CONES])
_CONE_TABLE_RB = np.array([r[3] for r in _BODY_CONES] + [r[3] for r in _HAND_CONES])
_CONE_TABLE_PART = np.array([PART[r[4]] for r in _BODY_CONES] + [PART[r[4]] for r in _HAND_CONES])
_CONE_TABLE_MATERIAL = np.array([MATERIAL[r[5]] for r in _BODY_CONES] + [MATERIAL["skin"]] * len(_HAND_CONES))
_CONE_TABLE_SCALED = np.array([True] * len(_BODY_CONES) + [False] * len(_HAND_CONES))
# Fingertip segments end one radius short of the tip joint: the flesh ends at the joint,
# where keypoint conventions (MediaPipe, Ego-Exo4D) put a fingertip.
_CONE_TABLE_TIP = np.array([False] * len(_BODY_CONES) + [(row[1] - LEFT_HAND.start) % 21 % 4 == 0 for row in _HAND_CONES])


class _Solids:
    """Accumulates ellipsoids while a figure is built."""

    def __init__(self) -> None:
        self.center: list[np.ndarray] = []
        self.axes: list[np.ndarray] = []
        self.radii: list[tuple[float, float, float]] = []
        self.part: list[int] = []
        self.material: list[int] = []

    def ellipsoid(self, center, right, forward, up, radii, part: str, material: str) -> None:
        axes = np.stack([right, forward, up], axis=1)
        if not (np.all(np.isfinite(center)) and np.all(np.isfinite(axes))):
            return
        self.center.append(np.asarray(center, dtype=np.float64))
        self.axes.append(axes)
        self.radii.append(tuple(float(r) for r in radii))
        self.part.append(PART[part])
        self.material.append(MATERIAL[material])


def _frame_from(right_hint: np.ndarray, up_hint: np.ndarray):
    """Orthonormal (right, forward, up) with ``up`` along ``up_hint``; forward = up x right."""
    up = _unit(up_hint)
    right = _unit(right_hint - np.dot(right_hint, up) * up)
    forward = np.cross(up, right)
    return right, forward, up


def build_figure(joints: np.ndarray, style: FigureStyle) -> Figure:
    """The solids of one frame from ``joints (59, 3)`` (metres, world frame, z up)."""
    J = np.asarray(joints, dtype=np.float64)
    if J.shape != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape ({NUM_JOINTS}, 3), got {J.shape}")
    finite = np.all(np.isfinite(J), axis=1)
    build = style.build
    solids = _Solids()
    neck = None
    extra_cones: list[tuple] = []  # (a, b, ra, rb, part, material)

    def ok(*indices: int) -> bool:
        return bool(np.all(finite[list(indices)]))

    # Torso: chest, abdomen and pelvis ellipsoids in the torso frame.
    torso_forward = torso_up = None
    if ok(5, 6, 11, 12):
        mid_shoulder, mid_hip = (J[5] + J[6]) / 2, (J[11] + J[12]) / 2
        length = float(np.linalg.norm(mid_shoulder - mid_hip))
        if length > 0.05:
            right, forward, up = _frame_from((J[6] - J[5]) + (J[12] - J[11]), mid_shoulder - mid_hip)
            torso_forward, torso_up = forward, up
            shoulder_width = float(np.linalg.norm(J[6] - J[5]))
            hip_width = float(np.linalg.norm(J[12] - J[11]))
            chest = (0.5 * shoulder_width * 0.95, 0.105 * build, 0.42 * length)
            solids.ellipsoid(mid_hip + up * 0.6 * length, right, forward, up, chest, "torso", "shirt")
            belly = (0.25 * (shoulder_width * 0.85 + hip_width) + 0.035 * build, 0.098 * build, 0.27 * length)
            solids.ellipsoid(mid_hip + up * 0.3 * length, right, forward, up, belly, "torso", "shirt")
            pelvis = (0.5 * hip_width + 0.065 * build, 0.102 * build, 0.15 * length + 0.02)
            solids.ellipsoid(mid_hip - up * 0.01, right, forward, up, pelvis, "hips", "trousers")

    # Head, face details and neck.
    if ok(0, 3, 4):
        nose, left_ear, right_ear = J[0], J[3], J[4]
        ear_mid = (left_ear + right_ear) / 2
        right = _unit(right_ear - left_ear)
        forward = _unit((nose - ear_mid) - np.dot(nose - ear_mid, right) * right)
        up = np.cross(right, forward)
        centre = ear_mid + up * 0.02 + forward * 0.01
        half_width = max(0.068, 0.5 * float(np.linalg.norm(right_ear - left_ear))) + 0.006
        depth = max(0.08, float(np.dot(nose - centre, forward)) - 0.012)
        solids.ellipsoid(centre, right, forward, up, (half_width, depth, 0.112), "head", "head")
        solids.ellipsoid(nose - forward * 0.012, right, forward, up, (0.011, 0.017, 0.021), "face", "skin")
        mouth = nose - up * 0.045 - forward * 0.013
        solids.ellipsoid(mouth, right, forward, up, (0.021, 0.008, 0.0065), "face", "mouth")
        for eye in (1, 2):
            if finite[eye]:
                solids.ellipsoid(J[eye], right, forward, up, (0.0125,) * 3, "face", "eye_white")
                solids.ellipsoid(J[eye] + forward * 0.0085, right, forward, up, (0.0068,) * 3, "face", "pupil")
                brow = J[eye] + up * 0.021 + forward * 0.003
                solids.ellipsoid(brow, right, forward, up, (0.017, 0.006, 0.0045), "face", "hair")
        neck_top = centre - up * 0.06 - forward * 0.02
        if ok(5, 6):
            neck = ((J[5] + J[6]) / 2, neck_top, 0.058 * build, 0.05 * build)
    # Trapezius: from each shoulder up to the base of the neck.
    if ok(5, 6) and torso_forward is not None:
        neck_base = (J[5] + J[6]) / 2 + torso_up * 0.045
        for shoulder in (5, 6):
            extra_cones.append((J[shoulder], neck_base, 0.055 * build, 0.05 * build, PART["torso"], MATERIAL["shirt"]))

    # Feet: ellipsoids below the ankles, pointing forward.
    for knee, ankle, part in ((13, 15, "left_foot"), (14, 16, "right_foot")):
        if ok(knee, ankle) and torso_forward is not None:
            down = _unit(J[ankle] - J[knee])
            forward = _unit(torso_forward - np.dot(torso_forward, down) * down)
            right = np.cross(forward, -down)
            centre = J[ankle] + down * 0.04 + forward * 0.055
            solids.ellipsoid(centre, right, forward, -down, (0.046, 0.122, 0.04), part, "shoes")

    # Palms: plates through the wrist and the finger bases.
    for hand, part in ((LEFT_HAND, "left_hand"), (RIGHT_HAND, "right_hand")):
        h = J[hand]
        if np.all(np.isfinite(h[[0, 5, 9, 13, 17]])):
            along = h[9] - h[0]
            across = h[5] - h[17]
            length = float(np.linalg.norm(along))
            if length > 1e-3 and np.linalg.norm(across) > 1e-3:
                forward = _unit(along)
                right = _unit(across - np.dot(across, forward) * forward)
                up = np.cross(right, forward)
                # From the wrist to just beyond the knuckles (the finger webs), as a real palm.
                knuckles = float(np.dot((h[5] + h[9] + h[13] + h[17]) / 4 - h[0], forward))
                centre = h[0] + forward * 0.5 * (knuckles + 0.01)
                half_width = 0.5 * float(np.linalg.norm(across)) + 0.008
                solids.ellipsoid(centre, right, forward, up, (half_width, 0.5 * knuckles + 0.01, 0.0145), part, "skin")

    # Objects held in curled hands: cylinders across the palm.
    for hand in (LEFT_HAND, RIGHT_HAND):
        held = _held_object(J[hand])
        if held is not None:
            extra_cones.append((*held, PART["held_object"], MATERIAL["object"]))

    # Round cones: limbs, girdles, fingers, neck.
    a_idx, b_idx = _CONE_TABLE_A, _CONE_TABLE_B
    keep = finite[a_idx] & finite[b_idx]
    scale = np.where(_CONE_TABLE_SCALED, build, 1.0)
    cone_a, cone_b = J[a_idx[keep]], J[b_idx[keep]]
    cone_ra, cone_rb = (_CONE_TABLE_RA * scale)[keep], (_CONE_TABLE_RB * scale)[keep]
    cone_part, cone_material = _CONE_TABLE_PART[keep], _CONE_TABLE_MATERIAL[keep]
    tip = _CONE_TABLE_TIP[keep]
    tip_length = np.linalg.norm(cone_b[tip] - cone_a[tip], axis=1, keepdims=True)
    shorten = np.minimum(cone_rb[tip, None], 0.5 * tip_length)
    cone_b[tip] = cone_b[tip] - shorten * (cone_b[tip] - cone_a[tip]) / np.maximum(tip_length, 1e-9)
    if neck is not None:
        extra_cones.append((*neck, PART["neck"], MATERIAL["skin"]))
    if extra_cones:
        cone_a = np.vstack([cone_a] + [row[0] for row in extra_cones])
        cone_b = np.vstack([cone_b] + [row[1] for row in extra_cones])
        cone_ra = np.append(cone_ra, [row[2] for row in extra_cones])
        cone_rb = np.append(cone_rb, [row[3] for row in extra_cones])
        cone_part = np.append(cone_part, [row[4] for row in extra_cones])
        cone_material = np.append(cone_material, [row[5] for row in extra_cones])
    # A cone whose one end sphere holds the other is drawn as that sphere.
    length = np.linalg.norm(cone_b - cone_a, axis=1)
    swallowed = length <= np.abs(cone_ra - cone_rb) + 1e-6
    if np.any(swallowed):
        big_b = cone_rb > cone_ra
        for k in np.flatnonzero(swallowed):
            point, radius = (cone_b[k], cone_rb[k]) if big_b[k] else (cone_a[k], cone_ra[k])
            cone_a[k] = cone_b[k] = point
            cone_ra[k] = cone_rb[k] = radius

    ell_center = np.array(solids.center, dtype=np.float64).reshape(-1, 3)
    ell_axes = np.array(solids.axes, dtype=np.float64).reshape(-1, 3, 3)
    ell_radii = np.array(solids.radii, dtype=np.float64).reshape(-1, 3)
    part = np.concatenate([cone_part, np.array(solids.part, dtype=np.int64)]).astype(np.int16)
    material = np.concatenate([cone_material, np.array(solids.material, dtype=np.int64)]).astype(np.int16)

    centres, radii, start = _bounding_spheres(cone_a, cone_b, cone_ra, cone_rb, ell_center, ell_axes, ell_radii)
    return Figure(
        cone_a=cone_a, cone_b=cone_b, cone_ra=cone_ra, cone_rb=cone_rb,
        ell_center=ell_center, ell_axes=ell_axes, ell_radii=ell_radii, part=part, material=material,
        sphere_center=centres, sphere_radius=radii, sphere_start=start, albedo=style.albedo(),
    )  # fmt: skip


HELD_OBJECT_GRIP = (0.9, 1.5)  # a hand holds an object when every fingertip lies this many palm lengths from its wrist
HELD_OBJECT_HALF_LENGTH = 0.07  # metres from the grip's centre to each end of the object
HELD_OBJECT_RADIUS = (0.012, 0.03)  # metres, the range of the object's radius


def _held_object(hand: np.ndarray):
    """``(a, b, radius, radius)`` of the cylinder a hand ``(21, 3)`` closed around something holds, or None.

    Held when the four fingertips all lie between :data:`HELD_OBJECT_GRIP` palm lengths
    (wrist to middle knuckle) from the wrist: curled around a handle, not a fist, not a
    pointing or open hand. The cylinder's axis runs along the knuckles (index to little
    finger); it is centred between the knuckles and the fingertips, its radius 0.35 of
    their distance (a can or a handle).
    """
    if not np.all(np.isfinite(hand)):
        return None
    palm = float(np.linalg.norm(hand[9] - hand[0]))
    tips = hand[[8, 12, 16, 20]]
    reach = np.linalg.norm(tips - hand[0], axis=1) / max(palm, 1e-9)
    if palm < 1e-3 or reach.min() < HELD_OBJECT_GRIP[0] or reach.max() > HELD_OBJECT_GRIP[1]:
        return None
    knuckles = hand[[5, 9, 13, 17]].mean(axis=0)
    centre = 0.5 * (knuckles + tips.mean(axis=0))
    radius = float(np.clip(0.35 * np.linalg.norm(tips.mean(axis=0) - knuckles), *HELD_OBJECT_RADIUS))
    axis = _unit(hand[5] - hand[17])
    return centre - HELD_OBJECT_HALF_LENGTH * axis, centre + HELD_OBJECT_HALF_LENGTH * axis, radius, radius


def _seen_table() -> np.ndarray:
    """``(59, parts + 1)`` bool: surface label (last column: the room, -1) that shows each joint."""
    table = np.zeros((NUM_JOINTS, len(PART_NAMES) + 1), dtype=bool)
    for joint, parts in _SEEN_AS.items():
        table[joint, [PART[name] for name in parts]] = True
    return table


_SEEN_TABLE = _seen_table()


def joint_visibility(labels: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """``(59,)`` bool: joints whose own body part is the surface at their pixel or one of its 8 neighbours.

    ``labels (H, W)`` part labels of a rendered frame (-1: the room), ``pixels (59, 2)``
    the joints' true projections (NaN or outside the image: not seen).
    """
    height, width = labels.shape
    pixels = np.asarray(pixels, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        rounded = np.round(np.nan_to_num(pixels, nan=-1.0)).astype(np.int64)
    inside = (rounded[:, 0] >= 0) & (rounded[:, 0] < width) & (rounded[:, 1] >= 0) & (rounded[:, 1] < height)
    # The joint's pixel and its 8 neighbours (a fingertip lies on its finger's outline).
    around = rounded[:, None, :] + np.array([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])[None]
    label = labels[np.clip(around[..., 1], 0, height - 1), np.clip(around[..., 0], 0, width - 1)]
    return inside & _SEEN_TABLE[np.arange(NUM_JOINTS)[:, None], label].any(axis=1)


def _bounding_spheres(cone_a, cone_b, cone_ra, cone_rb, ell_center, ell_axes, ell_radii):
    """Spheres covering each solid: samples along its axis, inflated by half the spacing."""
    # Cones: k samples from a to b, each sphere of radius max(ra, rb) + spacing / 2 (sqrt form).
    length = np.linalg.norm(cone_b - cone_a, axis=1)
    r_max = np.maximum(cone_ra, cone_rb)
    cone_count = np.clip(np.ceil(length / np.maximum(r_max, 1e-6)).astype(int) + 1, 2, 10)
    # Ellipsoids: samples along the longest axis.
    major = np.argmax(ell_radii, axis=1) if len(ell_radii) else np.zeros(0, int)
    a_major = ell_radii[np.arange(len(ell_radii)), major] if len(ell_radii) else np.zeros(0)
    r_minor = np.sort(ell_radii, axis=1)[:, 1] if len(ell_radii) else np.zeros(0)
    ell_count = np.clip(np.ceil(2 * a_major / np.maximum(r_minor, 1e-6)).astype(int) + 1, 1, 8)
    ell_count = np.where(a_major <= r_minor * 1.2, 1, ell_count)

    counts = np.concatenate([cone_count, ell_count]).astype(int)
    start = (np.cumsum(counts) - counts).astype(np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    rank = np.arange(counts.sum()) - start[owner]
    frac = np.where(counts[owner] > 1, rank / np.maximum(counts[owner] - 1, 1), 0.5)

    n_cones = len(cone_ra)
    is_cone = owner < n_cones
    centres = np.empty((len(owner), 3))
    radii = np.empty(len(owner))
    c_owner = owner[is_cone]
    f = frac[is_cone][:, None]
    centres[is_cone] = cone_a[c_owner] * (1 - f) + cone_b[c_owner] * f
    spacing = length[c_owner] / np.maximum(cone_count[c_owner] - 1, 1)
    radii[is_cone] = np.sqrt(r_max[c_owner] ** 2 + (spacing / 2) ** 2) + 1e-4
    e_owner = owner[~is_cone] - n_cones
    if len(e_owner):
        axis_dir = ell_axes[e_owner, :, major[e_owner]]  # (k, 3)
        single = ell_count[e_owner] == 1
        offset = (2 * frac[~is_cone] - 1) * a_major[e_owner]
        centres[~is_cone] = ell_center[e_owner] + axis_dir * np.where(single, 0.0, offset)[:, None]
        spacing = 2 * a_major[e_owner] / np.maximum(ell_count[e_owner] - 1, 1)
        cross_section = r_minor[e_owner]  # the larger of the two shorter radii
        radii[~is_cone] = np.where(single, a_major[e_owner], np.sqrt(cross_section**2 + (spacing / 2) ** 2)) + 1e-4
    return centres, radii, start


# --------------------------------------------------------------------------------------
# Ray casting
# --------------------------------------------------------------------------------------


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


@dataclass
class _Cones:
    """Round cones in the camera frame with the per-solid terms of the ray intersection."""

    A: np.ndarray  # (n, 3) end a
    ba: np.ndarray  # (n, 3) b - a
    ra: np.ndarray
    rb: np.ndarray
    rr: np.ndarray  # ra - rb
    m1: np.ndarray  # ba . (origin - a)
    m5: np.ndarray  # |origin - a|^2
    m7: np.ndarray  # |origin - b|^2
    d2: np.ndarray  # |ba|^2 - rr^2
    k0: np.ndarray

    @classmethod
    def of(cls, A: np.ndarray, B: np.ndarray, ra: np.ndarray, rb: np.ndarray) -> _Cones:
        ba = B - A
        rr = ra - rb
        m0 = _dot(ba, ba)
        m1 = -_dot(ba, A)
        m5 = _dot(A, A)
        d2 = m0 - rr * rr
        k0 = d2 * m5 - m1 * m1 + 2.0 * m1 * rr * ra - m0 * ra * ra
        return cls(A, ba, ra, rb, rr, m1, m5, _dot(B, B), d2, k0)


def _hit_cones(rays: np.ndarray, cones: _Cones, k: np.ndarray):
    """First hits of unit ``rays (N, 3)`` from the camera centre with round cones ``k (N,)``.

    Returns ``t (N,)`` (inf where missed), which surface was hit (0: the side, 1: the
    sphere at a, 2: the sphere at b) and the side's axial coordinate ``y``. After Inigo
    Quilez's analytic round-cone intersection (the convex hull of two spheres).
    """
    A, ba = cones.A[k], cones.ba[k]
    ra, rb, rr = cones.ra[k], cones.rb[k], cones.rr[k]
    m1, m5, m7, d2, k0 = cones.m1[k], cones.m5[k], cones.m7[k], cones.d2[k], cones.k0[k]
    m2 = _dot(ba, rays)
    m3 = -_dot(A, rays)
    m6 = m3 - m2  # (origin - b) . ray
    k2 = d2 - m2 * m2
    k1 = d2 * m3 - m1 * m2 + m2 * rr * ra
    h = k1 * k1 - k0 * k2
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-np.sqrt(h) - k1) / k2
        y = m1 - ra * rr + t_side * m2
        side = (h >= 0) & (y > 0) & (y < d2) & (t_side > NEAR)
        h1 = m3 * m3 - m5 + ra * ra
        h2 = m6 * m6 - m7 + rb * rb
        t1 = -m3 - np.sqrt(h1)
        t2 = -m6 - np.sqrt(h2)
    t1 = np.where((h1 > 0) & (t1 > NEAR), t1, np.inf)
    t2 = np.where((h2 > 0) & (t2 > NEAR), t2, np.inf)
    use_b = t2 < t1
    t = np.where(side, t_side, np.where(use_b, t2, t1))
    surface = np.where(side, 0, np.where(use_b, 2, 1)).astype(np.int8)
    return t, surface, y


def _cone_normals(points: np.ndarray, cones: _Cones, k: np.ndarray, surface: np.ndarray, y: np.ndarray):
    """Unnormalised outward normals at ``points (N, 3)`` on round cones ``k``."""
    A, ba = cones.A[k], cones.ba[k]
    from_a = points - A
    on_side = cones.d2[k][:, None] * from_a - ba * np.where(surface == 0, y, 0.0)[:, None]
    return np.where((surface == 0)[:, None], on_side, np.where((surface == 2)[:, None], from_a - ba, from_a))


@dataclass
class _Ellipsoids:
    """Ellipsoids in the camera frame: axes (columns), inverse radii and the camera centre
    in each ellipsoid's unit-sphere coordinates."""

    axes: np.ndarray  # (m, 3, 3)
    inv_r: np.ndarray  # (m, 3)
    origin_local: np.ndarray  # (m, 3)

    @classmethod
    def of(cls, centre: np.ndarray, axes: np.ndarray, radii: np.ndarray) -> _Ellipsoids:
        inv_r = 1.0 / radii
        return cls(axes, inv_r, -np.einsum("nji,nj->ni", axes, centre) * inv_r)

    def local_directions(self, rays: np.ndarray, k: np.ndarray) -> np.ndarray:
        return np.einsum("nji,nj->ni", self.axes[k], rays) * self.inv_r[k]


def _hit_ellipsoids(rays: np.ndarray, ellipsoids: _Ellipsoids, k: np.ndarray) -> np.ndarray:
    """``t (N,)`` of the first hits of unit ``rays (N, 3)`` with ellipsoids ``k (N,)`` (inf: missed)."""
    origin_local = ellipsoids.origin_local[k]
    direction_local = ellipsoids.local_directions(rays, k)
    a = _dot(direction_local, direction_local)
    b = _dot(origin_local, direction_local)
    c = _dot(origin_local, origin_local) - 1.0
    disc = b * b - a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / a
    return np.where((disc >= 0) & (t > NEAR), t, np.inf)


def _pixel_rays(model, width: int, height: int, field_of_view=None):
    """Camera-frame unit rays of every pixel centre of a tile-padded image, NaN where invalid
    (no ray, or outside the camera's valid field of view: black, as a real Aria image's corners)."""
    padded_w = -(-width // TILE) * TILE
    padded_h = -(-height // TILE) * TILE
    u, v = np.meshgrid(np.arange(padded_w, dtype=np.float64), np.arange(padded_h, dtype=np.float64))
    pixels = np.stack([u, v], axis=-1).reshape(-1, 2)
    with np.errstate(all="ignore"):
        rays = model.unproject(pixels)
        back = model.project(rays)
    error = np.linalg.norm(back - pixels, axis=1)
    valid = np.all(np.isfinite(rays), axis=1) & (error < 0.5)
    if field_of_view is not None:
        with np.errstate(invalid="ignore"):
            valid &= inside_field_of_view(rays, pixels, model, field_of_view)
    rays[~valid] = np.nan
    return rays, padded_w, padded_h


class _Tiles:
    """Two-level pixel blocks of a padded image for culling.

    Coarse tiles of ``TILE x TILE`` pixels, each split into ``(TILE / FINE)^2`` fine tiles of
    ``FINE x FINE``; for both levels the mean viewing ray (``axis``) and the largest angle
    between it and a pixel ray of the tile plus a pixel's width (``alpha``).
    """

    def __init__(self, rays: np.ndarray, padded_w: int, padded_h: int) -> None:
        tiles_x, tiles_y = padded_w // TILE, padded_h // TILE
        split = TILE // FINE
        index = np.arange(padded_w * padded_h).reshape(tiles_y, split, FINE, tiles_x, split, FINE)
        # (coarse tiles, fine tiles per coarse tile, pixels per fine tile)
        self.fine_pixels = index.transpose(0, 3, 1, 4, 2, 5).reshape(tiles_x * tiles_y, split * split, FINE * FINE)
        self.per_coarse = split * split
        if not np.any(np.isfinite(rays)):
            raise ValueError("the camera model gives no valid pixel ray")
        fine_rays = rays[self.fine_pixels]  # (coarse, fine, pixels, 3)
        coarse_rays = fine_rays.reshape(len(fine_rays), -1, 3)
        self.coarse_axis, self.coarse_alpha = self._cone(coarse_rays)
        fine_axis, self.fine_alpha = self._cone(fine_rays.reshape(-1, FINE * FINE, 3))
        self.fine_axis = fine_axis.reshape(len(fine_rays), self.per_coarse, 3)

    @staticmethod
    def _cone(tile_rays: np.ndarray) -> tuple[np.ndarray, float]:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN tiles
            axis = _unit(np.nanmean(tile_rays, axis=1))
        cosine = np.einsum("tpk,tk->tp", tile_rays, axis)
        cosine = np.where(np.isfinite(cosine), cosine, 1.0)
        half_angle = np.arccos(np.clip(np.min(cosine, axis=1), -1.0, 1.0))
        side = np.sqrt(tile_rays.shape[1])
        worst = float(np.nanmax(half_angle))
        # margin: the angular size of a pixel (half-angle spans ~side/sqrt(2) pixels)
        return axis, worst * (1.0 + 2.0 / side) + 1e-4

    def candidates(self, centres: np.ndarray, radii: np.ndarray, owner: np.ndarray, num_solids: int) -> np.ndarray:
        """Unique ``fine_tile * num_solids + solid`` keys of the fine tiles each solid's
        bounding spheres (camera frame ``centres (s, 3)``, ``radii (s,)``) may reach."""
        distance = np.linalg.norm(centres, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = np.arcsin(np.clip(radii / distance, 0.0, 1.0))
            directions = np.nan_to_num(centres / distance[:, None])
        inside = distance <= radii

        def threshold(alpha: float) -> np.ndarray:
            angle = alpha + beta
            return np.where(inside | (angle >= np.pi), -2.0, np.cos(np.minimum(angle, np.pi)))

        with np.errstate(invalid="ignore"):
            coarse, sphere = np.nonzero((self.coarse_axis @ directions.T) >= threshold(self.coarse_alpha)[None, :])
            fine_cos = np.einsum("pfk,pk->pf", self.fine_axis[coarse], directions[sphere])
            pair, fine = np.nonzero(fine_cos >= threshold(self.fine_alpha)[sphere][:, None])
        fine_tile = coarse[pair] * self.per_coarse + fine
        return np.unique(fine_tile * num_solids + owner[sphere[pair]])


def _blur_and_noise(image: np.ndarray, noise: np.ndarray | None, rng: np.random.Generator | None) -> np.ndarray:
    image = cv2.GaussianBlur(image, (3, 3), BLUR_SIGMA)
    if noise is None:
        return image
    h, w = image.shape[:2]
    dy, dx = rng.integers(0, noise.shape[0] - h + 1), rng.integers(0, noise.shape[1] - w + 1)
    return cv2.add(image, noise[dy : dy + h, dx : dx + w], dtype=cv2.CV_8U)


class CameraRenderer:
    """Renders the figure seen by one camera over the room.

    ``camera``: a static :class:`Camera` (background precomputed once) or a
    :class:`MovingCamera` (pose per frame, background recomputed per frame, head, face
    and neck hidden). ``seed`` and ``camera_index`` set the sensor noise; ``noise=False``
    renders without it.
    """

    def __init__(self, camera: Camera | MovingCamera, room: Room, seed: int = 0, camera_index: int = 0, noise: bool = True) -> None:
        if camera.image_size is None:
            raise ValueError(f"camera '{camera.name}': image_size is needed to render")
        self.camera = camera
        self.room = room
        self.width, self.height = camera.image_size
        self.moving = isinstance(camera, MovingCamera)
        self.rays, self.padded_w, self.padded_h = _pixel_rays(camera.model, self.width, self.height, camera.field_of_view)
        self.tiles = _Tiles(self.rays, self.padded_w, self.padded_h)
        self.ray_valid = np.isfinite(self.rays[:, 0])
        self.all_rays_valid = bool(np.all(self.ray_valid))
        self.hidden_parts = np.array([PART[name] for name in EGO_HIDDEN_PARTS]) if self.moving else np.zeros(0, int)
        self._zbuffer = np.full(self.padded_w * self.padded_h, np.inf)
        self._seed = int(seed)
        self._camera_index = int(camera_index)
        if noise:
            rng = np.random.default_rng(np.random.SeedSequence([self._seed, 0x401, self._camera_index]))
            noise_field = rng.normal(0.0, NOISE_SIGMA, size=(self.height + 24, self.width + 24, 3))
            self._noise = np.round(noise_field).astype(np.int16)
        else:
            self._noise = None
        self._background = None
        if not self.moving:
            self._background = self._room_image(camera.R, camera.t)

    def _room_image(self, R: np.ndarray, t: np.ndarray) -> np.ndarray:
        centre = -R.T @ t
        with np.errstate(invalid="ignore"):
            colour = self.room.shade(centre, self.rays @ R)  # world directions: R^T d for each row d
        colour[~self.ray_valid] = 0.0  # pixels without a valid ray are black
        return np.clip(colour, 0, 255).astype(np.uint8).reshape(self.padded_h, self.padded_w, 3)

    def pose(self, frame_index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """World-to-camera ``(R, t)`` at a frame, None when the ego pose is unknown."""
        if not self.moving:
            return self.camera.R, self.camera.t
        if not self.camera.valid_frames[frame_index]:
            return None
        return self.camera.R[frame_index], self.camera.t[frame_index]

    def render(self, figure: Figure | None, frame_index: int, with_labels: bool = False):
        """The uint8 ``(H, W, 3)`` RGB image of a frame (plus an int8 part-label image,
        -1 for the room, when ``with_labels``). ``figure=None`` renders the empty room;
        a frame without an ego pose is black."""
        rng = np.random.default_rng(np.random.SeedSequence([self._seed, 0x402, self._camera_index, int(frame_index)]))
        pose = self.pose(frame_index)
        labels = np.full(self.padded_w * self.padded_h, -1, dtype=np.int8)
        if pose is None:
            image = np.zeros((self.padded_h, self.padded_w, 3), dtype=np.uint8)
        else:
            R, t = pose
            image = (self._background if self._background is not None else self._room_image(R, t)).copy()
            if figure is not None and figure.num_solids:
                pixels, colours, parts = self._cast(figure, R, t)
                image.reshape(-1, 3)[pixels] = colours
                labels[pixels] = parts
        image = _blur_and_noise(np.ascontiguousarray(image[: self.height, : self.width]), self._noise, rng)
        if with_labels:
            return image, labels.reshape(self.padded_h, self.padded_w)[: self.height, : self.width].copy()
        return image

    def _cast(self, figure: Figure, R: np.ndarray, t: np.ndarray):
        """Pixels covered by the figure, their uint8 colours and part labels."""
        drawn = ~np.isin(figure.part, self.hidden_parts)
        # Culling: the fine tiles each drawn solid may cover.
        owner = figure.sphere_owner
        keep = drawn[owner]
        centres = figure.sphere_center[keep] @ R.T + t
        keys = self.tiles.candidates(centres, figure.sphere_radius[keep], owner[keep], figure.num_solids)
        if len(keys) == 0:
            return np.zeros(0, np.int64), np.zeros((0, 3), np.uint8), np.zeros(0, np.int8)
        fine_pixels = self.tiles.fine_pixels.reshape(-1, FINE * FINE)
        pixels = fine_pixels[keys // figure.num_solids].reshape(-1)
        solid = np.repeat(keys % figure.num_solids, FINE * FINE)
        if not self.all_rays_valid:
            valid_ray = self.ray_valid[pixels]
            pixels, solid = pixels[valid_ray], solid[valid_ray]
        rays = self.rays[pixels]

        n_cones = figure.num_cones
        is_cone = solid < n_cones
        t_all = np.full(len(solid), np.inf)
        surface = np.zeros(len(solid), dtype=np.int8)
        y_all = np.zeros(len(solid))
        cones = ellipsoids = None
        if np.any(is_cone):
            cones = _Cones.of(figure.cone_a @ R.T + t, figure.cone_b @ R.T + t, figure.cone_ra, figure.cone_rb)
            t_all[is_cone], surface[is_cone], y_all[is_cone] = _hit_cones(rays[is_cone], cones, solid[is_cone])
        is_ell = ~is_cone
        if np.any(is_ell):
            axes = np.einsum("ij,njk->nik", R, figure.ell_axes)
            ellipsoids = _Ellipsoids.of(figure.ell_center @ R.T + t, axes, figure.ell_radii)
            t_all[is_ell] = _hit_ellipsoids(rays[is_ell], ellipsoids, solid[is_ell] - n_cones)
        hit = np.isfinite(t_all)
        pixels, solid, t_all, rays = pixels[hit], solid[hit], t_all[hit], rays[hit]
        surface, y_all = surface[hit], y_all[hit]
        # z-buffer: the nearest hit per pixel wins
        zbuffer = self._zbuffer
        np.minimum.at(zbuffer, pixels, t_all)
        front = t_all <= zbuffer[pixels]
        zbuffer[pixels] = np.inf  # reset for the next frame
        pixels, solid, t_all, rays = pixels[front], solid[front], t_all[front], rays[front]
        surface, y_all = surface[front], y_all[front]
        # Normals (and hair on the head) for the visible hits only.
        points = rays * t_all[:, None]
        normal = np.zeros_like(points)
        hair = np.zeros(len(solid), dtype=bool)
        is_cone = solid < n_cones
        if np.any(is_cone):
            normal[is_cone] = _cone_normals(points[is_cone], cones, solid[is_cone], surface[is_cone], y_all[is_cone])
        is_ell = ~is_cone
        if np.any(is_ell):
            k = solid[is_ell] - n_cones
            local = ellipsoids.origin_local[k] + ellipsoids.local_directions(rays[is_ell], k) * t_all[is_ell, None]
            normal[is_ell] = np.einsum("nij,nj->ni", ellipsoids.axes[k], local * ellipsoids.inv_r[k])
            # on the head, local coordinates are (right, forward, up) on the unit sphere
            head = figure.material[solid[is_ell]] == MATERIAL["head"]
            hair[is_ell] = head & (local[:, 2] - 0.9 * local[:, 1] > 0.25)
        normal = _unit(normal)
        light = R @ LIGHT_DIRECTION
        sky = R @ np.array([0.0, 0.0, 1.0])
        lambert = np.clip(normal @ light, 0.0, None)
        hemisphere = 0.5 * (1.0 + normal @ sky)
        shade = (AMBIENT + DIFFUSE * lambert + SKY * hemisphere).astype(np.float32)
        material = figure.material[solid].astype(np.int64)
        material[hair] = MATERIAL["hair"]
        colours = np.clip(figure.albedo[material] * shade[:, None], 0, 255).astype(np.uint8)
        return pixels, colours, figure.part[solid].astype(np.int8)


# --------------------------------------------------------------------------------------
# The take
# --------------------------------------------------------------------------------------


def _scene(joints_3d: np.ndarray, exo_cameras: list[Camera], ego: MovingCamera, seed: int):
    """The figure style and one renderer per camera (exo cameras, then the ego camera) of a take."""
    style = FigureStyle.from_seed(seed)
    anchors = [camera.center for camera in exo_cameras] + [joints_3d.reshape(-1, 3)]
    room = Room.around(np.vstack(anchors), seed)
    cameras: list[Camera | MovingCamera] = list(exo_cameras) + [ego]
    return style, [CameraRenderer(camera, room, seed, index) for index, camera in enumerate(cameras)]


def scene_points(joints_3d: np.ndarray, exo_cameras: list[Camera], seed: int, count: int) -> np.ndarray:
    """``(count, 3)`` points on the surfaces of the room the take is rendered in (metres)."""
    anchors = [camera.center for camera in exo_cameras] + [np.asarray(joints_3d).reshape(-1, 3)]
    room = Room.around(np.vstack(anchors), seed)
    return room.surface_points(np.random.default_rng(np.random.SeedSequence([int(seed), 0x300])), count)


def figure_labels(joints_3d: np.ndarray, exo_cameras: list[Camera], ego: MovingCamera, seed: int, frame: int) -> list[np.ndarray]:
    """Part-label images (int8 ``(H, W)``, -1 for the room) of one frame in every camera, as
    :func:`render_take_videos` draws it: where the figure and each of its parts are."""
    style, renderers = _scene(joints_3d, exo_cameras, ego, seed)
    figure = build_figure(np.asarray(joints_3d, dtype=np.float64)[frame], style)
    return [renderer.render(figure, frame, with_labels=True)[1] for renderer in renderers]


def render_take_videos(
    take_dir: Path,
    joints_3d: np.ndarray,
    exo_cameras: list[Camera],
    ego: MovingCamera,
    fps: float,
    seed: int,
    *,
    view_joints: Mapping[str, np.ndarray] | None = None,
    workers: int | None = None,
    progress=None,
) -> np.ndarray:
    """Write ``take_dir/frame_aligned_videos/<camera.name>.mp4`` for every exo camera and the ego
    camera; returns the truth visibility ``(exo views, frames, 59)`` bool of every joint in
    every exo frame (:func:`joint_visibility`).

    ``view_joints``: per exo camera name, the joints ``(frames, 59, 3)`` that camera's
    frames show instead of ``joints_3d`` (a camera whose frames show other times); the
    room and the other cameras are as without it.

    ``joints_3d (frames, 59, 3)`` metres in the world frame (z up, floor at z = 0); NaN
    joints are not drawn. ``ego.num_frames`` must equal the number of frames; a frame
    without an ego pose is black in the ego video. Videos are written frame by frame
    and atomically (a failure leaves no partial file). ``workers``: threads rendering
    the cameras of a frame in parallel (default: up to 2, the CPU count); ``progress``:
    optional callable ``progress(frames_done, frames_total)``.
    """
    take_dir = Path(take_dir)
    joints_3d = np.asarray(joints_3d, dtype=np.float64)
    if joints_3d.ndim != 3 or joints_3d.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints_3d must have shape (frames, {NUM_JOINTS}, 3), got {joints_3d.shape}")
    frames = joints_3d.shape[0]
    if ego.num_frames != frames:
        raise ValueError(f"camera '{ego.name}': {ego.num_frames} poses for {frames} frames")
    cameras: list[Camera | MovingCamera] = list(exo_cameras) + [ego]
    names = [camera.name for camera in cameras]
    if len(set(names)) != len(names):
        raise ValueError(f"camera names must be unique, got {names}")
    for camera in cameras:
        if camera.image_size is None:
            raise ValueError(f"camera '{camera.name}': image_size is needed to render")

    exo_joints = joints_per_view(joints_3d, exo_cameras, view_joints)
    style, renderers = _scene(joints_3d, exo_cameras, ego, seed)
    out_dir = take_dir / "frame_aligned_videos"
    workers = workers or min(2, os.cpu_count() or 1)

    with contextlib.ExitStack() as stack:
        writers = [
            stack.enter_context(VideoWriter(out_dir / f"{camera.name}.mp4", fps, width=camera.image_size[0], height=camera.image_size[1])) for camera in cameras
        ]
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers)) if workers > 1 else None
        exo = len(exo_cameras)
        labelled = [True] * exo + [False]
        pixels = np.stack([camera.project(seen) for camera, seen in zip(exo_cameras, exo_joints)]) if exo else np.zeros((0, frames, NUM_JOINTS, 2))
        in_front = np.stack([camera.in_front(seen) for camera, seen in zip(exo_cameras, exo_joints)]) if exo else np.zeros((0, frames, NUM_JOINTS), bool)
        pixels = np.where(in_front[..., None], pixels, np.nan)
        visible = np.zeros((exo, frames, NUM_JOINTS), dtype=bool)
        own = [view for view, seen in enumerate(exo_joints) if seen is not joints_3d]  # views with joints of their own
        for frame in range(frames):
            figure = build_figure(joints_3d[frame], style)
            figures = [figure] * len(renderers)
            for view in own:  # the time-shifted camera(s)
                figures[view] = build_figure(exo_joints[view][frame], style)
            arguments = (renderers, figures, [frame] * len(renderers), labelled)
            results = list(pool.map(CameraRenderer.render, *arguments) if pool is not None else map(CameraRenderer.render, *arguments))
            for view in range(exo):
                image, labels = results[view]
                visible[view, frame] = joint_visibility(labels, pixels[view, frame])
                results[view] = image
            for writer, image in zip(writers, results, strict=True):
                writer.write(image)
            if progress is not None:
                progress(frame + 1, frames)
    return visible
