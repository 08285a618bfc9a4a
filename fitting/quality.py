"""What makes a label suspect, per frame and part, and a take's quality summary.

:func:`quality_flags` flags each (frame, part) for every reason in :data:`REASONS`,
from the pipeline's arrays (2D detections, triangulated and refined 3D with their
per-view residuals and inliers, gap-filled samples, the take's bone lengths):

- ``too_few_views``: at least ``joint_share`` of the part's joints were estimated from
  fewer than ``min_views`` agreeing views;
- ``reprojection_error``: in some view the part's median inlier residual exceeds
  ``reprojection_error_px`` and that view's usual residual for the part over the take
  by ``reprojection_error_mads`` robust standard deviations (1.4826 MAD: the residuals'
  own tail, heavy for occluded hands), or the mean of its residual vectors (a
  systematic shift: a camera that moved, a detector off by a few pixels) exceeds
  ``shift_px`` and ``shift_factor`` times its usual value and ``shift_z`` times its
  standard error (noise alone cannot explain it);
- ``camera_offset``: a view whose residuals are shifted for the whole take (a camera
  calibrated wrong, or out of sync, in every frame has no usual value to stand out
  from): the median over the take of its mean residual vector for the part is longer
  than ``camera_offset_px``; every frame the view observes the part in is flagged;
- ``outlier_view``: in some view at least ``outlier_share`` of the part's confident
  observations disagree with the 3D (a left/right swap, the wrong person);
- ``bone_length``: a bone of the part is off the take's length by more than
  ``bone_deviation`` (relative);
- ``large_correction``: refine moved at least ``joint_share`` of the part's joints more
  than ``correction_mm`` from their triangulated positions (one outlier joint fixed is
  refine's everyday work; a part moved as a whole is suspect);
- ``gap_filled``: a joint of the part was estimated without any view (gap filling);
- ``hand_off_wrist``: the hand's wrist is more than ``hand_wrist_mm`` from the body's;
- ``missing``: fewer than ``min_reconstructed_share`` of the part's joints exist (the
  body: the subject lost; a hand: the hand not found).

Pure numpy on arrays (no files). Parts follow :data:`fitting.skeleton.PARTS`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from fitting import skeleton
from fitting.metrics import bone_length_variation

REASONS: tuple[str, ...] = (
    "too_few_views",
    "reprojection_error",
    "camera_offset",
    "outlier_view",
    "bone_length",
    "large_correction",
    "gap_filled",
    "hand_off_wrist",
    "missing",
)
PART_NAMES: tuple[str, ...] = tuple(skeleton.PARTS)


@dataclass(frozen=True)
class QualityThresholds:
    """The thresholds of :func:`quality_flags` (units in the names; shares in [0, 1])."""

    min_views: int
    joint_share: float
    reprojection_error_px: float
    reprojection_error_mads: float
    shift_px: float
    shift_factor: float
    shift_z: float
    shift_noise_floor_px: float
    camera_offset_px: float
    min_joints_per_view: int
    outlier_share: float
    bone_deviation: float
    correction_mm: float
    hand_wrist_mm: float
    min_reconstructed_share: float
    min_confidence: float


@dataclass(frozen=True)
class LabelArrays:
    """The arrays the flags are computed from (one take; float32 or float64).

    ``keypoints (views, frames, 59, 3)`` 2D detections; ``triangulated (frames, 59, 3)``
    metres; ``points (frames, 59, 3)`` refined; ``projected (views, frames, 59, 2)`` the
    refined points in each view (px); ``num_views (frames, 59)``; ``inliers`` and
    ``reprojection_error (views, frames, 59)`` (px) of the refined points; ``filled
    (frames, 59)`` bool; ``bone_lengths (59,)`` metres in :data:`fitting.skeleton.BONES` order.
    """

    keypoints: np.ndarray
    triangulated: np.ndarray
    points: np.ndarray
    projected: np.ndarray
    num_views: np.ndarray
    inliers: np.ndarray
    reprojection_error: np.ndarray
    filled: np.ndarray
    bone_lengths: np.ndarray


@dataclass(frozen=True)
class QualityFlags:
    """``flags (frames, parts, reasons)`` bool; ``view_error_px (views, frames, parts)`` the
    median inlier residual of the part per view (NaN: too few joints); ``view_shift_px``
    the length of the mean inlier residual vector; ``camera_offset_px (views, parts)``
    the length of the view's median residual vector over the take (NaN: never enough
    joints) and ``offset_cameras (views, parts)`` bool: above the limit; ``view_flagged (views, frames, parts)`` bool: the view raised
    ``reprojection_error``, ``camera_offset`` or ``outlier_view`` there; ``score
    (frames, parts)`` in [0, 1]: 1 without any flag."""

    flags: np.ndarray
    view_error_px: np.ndarray
    view_shift_px: np.ndarray
    camera_offset_px: np.ndarray
    offset_cameras: np.ndarray
    view_flagged: np.ndarray
    score: np.ndarray


def _nanmedian(values: np.ndarray, axis) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as wanted
        return np.nanmedian(values, axis=axis)


def _part_bones(part: slice) -> tuple[np.ndarray, np.ndarray]:
    """Indices into BONES of the part's bones, and the bones ``(B, 2)`` on 59-joint indices."""
    index = np.array([k for k, (a, _) in enumerate(skeleton.BONES) if part.start <= a < part.stop])
    return index, np.asarray(skeleton.BONES)[index]


