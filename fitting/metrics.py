"""Accuracy and quality metrics of 3D joint tracks against ground truth (numpy only).

All functions take ``(frames, joints, 3)`` arrays in metres with NaN for missing
joints and return millimetres (or ratios); missing joints are left out of every mean.
"""

from __future__ import annotations

import numpy as np


def joint_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Euclidean error per frame and joint ``(frames, joints)`` in mm (NaN where either is missing)."""
    return np.linalg.norm(predicted - truth, axis=-1) * 1000.0


def procrustes_aligned(predicted: np.ndarray, truth: np.ndarray, min_joints: int = 3) -> np.ndarray:
    """``predicted`` moved per frame by the similarity (rotation, translation, scale) that best fits ``truth``.

    Uses the joints present in both; frames with fewer than ``min_joints`` such joints
    are NaN. Vectorised over frames (batched 3x3 SVD, Umeyama's method).
    """
    valid = np.isfinite(predicted).all(-1) & np.isfinite(truth).all(-1)  # (F, J)
    weight = valid.astype(np.float64)
    count = weight.sum(axis=1)  # (F,)
    safe_count = np.maximum(count, 1.0)[:, None]
    p = np.where(valid[..., None], predicted, 0.0)
    t = np.where(valid[..., None], truth, 0.0)
    p_mean = p.sum(axis=1) / safe_count
    t_mean = t.sum(axis=1) / safe_count
    p_c = (p - p_mean[:, None]) * weight[..., None]
    t_c = (t - t_mean[:, None]) * weight[..., None]
    covariance = np.einsum("fji,fjk->fik", t_c, p_c) / safe_count[..., None]  # (F, 3, 3)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))
    correction = np.ones((len(sign), 3))
    correction[:, 2] = sign
    rotation = u @ (correction[:, :, None] * vt)  # truth ~ s R p
    variance = (p_c**2).sum(axis=(1, 2)) / safe_count[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = (singular * correction).sum(axis=1) / variance
    aligned = scale[:, None, None] * np.einsum("fik,fjk->fji", rotation, predicted - p_mean[:, None]) + t_mean[:, None]
    aligned[count < min_joints] = np.nan
    return np.where(valid[..., None], aligned, np.nan)


def completeness(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of the true joints (not NaN in ``truth``) that ``predicted`` has."""
    present = np.isfinite(truth).all(-1)
    if not present.any():
        return float("nan")
    return float((np.isfinite(predicted).all(-1) & present).sum() / present.sum())


def bone_length_series(points: np.ndarray, bones) -> np.ndarray:
    """Bone lengths ``(frames, bones)`` in mm (NaN where a joint is missing)."""
    index = np.asarray(bones).reshape(-1, 2)
    return np.linalg.norm(points[:, index[:, 1]] - points[:, index[:, 0]], axis=-1) * 1000.0


def bone_length_variation(points: np.ndarray, bones, min_frames: int = 2) -> np.ndarray:
    """Coefficient of variation over time of each bone's length ``(bones,)`` (ratio).

    NaN for a bone seen in fewer than ``min_frames`` frames.
    """
    lengths = bone_length_series(points, bones)
    valid = np.isfinite(lengths)
    count = valid.sum(axis=0)
    safe = np.maximum(count, 1)
    mean = np.where(valid, lengths, 0.0).sum(axis=0) / safe
    variance = np.where(valid, (lengths - mean) ** 2, 0.0).sum(axis=0) / safe
    with np.errstate(invalid="ignore", divide="ignore"):
        variation = np.sqrt(variance) / mean
    return np.where(count >= min_frames, variation, np.nan)


def jitter(points: np.ndarray, fps: float) -> float:
    """Mean acceleration magnitude in m/s^2 (second differences over consecutive present frames)."""
    acceleration = (points[2:] - 2.0 * points[1:-1] + points[:-2]) * fps * fps
    magnitude = np.linalg.norm(acceleration, axis=-1)
    magnitude = magnitude[np.isfinite(magnitude)]
    return float(magnitude.mean()) if magnitude.size else float("nan")
