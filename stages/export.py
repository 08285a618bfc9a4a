"""Stage ``export``: the labels in the files Ego-Exo4D's consumers read, and a TRC file.

Reads ``refine/joints_3d.npz`` (3D, views per joint, gap-filled flags) and
``project_ego/projections.npz`` (2D in every exo view and the ego camera's undistorted
frame, the ego camera's per-frame pose); config section ``export``; writes
(:mod:`pipeline.formats.egoexo4d`), as ``body_annotation.json``, ``hand_annotation.json``
and ``camera_pose.json`` or, with ``release_split``, in the release layout
(``annotations/ego_pose/<split>/{body,hand}/automatic/<take_uid>.json``,
``annotations/ego_pose/<split>/camera_pose/<take_uid>.json``):

- ``body``, ``hand``: Ego-Exo4D annotation files (3D with ``num_views_for_3d``; 2D per
  exo camera and, under the ego camera's name, in the undistorted ego frame). Gap-filled
  joints (no view agreed with them) are left out or written with ``num_views_for_3d: 0``
  and no 2D (``filled_joints``), never as observed. Frames without an ego pose are left
  out or kept (``frames_without_ego_pose``).
- ``camera_pose``: the release's per-take layout (``aria01``: the undistorted frame's
  intrinsics and a 3x4 world-to-camera extrinsic per frame with a pose; the exo cameras
  with our model extension keys). A take whose ego camera has no pose in any frame is
  exported without it (no aria entry; in the release layout no camera_pose file, so the
  public loaders skip the take); its summary says so.
- ``body_benchmark_gt.json``, ``hand_benchmark_gt.json`` (``benchmark_files``): the
  ego-pose benchmark's ground-truth layouts, gap-filled joints as NaN.
- ``joints_3d.trc`` (``trc``): OpenSim markers.
"""

from __future__ import annotations

import json
import logging

import numpy as np

from fitting.skeleton import BODY, JOINT_NAMES, LEFT_HAND, RIGHT_HAND
from pipeline.atomic import atomic_write_text
from pipeline.formats.arrays import load_arrays
from pipeline.formats.calibration import camera_pose_document
from pipeline.formats.egoexo4d import (
    View2D,
    annotation_entries,
    annotation_file_names,
    benchmark_envelope,
    body_benchmark_frames,
    body_evaluation_scenario,
    hand_benchmark_frames,
    release_ego_camera,
    write_json_items,
)
from pipeline.formats.trc import write_trc
from stages.base import TAKE_CODE, StageContext, StageSpec
from triangulation.cameras import CalibrationError, MovingCamera
from triangulation.visibility import VISIBLE

logger = logging.getLogger(__name__)

EXPORT_PARTS = {
    "body": np.arange(BODY.start, BODY.stop),
    "hand": np.concatenate([np.arange(LEFT_HAND.start, LEFT_HAND.stop), np.arange(RIGHT_HAND.start, RIGHT_HAND.stop)]),
}
NO_EGO_POSE = "the ego camera has no pose in any frame: exported without it (no aria entry, ego 2D or hand benchmark)"


def exported_joints(points: np.ndarray, filled: np.ndarray, filled_joints: str) -> np.ndarray:
    """``(frames, 59)`` bool: the joints written to the annotation files."""
    reconstructed = np.isfinite(points).all(axis=-1)
    return reconstructed & ~filled if filled_joints == "omit" else reconstructed


def views_2d(projections: dict[str, np.ndarray], observed: np.ndarray) -> list[View2D]:
    """Every exo view, then the ego camera's undistorted frame (when the take has one); a
    joint has 2D only where it is visible and ``observed (frames, 59)`` (not gap-filled)."""
    views = [
        View2D(str(name), projections["exo_pixels"][v], (projections["exo_visibility"][v] == VISIBLE) & observed)
        for v, name in enumerate(projections["exo_camera_names"])
    ]
    if "ego_camera_name" in projections:
        views.append(
            View2D(
                str(projections["ego_camera_name"]),
                projections["ego_undistorted_pixels"],
                (projections["ego_undistorted_visibility"] == VISIBLE) & observed,
            )
        )
    return views


def ego_camera(projections: dict[str, np.ndarray]) -> MovingCamera | None:
    """The ego camera as the release describes it (None when the take has none)."""
    if "ego_camera_name" not in projections:
        return None
    return release_ego_camera(
        str(projections["ego_camera_name"]),
        projections["ego_R"],
        projections["ego_t"],
        projections["ego_undistorted_K"],
        tuple(projections["ego_undistorted_size"]),
    )


