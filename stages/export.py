"""Stage ``export``: the labels in the files Ego-Exo4D's consumers read, and a TRC file.

Reads ``refine/joints_3d.npz`` (3D, views per joint, gap-filled flags) and
``project_ego/projections.npz`` (2D in every exo view, raw and undistorted, and in the
ego camera's undistorted frame, the ego camera's per-frame pose), and the take's ego
calibration; config section ``export``; writes (:mod:`pipeline.formats.egoexo4d`), as
``body_annotation.json``, ``hand_annotation.json`` and ``camera_pose.json`` or, with
``release_split``, in the release layout
(``annotations/ego_pose/<split>/{body,hand}/automatic/<take_uid>.json``,
``annotations/ego_pose/<split>/camera_pose/<take_uid>.json``, and the empty
``{body,hand}/annotation/`` folders the public loaders list):

- ``body``, ``hand``: Ego-Exo4D annotation files (3D with ``num_views_for_3d``; 2D per
  exo camera in its undistorted (release) or raw frame (``exo_2d_frame``) and, under the
  ego camera's name, in the undistorted ego frame). Gap-filled joints (no view agreed
  with them) are left out or written with ``num_views_for_3d: 0`` and no 2D
  (``filled_joints``), never as observed. Frames without an ego pose are left out or
  kept (``frames_without_ego_pose``).
- ``camera_pose``: the release's per-take layout (``aria01``: the undistorted frame's
  intrinsics and a 3x4 world-to-camera extrinsic per frame with a pose; the exo cameras
  in the frame of their 2D, with our model extension keys and, undistorted, our
  ``raw_camera`` key). A take whose ego camera has no pose in any frame is exported
  without it (no aria entry; in the release layout no camera_pose file, so the public
  loaders skip the take); its summary says so.
- ``aria_calibration``: ``aria_calib_json/<take_name>.json``, the device calibration
  JSON the public hand preparation reads (the ego camera the 2D were projected with).
- ``body_benchmark_gt.json``, ``hand_benchmark_gt.json`` (``benchmark_files``): the
  ego-pose benchmark's ground-truth layouts, gap-filled joints as NaN; the hand file is
  what the public hand preparation makes of our files (its validity rules and boxes).
  The summary says how many body frames the public evaluation's ``--min_clip_len`` keeps.
- ``joints_3d.trc`` (``trc``): OpenSim markers.

The consumers' rules (which joints are written, the hand preparation's checks, the
frames the body evaluation scores) are pure, in :mod:`fitting.release_rules`.
"""

from __future__ import annotations

import logging

import numpy as np

from fitting.release_rules import body_evaluation_summary, exported_joints, hand_benchmark_inputs, hand_checks_summary
from fitting.skeleton import BODY, JOINT_NAMES, LEFT_HAND, RIGHT_HAND
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
    hand_preparation_calibration_document,
    hand_preparation_calibration_name,
    release_ego_camera,
    release_listed_folders,
    write_json_document,
    write_json_items,
)
from pipeline.formats.rig_check import add_rig_corrections
from pipeline.formats.trc import write_trc
from stages.base import StageContext, StageSpec
from stages.rig import checked_rig
from triangulation.camera_models import Fisheye624Model, PinholeModel, distortion_vector
from triangulation.cameras import CalibrationError, Camera, MovingCamera
from triangulation.visibility import VISIBLE

logger = logging.getLogger(__name__)

EXPORT_PARTS = {
    "body": np.arange(BODY.start, BODY.stop),
    "hand": np.concatenate([np.arange(LEFT_HAND.start, LEFT_HAND.stop), np.arange(RIGHT_HAND.start, RIGHT_HAND.stop)]),
}
NO_EGO_POSE = "the ego camera has no pose in any frame: exported without it (no aria entry, ego 2D or hand benchmark)"


EXO_FRAME_KEYS = {"undistorted": ("exo_undistorted_pixels", "exo_undistorted_visibility"), "raw": ("exo_pixels", "exo_visibility")}


