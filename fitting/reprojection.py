"""Projection of 3D joints into calibrated views and pixel errors against 2D observations.

Cameras are duck-typed so that this library imports nothing outside ``fitting``: any
object with ``R (3, 3)`` and ``t (3,)`` (world to camera, metres) and ``model`` with
``project(points_cam (..., 3)) -> (..., 2)`` and ``project_with_jacobian(points_cam) ->
(pixels (..., 2), d pixels / d point_cam (..., 2, 3))`` will do (e.g.
``triangulation.cameras.Camera``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class CameraLike(Protocol):
    R: np.ndarray
    t: np.ndarray
    model: object


def _camera_points(camera: CameraLike, points: np.ndarray) -> np.ndarray:
    flat = points.reshape(-1, 3) @ np.asarray(camera.R).T + np.asarray(camera.t)
    return flat.reshape(points.shape)


def project(cameras: Sequence[CameraLike], points: np.ndarray) -> np.ndarray:
    """Pixels ``(views, ..., 2)`` of world points ``(..., 3)``; NaN where a point is NaN or
    behind a camera (depth <= 0)."""
    points = np.asarray(points, dtype=np.float64)
    result = []
    for camera in cameras:
        in_camera = _camera_points(camera, points)
        with np.errstate(invalid="ignore", divide="ignore"):
            pixels = camera.model.project(in_camera)
        result.append(np.where((in_camera[..., 2] > 0)[..., None], pixels, np.nan))
    return np.stack(result)


def project_with_jacobian(camera: CameraLike, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(N, 2)`` and d pixels / d world point ``(N, 2, 3)`` of world points ``(N, 3)`` in one camera."""
    in_camera = _camera_points(camera, points)
    with np.errstate(invalid="ignore", divide="ignore"):
        pixels, jacobian = camera.model.project_with_jacobian(in_camera)
    jacobian = (jacobian.reshape(-1, 3) @ np.asarray(camera.R)).reshape(jacobian.shape)
    behind = in_camera[..., 2] <= 0
    if not behind.any():  # the usual case: no copies
        return pixels, jacobian
    return np.where(behind[..., None], np.nan, pixels), np.where(behind[..., None, None], 0.0, jacobian)


def pixel_errors(cameras: Sequence[CameraLike], observations: np.ndarray, points: np.ndarray, chunk_frames: int = 1024) -> np.ndarray:
    """Distances ``(views, frames, joints)`` in pixels between the observations
    ``(views, frames, joints, >=2)`` and the projections of ``points (frames, joints, 3)``;
    NaN where either is missing. Computed ``chunk_frames`` frames at a time, so the
    temporaries of a long take stay small (the result is the only take-sized array)."""
    points = np.asarray(points)
    errors = np.empty((len(cameras),) + points.shape[:-1])
    for start in range(0, max(points.shape[0], 1), chunk_frames):  # loop over frame chunks (memory)
        stop = start + chunk_frames
        projected = project(cameras, points[start:stop])
        observed = np.asarray(observations[:, start:stop, ..., :2], dtype=np.float64)
        errors[:, start:stop] = np.linalg.norm(projected - observed, axis=-1)
    return errors
