"""Per-view hand quality over a whole take: a view's hand is dropped unless the others agree.

Runs on the detect stage's keypoints of every backend, before they are written (so
before triangulation). Per hand (left, right), vectorised over views, frames and joints:

1. **Agreement with the other views.** The hands of all views are triangulated
   together (RANSAC over views, threshold ``hand_agreement_fraction`` of the take's
   median hand region side). A view's hand agrees when at least ``hand_min_agreement``
   of its joints reproject within ``hand_agreement_fraction`` of its own hand's region
   side (:func:`detection.hand_regions.palm_boxes`). Where another view also sees the
   hand, a hand that does not agree is dropped (two views that disagree both lose it:
   which one is right cannot be told; two views can only disagree across their epipolar
   lines). A hand no other view sees is kept as it is.
2. **Bone lengths of the take.** The agreeing hands are triangulated again; the take's
   length of each of the 20 hand bones is its median over the frames. A frame whose
   3D hand's bones differ from them by more than ``hand_bone_tolerance`` (median
   relative difference over its bones) is retried without each of its views in turn:
   the view whose absence brings it within the tolerance (the one that brings it
   closest, leaving two views) is dropped; if none does, the hand is dropped in every
   view of that frame.
3. **Confidence.** A joint that other views confirm (an inlier of step 1 in a hand that
   agrees) gets at least ``hand_confirmed_confidence``: set to triangulation's
   ``min_confidence``, a confirmed hand is used whatever the model's own score, which
   still weighs it. MediaPipe's hand-presence score follows the 2D error (on rendered
   takes a median 2.5 px above 0.8, 4-7 px below 0.3) but drops on hands holding
   objects that other views still confirm.
"""

from __future__ import annotations

import warnings

import numpy as np

from detection.hand_regions import palm_boxes
from detection.settings import DetectionSettings
from fitting.skeleton import HAND_BONES_LOCAL, LEFT_HAND, RIGHT_HAND
from triangulation.cameras import Camera
from triangulation.triangulate import triangulate

HANDS = {"left_hand": LEFT_HAND, "right_hand": RIGHT_HAND}


def _triangulate(cameras: list[Camera], hands: np.ndarray, threshold: float):
    """Points ``(frames, 21, 3)`` and reprojection errors ``(views, frames, 21)`` of hands
    ``(views, frames, 21, 3)`` (every finite joint counts, whatever its confidence)."""
    observed = hands.copy()
    observed[..., 2] = np.where(np.isfinite(hands[..., 0]), 1.0, np.nan)
    result = triangulate(cameras, observed, min_confidence=0.0, min_views=2, ransac=True, threshold_px=threshold, refine_iterations=0, min_ray_angle_deg=0.0)
    return result.points, result.reprojection_error, result.inliers


def _bone_deviation(points: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``(frames,)`` median over bones of ``|length / take length - 1|`` (NaN without a bone)."""
    index = np.asarray(HAND_BONES_LOCAL)
    measured = np.linalg.norm(points[:, index[:, 1]] - points[:, index[:, 0]], axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames without a 3D hand
        return np.nanmedian(np.abs(measured / lengths - 1.0), axis=1)


def check_hand(cameras: list[Camera], hands: np.ndarray, settings: DetectionSettings) -> tuple[np.ndarray, dict]:
    """One hand's keypoints ``(views, frames, 21, 3)`` after the checks of the module, and counts."""
    hands = np.asarray(hands, dtype=np.float64).copy()
    fraction, min_share = settings.hand_agreement_fraction, settings.hand_min_agreement
    present = np.isfinite(hands[..., 0])  # (V, F, 21)
    seen = present.any(axis=-1)  # (V, F)
    counts = {"seen": int(seen.sum()), "dropped_disagreeing": 0, "dropped_bone_lengths": 0, "confirmed": 0}
    if seen.sum(axis=0).max(initial=0) < 2:
        return hands, counts
    _, sides, _ = palm_boxes(hands[..., :2])  # (V, F) pixels, NaN without a palm
    take_threshold = fraction * float(np.nanmedian(sides)) if np.isfinite(sides).any() else settings.hand_crop_min_px
    sides = np.where(np.isfinite(sides), sides, take_threshold / fraction)
    _, errors, _ = _triangulate(cameras, hands, take_threshold)
    inlier = np.nan_to_num(errors, nan=np.inf) <= fraction * sides[..., None]  # (V, F, 21)
    share = inlier.sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)
    agree = seen & (share >= min_share)
    drop = seen & ~agree & (seen.sum(axis=0) >= 2)[None]
    counts["dropped_disagreeing"] = int(drop.sum())
    hands[drop] = np.nan
    agree &= ~drop

    points, _, _ = _triangulate(cameras, hands, take_threshold)
    index = np.asarray(HAND_BONES_LOCAL)
    measured = np.linalg.norm(points[:, index[:, 1]] - points[:, index[:, 0]], axis=-1)  # (F, 20)
    if np.isfinite(measured).any(axis=0).all():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lengths = np.nanmedian(measured, axis=0)
        deviation = _bone_deviation(points, lengths)
        bad = np.flatnonzero(np.nan_to_num(deviation) > settings.hand_bone_tolerance)
        if bad.size:
            views = hands.shape[0]
            without = np.full((views, bad.size), np.inf)
            for v in range(views):  # one triangulation of the bad frames per view left out
                trial = hands[:, bad].copy()
                trial[v] = np.nan
                left_out, _, _ = _triangulate(cameras, trial, take_threshold)
                remaining = np.isfinite(trial[..., 0]).any(axis=-1).sum(axis=0)
                usable = np.isfinite(hands[v, bad][:, 0, 0]) & (remaining >= 2)
                without[v] = np.where(usable, np.nan_to_num(_bone_deviation(left_out, lengths), nan=np.inf), np.inf)
            best = np.argmin(without, axis=0)
            fixed = without[best, np.arange(bad.size)] <= settings.hand_bone_tolerance
            drop_bones = np.zeros_like(seen)
            drop_bones[best[fixed], bad[fixed]] = True
            drop_bones[:, bad[~fixed]] = np.isfinite(hands[:, bad[~fixed]][..., 0]).any(axis=-1)
            counts["dropped_bone_lengths"] = int(drop_bones.sum())
            hands[drop_bones] = np.nan
            agree &= ~drop_bones
    confirmed = agree[..., None] & inlier & np.isfinite(hands[..., 0])
    raised = confirmed & (np.nan_to_num(hands[..., 2]) < settings.hand_confirmed_confidence)
    hands[..., 2] = np.where(raised, settings.hand_confirmed_confidence, hands[..., 2])
    counts["confirmed"] = int(agree.sum())
    counts["hands_with_confidence_raised"] = int(raised.any(axis=-1).sum())
    return hands, counts


def check_hands(cameras: list[Camera], keypoints: np.ndarray, settings: DetectionSettings) -> tuple[np.ndarray, dict]:
    """Keypoints ``(views, frames, 59, 3)`` with both hands checked (:func:`check_hand`), and
    per-hand counts: hands seen (views x frames), dropped for disagreeing, dropped for bone
    lengths, confirmed by another view."""
    result = np.asarray(keypoints).copy()
    summary = {}
    for part, joints in HANDS.items():
        checked, counts = check_hand(cameras, result[:, :, joints], settings)
        result[:, :, joints] = checked
        summary[part] = counts
    return result, summary
