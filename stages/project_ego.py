"""Stage ``project_ego``: the refined 3D skeleton in every ego frame (and every exo view).

Reads ``refine/joints_3d.npz`` and the take's cameras (the ego camera: one pose per
frame, from the raw Aria inputs or a camera_pose JSON, with its FISHEYE624 model and
valid field of view); config section ``project_ego``; writes ``projections.npz``:

- ``ego_pixels (frames, 59, 2)`` float32: the raw fisheye image (the ego video, in the
  calibration's orientation), ``ego_visibility (frames, 59)`` int8 codes of
  :data:`triangulation.visibility.VISIBILITY_NAMES` (0 visible; else not
  reconstructed, no camera pose, behind the camera, too close to it (the wearer's own
  face, ``min_depth_m``), outside the valid field of view, outside the image);
- ``ego_undistorted_pixels`` / ``ego_undistorted_visibility``: the undistorted linear
  frame of the released labels and the public ego-pose code (512 x 512, f = 150 px by
  default), with ``ego_undistorted_K (3, 3)`` and ``ego_undistorted_size (2,)``; visible
  means in that image and visible in the fisheye (the consumers' valid mask);
- ``ego_R (frames, 3, 3)``, ``ego_t (frames, 3)``: world-to-camera per frame (NaN
  without a pose), ``ego_pose_status (frames,)`` int8 (:data:`triangulation.poses.POSE_*`),
  ``ego_camera_name``;
- ``exo_pixels (views, frames, 59, 2)`` float32, ``exo_visibility (views, frames, 59)``,
  ``exo_camera_names (views,)``: each exo video's own (raw, distorted) frame;
- ``exo_undistorted_pixels (views, frames, 59, 2)`` float32, ``exo_undistorted_visibility
  (views, frames, 59)``, ``exo_undistorted_K (views, 3, 3)``, ``exo_undistorted_size
  (views, 2)`` (width, height): the undistorted exo frames the released exo 2D are in
  (:func:`pipeline.formats.egoexo4d.release_exo_undistorted_camera`: a GoPro fisheye
  undistorted with OpenCV's new K at ``exo_undistorted_balance``, same image size); visible
  means in that image and visible in the raw frame.

A take without an ego camera gets the exo arrays only. The summary counts frames with
a pose (and why the others have none) and the share of joints visible per part.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from fitting.skeleton import PARTS
from pipeline.formats.arrays import load_arrays, save_projections
from pipeline.formats.egoexo4d import release_exo_undistorted_camera
from stages.base import StageContext, StageSpec
from stages.rig import checked_rig
from triangulation.cameras import Camera, MovingCamera
from triangulation.poses import POSE_NO_TIMESTAMP, POSE_NOT_GIVEN, POSE_OK, POSE_STATUS_NAMES
from triangulation.visibility import (
    VISIBILITY_NAMES,
    VISIBLE,
    linear_camera,
    project_rectified,
    project_undistorted,
    project_with_visibility,
)

if TYPE_CHECKING:
    from pipeline.config import ProjectEgoConfig

logger = logging.getLogger(__name__)


def ego_for_frames(camera: MovingCamera, num_frames: int) -> MovingCamera:
    """The ego camera with exactly ``num_frames`` poses (NaN for frames beyond its own)."""
    if camera.num_frames == num_frames:
        return camera
    R = np.full((num_frames, 3, 3), np.nan)
    t = np.full((num_frames, 3), np.nan)
    count = min(num_frames, camera.num_frames)
    R[:count], t[:count] = camera.R[:count], camera.t[:count]
    return MovingCamera(camera.name, camera.model, R, t, camera.image_size, camera.field_of_view)


def project_exo(cameras: list[Camera], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(views, frames, 59, 2)`` and visibility codes ``(views, frames, 59)`` of ``points (frames, 59, 3)``."""
    projected = [project_with_visibility(camera, points) for camera in cameras]
    return np.stack([pixels for pixels, _ in projected]), np.stack([codes for _, codes in projected])


