"""Regions of interest for the camera wearer, from a 3D prior, in one exo view.

- :func:`box_from_head`: the ego (head-worn) camera's centre at this frame: the body
  lies in a vertical cylinder below it; the box bounds the cylinder's projection.
- :func:`box_from_pose`: the previous frame's 3D body joints, projected, padded.
- :func:`seed_box` / :func:`seed_index`: no prior: the largest, most central person box.

Boxes are ``(x0, y0, x1, y1)`` full-image pixels, or None when the prior is not in the
view (behind the camera or outside the image).
"""

from __future__ import annotations

import numpy as np

from detection.crops import box_of_points, clip_box
from detection.settings import DetectionSettings
from triangulation.cameras import Camera, MovingCamera

UP_AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1)}


def _projected_box(camera: Camera, points: np.ndarray, image_size: tuple[int, int]) -> np.ndarray | None:
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    points = points[np.all(np.isfinite(points), axis=1)]
    if len(points) == 0:
        return None
    front = camera.in_front(points)
    if not np.any(front):
        return None
    box = box_of_points(camera.project(points[front]))
    return None if box is None else clip_box(box, *image_size)


def cylinder_points(head: np.ndarray, up: np.ndarray, above: float, below: float, radius: float, count: int = 12):
    """``(3 * count, 3)`` points on three rings of a vertical cylinder around ``head``."""
    up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    helper = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    a = np.cross(up, helper)
    a /= np.linalg.norm(a)
    b = np.cross(up, a)
    angles = np.linspace(0.0, 2.0 * np.pi, count, endpoint=False)
    ring = radius * (np.cos(angles)[:, None] * a + np.sin(angles)[:, None] * b)
    heights = np.array([above, 0.5 * (above - below), -below])
    return (np.asarray(head, dtype=np.float64) + heights[:, None, None] * up + ring[None]).reshape(-1, 3)


def box_from_head(
    camera: Camera, head: np.ndarray, image_size: tuple[int, int], up: np.ndarray, above: float, below: float, radius: float
) -> np.ndarray | None:
    """Box of the cylinder ``[head - below * up, head + above * up]`` of ``radius`` metres."""
    if not np.all(np.isfinite(head)):
        return None
    return _projected_box(camera, cylinder_points(head, up, above, below, radius), image_size)


def ego_box(camera: Camera, head: np.ndarray, image_size: tuple[int, int], up: np.ndarray, settings: DetectionSettings) -> np.ndarray | None:
    """:func:`box_from_head` with the cylinder of the ``detect`` settings (``ego_box_*``)."""
    return box_from_head(
        camera,
        head,
        image_size,
        up,
        settings.ego_box_above_m,
        settings.ego_box_below_m,
        settings.ego_box_radius_m,
    )


def box_from_pose(camera: Camera, joints: np.ndarray, image_size: tuple[int, int], margin: float) -> np.ndarray | None:
    """Box of the projected 3D joints ``(J, 3)``, each side grown by ``margin`` times the box's longer side."""
    box = _projected_box(camera, joints, image_size)
    return None if box is None else grow(box, margin, image_size)


def box_from_keypoints(keypoints: np.ndarray, image_size: tuple[int, int], margin: float, min_confidence: float):
    """Box of confident 2D keypoints ``(J, 3)``, grown by ``margin``; None when none is confident."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    good = np.isfinite(keypoints[:, 2]) & (keypoints[:, 2] >= min_confidence)
    if good.sum() < 2:
        return None
    box = clip_box(box_of_points(keypoints[good, :2]), *image_size)
    return None if box is None else grow(box, margin, image_size)


def grow(box: np.ndarray, margin: float, image_size: tuple[int, int]) -> np.ndarray | None:
    """``box`` with each side moved out by ``margin`` times its longer side, clipped to the image."""
    x0, y0, x1, y1 = box
    pad = margin * max(x1 - x0, y1 - y0)
    return clip_box(np.array([x0 - pad, y0 - pad, x1 + pad, y1 + pad]), *image_size)


def centrality(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """``(N,)`` in [0, 1]: ``1 - d / r`` of boxes ``(N, 4+)`` (``d``: box centre to image centre,
    ``r``: half the image diagonal, pixels); NaN for NaN boxes."""
    centre = 0.5 * np.asarray(image_size, dtype=np.float64)
    distance = np.linalg.norm(0.5 * (boxes[:, :2] + boxes[:, 2:4]) - centre, axis=1)
    return np.clip(1.0 - distance / np.linalg.norm(centre), 0.0, None)


def seed_index(boxes: np.ndarray, image_size: tuple[int, int]) -> int | None:
    """Index of the largest, most central of the person boxes ``(N, 4+)`` (pixels): score = area x centrality.

    Centrality is ``1 - d / r`` (``d``: distance from the box centre to the image
    centre, ``r``: half the image diagonal), so of two equal boxes the central one wins
    and a bystander far in the background (small) loses to the subject. Rows with NaN
    are not candidates; None when there is none.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, np.asarray(boxes).shape[-1] if np.size(boxes) else 4)
    if len(boxes) == 0:
        return None
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    score = area * centrality(boxes, image_size)
    score = np.where(np.isfinite(score), score, -np.inf)
    return None if not np.isfinite(score.max()) else int(np.argmax(score))


def seed_box(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray | None:
    """The box ``(4,)`` of :func:`seed_index` among ``boxes (N, 4+)``, or None."""
    index = seed_index(boxes, image_size)
    if index is None:
        return None
    return np.asarray(boxes, dtype=np.float64).reshape(-1, np.asarray(boxes).shape[-1])[index, :4].copy()


def ego_centres(ego_camera: MovingCamera | None, num_frames: int) -> np.ndarray | None:
    """``(num_frames, 3)`` ego camera centres (metres, world; NaN where its pose is unknown
    or beyond its frames), or None without an ego camera."""
    if ego_camera is None:
        return None
    centres = ego_camera.centers
    ego = np.full((num_frames, 3), np.nan)
    ego[: min(num_frames, len(centres))] = centres[:num_frames]
    return ego
