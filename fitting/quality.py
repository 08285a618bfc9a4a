"""What makes a label suspect, per frame and part, with the evidence; a take's quality summary.

:func:`quality_flags` flags each (frame, part) for every reason in :data:`REASONS`,
from the pipeline's arrays (2D detections, triangulated and refined 3D with their
per-view residuals and inliers, gap-filled samples, the take's bone lengths). Each
reason is one test of one measured value against one threshold
(:data:`REASON_TESTS`), and every flag keeps its evidence: the value, the threshold
and, for the reasons one view trips (:data:`VIEW_REASONS`), that view:

- ``too_few_views``: at least ``joint_share`` of the part's joints were estimated from
  fewer than ``min_views`` agreeing views (value: the views of the k-th least seen
  observed joint, k = that share of the part);
- ``reprojection_error``: in some view the part's median inlier residual exceeds
  ``reprojection_error_px`` and that view's usual residual for the part over the take
  by ``reprojection_error_mads`` robust standard deviations (1.4826 MAD: the residuals'
  own tail, heavy for occluded hands);
- ``part_shift``: in some view the mean of the part's residual vectors (a systematic
  shift: a camera that moved, a detector off by a few pixels) exceeds ``shift_px`` and
  ``shift_factor`` times its usual value and ``shift_z`` times its standard error (noise
  alone cannot explain it); its median residual may well be under
  ``reprojection_error_px``;
- ``camera_offset``: a view whose residuals are shifted for the whole take (a camera
  calibrated wrong, or out of sync, in every frame has no usual value to stand out
  from): the median over the take of its mean residual vector for the part is longer
  than ``camera_offset_px``; every frame the view observes the part in is flagged;
- ``outlier_view``: in some view at least ``outlier_share`` of the part's confident
  observations disagree with the 3D (a left/right swap, the wrong person);
- ``bone_length``: a bone of the part is off the take's length by more than
  ``bone_deviation`` (relative; value: the worst bone's deviation);
- ``large_correction``: refine moved at least ``joint_share`` of the part's joints more
  than ``correction_mm`` from their triangulated positions (one outlier joint fixed is
  refine's everyday work; a part moved as a whole is suspect; value: the k-th largest
  move, mm);
- ``gap_filled``: a joint of the part was estimated without any view (gap filling;
  value: how many joints);
- ``hand_off_wrist``: the hand's wrist is more than ``hand_wrist_mm`` from the body's;
- ``missing``: fewer than ``min_reconstructed_share`` of the part's joints exist (the
  body: the subject lost; a hand: the hand not found).

A frame's culprit for a view reason is the tripping view furthest over its threshold
(largest value / threshold). A flagged stretch's culprit (:func:`culprit_view`, the one
rule the report's table, its thumbnails, the mosaic's flag line and the recording use)
is the view that tripped the most (frame, reason) pairs of the stretch, ties to the
larger sum of value / threshold; the stretch is shown at the frame where that view is
furthest over.

Pure numpy on arrays (no files). Parts follow :data:`fitting.skeleton.PARTS`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from fitting import skeleton
from fitting.metrics import bone_length_variation
from triangulation.schema import bounds

REASONS: tuple[str, ...] = (
    "too_few_views",
    "reprojection_error",
    "part_shift",
    "camera_offset",
    "outlier_view",
    "bone_length",
    "large_correction",
    "gap_filled",
    "hand_off_wrist",
    "missing",
)
# The reasons one view trips (they name a camera), in the order of QualityFlags' view arrays.
VIEW_REASONS: tuple[str, ...] = ("reprojection_error", "part_shift", "camera_offset", "outlier_view")
PART_NAMES: tuple[str, ...] = tuple(skeleton.PARTS)


@dataclass(frozen=True)
class ReasonTest:
    """How a reason's value is compared with its threshold: ``measures`` (what the value
    is), ``unit`` ("" for shares and counts), ``comparison`` (``>``, ``>=`` or ``<``: the
    flag is raised when ``value comparison threshold``)."""

    measures: str
    unit: str
    comparison: str

    def describe(self, value: float, threshold: float) -> str:
        """``4.12 px > 3.00`` (value, comparison, threshold; shares as shares)."""
        unit = f" {self.unit}" if self.unit else ""
        return f"{_short(value)}{unit} {self.comparison} {_short(threshold)}"


def _short(value) -> str:
    value = float(value)
    if not np.isfinite(value):
        return "-"
    return f"{value:.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


REASON_TESTS: dict[str, ReasonTest] = {
    "too_few_views": ReasonTest("agreeing views of the k-th least seen observed joint (k: joint_share of the part)", "views", "<"),
    "reprojection_error": ReasonTest("the view's median inlier residual of the part (limit: the view's own tail)", "px", ">"),
    "part_shift": ReasonTest("the length of the view's mean residual vector of the part (limit: twice its usual)", "px", ">"),
    "camera_offset": ReasonTest("the view's median shift of the part over the whole take", "px", ">"),
    "outlier_view": ReasonTest("the share of the part's confident observations in the view rejected as outliers", "", ">="),
    "bone_length": ReasonTest("the relative deviation of the part's worst bone from the take's length", "", ">"),
    "large_correction": ReasonTest("refine's move of the k-th most moved joint (k: joint_share of the part)", "mm", ">"),
    "gap_filled": ReasonTest("joints of the part estimated without any view", "joint(s)", ">"),
    "hand_off_wrist": ReasonTest("the hand wrist's distance to the body's wrist", "mm", ">"),
    "missing": ReasonTest("the share of the part's joints reconstructed", "", "<"),
}


@dataclass(frozen=True)
class QualityThresholds:
    """The thresholds of :func:`quality_flags` (units in the names; shares in [0, 1]).

    It is also the schema of the ``qa.flags`` settings (configs/default.yaml explains
    each): the loader checks each value against its field's range.
    """

    min_views: int = field(metadata=bounds(1))
    joint_share: float = field(metadata=bounds(0.0, 1.0))
    reprojection_error_px: float = field(metadata=bounds(0.0))
    reprojection_error_mads: float = field(metadata=bounds(0.0))
    shift_px: float = field(metadata=bounds(0.0))
    shift_factor: float = field(metadata=bounds(1.0))
    shift_z: float = field(metadata=bounds(0.0))
    shift_noise_floor_px: float = field(metadata=bounds(0.0, low_open=True))
    camera_offset_px: float = field(metadata=bounds(0.0, low_open=True))
    min_joints_per_view: int = field(metadata=bounds(1))
    outlier_share: float = field(metadata=bounds(0.0, 1.0, low_open=True))
    bone_deviation: float = field(metadata=bounds(0.0, low_open=True))
    correction_mm: float = field(metadata=bounds(0.0, low_open=True))
    hand_wrist_mm: float = field(metadata=bounds(0.0, low_open=True))
    min_reconstructed_share: float = field(metadata=bounds(0.0, 1.0))
    min_confidence: float = field(metadata=bounds(0.0, 1.0))


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
    """The flags and their evidence.

    ``flags (frames, parts, reasons)`` bool; ``value`` / ``threshold (frames, parts,
    reasons)`` float32: what each test measured and its limit (:data:`REASON_TESTS`; for a
    view reason, the frame's culprit view's; NaN where nothing was measured); ``camera
    (frames, parts, reasons)`` int16: the frame's culprit view of a flagged view reason
    (-1: none, and always for the other reasons); ``view_tripped (views, frames, parts,
    len(VIEW_REASONS))`` bool with ``view_value`` / ``view_threshold`` (float32) per view;
    ``view_error_px (views, frames, parts)`` the median inlier residual of the part per
    view (NaN: too few joints); ``view_shift_px`` the length of the mean inlier residual
    vector; ``camera_offset_px (views, parts)`` the length of the view's median residual
    vector over the take (NaN: never enough joints) and ``offset_cameras (views, parts)``
    bool: above the limit; ``score (frames, parts)`` in [0, 1]: 1 without any flag."""

    flags: np.ndarray
    value: np.ndarray
    threshold: np.ndarray
    camera: np.ndarray
    view_tripped: np.ndarray
    view_value: np.ndarray
    view_threshold: np.ndarray
    view_error_px: np.ndarray
    view_shift_px: np.ndarray
    camera_offset_px: np.ndarray
    offset_cameras: np.ndarray
    score: np.ndarray

    @property
    def view_flagged(self) -> np.ndarray:
        """``(views, frames, parts)`` bool: the view tripped some view reason there."""
        return self.view_tripped.any(axis=-1)

    def view_ratio(self, view_slice=slice(None), frames=slice(None), part=slice(None)) -> np.ndarray:
        """value / threshold of the view reasons where tripped, 0 elsewhere (same indexing as ``view_tripped``)."""
        tripped = self.view_tripped[view_slice, frames, part]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = self.view_value[view_slice, frames, part].astype(np.float64) / self.view_threshold[view_slice, frames, part]
        return np.where(tripped, np.nan_to_num(ratio, nan=0.0, posinf=1e9), 0.0)


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


def _usual_limit(values: np.ndarray, floor: float, factor: float) -> np.ndarray:
    """``(views, 1, parts)``: ``floor`` or ``factor`` times the median over frames of
    ``values (views, frames, parts)``, the larger."""
    usual = np.nan_to_num(_nanmedian(values, axis=1), nan=0.0)
    return np.maximum(floor, factor * usual)[:, None, :]


def _tail_limit(values: np.ndarray, floor: float, mads: float) -> np.ndarray:
    """``(views, 1, parts)``: ``floor`` or the median over frames of ``values (views, frames,
    parts)`` plus ``mads`` robust standard deviations (1.4826 MAD), the larger (infinite
    for a view that never measured the part)."""
    usual = _nanmedian(values, axis=1)[:, None, :]
    spread = 1.4826 * _nanmedian(np.abs(values - usual), axis=1)[:, None, :]
    return np.maximum(floor, np.nan_to_num(usual + mads * spread, nan=np.inf))


def _kth(values: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """``values (frames, joints)``: the k-th largest (or smallest) per frame (NaN counts as
    missing: NaN when fewer than k values are finite)."""
    finite = np.isfinite(values)
    filled = np.where(finite, values, -np.inf if largest else np.inf)
    ordered = -np.partition(-filled, k - 1, axis=1)[:, k - 1] if largest else np.partition(filled, k - 1, axis=1)[:, k - 1]
    return np.where(finite.sum(axis=1) >= k, ordered, np.nan)


def _compare(value: np.ndarray, threshold, comparison: str) -> np.ndarray:
    """``value comparison threshold`` with NaN values never flagged."""
    with np.errstate(invalid="ignore"):
        result = {">": np.greater, ">=": np.greater_equal, "<": np.less}[comparison](value, threshold)
    return result & np.isfinite(value)


def quality_flags(arrays: LabelArrays, thresholds: QualityThresholds) -> QualityFlags:
    """Flags per frame, part and reason, with their evidence (see the module docstring)."""
    t = thresholds
    frames = arrays.points.shape[0]
    views = arrays.inliers.shape[0]
    parts = len(PART_NAMES)
    present = np.isfinite(arrays.points).all(axis=-1)
    observed = present & ~arrays.filled
    value = np.full((frames, parts, len(REASONS)), np.nan)
    threshold = np.full((frames, parts, len(REASONS)), np.nan)
    view_value = np.full((views, frames, parts, len(VIEW_REASONS)), np.nan, dtype=np.float32)
    view_threshold = np.full((views, frames, parts, len(VIEW_REASONS)), np.nan, dtype=np.float32)
    view_tripped = np.zeros((views, frames, parts, len(VIEW_REASONS)), dtype=bool)

    errors, shifts, z_scores, mean_vectors = view_errors(arrays, t.min_joints_per_view, t.shift_noise_floor_px)
    offsets = camera_offsets(mean_vectors)
    offset_cameras = np.nan_to_num(offsets, nan=0.0) > t.camera_offset_px  # (views, parts)

    def view_test(reason: str, measured: np.ndarray, limit, tripped: np.ndarray) -> None:
        k = VIEW_REASONS.index(reason)
        view_value[..., k] = measured
        view_threshold[..., k] = np.broadcast_to(limit, measured.shape)
        view_tripped[..., k] = tripped

    error_limit = _tail_limit(errors, t.reprojection_error_px, t.reprojection_error_mads)
    view_test("reprojection_error", errors, error_limit, _compare(errors, error_limit, ">"))
    shift_limit = _usual_limit(shifts, t.shift_px, t.shift_factor)
    view_test("part_shift", shifts, shift_limit, _compare(shifts, shift_limit, ">") & (np.nan_to_num(z_scores) > t.shift_z))
    seen = np.isfinite(shifts)  # (views, frames, parts): the view saw the part
    view_test("camera_offset", np.where(seen, offsets[:, None, :], np.nan), t.camera_offset_px, offset_cameras[:, None, :] & seen)
    keypoints = arrays.keypoints
    confident = np.isfinite(keypoints).all(axis=-1) & (keypoints[..., 2] >= t.min_confidence) & present[None]
    disagree = confident & ~arrays.inliers
    shares = np.full((views, frames, parts), np.nan)
    for p, joints in enumerate(skeleton.PARTS.values()):
        counts = confident[:, :, joints].sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares[:, :, p] = np.where(counts >= t.min_joints_per_view, disagree[:, :, joints].sum(axis=2) / counts, np.nan)
    view_test("outlier_view", shares, t.outlier_share, _compare(shares, t.outlier_share, ">="))

    camera = np.full((frames, parts, len(REASONS)), -1, dtype=np.int16)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(view_tripped, np.nan_to_num(view_value.astype(np.float64) / view_threshold, nan=0.0, posinf=1e9), -np.inf)
    culprit = np.argmax(ratio, axis=0)  # (frames, parts, view reasons)
    for k, reason in enumerate(VIEW_REASONS):  # the culprit's value where tripped, else the largest view value
        r = REASONS.index(reason)
        tripped = view_tripped[..., k].any(axis=0)
        largest = np.argmax(np.nan_to_num(view_value[..., k], nan=-np.inf), axis=0)
        shown = np.where(tripped, culprit[..., k], largest)[None, ..., None]
        value[..., r] = np.take_along_axis(view_value[..., k : k + 1], shown, axis=0)[0, ..., 0]
        threshold[..., r] = np.take_along_axis(view_threshold[..., k : k + 1], shown, axis=0)[0, ..., 0]
        camera[..., r] = np.where(tripped, culprit[..., k], -1)

    correction_mm = np.linalg.norm(arrays.points - arrays.triangulated, axis=-1) * 1000.0
    views_of_observed = np.where(observed, arrays.num_views, np.nan).astype(np.float64)
    for p, (part, joints) in enumerate(skeleton.PARTS.items()):
        size = joints.stop - joints.start
        k = int(np.ceil(max(1.0, t.joint_share * size) - 1e-9))
        value[:, p, REASONS.index("too_few_views")] = _kth(views_of_observed[:, joints], k, largest=False)
        threshold[:, p, REASONS.index("too_few_views")] = t.min_views
        bone_index, bones = _part_bones(joints)
        lengths = skeleton.bone_lengths(arrays.points, [tuple(bone) for bone in bones])
        reference = arrays.bone_lengths[bone_index]
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value[:, p, REASONS.index("bone_length")] = np.nanmax(np.abs(lengths - reference) / reference, axis=1)
        threshold[:, p, REASONS.index("bone_length")] = t.bone_deviation
        value[:, p, REASONS.index("large_correction")] = _kth(correction_mm[:, joints], k, largest=True)
        threshold[:, p, REASONS.index("large_correction")] = t.correction_mm
        value[:, p, REASONS.index("gap_filled")] = (present & arrays.filled)[:, joints].sum(axis=1)
        threshold[:, p, REASONS.index("gap_filled")] = 0
        if part in skeleton.BODY_WRIST_OF_HAND:
            gap = np.linalg.norm(arrays.points[:, joints.start] - arrays.points[:, skeleton.BODY_WRIST_OF_HAND[part]], axis=-1) * 1000.0
            value[:, p, REASONS.index("hand_off_wrist")] = gap
            threshold[:, p, REASONS.index("hand_off_wrist")] = t.hand_wrist_mm
        value[:, p, REASONS.index("missing")] = present[:, joints].mean(axis=1)
        threshold[:, p, REASONS.index("missing")] = t.min_reconstructed_share
    flags = np.zeros((frames, parts, len(REASONS)), dtype=bool)
    for r, reason in enumerate(REASONS):
        if reason in VIEW_REASONS:
            flags[..., r] = view_tripped[..., VIEW_REASONS.index(reason)].any(axis=0)
        else:
            flags[..., r] = _compare(value[..., r], threshold[..., r], REASON_TESTS[reason].comparison)
    score = 1.0 - flags.any(axis=2).astype(np.float64)
    return QualityFlags(
        flags, value.astype(np.float32), threshold.astype(np.float32), camera, view_tripped, view_value, view_threshold,
        errors, shifts, offsets, offset_cameras, score,
    )  # fmt: skip


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
    flagged frames per reason and part, every flagged frame per part and reason with its
    evidence (``flagged``: :func:`flagged_frame_lists`), and ``quality_score``: the share (%) of frame and
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
        metrics["reprojection_error_px"][name] = {
            "mean": _round(np.nanmean(errors)) if seen else None,
            "median": _round(np.nanmedian(errors)) if seen else None,
        }
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
    metrics["flagged"] = flagged_frame_lists(quality, camera_names)
    metrics["quality_score"] = _round(100.0 * quality.score.mean(), 2)
    return metrics


@dataclass(frozen=True)
class ReasonEvidence:
    """One reason of a stretch: ``frames`` flagged for it; ``frame`` where it was measured
    furthest over its threshold (by the stretch's culprit view when that view tripped it),
    its ``value``, ``threshold`` and ``view`` (-1: not a view reason)."""

    reason: str
    frames: int
    frame: int
    value: float
    threshold: float
    view: int

    def describe(self, camera_names: list[str] | None = None) -> str:
        """``part_shift: 4.1 px > 3.0 (cam02, frame 47)``."""
        where = f"frame {self.frame}"
        if self.view >= 0 and camera_names is not None:
            where = f"{camera_names[self.view]}, {where}"
        return f"{self.reason}: {REASON_TESTS[self.reason].describe(self.value, self.threshold)} ({where})"


@dataclass(frozen=True)
class FlagStretch:
    """Consecutive flagged frames of one part: ``start``..``stop - 1``; ``reasons``: frames
    per reason; ``view``: the culprit view (:func:`culprit_view`; -1: no view reason);
    ``worst_frame``: the frame the stretch is shown at (where the culprit is furthest over
    a threshold; without a culprit the frame with the most reasons, the first such);
    ``evidence``: per reason, most frames first."""

    part: int
    start: int
    stop: int
    reasons: dict[str, int]
    view: int
    worst_frame: int
    evidence: tuple[ReasonEvidence, ...] = ()

    @property
    def severity(self) -> int:
        return sum(self.reasons.values())


def culprit_view(tripped: np.ndarray, ratio: np.ndarray) -> int:
    """The one rule naming a stretch's camera: ``tripped (views, frames, view reasons)``
    bool and ``ratio`` (value / threshold where tripped) over the stretch's frames -> the
    view that tripped the most (frame, reason) pairs, ties to the larger sum of ratios
    (then the lower index); -1 when no view tripped anything."""
    counts = tripped.reshape(tripped.shape[0], -1).sum(axis=1)
    if counts.size == 0 or counts.max() == 0:
        return -1
    excess = np.where(tripped, ratio, 0.0).reshape(tripped.shape[0], -1).sum(axis=1)
    return int(np.lexsort((-excess, -counts))[0])


def _stretch_evidence(quality: QualityFlags, p: int, start: int, stop: int, view: int) -> tuple[ReasonEvidence, ...]:
    block = quality.flags[start:stop, p]
    evidence = []
    for r in np.flatnonzero(block.any(axis=0)):
        reason = REASONS[r]
        frames = np.flatnonzero(block[:, r])
        if reason in VIEW_REASONS and view >= 0 and quality.view_tripped[view, start:stop, p, VIEW_REASONS.index(reason)].any():
            k = VIEW_REASONS.index(reason)
            ratio = quality.view_ratio(view, slice(start, stop), p)[:, k]
            at = int(np.argmax(ratio))
            item = ReasonEvidence(
                reason, len(frames), start + at, float(quality.view_value[view, start + at, p, k]), float(quality.view_threshold[view, start + at, p, k]), view
            )
        else:
            values = quality.value[start:stop, p, r].astype(np.float64)[frames]
            thresholds = quality.threshold[start:stop, p, r].astype(np.float64)[frames]
            with np.errstate(invalid="ignore", divide="ignore"):
                excess = values / thresholds if REASON_TESTS[reason].comparison != "<" else thresholds / values
            at = int(frames[np.argmax(np.nan_to_num(excess, nan=0.0, posinf=1e9))])
            item = ReasonEvidence(
                reason,
                len(frames),
                start + at,
                float(quality.value[start + at, p, r]),
                float(quality.threshold[start + at, p, r]),
                int(quality.camera[start + at, p, r]),
            )
        evidence.append(item)
    return tuple(sorted(evidence, key=lambda item: (-item.frames, REASONS.index(item.reason))))


def flag_stretches(quality: QualityFlags) -> list[FlagStretch]:
    """The take's flagged stretches, most severe first (frames x reasons)."""
    stretches = []
    flagged = quality.flags.any(axis=2)  # (frames, parts)
    for p in range(flagged.shape[1]):
        padded = np.concatenate([[False], flagged[:, p], [False]]).astype(np.int8)
        edges = np.diff(padded)
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            start, stop = int(start), int(stop)
            block = quality.flags[start:stop, p]
            counts = block.sum(axis=0)
            tripped = quality.view_tripped[:, start:stop, p]
            ratio = quality.view_ratio(slice(None), slice(start, stop), p)
            view = culprit_view(tripped, ratio)
            shown = start + int(np.argmax(ratio[view].max(axis=1))) if view >= 0 else start + int(np.argmax(block.sum(axis=1)))
            stretches.append(
                FlagStretch(
                    part=p,
                    start=start,
                    stop=stop,
                    reasons={REASONS[r]: int(counts[r]) for r in np.flatnonzero(counts)},
                    view=view,
                    worst_frame=shown,
                    evidence=_stretch_evidence(quality, p, start, stop, view),
                )
            )
    return sorted(stretches, key=lambda stretch: (-stretch.severity, stretch.start, stretch.part))


def stretch_culprits(stretches: list[FlagStretch], frames: int) -> np.ndarray:
    """``(frames, parts)`` int: the culprit view of the stretch holding each flagged frame (-1: none)."""
    culprits = np.full((frames, len(PART_NAMES)), -1, dtype=np.int16)
    for stretch in stretches:
        culprits[stretch.start : stretch.stop, stretch.part] = stretch.view
    return culprits


def frame_evidence(quality: QualityFlags, culprits: np.ndarray, frame: int, camera_names: list[str]) -> list[str]:
    """One frame's flags as text per flagged part, naming the stretch's culprit camera:
    ``body [cam02]: part_shift 4.1 px > 3.0, outlier_view 0.5 >= 0.4 (cam01)``; a reason
    the culprit did not trip there names the view that did; ``[stretch: cam02]`` when the
    culprit tripped nothing in this frame."""
    lines = []
    for p, part in enumerate(PART_NAMES):
        reasons = np.flatnonzero(quality.flags[frame, p])
        if not len(reasons):
            continue
        view = int(culprits[frame, p])
        items = []
        for r in reasons:
            reason = REASONS[r]
            value, limit, by = quality.value[frame, p, r], quality.threshold[frame, p, r], int(quality.camera[frame, p, r])
            if reason in VIEW_REASONS and view >= 0 and quality.view_tripped[view, frame, p, VIEW_REASONS.index(reason)]:
                k = VIEW_REASONS.index(reason)
                value, limit, by = quality.view_value[view, frame, p, k], quality.view_threshold[view, frame, p, k], view
            other = f" ({camera_names[by]})" if by >= 0 and by != view else ""
            items.append(f"{reason} {REASON_TESTS[reason].describe(value, limit)}{other}")
        tripped_here = view >= 0 and bool(quality.view_tripped[view, frame, p].any())
        named = "" if view < 0 else f" [{camera_names[view]}]" if tripped_here else f" [stretch: {camera_names[view]}]"
        lines.append(f"{part}{named}: {', '.join(items)}")
    return lines


def flagged_frame_lists(quality: QualityFlags, camera_names: list[str]) -> dict:
    """Every flagged frame per part and reason with its evidence (JSON-ready): ``{part:
    {reason: {frames, value, threshold, camera}}}``, lists aligned on ``frames`` (camera:
    the frame's culprit view's name, None for a reason no view trips); reasons without a
    flagged frame are left out."""
    listed: dict = {}
    for p, part in enumerate(PART_NAMES):
        for r, reason in enumerate(REASONS):
            frames = np.flatnonzero(quality.flags[:, p, r])
            if not len(frames):
                continue
            cameras = quality.camera[frames, p, r]
            listed.setdefault(part, {})[reason] = {
                "frames": frames.tolist(),
                "value": [_round(v, 4) for v in quality.value[frames, p, r].tolist()],
                "threshold": [_round(v, 4) for v in quality.threshold[frames, p, r].tolist()],
                "camera": [camera_names[c] if c >= 0 else None for c in cameras.tolist()],
            }
    return listed


def stretch_text(stretch: FlagStretch, camera_names: list[str]) -> str:
    """``body 40-59 [cam02]: part_shift: 10.3 px > 3 (cam02, frame 47); ...``: a stretch in one line."""
    camera = camera_names[stretch.view] if stretch.view >= 0 else "no single camera"
    return f"{PART_NAMES[stretch.part]} {stretch.start}-{stretch.stop - 1} [{camera}]: " + "; ".join(item.describe(camera_names) for item in stretch.evidence)


def stretch_summary(stretch: FlagStretch, camera_names: list[str]) -> dict:
    """A stretch as JSON: part, first and last frame, culprit camera (None: no view reason),
    the frame it is shown at, and each reason's frames and evidence."""

    def name(view: int):
        return camera_names[view] if view >= 0 else None

    return {
        "part": PART_NAMES[stretch.part],
        "first": stretch.start,
        "last": stretch.stop - 1,
        "camera": name(stretch.view),
        "shown_frame": stretch.worst_frame,
        "reasons": [
            {
                "reason": item.reason,
                "frames": item.frames,
                "frame": item.frame,
                "value": _round(item.value, 4),
                "threshold": _round(item.threshold, 4),
                "camera": name(item.view),
            }
            for item in stretch.evidence
        ],
    }


def take_headline(quality: QualityFlags, stretches: list[FlagStretch], camera_names: list[str]) -> dict:
    """What a batch shows of a take: ``top_reason`` (the reason flagging the most frame and
    part labels, None without any) with ``top_reason_labels``, and ``culprit_camera``: the
    camera that is the culprit (:func:`culprit_view`) of the most flagged frames over the
    take's stretches (None: no stretch has one) with ``culprit_camera_frames``."""
    per_reason = quality.flags.sum(axis=(0, 1))
    top = int(np.argmax(per_reason)) if per_reason.size and per_reason.max() > 0 else -1
    frames = np.zeros(len(camera_names), dtype=np.int64)
    for stretch in stretches:
        if stretch.view >= 0:
            frames[stretch.view] += stretch.stop - stretch.start
    camera = int(np.argmax(frames)) if frames.size and frames.max() > 0 else -1
    return {
        "top_reason": REASONS[top] if top >= 0 else None,
        "top_reason_labels": int(per_reason[top]) if top >= 0 else 0,
        "culprit_camera": camera_names[camera] if camera >= 0 else None,
        "culprit_camera_frames": int(frames[camera]) if camera >= 0 else 0,
    }