def project_exo_undistorted(cameras: list[Camera], points: np.ndarray, balance: float) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The ``exo_undistorted_*`` arrays of ``points (frames, 59, 3)``, and the rule used per camera."""
    targets = [release_exo_undistorted_camera(camera, balance) for camera in cameras]
    projected = [project_rectified(camera, points, model, size) for camera, (model, size, _) in zip(cameras, targets)]
    arrays = {
        "exo_undistorted_pixels": np.stack([pixels for pixels, _ in projected]).astype(np.float32),
        "exo_undistorted_visibility": np.stack([codes for _, codes in projected]),
        "exo_undistorted_K": np.stack([model.matrix for model, _, _ in targets]),
        "exo_undistorted_size": np.array([size for _, size, _ in targets], dtype=np.int64),
    }
    return arrays, {camera.name: rule for camera, (_, _, rule) in zip(cameras, targets)}


def project_ego(camera: MovingCamera, points: np.ndarray, settings: ProjectEgoConfig) -> dict[str, np.ndarray]:
    """The ego arrays of ``projections.npz`` for ``points (frames, 59, 3)`` (metres, world)."""
    camera = ego_for_frames(camera, points.shape[0])
    size = (int(settings.undistorted_width), int(settings.undistorted_height))
    focal = float(settings.undistorted_focal_px)
    min_depth = float(settings.min_depth_m)
    pixels, codes = project_with_visibility(camera, points, min_depth)
    undistorted, undistorted_codes = project_undistorted(camera, points, size, focal, min_depth)
    return {
        "ego_camera_name": np.array(camera.name),
        "ego_pixels": pixels.astype(np.float32),
        "ego_visibility": codes,
        "ego_undistorted_pixels": undistorted.astype(np.float32),
        "ego_undistorted_visibility": undistorted_codes,
        "ego_undistorted_K": linear_camera(size[0], size[1], focal).matrix,
        "ego_undistorted_size": np.array(size, dtype=np.int64),
        "ego_R": camera.R,
        "ego_t": camera.t,
    }


def _visible_shares(codes: np.ndarray, reconstructed: np.ndarray) -> dict:
    """Per part: share of reconstructed joints visible, and counts of each reason they are not."""
    shares = {}
    for part, joints in PARTS.items():
        part_codes = codes[..., joints][reconstructed[..., joints]]
        reasons = {VISIBILITY_NAMES[code]: int(np.count_nonzero(part_codes == code)) for code in VISIBILITY_NAMES if code != VISIBLE}
        shares[part] = {
            "visible": float(np.mean(part_codes == VISIBLE)) if part_codes.size else 0.0,
            "not_visible": {name: count for name, count in reasons.items() if count},
        }
    return shares


def pose_status(take, num_frames: int) -> np.ndarray:
    """``(frames,)`` int8 pose status of the take's ego camera (from its raw inputs: frames
    beyond its frame times have no timestamp; from a file: given / not given)."""
    if take.ego_poses is not None:
        status = np.full(num_frames, POSE_NO_TIMESTAMP, dtype=np.int8)
        count = min(num_frames, len(take.ego_poses.status))
        status[:count] = take.ego_poses.status[:count]
        return status
    valid = ego_for_frames(take.ego_camera, num_frames).valid_frames
    return np.where(valid, POSE_OK, POSE_NOT_GIVEN).astype(np.int8)


def run_stage(context: StageContext) -> tuple[dict[str, str], dict]:
    take = checked_rig(context).take  # the exo rig as the calibration check left it
    settings = context.settings("project_ego")
    joints = load_arrays(context.inputs["refine"].path("joints_3d"), ("points",))
    points = joints["points"]
    reconstructed = np.isfinite(points).all(axis=-1)
    exo_pixels, exo_codes = project_exo(list(take.exo_cameras), points)
    arrays = {
        "exo_camera_names": np.array(take.exo_names),
        "exo_pixels": exo_pixels.astype(np.float32),
        "exo_visibility": exo_codes,
    }
    undistorted, rules = project_exo_undistorted(list(take.exo_cameras), points, settings.exo_undistorted_balance)
    arrays.update(undistorted)
    summary: dict = {
        "frames": int(points.shape[0]),
        "exo": {name: float(np.mean(exo_codes[v][reconstructed] == VISIBLE)) if reconstructed.any() else 0.0 for v, name in enumerate(take.exo_names)},
        "exo_undistorted": {
            name: {
                "rule": rules[name],
                "visible": float(np.mean(undistorted["exo_undistorted_visibility"][v][reconstructed] == VISIBLE)) if reconstructed.any() else 0.0,
            }
            for v, name in enumerate(take.exo_names)
        },
    }
    if take.ego_camera is None:
        summary["ego"] = None
    else:
        ego = project_ego(take.ego_camera, points, settings)
        status = pose_status(take, points.shape[0])
        arrays.update(ego, ego_pose_status=status)
        posed = status == POSE_OK
        summary["ego"] = {
            "camera": take.ego_camera.name,
            "pose_source": take.ego_pose_source,
            "frames_with_pose": int(posed.sum()),
            "frames_without_pose": {POSE_STATUS_NAMES[code]: int(np.count_nonzero(status == code)) for code in np.unique(status) if code != POSE_OK},
            "raw_fisheye": _visible_shares(ego["ego_visibility"], reconstructed),
            "undistorted": _visible_shares(ego["ego_undistorted_visibility"], reconstructed),
        }
        if take.ego_poses is not None:
            ego_frames = len(take.ego_poses.status)
            if ego_frames != points.shape[0]:
                logger.warning(
                    "%s: project_ego: the take has %d frames and the ego camera %d frame times (%s)",
                    take.name, points.shape[0], ego_frames,
                    "the rest get no pose" if ego_frames < points.shape[0] else "the extra ones are not used",
                )  # fmt: skip
                summary["ego"]["frame_count_mismatch"] = {"take_frames": int(points.shape[0]), "ego_frames": ego_frames}
            count = min(ego_frames, points.shape[0])
            gaps = take.ego_poses.gap_s[:count][posed[:count]]
            summary["ego"]["trajectory_gap_ms"] = {"median": float(np.median(gaps) * 1e3), "max": float(np.max(gaps) * 1e3)} if gaps.size else None
            summary["ego"]["calibration"] = take.ego_poses.calibration.source
            summary["ego"]["device_generation"] = take.ego_poses.calibration.generation
            summary["ego"]["timesync_first_row"] = take.ego_poses.timesync_first_row
    save_projections(context.work / "projections.npz", **arrays)
    return {"projections": "projections.npz"}, summary


STAGE = StageSpec(
    name="project_ego",
    inputs=("refine",),
    optional_inputs=("calibrate_check",),
    config_sections=("project_ego",),
    reads_take_files=False,
    writes=("projections",),
    run=run_stage,
)
