"""Rigid poses over time: quaternions, interpolation of a sampled trajectory, composition.

Conventions: a pose ``T_a_b`` maps points of frame ``b`` into frame ``a``
(``x_a = R_a_b x_b + t_a_b``), as projectaria-tools names them (``T_world_device``,
``T_device_camera``). Quaternions are ``(..., 4)`` ordered x, y, z, w (the CSV column
order of Aria trajectories and scipy's). Times are any one unit (the caller's),
translations metres. Everything is vectorised over samples; no Python loop per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triangulation.cameras import rotation_from_quaternion

# Status of an interpolated pose, per query time.
POSE_OK = 0
POSE_BEFORE_TRAJECTORY = 1  # the query is earlier than the first sample: never extrapolated
POSE_AFTER_TRAJECTORY = 2  # later than the last sample
POSE_IN_GAP = 3  # the samples around the query are further apart than the allowed gap
POSE_NO_TIMESTAMP = 4  # the query time itself is unknown (NaN)
POSE_NOT_GIVEN = 5  # a file of per-frame poses lists none for the frame
POSE_STATUS_NAMES = {
    POSE_OK: "ok",
    POSE_BEFORE_TRAJECTORY: "before_trajectory",
    POSE_AFTER_TRAJECTORY: "after_trajectory",
    POSE_IN_GAP: "trajectory_gap",
    POSE_NO_TIMESTAMP: "no_timestamp",
    POSE_NOT_GIVEN: "not_given",
}


def quaternion_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(..., 4)`` (x, y, z, w; w >= 0) of rotation matrices ``(..., 3, 3)``.

    Shepperd's method: the largest of the four squared components is taken from the
    trace or a diagonal element, so the result is accurate for every rotation.
    """
    R = np.asarray(rotation, dtype=np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    candidates = np.stack([1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22, 1 + m00 + m11 + m22], -1)
    best = np.argmax(candidates, axis=-1)
    q = np.empty(R.shape[:-2] + (4,))
    s = np.sqrt(np.maximum(np.take_along_axis(candidates, best[..., None], -1)[..., 0], 1e-300)) * 2  # 4 |component|
    # Rows: the quaternion from the x, y, z or w pivot.
    pivots = [
        (0.25 * s, (R[..., 0, 1] + R[..., 1, 0]) / s, (R[..., 0, 2] + R[..., 2, 0]) / s, (R[..., 2, 1] - R[..., 1, 2]) / s),
        ((R[..., 0, 1] + R[..., 1, 0]) / s, 0.25 * s, (R[..., 1, 2] + R[..., 2, 1]) / s, (R[..., 0, 2] - R[..., 2, 0]) / s),
        ((R[..., 0, 2] + R[..., 2, 0]) / s, (R[..., 1, 2] + R[..., 2, 1]) / s, 0.25 * s, (R[..., 1, 0] - R[..., 0, 1]) / s),
        ((R[..., 2, 1] - R[..., 1, 2]) / s, (R[..., 0, 2] - R[..., 2, 0]) / s, (R[..., 1, 0] - R[..., 0, 1]) / s, 0.25 * s),
    ]
    for index, pivot in enumerate(pivots):
        chosen = best == index
        q[chosen] = np.stack([component[chosen] for component in pivot], -1)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:4] < 0, -q, q)


