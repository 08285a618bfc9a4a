"""The public Ego-Exo4D ego-pose code's rules for the labels we export (pure: arrays in,
arrays out; the export stage, :mod:`stages.export`, is its file side).

What the public consumers keep of our files decides which labels count, so the export
applies their rules itself and reports what each would drop:

- the joints written (:func:`exported_joints`: reconstructed, and not gap-filled unless
  asked);
- the hand preparation (EGO4D/ego-exo4d-egopose ``handpose/data_preparation``): the
  biomechanical check of each hand joint (:func:`hand_structure_ok`, bone lengths and
  angles, in float32 as it computes), the valid mask of the undistorted ego frame
  (:func:`hand_mask_ok`), the re-projection check against the written 2D
  (:func:`hand_benchmark_validity`), on what it reads from our files
  (:func:`hand_benchmark_inputs` -> :class:`HandBenchmarkInputs`), and the counts each
  rule drops (:func:`hand_checks_summary`);
- the body evaluation (``bodypose/evaluation/evaluate.py``): the frames it scores
  (:func:`body_evaluation_frames`, its ``--min_clip_len``; :func:`body_evaluation_summary`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fitting.skeleton import LEFT_HAND, RIGHT_HAND
from triangulation.camera_models import PinholeModel
from triangulation.cameras import Camera, MovingCamera
from triangulation.visibility import VISIBLE, inside_field_of_view, inside_image


def exported_joints(points: np.ndarray, filled: np.ndarray, filled_joints: str) -> np.ndarray:
    """``(frames, 59)`` bool: the joints written to the annotation files."""
    reconstructed = np.isfinite(points).all(axis=-1)
    return reconstructed & ~filled if filled_joints == "omit" else reconstructed


def body_evaluation_frames(frames: np.ndarray, min_clip_len: int) -> np.ndarray:
    """The frames of one take that the public body evaluation scores (bodypose/evaluation/
    evaluate.py, filter_short_clips): ``frames`` ascending; a step of more than 3 frames
    starts a new clip, and a clip counts when ``last - first + 3 >= min_clip_len``."""
    frames = np.asarray(frames, dtype=np.int64)
    if frames.size == 0:
        return frames
    starts = np.flatnonzero(np.diff(frames, prepend=frames[0] - 4) > 3)
    ends = np.append(starts[1:], frames.size) - 1
    keep = np.repeat(frames[ends] - frames[starts] + 3 >= min_clip_len, ends - starts + 1)
    return frames[keep]


HAND_SIDES = (("right", RIGHT_HAND), ("left", LEFT_HAND))  # the public hand code's order; the wrist first

# The public hand preparation's biomechanical check (handpose/data_preparation/utils/utils.py,
# joint_dist_angle_check), per hand joint 0..20 (wrist, thumb_1..4, index_1..4, ...):
# the bone to the joint's parent (the wrist for each finger's first joint) must be
# 5..80 mm long (60..120 mm for the index, middle, ring and pinky first joints), and the
# angle at joints 1-3 of each finger between the bone to the parent and the bone to the
# next joint at least the minimum below (degrees; the thumb 100/90/90, the fingers
# 60/70/80). A failing joint is dropped; a missing neighbour (NaN) never fails one.
HAND_PARENT = np.array([0, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19])
HAND_BONE_MIN_M = np.array([np.nan] + [0.005] * 4 + [0.06, 0.005, 0.005, 0.005] * 4)
HAND_BONE_MAX_M = np.array([np.nan] + [0.08] * 4 + [0.12, 0.08, 0.08, 0.08] * 4)
HAND_ANGLE_JOINTS = np.array([1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19])
HAND_ANGLE_MIN_DEG = np.array([100, 90, 90, 60, 70, 80, 60, 70, 80, 60, 70, 80, 60, 70, 80], dtype=np.float64)
# The public preparation's valid mask is an all-white image of this size undistorted into
# the linear frame (load_aria_calib): a source pixel must also lie within its bounds.
HAND_MASK_SOURCE_SIZE = 1408


def hand_structure_ok(hands: np.ndarray) -> np.ndarray:
    """``(..., 21)`` bool: the joints of ``hands (..., 21, 3)`` (metres, any frame; NaN
    missing) that pass the public biomechanical check, computed in float32 as it does."""
    hands = np.asarray(hands, dtype=np.float32)
    bone = np.linalg.norm(hands - hands[..., HAND_PARENT, :], axis=-1)
    with np.errstate(invalid="ignore"):
        bad = (bone < HAND_BONE_MIN_M.astype(np.float32)) | (bone > HAND_BONE_MAX_M.astype(np.float32))
        to_parent = hands[..., HAND_PARENT[HAND_ANGLE_JOINTS], :] - hands[..., HAND_ANGLE_JOINTS, :]
        to_child = hands[..., HAND_ANGLE_JOINTS + 1, :] - hands[..., HAND_ANGLE_JOINTS, :]
        unit_parent = to_parent / (np.linalg.norm(to_parent, axis=-1, keepdims=True) + np.float32(1e-8))
        unit_child = to_child / (np.linalg.norm(to_child, axis=-1, keepdims=True) + np.float32(1e-8))
        cosine = np.clip((unit_parent * unit_child).sum(axis=-1), -1.0, 1.0)
        angle = np.degrees(np.arccos(cosine))
        bad[..., HAND_ANGLE_JOINTS] |= (angle < HAND_ANGLE_MIN_DEG.astype(np.float32)) | (angle > 180.0)
    return ~bad


@dataclass(frozen=True)
class HandBenchmarkInputs:
    """What the hand benchmark is made of, all ``(frames, 59, ...)``: ``points_camera``
    ``(.., 3)`` metres in the ego camera frame (the 3D in the annotation file, NaN where
    it is not there); ``projected (.., 2)``: those points through the undistorted K with
    no depth check (the public preparation's re-projection; NaN where the 3D fails
    :func:`hand_structure_ok`); ``pixels (.., 2)``: the ego 2D written in the annotation
    file (NaN where none); ``structure_ok``: passes :func:`hand_structure_ok`;
    ``projected_ok`` / ``pixels_ok``: in the image and the public valid mask
    (:func:`hand_mask_ok`); ``observed``: reconstructed from views (not
    gap-filled; a hand needs its wrist observed)."""

    points_camera: np.ndarray
    projected: np.ndarray
    pixels: np.ndarray
    structure_ok: np.ndarray
    projected_ok: np.ndarray
    pixels_ok: np.ndarray
    observed: np.ndarray


def hand_benchmark_validity(inputs: HandBenchmarkInputs, reprojection_px: float) -> np.ndarray:
    """``(frames, 59)`` bool: the hand joints the public preparation marks valid: 3D that
    passes the biomechanical check, re-projected into the mask, and (all but the wrist)
    within ``reprojection_px`` of a 2D that is in the mask."""
    with np.errstate(invalid="ignore"):
        close = np.linalg.norm(inputs.projected - inputs.pixels, axis=-1) <= reprojection_px
    close &= inputs.pixels_ok
    for _, joints in HAND_SIDES:
        close[:, joints.start] = True  # the wrist is not checked against its 2D
    return inputs.structure_ok & inputs.projected_ok & close


def hand_mask_ok(pixels: np.ndarray, linear: PinholeModel, image_size: tuple[int, int], source: Camera | MovingCamera | None) -> np.ndarray:
    """``(...)`` bool: ``pixels (..., 2)`` of the undistorted ego frame that the public hand
    preparation keeps: in ``[0, w) x [0, h)``, and the pixel they fall in (``int(x),
    int(y)``) is set in its valid mask (that pixel's ray lands in the source fisheye's
    valid area, as projectaria-tools' ``project`` checks it, and in the 1408-pixel mask
    image). ``source`` None: no mask (a take without a fisheye calibration)."""
    width, height = image_size
    x, y = pixels[..., 0], pixels[..., 1]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(pixels).all(axis=-1) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    if source is None:
        return ok
    cell = np.where(ok[..., None], np.floor(np.where(np.isfinite(pixels), pixels, 0.0)), 0.0)
    rays = np.stack([(cell[..., 0] - linear.cx) / linear.fx, (cell[..., 1] - linear.cy) / linear.fy, np.ones(cell.shape[:-1])], axis=-1)
    landed = source.model.project(rays.reshape(-1, 3)).reshape(rays.shape[:-1] + (2,))
    ok &= inside_field_of_view(rays, landed, source.model, source.field_of_view) & inside_image(landed, source.image_size)
    with np.errstate(invalid="ignore"):
        ok &= (landed >= 0).all(axis=-1) & (landed <= HAND_MASK_SOURCE_SIZE - 1).all(axis=-1)
    return ok


def hand_benchmark_inputs(projections: dict[str, np.ndarray], points: np.ndarray, exported: np.ndarray, observed: np.ndarray, source) -> HandBenchmarkInputs:
    """What the public hand preparation sees in our files (:class:`HandBenchmarkInputs`):
    the exported 3D, the written ego 2D, the undistorted K, the fisheye behind the mask."""
    K = projections["ego_undistorted_K"]
    size = tuple(int(v) for v in projections["ego_undistorted_size"])
    linear = PinholeModel(K[0, 0], K[1, 1], K[0, 2], K[1, 2], np.zeros(4))
    world = np.where(exported[..., None], points, np.nan)
    points_camera = np.einsum("fij,fkj->fki", projections["ego_R"], world) + projections["ego_t"][:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        projected = (points_camera @ K.T)[..., :2] / points_camera[..., 2:3]  # no depth check, as the public cam_to_img
    written = observed & (projections["ego_undistorted_visibility"] == VISIBLE)
    pixels = np.where(written[..., None], projections["ego_undistorted_pixels"].astype(np.float64), np.nan)
    structure = np.ones(exported.shape, dtype=bool)
    for _, joints in HAND_SIDES:
        structure[:, joints] = hand_structure_ok(world[:, joints])
    projected = np.where(structure[..., None], projected, np.nan)
    return HandBenchmarkInputs(
        points_camera=points_camera,
        projected=projected,
        pixels=pixels,
        structure_ok=structure,
        projected_ok=hand_mask_ok(projected, linear, size, source),
        pixels_ok=hand_mask_ok(pixels, linear, size, source),
        observed=observed,
    )


def hand_checks_summary(inputs: HandBenchmarkInputs, exported: np.ndarray, reprojection_px: float) -> dict:
    """How many exported hand joints each public rule drops (a joint counts once, under the
    first rule it fails: structure, then mask of its re-projection, then its 2D)."""
    hands = np.zeros(exported.shape, dtype=bool)
    for _, joints in HAND_SIDES:
        hands[:, joints] = True
    considered = exported & hands
    valid = hand_benchmark_validity(inputs, reprojection_px)
    structure = considered & ~inputs.structure_ok
    mask = considered & inputs.structure_ok & ~inputs.projected_ok
    return {
        "joints": int(considered.sum()),
        "valid": int((valid & considered).sum()),
        "dropped_by_structure_check": int(structure.sum()),
        "dropped_outside_mask_or_image": int(mask.sum()),
        "dropped_by_2d_check": int((considered & ~valid & ~structure & ~mask).sum()),
    }


def body_evaluation_summary(body_gt_frames: np.ndarray, min_clip_len: int) -> dict:
    """What the public body evaluation will score of this take (its ``--min_clip_len``)."""
    kept = body_evaluation_frames(body_gt_frames, min_clip_len)
    summary = {"min_clip_len": min_clip_len, "frames": int(body_gt_frames.size), "frames_scored": int(kept.size)}
    if kept.size == 0:
        summary["warning"] = (
            f"no clip of this take is >= {min_clip_len} frames long (the public evaluate.py's --min_clip_len, clips split at gaps "
            "of more than 3 frames): it scores none of its frames, and divides by zero when no take of the file is left"
        )
    return summary
