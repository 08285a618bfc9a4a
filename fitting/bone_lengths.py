"""Bone lengths of one person estimated from noisy 3D tracks of a whole take.

The length of a noisy bone vector is biased upwards: ``E|d + n|^2 = |d|^2 + tr(Cov n)``,
so the median length of raw triangulated finger bones (20-45 mm, triangulation noise of
10-20 mm) is centimetres too long, and a least-squares fit that estimates one length per
bone from per-frame positions inherits part of that bias (the Neyman-Scott problem).
:func:`lag_product_bone_lengths` avoids it: the noise of consecutive frames is
independent while the bone turns by only a few degrees per frame, so the mean of
``d[t] . d[t+1]`` is ``|d|^2`` up to ``1 - cos`` of that rotation, without the noise term.
"""

from __future__ import annotations

import warnings

import numpy as np


def _bone_vectors(points: np.ndarray, bones) -> np.ndarray:
    index = np.asarray(bones, dtype=np.int64).reshape(-1, 2)
    return points[:, index[:, 1]] - points[:, index[:, 0]]  # (F, B, 3)


def median_bone_lengths(points: np.ndarray, bones, min_frames: int = 1) -> np.ndarray:
    """Median length ``(bones,)`` in metres of each bone over the frames with both ends present.

    NaN for a bone seen in fewer than ``min_frames`` frames. ``points (frames, joints, 3)``,
    ``bones``: ``(B, 2)`` joint indices. Biased upwards by noise (see the module docstring).
    """
    lengths = np.linalg.norm(_bone_vectors(points, bones), axis=-1)  # (F, B)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(lengths, axis=0) if lengths.shape[0] else np.full(lengths.shape[1], np.nan)
    return np.where(np.isfinite(lengths).sum(axis=0) >= max(min_frames, 1), median, np.nan)


def lag_product_bone_lengths(points: np.ndarray, bones, *, trim: float, min_pairs: int) -> np.ndarray:
    """Noise-unbiased bone lengths ``(bones,)`` in metres from unsmoothed tracks.

    ``sqrt(trimmed mean over t of d[t] . d[t+1])`` over the consecutive frame pairs where the
    bone is present in both; ``trim`` is the fraction cut from each end (robustness to
    outliers); NaN for bones with fewer than ``min_pairs`` pairs (then use
    :func:`median_bone_lengths`). The tracks must not be smoothed: smoothing correlates
    the noise of neighbouring frames and brings the bias back.
    """
    vectors = _bone_vectors(points, bones)
    products = (vectors[1:] * vectors[:-1]).sum(axis=-1)  # (F-1, B), NaN where a frame misses an end
    valid = np.isfinite(products)
    count = valid.sum(axis=0)
    ordered = np.sort(np.where(valid, products, np.inf), axis=0)  # present values first, ascending
    cut = np.floor(trim * count).astype(np.int64)
    rank = np.arange(products.shape[0])[:, None]
    kept = (rank >= cut) & (rank < count - cut)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(kept, ordered, 0.0).sum(axis=0) / kept.sum(axis=0)
    lengths = np.sqrt(np.maximum(mean, 0.0))
    return np.where((count >= max(min_pairs, 1)) & (mean > 0), lengths, np.nan)