def exported_frames(camera: MovingCamera | None, num_frames: int, frames_without_ego_pose: str, take_name: str, summary: dict) -> tuple[np.ndarray, MovingCamera | None]:
    """``(frames,)`` bool: the frames written, and the ego camera to export (None: none,
    or no pose in any frame). Records what was done in ``summary``."""
    frames = np.ones(num_frames, dtype=bool)
    if camera is None:
        return frames, None
    posed = np.zeros(num_frames, dtype=bool)
    count = min(num_frames, camera.num_frames)
    posed[:count] = camera.valid_frames[:count]
    summary["ego_frames_with_pose"] = int(posed.sum())
    if not posed.any():
        logger.warning("%s: export: %s", take_name, NO_EGO_POSE)
        summary["ego"] = NO_EGO_POSE
        return frames, None
    if frames_without_ego_pose == "omit":
        summary["frames_left_out_without_ego_pose"] = int((~posed).sum())
        return posed, camera
    return frames, camera


def run_stage(context: StageContext) -> tuple[dict[str, str], dict]:
    take = context.take
    settings = context.settings("export")
    joints = load_arrays(context.inputs["refine"].path("joints_3d"), ("points", "num_views", "filled"))
    projections = load_arrays(context.inputs["project_ego"].path("projections"), ("exo_pixels", "exo_visibility", "exo_camera_names"))
    points, filled = joints["points"], joints["filled"].astype(bool)
    uid = str(take.metadata.get("take_uid", take.name))
    names = annotation_file_names(settings["release_split"], uid)
    summary = {"filled_joints": settings["filled_joints"], "frames_without_ego_pose": settings["frames_without_ego_pose"]}
    summary["timesync_first_row"] = take.ego_poses.timesync_first_row if take.ego_poses is not None else None  # take.timesync_first_row
    frames, camera = exported_frames(ego_camera(projections), points.shape[0], settings["frames_without_ego_pose"], take.name, summary)
    num_views = np.where(filled, 0, joints["num_views"])  # a gap-filled joint was seen by no view
    exported = exported_joints(points, filled, settings["filled_joints"]) & frames[:, None]
    observed = np.isfinite(points).all(axis=-1) & ~filled & frames[:, None]
    views = views_2d(projections, observed)
    files = {}
    for part, indices in EXPORT_PARTS.items():
        count = write_json_items(context.work / names[part], annotation_entries(indices, points, num_views, exported, views, take.name, uid))
        files[part] = names[part]
        summary[part] = {
            "frames": count,
            "joints": int(exported[:, indices].sum()),
            "gap_filled_written": int((exported & filled)[:, indices].sum()),
            "gap_filled_left_out": int((~exported & filled & np.isfinite(points).all(axis=-1))[:, indices].sum()),
        }
    if camera is not None or settings["release_split"] is None:
        try:
            document = camera_pose_document(list(take.exo_cameras), camera, {"take_name": take.name, "take_uid": uid})
        except CalibrationError as error:
            raise CalibrationError(f"take '{take.name}': export {names['camera_pose']}: {error}") from None
        atomic_write_text(context.work / names["camera_pose"], json.dumps(document, allow_nan=False) + "\n")
        files["camera_pose"] = names["camera_pose"]
    if settings["benchmark_files"]:
        write_json_items(context.work / "body_benchmark_gt.json", body_benchmark_frames(points, observed), benchmark_envelope(uid, take.name, "body"), allow_nan=True)
        files["body_benchmark"] = "body_benchmark_gt.json"
        scenario = body_evaluation_scenario(take.name)
        summary["body_benchmark_scenario"] = scenario or f"none: the take name {take.name!r} names no scenario, the public body evaluation stops on it"
        if camera is not None:
            points_camera = np.einsum("fij,fkj->fki", projections["ego_R"], points) + projections["ego_t"][:, None]
            hands = hand_benchmark_frames(
                points_camera,
                projections["ego_undistorted_pixels"].astype(np.float64),
                observed & (projections["ego_undistorted_visibility"] == VISIBLE),
                observed,
                tuple(int(v) for v in projections["ego_undistorted_size"]),
                take.name,
                uid,
                settings["benchmark_min_hand_joints"],
                settings["benchmark_hand_bbox_padding_px"],
            )
            count = write_json_items(context.work / "hand_benchmark_gt.json", hands, benchmark_envelope(uid), allow_nan=True)
            files["hand_benchmark"] = "hand_benchmark_gt.json"
            summary["hand_benchmark_frames"] = count
    if settings["trc"]:
        write_trc(context.work / "joints_3d.trc", points, list(JOINT_NAMES), take.fps)
        files["trc"] = "joints_3d.trc"
    return files, summary


STAGE = StageSpec(
    name="export",
    inputs=("refine", "project_ego"),
    config_sections=("export",),
    code=("stages/export.py", "pipeline/formats/egoexo4d.py", "pipeline/formats/trc.py", "pipeline/formats/arrays.py", "triangulation/visibility.py") + TAKE_CODE,
    reads_take_files=False,
    writes=("body", "hand", "camera_pose?", "body_benchmark?", "hand_benchmark?", "trc?"),
    run=run_stage,
)
