"""Hand regions: where a hand landmark model should look, from every source a take offers.

A :class:`HandRegion` is a square in the image, turned so that its "up" points from
the wrist toward the fingers (the alignment hand landmark models are trained on). It
comes from:

- 21 hand points (:func:`region_from_points`): MediaPipe's own tracking rule: the box
  of the palm points (wrist, thumb 1-3, the first two joints of every finger) in the
  frame of the hand's direction (wrist -> mean of the index, middle and ring MCPs),
  its longer side times ``scale``, moved ``shift`` of its height toward the fingers.
  The points may be a previous frame's 3D hand or another view's triangulation,
  projected into this view (:func:`project_hand_region`), or a 2D hand of this view.
- A forearm (:func:`region_from_arm`, :func:`project_arm_region`): centred
  ``offset`` forearm lengths beyond the wrist along elbow -> wrist, ``scale`` forearm
  lengths wide; with the 3D body the forearm's length in pixels is its 3D length at
  the wrist's depth (a forearm pointing at the camera does not shrink the hand).

Measured on rendered synthetic takes (truth regions by the first rule): the region
is 0.68-1.03 forearm lengths wide (median 0.93), its centre 0.2-0.3 forearm lengths
beyond the wrist, its direction within 10 degrees (median) of the forearm's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detection.crops import RotatedCrop
from triangulation.cameras import Camera

# Hand-local indices of the points MediaPipe's tracking boxes: wrist, thumb 1-3, and
# the first two joints of the index, middle, ring and pinky fingers.
PALM_POINTS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
INDEX_MCP, MIDDLE_MCP, RING_MCP = 5, 9, 13
_DOWN = np.array([0.0, 1.0])  # image "down": a hand's direction when the forearm gives none


@dataclass(frozen=True)
class HandRegion:
    """A turned square: ``centre (2,)`` image pixels, ``side`` pixels, ``up (2,)`` unit
    vector from the wrist toward the fingers."""

    centre: np.ndarray
    side: float
    up: np.ndarray

    def crop(self, size: int, mirrored: bool = False) -> RotatedCrop:
        return RotatedCrop((float(self.centre[0]), float(self.centre[1])), float(self.side), (float(self.up[0]), float(self.up[1])), int(size), mirrored)

    def scaled(self, factor: float) -> HandRegion:
        return HandRegion(self.centre, self.side * factor, self.up)

    def inside(self, width: int, height: int) -> bool:
        """Whether the centre lies in the image."""
        return bool(0.0 <= self.centre[0] <= width - 1.0 and 0.0 <= self.centre[1] <= height - 1.0)


def _unit(vector: np.ndarray) -> np.ndarray | None:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-9 and np.isfinite(norm) else None


def palm_boxes(points: np.ndarray, scale: float = 2.0, shift: float = 0.1):
    """MediaPipe's tracking rule on hands ``(..., 21, 2)`` pixels, batched: centres ``(..., 2)``,
    sides ``(...)`` and directions ``(..., 2)`` (wrist toward the fingers); NaN where a palm
    point is unknown or the hand has no direction."""
    points = np.asarray(points, dtype=np.float64)[..., :2]
    palm = points[..., list(PALM_POINTS), :]
    target = 0.5 * (0.5 * (points[..., INDEX_MCP, :] + points[..., RING_MCP, :]) + points[..., MIDDLE_MCP, :])
    direction = target - points[..., 0, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        up = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
    right = np.stack([-up[..., 1], up[..., 0]], axis=-1)
    relative = palm - palm[..., :1, :]
    across = np.einsum("...pk,...k->...p", relative, right)
    along = np.einsum("...pk,...k->...p", relative, up)
    height = along.max(axis=-1) - along.min(axis=-1)
    offset_across = 0.5 * (across.max(axis=-1) + across.min(axis=-1))
    offset_along = 0.5 * (along.max(axis=-1) + along.min(axis=-1)) + shift * height
    centres = palm[..., 0, :] + right * offset_across[..., None] + up * offset_along[..., None]
    sides = scale * np.maximum(across.max(axis=-1) - across.min(axis=-1), height)
    return centres, sides, up


def region_from_points(points: np.ndarray, scale: float = 2.0, shift: float = 0.1, min_side: float = 8.0) -> HandRegion | None:
    """The region of a hand's 21 points ``(21, 2)`` pixels (the palm points must be finite)."""
    centre, side, up = palm_boxes(points, scale, shift)
    if not (np.all(np.isfinite(centre)) and np.isfinite(side) and np.all(np.isfinite(up))):
        return None
    return HandRegion(centre, max(float(side), min_side), up)


