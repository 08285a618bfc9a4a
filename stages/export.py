"""Stage ``export``: the labels in the files Ego-Exo4D's consumers read, and a TRC file.

Reads ``refine/joints_3d.npz`` (3D, views per joint, gap-filled flags) and
``project_ego/projections.npz`` (2D in every exo view and the ego camera's undistorted
frame, the ego camera's per-frame pose); config section ``export``; writes
(:mod:`pipeline.formats.egoexo4d`):

- ``body_annotation.json``, ``hand_annotation.json``: Ego-Exo4D annotation files (3D
  with ``num_views_for_3d``; 2D per exo camera and, under the ego camera's name, in
  the undistorted ego frame). Gap-filled joints (no view agreed with them) are written
  with ``num_views_for_3d: 0`` or left out (``filled_joints``), never as observed.
- ``camera_pose.json``: the release's per-take layout (``aria01``: the undistorted
  frame's intrinsics and a 3x4 world-to-camera extrinsic per frame with a pose; the exo
  cameras with our model extension keys).
- ``body_benchmark_gt.json``, ``hand_benchmark_gt.json`` (``benchmark_files``): the
  ego-pose benchmark's ground-truth layouts, gap-filled joints as NaN.
- ``joints_3d.trc`` (``trc``): OpenSim markers.
"""

from __future__ import annotations

import numpy as np

from fitting.skeleton import BODY, JOINT_NAMES, LEFT_HAND, RIGHT_HAND
from pipeline.formats.arrays import load_arrays
from pipeline.formats.calibration import write_camera_pose_json
from pipeline.formats.egoexo4d import (
    View2D,
    annotation_entries,
    benchmark_envelope,
    body_benchmark_frames,
    hand_benchmark_frames,
    release_ego_camera,
    write_json_items,
)
from pipeline.formats.trc import write_trc
from stages.base import TAKE_CODE, StageContext, StageSpec
from triangulation.visibility import VISIBLE

EXPORT_PARTS = {
    "body": np.arange(BODY.start, BODY.stop),
    "hand": np.concatenate([np.arange(LEFT_HAND.start, LEFT_HAND.stop), np.arange(RIGHT_HAND.start, RIGHT_HAND.stop)]),
}


def exported_joints(points: np.ndarray, filled: np.ndarray, filled_joints: str) -> np.ndarray:
    """``(frames, 59)`` bool: the joints written to the annotation files."""
    reconstructed = np.isfinite(points).all(axis=-1)
    return reconstructed & ~filled if filled_joints == "omit" else reconstructed


def views_2d(projections: dict[str, np.ndarray]) -> list[View2D]:
    """Every exo view, then the ego camera's undistorted frame (when the take has one)."""
    views = [
        View2D(str(name), projections["exo_pixels"][v], projections["exo_visibility"][v] == VISIBLE)
        for v, name in enumerate(projections["exo_camera_names"])
    ]
    if "ego_camera_name" in projections:
        views.append(
            View2D(
                str(projections["ego_camera_name"]),
                projections["ego_undistorted_pixels"],
                projections["ego_undistorted_visibility"] == VISIBLE,
            )
        )
    return views


def run_stage(context: StageContext) -> tuple[dict[str, str], dict]:
    take = context.take
    settings = context.settings("export")
    joints = load_arrays(context.inputs["refine"].path("joints_3d"), ("points", "num_views", "filled"))
    projections = load_arrays(context.inputs["project_ego"].path("projections"), ("exo_pixels", "exo_visibility", "exo_camera_names"))
    points, filled = joints["points"], joints["filled"].astype(bool)
    num_views = np.where(filled, 0, joints["num_views"])  # a gap-filled joint was seen by no view
    exported = exported_joints(points, filled, settings["filled_joints"])
    observed = np.isfinite(points).all(axis=-1) & ~filled
    uid = str(take.metadata.get("take_uid", take.name))
    views = views_2d(projections)
    files, summary = {}, {"filled_joints": settings["filled_joints"]}
    for part, indices in EXPORT_PARTS.items():
        name = f"{part}_annotation.json"
        frames = write_json_items(context.work / name, annotation_entries(indices, points, num_views, exported, views, take.name, uid))
        files[part] = name
        summary[part] = {
            "frames": frames,
            "joints": int(exported[:, indices].sum()),
            "gap_filled_written": int((exported & filled)[:, indices].sum()),
            "gap_filled_left_out": int((~exported & filled & np.isfinite(points).all(axis=-1))[:, indices].sum()),
        }
    ego = "ego_camera_name" in projections
    if ego:
        camera = release_ego_camera(
            str(projections["ego_camera_name"]),
            projections["ego_R"],
            projections["ego_t"],
            projections["ego_undistorted_K"],
            tuple(projections["ego_undistorted_size"]),
        )
        summary["ego_frames_with_pose"] = int(camera.valid_frames.sum())
    else:
        camera = None
    write_camera_pose_json(
        context.work / "camera_pose.json", list(take.exo_cameras), camera, {"take_name": take.name, "take_uid": uid}
    )
    files["camera_pose"] = "camera_pose.json"
    if settings["benchmark_files"]:
        write_json_items(context.work / "body_benchmark_gt.json", body_benchmark_frames(points, observed), benchmark_envelope(uid, take.name, "body"), allow_nan=True)
        files["body_benchmark"] = "body_benchmark_gt.json"
        if ego:
            points_camera = np.einsum("fij,fkj->fki", projections["ego_R"], points) + projections["ego_t"][:, None]
            valid = observed & (projections["ego_undistorted_visibility"] == VISIBLE)
            hands = hand_benchmark_frames(
                points_camera,
                projections["ego_undistorted_pixels"].astype(np.float64),
                valid,
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
    writes=("body", "hand", "camera_pose", "body_benchmark?", "hand_benchmark?", "trc?"),
    run=run_stage,
)
