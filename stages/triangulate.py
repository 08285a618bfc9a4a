"""Stage ``triangulate``: 2D keypoints of every exo view -> per-frame 3D joints with quality.

Reads ``detect/keypoints_2d.npz`` and the take's exo cameras; config section
``triangulation``; writes ``joints_3d.npz`` (:func:`pipeline.formats.arrays.save_joints_3d`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fitting.skeleton import PARTS
from pipeline.formats.arrays import load_arrays, save_joints_3d
from stages.base import StageContext, StageSpec
from triangulation.cameras import Camera
from triangulation.triangulate import Triangulation, TriangulationSettings, triangulate


def triangulate_take(cameras: list[Camera], keypoints: np.ndarray, settings: TriangulationSettings) -> tuple[Triangulation, dict]:
    """Triangulate ``keypoints (views, frames, 59, 3)`` with the ``triangulation`` settings.

    Returns the result and a summary with counts a person can check (per body part:
    fraction of joints x frames reconstructed, mean views used, mean inlier
    reprojection error in pixels, and the share of observations rejected as outliers).
    """
    result = triangulate(cameras, keypoints, **dataclasses.asdict(settings))
    observed = np.isfinite(result.reprojection_error)
    summary = {
        "frames": int(keypoints.shape[1]),
        "views": int(keypoints.shape[0]),
        "rejected_small_angle": int(result.small_angle.sum()),
    }
    for part, joints in PARTS.items():
        reconstructed = np.isfinite(result.points[:, joints, 0])
        seen = observed[:, :, joints]
        inlier_errors = result.reprojection_error[:, :, joints][result.inliers[:, :, joints]]
        summary[part] = {
            "reconstructed": float(reconstructed.mean()),
            "mean_views": float(result.num_views[:, joints][reconstructed].mean()) if reconstructed.any() else 0.0,
            "mean_inlier_error_px": float(inlier_errors.mean()) if inlier_errors.size else None,
            "rejected_observations": float(1.0 - result.inliers[:, :, joints][seen].mean()) if seen.any() else 0.0,
        }
    return result, summary


def run_stage(context: StageContext) -> tuple[dict[str, str], dict]:
    detections = load_arrays(context.inputs["detect"].path("keypoints_2d"), ("keypoints", "camera_names"))
    result, summary = triangulate_take(list(context.take.exo_cameras), detections["keypoints"], context.settings("triangulation"))
    save_joints_3d(context.work / "joints_3d.npz", result, detections["camera_names"])
    return {"joints_3d": "joints_3d.npz"}, summary


STAGE = StageSpec(
    name="triangulate",
    inputs=("detect",),
    config_sections=("triangulation",),
    reads_take_files=False,
    writes=("joints_3d",),
    run=run_stage,
)