def region_from_arm(wrist: np.ndarray, elbow: np.ndarray | None, forearm_px: float, offset: float, scale: float, min_side: float) -> HandRegion | None:
    """The region beyond ``wrist (2,)`` along ``elbow -> wrist`` for a forearm of ``forearm_px`` pixels.

    Without an elbow, or with a forearm seen end-on (shorter than a third of
    ``forearm_px``), the hand is taken to point down the image and the region is
    centred on the wrist.
    """
    wrist = np.asarray(wrist, dtype=np.float64)
    if not (np.all(np.isfinite(wrist)) and np.isfinite(forearm_px) and forearm_px > 0):
        return None
    up = None
    if elbow is not None and np.all(np.isfinite(elbow)) and np.linalg.norm(wrist - elbow) >= forearm_px / 3.0:
        up = _unit(wrist - np.asarray(elbow, dtype=np.float64))
    if up is None:
        return HandRegion(wrist, max(scale * forearm_px * 1.25, min_side), _DOWN)
    return HandRegion(wrist + offset * forearm_px * up, max(scale * forearm_px, min_side), up)


def pixels_per_metre(camera: Camera, point: np.ndarray) -> float:
    """Image pixels per metre across the viewing ray at ``point (3,)`` (NaN behind the camera)."""
    point = np.asarray(point, dtype=np.float64)
    if not np.all(np.isfinite(point)) or not bool(np.all(camera.in_front(point[None]))):
        return float("nan")
    ray = _unit(point - camera.center)
    helper = np.array([0.0, 0.0, 1.0]) if abs(ray[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    across = _unit(np.cross(ray, helper))
    step = 0.01  # metres
    pixels = camera.project(np.stack([point, point + step * across]))
    return float(np.linalg.norm(pixels[1] - pixels[0]) / step)


def project_arm_region(camera: Camera, elbow: np.ndarray, wrist: np.ndarray, offset: float, scale: float, min_side: float) -> HandRegion | None:
    """:func:`region_from_arm` of a 3D forearm ``elbow, wrist (3,)`` metres seen by ``camera``."""
    if not (np.all(np.isfinite(elbow)) and np.all(np.isfinite(wrist))):
        return None
    density = pixels_per_metre(camera, wrist)
    if not np.isfinite(density) or not bool(np.all(camera.in_front(np.asarray(elbow, dtype=np.float64)[None]))):
        return None
    forearm_px = float(np.linalg.norm(np.asarray(wrist) - np.asarray(elbow))) * density
    pixels = camera.project(np.stack([elbow, wrist]).astype(np.float64))
    return region_from_arm(pixels[1], pixels[0], forearm_px, offset, scale, min_side)


def project_hand_region(camera: Camera, hand: np.ndarray, scale: float = 2.0, shift: float = 0.1, min_side: float = 8.0) -> HandRegion | None:
    """:func:`region_from_points` of a 3D hand ``(21, 3)`` metres seen by ``camera`` (None
    when a palm point is unknown or behind the camera)."""
    palm = np.asarray(hand, dtype=np.float64)[list(PALM_POINTS)]
    if not np.all(np.isfinite(palm)) or not bool(np.all(camera.in_front(palm))):
        return None
    points = np.full((21, 2), np.nan)
    points[list(PALM_POINTS)] = camera.project(palm)
    return region_from_points(points, scale, shift, min_side)


def move_hand(hand: np.ndarray, old_elbow, old_wrist: np.ndarray, elbow, wrist: np.ndarray) -> np.ndarray:
    """A 3D hand ``(21, 3)`` carried from its old forearm to a new one: turned by the
    smallest rotation taking the old forearm direction to the new one, about the wrist,
    and moved with the wrist (a prediction of where the hand is now). An elbow that is
    None or NaN: moved without turning."""
    hand = np.asarray(hand, dtype=np.float64)

    def direction(elbow_point, wrist_point):
        if elbow_point is None or not np.all(np.isfinite(elbow_point)):
            return None
        return _unit(np.asarray(wrist_point, dtype=np.float64) - np.asarray(elbow_point, dtype=np.float64))

    old, new = direction(old_elbow, old_wrist), direction(elbow, wrist)
    rotation = np.eye(3)
    if old is not None and new is not None:
        axis = np.cross(old, new)
        sine, cosine = np.linalg.norm(axis), float(np.dot(old, new))
        if sine > 1e-9:
            k = axis / sine
            skew = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
            rotation = np.eye(3) + sine * skew + (1.0 - cosine) * skew @ skew
    return (hand - old_wrist) @ rotation.T + wrist
