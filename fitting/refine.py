"""Refine: per-frame triangulation -> smooth tracks with constant bone lengths (pure: the
stage ``refine``, :mod:`stages.refine`, is its file side).

Steps, per part (body, left hand, right hand) where they are independent:

1. Temporal cleaning of the triangulated tracks (:func:`fitting.temporal.clean_tracks`):
   bursts reached by implausibly fast jumps, spikes off the running median and joints
   whose every bone has an implausible length are rejected; interior gaps up to
   ``max_gap_s`` (hands: ``hand_max_gap_s``, and only where the hand and its body wrist
   moved slower than ``hand_max_gap_speed_m_s``) are filled; the tracks are smoothed. This is the start of the fit
   and, with ``fit.enabled: false``, the result.
2. Bone lengths of the person from the take (:func:`fitting.bone_lengths.lag_product_bone_lengths`
   on the cleaned, unsmoothed tracks: free of the noise bias), the prior of the fit.
3. Observations for the fit: confident ones that triangulation kept as inliers of a
   sample not rejected in step 1, or that lie within ``gate_px`` of the cleaned track.
4. Spatio-temporal least squares (:func:`fitting.bone_fit.fit_tracks`): the body first,
   then both hands, each hand wrist held to the fitted body wrist (the same anatomical
   point seen by two detectors; the body's is the better observed one), with
   ``wrist_tie_mm`` as its standard deviation.
5. Quality per joint as triangulation gives it: pixel errors in every view, inlier
   views (used by the fit and within ``gate_px``), views used, confidence.

A joint with no support (never seen, a hand absent from the take, a gap longer or
faster than allowed) stays NaN; a filled joint stays marked in ``filled``.

:func:`refine` takes the cameras, the 2D keypoints, the triangulated points and inliers,
the frame rate and the :class:`RefineSettings` (the schema of configs/default.yaml's
``refine`` section, which adds how the stage runs); ``map_windows``: an ordered map for the fit's independent windows (the stage
passes Ray's). :func:`summarize`: the counts of the stage's summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from fitting import skeleton
from fitting.bone_fit import fit_tracks
from fitting.bone_lengths import lag_product_bone_lengths
from fitting.metrics import bone_length_variation
from fitting.reprojection import pixel_errors
from fitting.temporal import clean_tracks
from triangulation.cameras import Camera
from triangulation.schema import POSITIVE, bounds


@dataclass(frozen=True)
class OutlierSettings:
    """The temporal outlier tests of step 1 (``refine.outliers``; units in the names)."""

    max_speed_m_s: float = field(metadata=POSITIVE)
    max_burst_s: float = field(metadata=bounds(0.0))
    median_window_s: float = field(metadata=POSITIVE)
    median_scale_factor: float = field(metadata=POSITIVE)
    body_min_deviation_mm: float = field(metadata=bounds(0.0))
    hand_min_deviation_mm: float = field(metadata=bounds(0.0))
    bone_scale_factor: float = field(metadata=POSITIVE)
    bone_min_deviation: float = field(metadata=bounds(0.0))


@dataclass(frozen=True)
class SmoothingSettings:
    """Gap filling and smoothing of step 1 (``refine.smoothing``)."""

    max_gap_s: float = field(metadata=bounds(0.0))
    hand_max_gap_s: float = field(metadata=bounds(0.0))
    hand_max_gap_speed_m_s: float = field(metadata=POSITIVE)
    method: Literal["butterworth", "savgol", "none"]
    body_cutoff_hz: float = field(metadata=POSITIVE)
    hand_cutoff_hz: float = field(metadata=POSITIVE)
    butterworth_order: int = field(metadata=bounds(2))
    savgol_window_s: float = field(metadata=POSITIVE)
    savgol_polyorder: int = field(metadata=bounds(0))


@dataclass(frozen=True)
class TrackFitSettings:
    """Steps 2-4: bone lengths, the observations kept and the least squares (``refine.fit``)."""

    enabled: bool
    min_confidence: float = field(metadata=bounds(0.0, 1.0))
    gate_px: float = field(metadata=POSITIVE)
    pixel_sigma_px: float = field(metadata=POSITIVE)
    loss: Literal["cauchy", "huber"]
    loss_scale: float = field(metadata=POSITIVE)
    min_loss_scale_px: float = field(metadata=POSITIVE)
    body_acceleration_sigma_m_s2: float = field(metadata=POSITIVE)
    hand_acceleration_sigma_m_s2: float = field(metadata=POSITIVE)
    bone_sigma_percent: float = field(metadata=POSITIVE)
    length_trim: float = field(metadata=bounds(0.0, 0.45))
    length_min_frame_pairs: int = field(metadata=bounds(1))
    body_length_prior_mm: float | None = field(metadata=POSITIVE)
    hand_length_prior_mm: float | None = field(metadata=POSITIVE)
    symmetry_sigma_percent: float | None = field(metadata=POSITIVE)
    wrist_tie_mm: float | None = field(metadata=POSITIVE)
    max_iterations: int = field(metadata=bounds(1))
    tolerance: float = field(metadata=POSITIVE)
    factor_precision: Literal["float32", "float64"]
    chunk_frames: int = field(metadata=bounds(10))
    overlap_frames: int = field(metadata=bounds(0))
    length_windows: int = field(metadata=bounds(1))


@dataclass(frozen=True)
class RefineSettings:
    """What :func:`refine` reads: the three groups above."""

    outliers: OutlierSettings
    smoothing: SmoothingSettings
    fit: TrackFitSettings


@dataclass(frozen=True)
class Refined:
    """Refined tracks of ``frames`` x 59 joints seen by ``views`` cameras.

    ``points (frames, 59, 3)`` m (NaN: not estimated); ``num_views (frames, 59)``,
    ``inliers (views, frames, 59)``, ``reprojection_error (views, frames, 59)`` px,
    ``confidence (frames, 59)`` as :class:`triangulation.triangulate.Triangulation`;
    ``bone_lengths (59,)`` m in :data:`fitting.skeleton.BONES` order (NaN: unknown);
    ``outliers (frames, 59)``: triangulated samples rejected by the temporal tests;
    ``filled (frames, 59)``: estimated samples without any inlier view after the fit
    (interpolated across a gap and seen by no view that agrees with them).
    """

    points: np.ndarray
    num_views: np.ndarray
    inliers: np.ndarray
    reprojection_error: np.ndarray
    confidence: np.ndarray
    bone_lengths: np.ndarray
    outliers: np.ndarray
    filled: np.ndarray


def _frames(seconds: float, fps: float, odd: bool = False) -> int:
    count = max(int(round(seconds * fps)), 1)
    return count + 1 if odd and count % 2 == 0 else count


def _part_bones(part: slice) -> list[tuple[int, int]]:
    return [(a, b) for a, b in skeleton.BONES if part.start <= a < part.stop]


def mirrored_bone_pairs(bones) -> list[tuple[int, int]]:
    """Index pairs into ``bones`` of left/right twins (each pair once)."""
    mirror = skeleton.left_right_swap_index()
    index = {tuple(sorted(bone)): i for i, bone in enumerate(bones)}
    pairs = set()
    for i, (a, b) in enumerate(bones):
        j = index.get(tuple(sorted((int(mirror[a]), int(mirror[b])))))
        if j is not None and j != i:
            pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


def clean(points: np.ndarray, fps: float, outliers: dict, smoothing: dict):
    """Temporal cleaning of every part: cleaned tracks, rejected samples, filled samples (all ``(frames, 59, ...)``).

    The body comes first: a hand's gaps are filled only up to ``hand_max_gap_s`` and
    where neither the hand nor the cleaned body wrist moved faster than
    ``hand_max_gap_speed_m_s`` across them (a hand is not invented where it went out
    of sight and came back)."""
    cleaned = np.full(points.shape, np.nan)
    rejected = np.zeros(points.shape[:2], dtype=bool)
    filled = np.zeros(points.shape[:2], dtype=bool)
    for part, joints in skeleton.PARTS.items():  # loop over the three parts, the body first
        hand = part != "body"
        gap_limits = (
            dict(
                max_gap_frames=_frames(smoothing.hand_max_gap_s, fps) if smoothing.hand_max_gap_s > 0 else 0,
                max_gap_speed_m_s=smoothing.hand_max_gap_speed_m_s,
                gap_anchor=cleaned[:, skeleton.BODY_WRIST_OF_HAND[part]],
            )
            if hand
            else dict(max_gap_frames=_frames(smoothing.max_gap_s, fps))
        )
        result = clean_tracks(
            points[:, joints],
            fps,
            bones=[(a - joints.start, b - joints.start) for a, b in _part_bones(joints)],
            median_window_frames=_frames(outliers.median_window_s, fps, odd=True),
            median_scale_factor=outliers.median_scale_factor,
            min_deviation_m=(outliers.hand_min_deviation_mm if hand else outliers.body_min_deviation_mm) / 1000.0,
            max_speed_m_s=outliers.max_speed_m_s,
            max_burst_frames=_frames(outliers.max_burst_s, fps),
            bone_scale_factor=outliers.bone_scale_factor,
            bone_min_deviation_ratio=outliers.bone_min_deviation,
            smoother=smoothing.method,
            **gap_limits,
            cutoff_hz=min((smoothing.hand_cutoff_hz if hand else smoothing.body_cutoff_hz), 0.45 * fps),  # below Nyquist
            order=smoothing.butterworth_order,
            window_frames=_frames(smoothing.savgol_window_s, fps, odd=True),
            polyorder=smoothing.savgol_polyorder,
        )
        cleaned[:, joints], rejected[:, joints], filled[:, joints] = result.points, result.outliers, result.filled
    return cleaned, rejected, filled


def select_observations(cameras, keypoints, start, trusted, settings: TrackFitSettings) -> np.ndarray:
    """``(views, frames, 59)`` bool: confident observations of estimated samples that were
    trusted inliers, or that lie within ``gate_px`` of the start tracks ``start (frames, 59, 3)``."""
    confident = np.isfinite(keypoints).all(-1) & (keypoints[..., 2] >= settings.min_confidence)
    near = np.nan_to_num(pixel_errors(cameras, keypoints, start), nan=np.inf) < settings.gate_px
    return confident & np.isfinite(start).all(-1)[None] & (trusted | near)


def _quality(cameras, keypoints, points, used, settings):
    """Pixel errors, inlier views, views used and confidence of refined points (as triangulation)."""
    confident = np.isfinite(keypoints).all(-1) & (keypoints[..., 2] >= settings.min_confidence)
    errors = np.where(confident, pixel_errors(cameras, keypoints, points), np.nan)
    inliers = used & (np.nan_to_num(errors, nan=np.inf) < settings.gate_px)
    num_views = inliers.sum(axis=0)
    observing = np.maximum(np.isfinite(errors).sum(axis=0), 1)
    confidence_2d = np.where(inliers, np.nan_to_num(keypoints[..., 2]), 0.0).sum(axis=0)
    confidence = np.clip(confidence_2d / np.maximum(num_views, 1) * num_views / observing, 0.0, 1.0)
    return errors, inliers, num_views, confidence


def loss_scale(cameras, keypoints, points, inliers, joints: slice, settings: TrackFitSettings) -> float:
    """Robust-loss scale for a part, pixels: ``loss_scale`` times the median distance of the
    triangulation inliers to their points (the take's detector noise), at least ``min_loss_scale_px``."""
    errors = pixel_errors(cameras, keypoints[:, :, joints], points[:, joints])[inliers[:, :, joints]]
    errors = errors[np.isfinite(errors)]
    typical = float(np.median(errors)) if errors.size else 0.0
    return max(settings.min_loss_scale_px, settings.loss_scale * typical)


def fit(cameras, keypoints, start, use, lengths, fps, settings: TrackFitSettings, scales: dict, map_windows=None):
    """Body, then both hands with the hand wrists held to the fitted body wrists
    (``map_windows``: how each pass's windows are solved, see :func:`fitting.bone_fit.fit_tracks`).

    Returns points ``(frames, 59, 3)``, bone lengths ``(59,)`` and the solver's
    (most iterations, converged)."""
    support = np.isfinite(start).all(-1)
    body_bones, hand_bones = _part_bones(skeleton.BODY), _part_bones(skeleton.LEFT_HAND) + _part_bones(skeleton.RIGHT_HAND)
    common = dict(
        fps=fps,
        pixel_sigma_px=settings.pixel_sigma_px,
        loss=settings.loss,
        bone_sigma_ratio=settings.bone_sigma_percent / 100.0,
        symmetry_sigma_ratio=None if settings.symmetry_sigma_percent is None else settings.symmetry_sigma_percent / 100.0,
        max_iterations=settings.max_iterations,
        tolerance=settings.tolerance,
        factor_dtype=settings.factor_precision,
        chunk_frames=settings.chunk_frames,
        overlap_frames=settings.overlap_frames,
        length_windows=settings.length_windows,
        map_windows=map_windows,
    )
    acceleration = np.where(
        np.arange(skeleton.NUM_JOINTS) < skeleton.NUM_BODY_JOINTS,
        settings.body_acceleration_sigma_m_s2,
        settings.hand_acceleration_sigma_m_s2,
    )

    def prior_sigma(key):
        return None if getattr(settings, key) is None else getattr(settings, key) / 1000.0

    body = fit_tracks(
        cameras, keypoints, use, start, support,
        blocks=[np.arange(skeleton.BODY.start, skeleton.BODY.stop)],
        bones=body_bones,
        symmetric_bones=mirrored_bone_pairs(body_bones),
        length_prior=lengths[: len(body_bones)],
        length_prior_sigma_m=prior_sigma("body_length_prior_mm"),
        acceleration_sigma_m_s2=acceleration,
        loss_scale_px=scales["body"],
        **common,
    )  # fmt: skip
    anchors = None
    if settings.wrist_tie_mm is not None:
        anchors = np.full(start.shape, np.nan)
        for part, wrist in skeleton.BODY_WRIST_OF_HAND.items():  # two hands
            anchors[:, skeleton.PARTS[part].start] = body.points[:, wrist]
    hands = fit_tracks(
        cameras, keypoints, use, start, support,
        blocks=[np.arange(skeleton.LEFT_HAND.start, skeleton.LEFT_HAND.stop), np.arange(skeleton.RIGHT_HAND.start, skeleton.RIGHT_HAND.stop)],
        bones=hand_bones,
        symmetric_bones=mirrored_bone_pairs(hand_bones),
        length_prior=lengths[len(body_bones):],
        length_prior_sigma_m=prior_sigma("hand_length_prior_mm"),
        anchors=anchors,
        anchor_sigma_m=(settings.wrist_tie_mm or 1.0) / 1000.0,
        acceleration_sigma_m_s2=acceleration,
        loss_scale_px=scales["hands"],
        **common,
    )  # fmt: skip
    points = np.where((np.arange(skeleton.NUM_JOINTS) < skeleton.NUM_BODY_JOINTS)[None, :, None], body.points, hands.points)
    bone_lengths = np.concatenate([body.bone_lengths, hands.bone_lengths])
    return points, bone_lengths, max(body.iterations, hands.iterations), body.converged and hands.converged


def refine(
    cameras: list[Camera], keypoints: np.ndarray, points: np.ndarray, inliers: np.ndarray, fps: float, settings: RefineSettings, map_windows=None
) -> Refined:
    """Refine triangulated ``points (frames, 59, 3)`` (with their ``inliers (views, frames, 59)``)
    of ``keypoints (views, frames, 59, 3)`` seen by ``cameras``; ``settings``: the ``refine``
    config section. Pure: arrays in, arrays out."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    outliers, smoothing, fit_settings = settings.outliers, settings.smoothing, settings.fit
    start, rejected, _ = clean(points, fps, outliers, smoothing)
    raw = np.where(rejected[..., None], np.nan, points)
    lengths = lag_product_bone_lengths(raw, skeleton.BONES, trim=fit_settings.length_trim, min_pairs=fit_settings.length_min_frame_pairs)
    trusted = np.asarray(inliers, dtype=bool) & ~rejected[None]
    use = select_observations(cameras, keypoints, start, trusted, fit_settings)
    if fit_settings.enabled:
        scales = {
            "body": loss_scale(cameras, keypoints, points, trusted, skeleton.BODY, fit_settings),
            "hands": loss_scale(cameras, keypoints, points, trusted, slice(skeleton.LEFT_HAND.start, skeleton.RIGHT_HAND.stop), fit_settings),
        }
        refined, bone_lengths, _, _ = fit(cameras, keypoints, start, use, lengths, fps, fit_settings, scales, map_windows)
    else:
        refined, bone_lengths = start, np.where(np.isfinite(lengths), lengths, np.nan)
    errors, final_inliers, num_views, confidence = _quality(cameras, keypoints, refined, use, fit_settings)
    present = np.isfinite(refined).all(-1)
    return Refined(
        points=refined,
        num_views=np.where(present, num_views, 0),
        inliers=final_inliers & present[None],
        reprojection_error=np.where(present[None], errors, np.nan),
        confidence=np.where(present, confidence, 0.0),
        bone_lengths=bone_lengths,
        outliers=rejected,
        filled=present & (num_views == 0),
    )


def _mean_inlier_error(errors: np.ndarray, inliers: np.ndarray, joints: slice) -> float | None:
    values = np.asarray(errors)[:, :, joints][np.asarray(inliers)[:, :, joints]]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def summarize(before_points, before_errors, before_inliers, refined: Refined) -> dict:
    """Counts a person can check, per part: reconstructed share before/after, rejected and
    filled samples, mean inlier reprojection error (px) and bone-length variation (%) before/after."""
    summary = {"frames": int(refined.points.shape[0])}
    for part, joints in skeleton.PARTS.items():
        bones = np.asarray(_part_bones(joints)) - joints.start

        def variation(points, joints=joints, bones=bones):
            values = bone_length_variation(points[:, joints], bones)
            values = values[np.isfinite(values)]
            return float(100.0 * values.mean()) if values.size else None

        summary[part] = {
            "reconstructed_before": float(np.isfinite(before_points[:, joints, 0]).mean()),
            "reconstructed": float(np.isfinite(refined.points[:, joints, 0]).mean()),
            "rejected_samples": int(refined.outliers[:, joints].sum()),
            "filled_samples": int(refined.filled[:, joints].sum()),
            "mean_inlier_error_px_before": _mean_inlier_error(before_errors, before_inliers, joints),
            "mean_inlier_error_px": _mean_inlier_error(refined.reprojection_error, refined.inliers, joints),
            "bone_length_cv_percent_before": variation(before_points),
            "bone_length_cv_percent": variation(refined.points),
        }
    return summary