def view_errors(arrays: LabelArrays, min_joints: int, noise_floor_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per view, frame and part, from the inlier residuals of at least ``min_joints`` joints
    (else NaN): the median residual (px), the length of the mean residual vector (px; a
    shift of the whole part), that shift over its standard error (the scatter of the
    residuals around their mean, at least ``noise_floor_px``, over the square root of
    their count: large only for a shift noise cannot explain), each ``(views, frames,
    parts)``; and the mean residual vectors ``(views, frames, parts, 2)`` (px).

    Computed part by part on the part's joints only (temporaries of one part's size)."""
    views, frames = arrays.inliers.shape[:2]
    shape = (views, frames, len(PART_NAMES))
    median, shift, z_score = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    mean_vectors = np.full(shape + (2,), np.nan)
    for p, joints in enumerate(skeleton.PARTS.values()):
        inliers = arrays.inliers[:, :, joints]
        errors = np.where(inliers, arrays.reprojection_error[:, :, joints].astype(np.float64), np.nan)
        vectors = arrays.keypoints[:, :, joints, :2].astype(np.float64) - arrays.projected[:, :, joints]
        vectors[~inliers] = np.nan
        count = np.isfinite(errors).sum(axis=2)
        enough = count >= min_joints
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as wanted
            median[:, :, p] = np.where(enough, np.nanmedian(errors, axis=2), np.nan)
            mean_vector = np.nanmean(vectors, axis=2)  # (views, frames, 2)
            vectors -= mean_vector[:, :, None]
            scatter = np.sqrt(np.nanmean(np.einsum("...i,...i->...", vectors, vectors), axis=2) / 2.0)
        length = np.linalg.norm(mean_vector, axis=-1)
        standard_error = np.maximum(scatter, noise_floor_px) / np.sqrt(np.maximum(count, 1))
        shift[:, :, p] = np.where(enough, length, np.nan)
        z_score[:, :, p] = np.where(enough, length / standard_error, np.nan)
        mean_vectors[:, :, p] = np.where(enough[..., None], mean_vector, np.nan)
    return median, shift, z_score, mean_vectors


def camera_offsets(mean_vectors: np.ndarray) -> np.ndarray:
    """``(views, parts)``: the length (px) of the median over the take of each view's mean
    residual vectors ``(views, frames, parts, 2)`` (NaN where the view never saw the part):
    a shift the view keeps for the whole take."""
    return np.linalg.norm(_nanmedian(mean_vectors, axis=1), axis=-1)


def _above_usual(values: np.ndarray, floor: float, factor: float) -> np.ndarray:
    """``values (views, frames, parts)`` above ``floor`` and ``factor`` times their median over frames."""
    usual = np.nan_to_num(_nanmedian(values, axis=1), nan=0.0)
    return np.nan_to_num(values, nan=0.0) > np.maximum(floor, factor * usual)[:, None, :]


def _in_the_tail(values: np.ndarray, floor: float, mads: float) -> np.ndarray:
    """``values (views, frames, parts)`` above ``floor`` and above their median over frames by
    ``mads`` robust standard deviations (1.4826 times the median absolute deviation)."""
    usual = _nanmedian(values, axis=1)[:, None, :]
    spread = 1.4826 * _nanmedian(np.abs(values - usual), axis=1)[:, None, :]
    return np.nan_to_num(values, nan=0.0) > np.maximum(floor, np.nan_to_num(usual + mads * spread, nan=np.inf))


def quality_flags(arrays: LabelArrays, thresholds: QualityThresholds) -> QualityFlags:
    """Flags per frame, part and reason (see the module docstring)."""
    t = thresholds
    frames = arrays.points.shape[0]
    present = np.isfinite(arrays.points).all(axis=-1)
    observed = present & ~arrays.filled
    flags = np.zeros((frames, len(PART_NAMES), len(REASONS)), dtype=bool)
    errors, shifts, z_scores, mean_vectors = view_errors(arrays, t.min_joints_per_view, t.shift_noise_floor_px)
    high_error = _in_the_tail(errors, t.reprojection_error_px, t.reprojection_error_mads)
    high_error |= _above_usual(shifts, t.shift_px, t.shift_factor) & (np.nan_to_num(z_scores) > t.shift_z)
    offsets = camera_offsets(mean_vectors)
    offset_cameras = np.nan_to_num(offsets, nan=0.0) > t.camera_offset_px  # (views, parts)
    offset_frames = offset_cameras[:, None, :] & np.isfinite(shifts)  # (views, frames, parts): the view saw the part
    keypoints = arrays.keypoints
    confident = np.isfinite(keypoints).all(axis=-1) & (keypoints[..., 2] >= t.min_confidence) & present[None]
    disagree = confident & ~arrays.inliers
    correction_mm = np.linalg.norm(arrays.points - arrays.triangulated, axis=-1) * 1000.0
    view_flagged = high_error | offset_frames
    for p, (part, joints) in enumerate(skeleton.PARTS.items()):
        size = joints.stop - joints.start
        few = observed[:, joints] & (arrays.num_views[:, joints] < t.min_views)
        flags[:, p, REASONS.index("too_few_views")] = few.sum(axis=1) >= max(1.0, t.joint_share * size)
        flags[:, p, REASONS.index("reprojection_error")] = high_error[:, :, p].any(axis=0)
        flags[:, p, REASONS.index("camera_offset")] = offset_frames[:, :, p].any(axis=0)
        counts = confident[:, :, joints].sum(axis=2)
        share = np.divide(disagree[:, :, joints].sum(axis=2), counts, out=np.zeros(counts.shape), where=counts > 0)
        outlier = (counts >= t.min_joints_per_view) & (share >= t.outlier_share)
        view_flagged[:, :, p] |= outlier
        flags[:, p, REASONS.index("outlier_view")] = outlier.any(axis=0)
        bone_index, bones = _part_bones(joints)
        lengths = skeleton.bone_lengths(arrays.points, [tuple(bone) for bone in bones])
        reference = arrays.bone_lengths[bone_index]
        with np.errstate(invalid="ignore", divide="ignore"):
            deviation = np.abs(lengths - reference) / reference
        flags[:, p, REASONS.index("bone_length")] = np.nan_to_num(deviation, nan=0.0).max(axis=1, initial=0.0) > t.bone_deviation
        moved = np.nan_to_num(correction_mm[:, joints], nan=0.0) > t.correction_mm
        flags[:, p, REASONS.index("large_correction")] = moved.sum(axis=1) >= max(1.0, t.joint_share * size)
        flags[:, p, REASONS.index("gap_filled")] = (present & arrays.filled)[:, joints].any(axis=1)
        if part in skeleton.BODY_WRIST_OF_HAND:
            gap = np.linalg.norm(arrays.points[:, joints.start] - arrays.points[:, skeleton.BODY_WRIST_OF_HAND[part]], axis=-1) * 1000.0
            flags[:, p, REASONS.index("hand_off_wrist")] = np.nan_to_num(gap, nan=0.0) > t.hand_wrist_mm
        flags[:, p, REASONS.index("missing")] = present[:, joints].mean(axis=1) < t.min_reconstructed_share
    score = 1.0 - flags.any(axis=2).astype(np.float64)
    return QualityFlags(flags, errors, shifts, offsets, offset_cameras, view_flagged, score)


def _round(value, digits: int = 3):
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if np.isfinite(value) else None


def take_metrics(arrays: LabelArrays, quality: QualityFlags, camera_names: list[str], fps: float) -> dict:
    """The take's quality summary (JSON-ready; a batch ranks takes by ``quality_score``).

    Coverage per part (reconstructed, observed = not gap-filled), reprojection error by
    camera (inlier mean / median px) and by camera and joint (median px), each camera's
    offset over the take per part (px) and the cameras over the limit, mean views
    per joint, bone-length variation (CV %) of the triangulated and the refined tracks,
    flagged frames per reason and part, and ``quality_score``: the share (%) of frame and
    part labels without any flag, averaged over the parts.
    """
    present = np.isfinite(arrays.points).all(axis=-1)
    observed = present & ~arrays.filled
    views_used = np.where(present, arrays.num_views, np.nan)
    metrics: dict = {"frames": int(arrays.points.shape[0]), "fps": float(fps), "parts": {}}
    for p, (part, joints) in enumerate(skeleton.PARTS.items()):
        bones = np.asarray(_part_bones(joints)[1]) - joints.start
        variation = {}
        for name, points in (("before", arrays.triangulated), ("after", arrays.points)):
            values = bone_length_variation(points[:, joints], bones)
            values = values[np.isfinite(values)]
            variation[name] = _round(100.0 * values.mean()) if values.size else None
        part_flags = quality.flags[:, p]
        metrics["parts"][part] = {
            "reconstructed": _round(present[:, joints].mean()),
            "observed": _round(observed[:, joints].mean()),
            "bone_length_cv_percent": variation,
            "flagged_frames": int(part_flags.any(axis=1).sum()),
            "flagged_frames_by_reason": {reason: int(part_flags[:, r].sum()) for r, reason in enumerate(REASONS)},
            "label_quality_percent": _round(100.0 * quality.score[:, p].mean(), 2),
        }
    metrics["reprojection_error_px"], metrics["reprojection_error_px_by_camera_and_joint"] = {}, {}
    for v, name in enumerate(camera_names):  # one view at a time: temporaries of one view's size
        errors = np.where(arrays.inliers[v], arrays.reprojection_error[v].astype(np.float64), np.nan)  # (frames, 59)
        seen = np.isfinite(errors).any()
        metrics["reprojection_error_px"][name] = {"mean": _round(np.nanmean(errors)) if seen else None, "median": _round(np.nanmedian(errors)) if seen else None}
        metrics["reprojection_error_px_by_camera_and_joint"][name] = dict(zip(skeleton.JOINT_NAMES, (_round(value, 2) for value in _nanmedian(errors, axis=0))))
    metrics["camera_offset_px"] = {
        name: {part: _round(quality.camera_offset_px[v, p], 2) for p, part in enumerate(PART_NAMES)} for v, name in enumerate(camera_names)
    }
    metrics["cameras_offset"] = [name for v, name in enumerate(camera_names) if quality.offset_cameras[v].any()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_views = np.nanmean(views_used, axis=0)
    metrics["views_per_joint"] = dict(zip(skeleton.JOINT_NAMES, (_round(value, 2) for value in mean_views)))
    metrics["flagged_frames"] = int(quality.flags.any(axis=(1, 2)).sum())
    metrics["quality_score"] = _round(100.0 * quality.score.mean(), 2)
    return metrics


@dataclass(frozen=True)
class FlagStretch:
    """Consecutive flagged frames of one part: ``start``..``stop - 1``; ``reasons``: frames
    per reason; ``view``: index of the view most often responsible (-1: none);
    ``worst_frame``: the frame with the most reasons (the first such)."""

    part: int
    start: int
    stop: int
    reasons: dict[str, int]
    view: int
    worst_frame: int

    @property
    def severity(self) -> int:
        return sum(self.reasons.values())


def flag_stretches(quality: QualityFlags) -> list[FlagStretch]:
    """The take's flagged stretches, most severe first (frames x reasons)."""
    stretches = []
    flagged = quality.flags.any(axis=2)  # (frames, parts)
    for p in range(flagged.shape[1]):
        padded = np.concatenate([[False], flagged[:, p], [False]]).astype(np.int8)
        edges = np.diff(padded)
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            block = quality.flags[start:stop, p]
            counts = block.sum(axis=0)
            views = quality.view_flagged[:, start:stop, p].sum(axis=1)
            stretches.append(
                FlagStretch(
                    part=p,
                    start=int(start),
                    stop=int(stop),
                    reasons={REASONS[r]: int(counts[r]) for r in np.flatnonzero(counts)},
                    view=int(np.argmax(views)) if views.size and views.max() > 0 else -1,
                    worst_frame=int(start + np.argmax(block.sum(axis=1))),
                )
            )
    return sorted(stretches, key=lambda stretch: (-stretch.severity, stretch.start, stretch.part))