def slerp(q0: np.ndarray, q1: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions ``(..., 4)`` at ``fraction (...)`` in [0, 1].

    The shorter arc is taken (``q`` and ``-q`` are the same rotation); nearly equal
    quaternions fall back to normalised linear interpolation.
    """
    q0, q1 = np.asarray(q0, dtype=np.float64), np.asarray(q1, dtype=np.float64)
    fraction = np.asarray(fraction, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot)
    angle = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(angle)
    small = sin < 1e-9
    safe = np.where(small, 1.0, sin)
    w0 = np.where(small, 1.0 - fraction, np.sin((1.0 - fraction) * angle) / safe)
    w1 = np.where(small, fraction, np.sin(fraction * angle) / safe)
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


@dataclass(frozen=True)
class InterpolatedPoses:
    """Poses at query times: ``R (M, 3, 3)``, ``t (M, 3)`` (NaN where ``status != POSE_OK``),
    ``status (M,)`` int8 (``POSE_*``), ``gap (M,)`` the time between the two samples used
    (NaN where none)."""

    R: np.ndarray
    t: np.ndarray
    status: np.ndarray
    gap: np.ndarray


def interpolate_poses(
    sample_times: np.ndarray,
    quaternions: np.ndarray,
    translations: np.ndarray,
    query_times: np.ndarray,
    max_gap: float,
) -> InterpolatedPoses:
    """A sampled trajectory (``T_a_b`` at ``sample_times (N,)``, increasing) at ``query_times (M,)``.

    Rotation by slerp and translation linearly between the two samples around each
    query. A query outside ``[first, last]`` sample, or between samples more than
    ``max_gap`` apart (same unit as the times), gets no pose (NaN) and its status;
    nothing is ever extrapolated. A query equal to a sample takes that sample.
    """
    times = np.asarray(sample_times, dtype=np.float64)
    query = np.asarray(query_times, dtype=np.float64)
    quaternions = np.asarray(quaternions, dtype=np.float64)
    quaternions = quaternions / np.linalg.norm(quaternions, axis=-1, keepdims=True)
    translations = np.asarray(translations, dtype=np.float64)
    if times.ndim != 1 or times.size < 1:
        raise ValueError("sample_times must be a non-empty 1-D array")
    if np.any(np.diff(times) <= 0):
        raise ValueError("sample_times must be strictly increasing")
    count = query.shape[0]
    status = np.full(count, POSE_OK, dtype=np.int8)
    finite = np.isfinite(query)
    status[~finite] = POSE_NO_TIMESTAMP
    status[finite & (query < times[0])] = POSE_BEFORE_TRAJECTORY
    status[finite & (query > times[-1])] = POSE_AFTER_TRAJECTORY
    inside = status == POSE_OK
    # Interval [i, i + 1] holding each query (a query on the last sample uses the last interval).
    upper = np.clip(np.searchsorted(times, np.where(inside, query, times[0]), side="right"), 1, max(times.size - 1, 1))
    lower = upper - 1
    if times.size == 1:
        lower = upper = np.zeros(count, dtype=np.int64)
    span = times[upper] - times[lower]
    gap = np.where(inside, span, np.nan)
    on_sample = inside & ((query == times[lower]) | (query == times[upper]))
    status[inside & ~on_sample & (span > max_gap)] = POSE_IN_GAP
    ok = status == POSE_OK
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(span > 0, (query - times[lower]) / np.where(span > 0, span, 1.0), 0.0)
    fraction = np.clip(np.where(ok, fraction, 0.0), 0.0, 1.0)
    q = slerp(quaternions[lower], quaternions[upper], fraction)
    R = rotation_from_quaternion(q)
    t = translations[lower] + fraction[:, None] * (translations[upper] - translations[lower])
    R[~ok] = np.nan
    t[~ok] = np.nan
    return InterpolatedPoses(R, t, status, gap)


def compose(R_ab: np.ndarray, t_ab: np.ndarray, R_bc: np.ndarray, t_bc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``T_a_c = T_a_b T_b_c`` for stacks: ``R (..., 3, 3)``, ``t (..., 3)``."""
    R_ab, R_bc = np.asarray(R_ab, dtype=np.float64), np.asarray(R_bc, dtype=np.float64)
    return R_ab @ R_bc, np.einsum("...ij,...j->...i", R_ab, t_bc) + t_ab


def invert(R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``T_b_a`` of ``T_a_b``: ``R (..., 3, 3)``, ``t (..., 3)``."""
    Rt = np.swapaxes(np.asarray(R, dtype=np.float64), -1, -2)
    return Rt, -np.einsum("...ij,...j->...i", Rt, t)
