"""Synthetic multi-view scenes (cameras, points, detector-like observations) for tests and benchmarks; no files."""

from __future__ import annotations

import numpy as np

from triangulation.camera_models import FisheyeModel, PinholeModel
from triangulation.cameras import Camera


def look_at(center: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``R (3, 3)``, ``t (3,)`` of a camera at ``center`` looking at ``target``."""
    forward = target - center
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    return R, -R @ center


def ring_of_cameras(num_views: int = 5, model: str = "fisheye", radius: float = 3.0, seed: int = 0) -> list[Camera]:
    """``num_views`` cameras on a ring of ``radius`` metres around the origin, 1-2 m high."""
    rng = np.random.default_rng(seed)
    cameras = []
    for v in range(num_views):
        angle = 2 * np.pi * v / num_views + rng.uniform(-0.2, 0.2)
        center = np.array([radius * np.cos(angle), radius * np.sin(angle), rng.uniform(1.0, 2.0)])
        R, t = look_at(center, np.array([0.0, 0.0, 1.0]) + rng.normal(0, 0.1, 3))
        if model == "fisheye":
            intrinsics = FisheyeModel(600.0, 600.0, 960.0, 540.0, [0.05, -0.02, 0.004, -0.001])
        else:
            intrinsics = PinholeModel(1400.0, 1400.0, 960.0, 540.0, [-0.1, 0.05, 0.001, -0.001])
        cameras.append(Camera(f"cam{v + 1:02d}", intrinsics, R, t, (1920, 1080)))
    return cameras


def random_points(num_frames: int, num_joints: int, seed: int = 0) -> np.ndarray:
    """Points ``(frames, joints, 3)`` in a person-sized box around (0, 0, 1) metres."""
    rng = np.random.default_rng(seed)
    return rng.uniform([-0.5, -0.5, 0.0], [0.5, 0.5, 1.9], size=(num_frames, num_joints, 3))


def observe(
    cameras: list[Camera],
    points: np.ndarray,
    noise_px: float = 0.0,
    drop_rate: float = 0.0,
    outlier_rate: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Detector-like keypoints ``(views, frames, joints, 3)`` and the outlier mask.

    Gaussian pixel noise of ``noise_px`` per axis, dropped observations (NaN) and
    gross outliers displaced 40-300 px with a random confidence.
    """
    rng = np.random.default_rng(seed)
    pixels = np.stack([camera.project(points) for camera in cameras])
    shape = pixels.shape[:-1]
    pixels = pixels + rng.normal(0.0, noise_px, pixels.shape)
    confidence = rng.uniform(0.5, 1.0, shape)
    outlier = rng.random(shape) < outlier_rate
    angle = rng.uniform(0, 2 * np.pi, shape)
    distance = rng.uniform(40.0, 300.0, shape)
    offset = np.stack([np.cos(angle), np.sin(angle)], axis=-1) * distance[..., None]
    pixels = np.where(outlier[..., None], pixels + offset, pixels)
    keypoints = np.concatenate([pixels, confidence[..., None]], axis=-1)
    dropped = rng.random(shape) < drop_rate
    keypoints[dropped] = np.nan
    return keypoints.astype(np.float32), outlier & ~dropped