def views_2d(projections: dict[str, np.ndarray], observed: np.ndarray, exo_frame: str) -> list[View2D]:
    """Every exo view (in its ``exo_frame``: "undistorted" or "raw"), then the ego camera's
    undistorted frame (when the take has one); a joint has 2D only where it is visible and
    ``observed (frames, 59)`` (not gap-filled)."""
    pixels, visibility = EXO_FRAME_KEYS[exo_frame]
    views = [
        View2D(str(name), projections[pixels][v], (projections[visibility][v] == VISIBLE) & observed) for v, name in enumerate(projections["exo_camera_names"])
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


def exported_frames(
    camera: MovingCamera | None, num_frames: int, frames_without_ego_pose: str, take_name: str, summary: dict
) -> tuple[np.ndarray, MovingCamera | None]:
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


def exported_exo_cameras(take, projections: dict[str, np.ndarray], exo_frame: str) -> list[Camera]:
    """The exo cameras of camera_pose.json in the frame their 2D are in: the raw cameras,
    or the undistorted pinholes (no distortion, ``exo_undistorted_K``) with the same pose."""
    if exo_frame == "raw":
        return list(take.exo_cameras)
    return [
        Camera(camera.name, PinholeModel(K[0, 0], K[1, 1], K[0, 2], K[1, 2], np.zeros(4)), camera.R, camera.t, (int(size[0]), int(size[1])))
        for camera, K, size in zip(take.exo_cameras, projections["exo_undistorted_K"], projections["exo_undistorted_size"])
    ]


def raw_camera_entry(camera: Camera) -> dict:
    """Our ``raw_camera`` key of an undistorted exo entry: the raw (distorted) video's model."""
    return {
        "camera_model": camera.model.name,
        "camera_intrinsics": camera.model.matrix.tolist(),
        "distortion_coeffs": distortion_vector(camera.model).tolist(),
        "image_size": None if camera.image_size is None else list(camera.image_size),
    }


def hand_preparation_source(take) -> tuple[dict | None, MovingCamera | None, str]:
    """The Aria calibration file of the public hand preparation (None: none can be
    written), the fisheye behind its valid mask, and where it came from."""
    camera = take.ego_camera
    if take.ego_poses is not None:
        c = take.ego_poses.calibration
        document = hand_preparation_calibration_document(c.model, c.image_size, c.field_of_view, c.R_device_camera, c.t_device_camera)
        return document, camera, f"the ego calibration ({c.source})"
    if camera is not None and isinstance(camera.model, Fisheye624Model) and camera.image_size is not None:
        document = hand_preparation_calibration_document(camera.model, camera.image_size, camera.field_of_view, np.eye(3), np.zeros(3))
        return document, camera, "the ego camera's fisheye624 model in camera_pose.json (T_Device_Camera identity: not known there)"
    return None, None, "none: the ego camera has no FISHEYE624 calibration (the public hand preparation skips the take)"


def run_stage(context: StageContext) -> tuple[dict[str, str], dict]:
    rig = checked_rig(context)
    take = rig.take  # the exo rig as the calibration check left it (the original is kept in camera_pose)
    settings = context.settings("export")
    joints = load_arrays(context.inputs["refine"].path("joints_3d"), ("points", "num_views", "filled"))
    exo_frame = settings.exo_2d_frame
    projections = load_arrays(context.inputs["project_ego"].path("projections"), ("exo_camera_names",) + EXO_FRAME_KEYS[exo_frame])
    points, filled = joints["points"], joints["filled"].astype(bool)
    uid = str(take.metadata.get("take_uid", take.name))
    names = annotation_file_names(settings.release_split, uid)
    summary = {
        "filled_joints": settings.filled_joints,
        "frames_without_ego_pose": settings.frames_without_ego_pose,
        "exo_2d_frame": exo_frame,
        # The timesync row convention the ego frame times were read with (take.timesync_first_row).
        "timesync_first_row": take.ego_poses.timesync_first_row if take.ego_poses is not None else None,
    }
    frames, camera = exported_frames(ego_camera(projections), points.shape[0], settings.frames_without_ego_pose, take.name, summary)
    num_views = np.where(filled, 0, joints["num_views"])  # a gap-filled joint was seen by no view
    exported = exported_joints(points, filled, settings.filled_joints) & frames[:, None]
    observed = np.isfinite(points).all(axis=-1) & ~filled & frames[:, None]
    views = views_2d(projections, observed, exo_frame)
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
    for folder in release_listed_folders(settings.release_split):
        (context.work / folder).mkdir(parents=True, exist_ok=True)  # listed by the public loaders even when empty
    if camera is not None or settings.release_split is None:
        exo_cameras = exported_exo_cameras(take, projections, exo_frame)
        try:
            document = camera_pose_document(exo_cameras, camera, {"take_name": take.name, "take_uid": uid})
        except CalibrationError as error:
            raise CalibrationError(f"take '{take.name}': export {names['camera_pose']}: {error}") from None
        if exo_frame == "undistorted":
            for raw in take.exo_cameras:
                document[raw.name]["raw_camera"] = raw_camera_entry(raw)
        if rig.corrections is not None:
            add_rig_corrections(document, rig.corrections, take.fps)
            summary["rig_corrected"] = [name for name, on in zip(rig.corrections.camera_names, rig.corrections.applied) if on]
        write_json_document(context.work / names["camera_pose"], document)
        files["camera_pose"] = names["camera_pose"]
    calibration, mask_source, calibration_from = hand_preparation_source(take) if camera is not None else (None, None, "none: no ego pose")
    summary["hand_preparation_calibration"] = calibration_from
    if calibration is not None:
        name = hand_preparation_calibration_name(take.name)
        write_json_document(context.work / name, calibration, indent=1, allow_nan=True)
        files["aria_calibration"] = name
    if settings.benchmark_files:
        write_json_items(
            context.work / "body_benchmark_gt.json", body_benchmark_frames(points, observed), benchmark_envelope(uid, take.name, "body"), allow_nan=True
        )
        files["body_benchmark"] = "body_benchmark_gt.json"
        scenario = body_evaluation_scenario(take.name)
        summary["body_benchmark_scenario"] = scenario or f"none: the take name {take.name!r} names no scenario, the public body evaluation stops on it"
        body_gt_frames = np.flatnonzero((observed[:, BODY]).any(axis=1))
        summary["body_evaluation"] = body_evaluation_summary(body_gt_frames, settings.body_evaluation_min_clip_len)
        if "warning" in summary["body_evaluation"]:
            logger.warning("%s: export: body benchmark: %s", take.name, summary["body_evaluation"]["warning"])
        if camera is not None:
            inputs = hand_benchmark_inputs(projections, points, exported, observed, mask_source)
            hands = hand_benchmark_frames(
                inputs,
                tuple(int(v) for v in projections["ego_undistorted_size"]),
                take.name,
                uid,
                settings.benchmark_min_hand_joints,
                settings.benchmark_hand_bbox_padding_px,
                settings.benchmark_hand_reprojection_px,
            )
            count = write_json_items(context.work / "hand_benchmark_gt.json", hands, benchmark_envelope(uid), allow_nan=True)
            files["hand_benchmark"] = "hand_benchmark_gt.json"
            summary["hand_benchmark_frames"] = count
            summary["hand_benchmark_joints"] = hand_checks_summary(inputs, exported, settings.benchmark_hand_reprojection_px)
    if settings.trc:
        write_trc(context.work / "joints_3d.trc", points, list(JOINT_NAMES), take.fps)
        files["trc"] = "joints_3d.trc"
    return files, summary


STAGE = StageSpec(
    name="export",
    inputs=("refine", "project_ego"),
    optional_inputs=("calibrate_check",),
    config_sections=("export",),
    reads_take_files=False,
    writes=("body", "hand", "camera_pose?", "aria_calibration?", "body_benchmark?", "hand_benchmark?", "trc?"),
    run=run_stage,
)
