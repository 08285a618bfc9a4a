"""Temporal cleaning of 3D joint tracks: outlier rejection, gap filling, smoothing.

Every function takes tracks ``(frames, joints, 3)`` in metres with NaN for missing
samples and works on all joints at once (vectorised over frames and joints; no
Python loop over either). Window lengths and gap lengths are in frames; speeds in
m/s with the take's ``fps`` in frames per second.

- :func:`median_outliers`: samples far from the median of the straight-line
  predictions of their neighbours (spikes, short bursts), with a per-joint robust scale.
- :func:`velocity_outliers`: short runs of samples that the track jumps to and back
  from faster than a person moves (bursts of wrong triangulations).
- :func:`bone_length_outliers`: joints whose every bone has an implausible length
  in that frame (robust per-bone scale), e.g. a fingertip on the wrong finger.
- :func:`fill_gaps`: linear interpolation of interior gaps up to a length, and
  optionally only where the joint (and an anchor joint that moves with it, e.g. the
  body wrist for a hand) moved slowly across the gap; longer or faster gaps and gaps at
  the start or end of a track stay missing.
- :func:`smooth`: zero-phase Butterworth or Savitzky-Golay smoothing of the present
  segments (missing samples stay missing).
- :func:`clean_tracks`: the four above in order, as the refine stage uses them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import signal

SMOOTHERS = ("butterworth", "savgol", "none")


def _present(points: np.ndarray) -> np.ndarray:
    return np.isfinite(points).all(axis=-1)


def _shifted(points: np.ndarray, offset: int) -> np.ndarray:
    """``points[t + offset]`` for every frame t, NaN outside the take."""
    result = np.full(points.shape, np.nan)
    frames = points.shape[0]
    if abs(offset) < frames:
        if offset >= 0:
            result[: frames - offset] = points[offset:]
        else:
            result[-offset:] = points[: frames + offset]
    return result


def local_prediction(points: np.ndarray, window: int, chunk_frames: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Robust straight-line prediction of every sample from its neighbours ``(frames, joints, 3)``,
    and ``(frames, joints, 3)`` bool: it is two-sided.

    The median, per coordinate, of the midpoints ``(x[t-k] + x[t+k]) / 2`` for ``k = 1 ..
    window // 2`` (exact for a steady motion, whatever its speed); where fewer than three
    such pairs are present (the ends of the take, next to gaps), of those midpoints and the
    one-sided extrapolations ``2 x[t+k] - x[t+2k]`` and ``2 x[t-k] - x[t-2k]`` together.
    NaN where none exists. The sample itself is never used, so a spike does not hide itself.

    Works through ``chunk_frames`` frames at a time (each with the ``2 * (window // 2)``
    frames it reads on either side), so the ``3 * window // 2`` candidate predictions per
    sample never exist for the whole take at once: the same result, a bounded memory.
    """
    if window < 3:
        raise ValueError(f"window must be at least 3 frames, got {window}")
    half = window // 2
    frames = points.shape[0]
    if frames <= chunk_frames:
        return _local_prediction(points, half)
    margin = 2 * half  # the farthest neighbour a prediction reads
    prediction = np.empty(points.shape)
    enough = np.empty(points.shape, dtype=bool)
    for start in range(0, frames, chunk_frames):  # loop over chunks of frames, not frames
        stop = min(start + chunk_frames, frames)
        low, high = max(start - margin, 0), min(stop + margin, frames)
        chunk_prediction, chunk_enough = _local_prediction(points[low:high], half)
        prediction[start:stop] = chunk_prediction[start - low : stop - low]
        enough[start:stop] = chunk_enough[start - low : stop - low]
    return prediction, enough


def nanmedian_last_axis(values: np.ndarray) -> np.ndarray:
    """``np.nanmedian(values, axis=-1)`` (NaN where a row has no value, without a warning) for a
    short last axis: one sort of the rows (NaN sort last) and the middle element(s), equal
    to numpy's bit for bit and several times faster than its general path on small rows."""
    ordered = np.sort(values, axis=-1)
    count = np.count_nonzero(~np.isnan(values), axis=-1)
    low = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    high = np.take_along_axis(ordered, (count // 2)[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, (low + high) / 2.0, np.nan)


def _local_prediction(points: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`local_prediction` of every sample of ``points`` from its ``half`` nearest pairs."""
    pairs = np.stack([0.5 * (_shifted(points, -k) + _shifted(points, k)) for k in range(1, half + 1)], axis=-1)
    sides = np.stack([2.0 * _shifted(points, s * k) - _shifted(points, 2 * s * k) for k in range(1, half + 1) for s in (-1, 1)], axis=-1)
    enough = np.isfinite(pairs).sum(axis=-1) >= min(3, half)  # a median of 3 outvotes one bad neighbour
    symmetric = nanmedian_last_axis(pairs)
    everything = nanmedian_last_axis(np.concatenate([pairs, sides], axis=-1))
    return np.where(enough, symmetric, everything), enough


def median_outliers(points: np.ndarray, *, window_frames: int, scale_factor: float, min_deviation_m: float) -> np.ndarray:
    """``(frames, joints)`` bool: spikes, samples far from the robust prediction of their neighbours.

    A sample is an outlier when its distance to :func:`local_prediction` over
    ``window_frames`` frames exceeds ``max(scale_factor * s_j, min_deviation_m)``, where
    ``s_j`` is the median of that distance over the take for joint ``j`` (a robust scale
    of the joint's noise, from the two-sided predictions). Catches spikes and bursts
    shorter than half the window; a steady motion, however fast, does not raise it. A
    one-sided prediction (ends of the take, next to gaps) is about three times noisier
    (``2 x[t+k] - x[t+2k]`` against a midpoint), so there both limits are tripled.
    """
    prediction, two_sided = local_prediction(points, window_frames)
    deviation = np.linalg.norm(points - prediction, axis=-1)  # NaN where missing
    two_sided = two_sided.all(axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # joints never present
        scale = np.nanmedian(np.where(two_sided, deviation, np.nan), axis=0)
    threshold = np.maximum(scale_factor * np.nan_to_num(scale), min_deviation_m) * np.where(two_sided, 1.0, 3.0)
    return np.nan_to_num(deviation, nan=0.0) > threshold


def _neighbour_index(present: np.ndarray, direction: int) -> np.ndarray:
    """For every (frame, joint): index of the nearest present frame strictly before
    (``direction=-1``) or after (``+1``) it; -1 where there is none."""
    frames = present.shape[0]
    index = np.where(present, np.arange(frames)[:, None], -1 if direction < 0 else frames)
    if direction < 0:
        nearest = np.maximum.accumulate(index, axis=0)
        shifted = np.concatenate([np.full((1,) + present.shape[1:], -1), nearest[:-1]])
        return shifted
    nearest = np.minimum.accumulate(index[::-1], axis=0)[::-1]
    shifted = np.concatenate([nearest[1:], np.full((1,) + present.shape[1:], frames)])
    return np.where(shifted >= frames, -1, shifted)


def velocity_outliers(points: np.ndarray, fps: float, *, max_speed_m_s: float, max_burst_frames: int) -> np.ndarray:
    """``(frames, joints)`` bool: samples in short bursts that the track jumps into faster
    than a person moves (e.g. a left/right swap that several views agreed on).

    Each track is cut into pieces where the speed from the previous present sample
    (over however many frames lie between) exceeds ``max_speed_m_s``. Pieces longer than
    ``max_burst_frames`` are reliable. The samples between two reliable pieces at most
    ``max_burst_frames`` apart (or between one reliable piece and the take's end) are
    compared with the straight line between the reliable samples on either side (or
    the one reliable sample): those farther from it than a jump (``max_speed_m_s / fps``)
    are outliers. A real fast motion does not leave the line between its ends by that
    much; a track without reliable pieces is never flagged.
    """
    present = _present(points)
    frames, joints = present.shape
    joint_index = np.arange(joints)[None, :]
    frame_index = np.arange(frames)[:, None]
    previous = _neighbour_index(present, -1)
    before = points[np.maximum(previous, 0), joint_index]
    elapsed = (frame_index - previous) / fps
    speed = np.linalg.norm(points - before, axis=-1) / np.where(previous >= 0, elapsed, 1.0)
    starts = present & ((previous < 0) | (np.nan_to_num(speed) > max_speed_m_s))
    piece = np.cumsum(starts, axis=0)  # (F, J): 1-based piece number within each track
    pieces = piece[-1]
    offset = np.concatenate([[0], np.cumsum(pieces)[:-1]])  # first global piece id of each joint
    global_id = offset[None, :] + piece - 1
    size = np.bincount(global_id[present], minlength=max(int(pieces.sum()), 1))
    reliable = present & (size[np.where(present, global_id, 0)] > max_burst_frames)
    suspect = present & ~reliable
    anchor_before = _neighbour_index(reliable, -1)
    anchor_after = _neighbour_index(reliable, 1)
    has_before, has_after = anchor_before >= 0, anchor_after >= 0
    start = points[np.maximum(anchor_before, 0), joint_index]
    stop = points[np.maximum(anchor_after, 0), joint_index]
    alpha = np.where(has_before & has_after, (frame_index - anchor_before) / np.maximum(anchor_after - anchor_before, 1), 0.0)
    line = np.where(has_before[..., None], start + alpha[..., None] * (stop - start), stop)
    span = np.where(has_before, frame_index - anchor_before, 0) + np.where(has_after, anchor_after - frame_index, 0)
    short = np.where(has_before & has_after, anchor_after - anchor_before - 1, span) <= max_burst_frames
    deviation = np.linalg.norm(points - line, axis=-1)
    return suspect & has_before & has_after & short & (np.nan_to_num(deviation) > max_speed_m_s / fps)


def bone_length_outliers(points: np.ndarray, bones, *, scale_factor: float, min_deviation_ratio: float) -> np.ndarray:
    """``(frames, joints)`` bool: joints whose bones have implausible lengths in that frame.

    A bone length is bad when it differs from the bone's median over the take by more
    than ``max(scale_factor * 1.4826 * MAD, min_deviation_ratio * median)`` (MAD: median
    absolute deviation of the bone's lengths). A joint is flagged when it has at least
    two measured bones in the frame and all of them are bad; then, ignoring the bones of
    those joints, when every remaining measured bone is bad (so a wrong fingertip is
    flagged, but not the correct joint next to it, and not the neighbours of a wrong
    middle joint).
    """
    index = np.asarray(bones, dtype=np.int64).reshape(-1, 2)
    num_joints = points.shape[1]
    if index.size == 0:
        return np.zeros(points.shape[:2], dtype=bool)
    lengths = np.linalg.norm(points[:, index[:, 1]] - points[:, index[:, 0]], axis=-1)  # (F, B)
    measured = np.isfinite(lengths)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(lengths, axis=0)
        mad = np.nanmedian(np.abs(lengths - median), axis=0)
    threshold = np.maximum(scale_factor * 1.4826 * np.nan_to_num(mad), min_deviation_ratio * np.nan_to_num(median))
    bad = measured & (np.abs(np.nan_to_num(lengths - median)) > threshold)
    incidence = np.zeros((index.shape[0], num_joints))  # (B, J): bone touches joint
    incidence[np.arange(index.shape[0]), index[:, 0]] = 1.0
    incidence[np.arange(index.shape[0]), index[:, 1]] = 1.0
    measured_count = measured.astype(np.float64) @ incidence  # (F, J)
    bad_count = bad.astype(np.float64) @ incidence
    strong = (measured_count >= 2) & (bad_count == measured_count)
    explained = (strong.astype(np.float64) @ incidence.T) > 0  # (F, B): bone touches a strong joint
    remaining = measured & ~explained
    remaining_count = remaining.astype(np.float64) @ incidence
    remaining_bad = (bad & ~explained).astype(np.float64) @ incidence
    weak = (remaining_count >= 1) & (remaining_bad == remaining_count)
    return strong | weak


def gap_mask(
    present: np.ndarray,
    max_gap_frames: int,
    points: np.ndarray | None = None,
    max_step_m: float | None = None,
    anchor: np.ndarray | None = None,
) -> np.ndarray:
    """``(frames, joints)`` bool: missing samples inside an interior gap of at most ``max_gap_frames``.

    A gap is interior when the track is present before and after it; gaps at the start
    or end of the take are never filled (that would be extrapolation). With
    ``max_step_m`` (metres per frame) a gap is also limited by how fast things moved
    across it: the joint's straight-line speed between the samples around the gap
    (``points (frames, joints, 3)``) and, with an ``anchor (frames, 3)`` track, the
    anchor's path length over the gap per frame (missing anchor steps count as too
    fast) must both stay within ``max_step_m``.
    """
    previous = _neighbour_index(present, -1)
    following = _neighbour_index(present, 1)
    length = following - previous - 1
    fill = ~present & (previous >= 0) & (following >= 0) & (length <= max_gap_frames)
    if max_step_m is None or not fill.any():
        return fill
    joints = np.arange(present.shape[1])[None, :]
    span = np.maximum(following - previous, 1)
    before = points[np.maximum(previous, 0), joints]
    after = points[np.maximum(following, 0), joints]
    fill &= np.nan_to_num(np.linalg.norm(after - before, axis=-1), nan=np.inf) <= max_step_m * span
    if anchor is not None:
        steps = np.nan_to_num(np.linalg.norm(np.diff(anchor, axis=0), axis=-1), nan=np.inf)  # (frames - 1,)
        path = np.concatenate([[0.0], np.cumsum(steps)])
        with np.errstate(invalid="ignore"):  # inf - inf: an unknown anchor step on both sides
            travelled = path[np.clip(following, 0, len(path) - 1)] - path[np.maximum(previous, 0)]
        fill &= np.nan_to_num(travelled, nan=np.inf) <= max_step_m * span
    return fill


def fill_gaps(points: np.ndarray, max_gap_frames: int, max_step_m: float | None = None, anchor: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of interior gaps of at most ``max_gap_frames`` frames (and, with
    ``max_step_m``, only slow ones: :func:`gap_mask`).

    Returns the filled tracks ``(frames, joints, 3)`` and the mask of filled samples
    ``(frames, joints)``; other gaps stay NaN.
    """
    present = _present(points)
    fill = gap_mask(present, max_gap_frames, points, max_step_m, anchor)
    previous = _neighbour_index(present, -1)
    following = _neighbour_index(present, 1)
    joints = np.arange(points.shape[1])[None, :]
    frames = np.arange(points.shape[0])[:, None]
    before = points[np.maximum(previous, 0), joints]
    after = points[np.maximum(following, 0), joints]
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = ((frames - previous) / np.maximum(following - previous, 1))[..., None]
    filled = np.where(fill[..., None], before + alpha * (after - before), points)
    return filled, fill


def _bridge_all_gaps(points: np.ndarray) -> np.ndarray:
    """Every missing sample linearly bridged (ends held at the nearest value, joints never
    present at 0): the input a whole-array filter needs."""
    filled, _ = fill_gaps(points, points.shape[0])
    present = _present(filled)
    first = np.argmax(present, axis=0)  # (J,)
    last = points.shape[0] - 1 - np.argmax(present[::-1], axis=0)
    joints = np.arange(points.shape[1])
    frames = np.arange(points.shape[0])[:, None]
    start = filled[first, joints]
    end = filled[last, joints]
    filled = np.where((frames < first)[..., None], start, filled)
    filled = np.where((frames > last)[..., None], end, filled)
    return np.nan_to_num(filled)


def smooth(
    points: np.ndarray,
    fps: float,
    *,
    method: str,
    cutoff_hz: float = 6.0,
    order: int = 4,
    window_frames: int = 9,
    polyorder: int = 3,
) -> np.ndarray:
    """Smoothed tracks ``(frames, joints, 3)``; missing samples stay missing.

    - ``butterworth``: zero-phase (forward-backward) low-pass of ``order`` (even; the
      forward and backward passes each use half) with ``cutoff_hz`` (must be below
      ``fps / 2``), applied to tracks whose gaps are bridged linearly first;
    - ``savgol``: Savitzky-Golay fit of ``polyorder`` over ``window_frames`` (odd);
    - ``none``: the input.
    Takes too short for the filter are returned unchanged.
    """
    if method not in SMOOTHERS:
        raise ValueError(f"unknown smoother {method!r} (known: {', '.join(SMOOTHERS)})")
    present = _present(points)
    frames = points.shape[0]
    if method == "none" or not present.any():
        return points.copy()
    bridged = _bridge_all_gaps(points)
    if method == "butterworth":
        if not 0 < cutoff_hz < fps / 2:
            raise ValueError(f"cutoff_hz must be in (0, fps / 2 = {fps / 2}), got {cutoff_hz}")
        sos = signal.butter(max(order // 2, 1), cutoff_hz, btype="low", fs=fps, output="sos")
        padlen = min(3 * (2 * sos.shape[0] + 1), frames - 1)
        if padlen < 1:
            return points.copy()
        result = signal.sosfiltfilt(sos, bridged, axis=0, padlen=padlen)
    else:
        window = min(window_frames, frames if frames % 2 else frames - 1)
        if window <= polyorder:
            return points.copy()
        result = signal.savgol_filter(bridged, window, polyorder, axis=0, mode="interp")
    return np.where(present[..., None], result, np.nan)


@dataclass(frozen=True)
class CleanTracks:
    """Result of :func:`clean_tracks` for ``(frames, joints)``.

    - ``points (frames, joints, 3)`` metres: outliers removed, short gaps filled, smoothed.
    - ``outliers (frames, joints)`` bool: samples rejected (by any test).
    - ``filled (frames, joints)`` bool: samples interpolated across a short gap.
    """

    points: np.ndarray
    outliers: np.ndarray
    filled: np.ndarray


def clean_tracks(
    points: np.ndarray,
    fps: float,
    *,
    bones=(),
    median_window_frames: int,
    median_scale_factor: float,
    min_deviation_m: float,
    max_speed_m_s: float,
    max_burst_frames: int,
    bone_scale_factor: float,
    bone_min_deviation_ratio: float,
    max_gap_frames: int,
    smoother: str,
    max_gap_speed_m_s: float | None = None,
    gap_anchor: np.ndarray | None = None,
    cutoff_hz: float = 6.0,
    order: int = 4,
    window_frames: int = 9,
    polyorder: int = 3,
) -> CleanTracks:
    """Outlier rejection (running median, velocity, bone lengths), gap filling, smoothing.

    ``points (frames, joints, 3)`` metres; ``bones``: ``(B, 2)`` joint indices into the
    same joints (for the bone-length test; empty: no such test). ``max_gap_speed_m_s``
    and ``gap_anchor (frames, 3)`` limit gap filling to slow motion (:func:`gap_mask`).
    The other keyword arguments are those of :func:`median_outliers`,
    :func:`velocity_outliers`, :func:`bone_length_outliers`, :func:`fill_gaps` and
    :func:`smooth`.
    """
    points = np.asarray(points, dtype=np.float64)
    outliers = velocity_outliers(points, fps, max_speed_m_s=max_speed_m_s, max_burst_frames=max_burst_frames)
    outliers |= median_outliers(
        np.where(outliers[..., None], np.nan, points),
        window_frames=median_window_frames,
        scale_factor=median_scale_factor,
        min_deviation_m=min_deviation_m,
    )
    kept = np.where(outliers[..., None], np.nan, points)
    if len(bones):
        outliers |= bone_length_outliers(kept, bones, scale_factor=bone_scale_factor, min_deviation_ratio=bone_min_deviation_ratio)
        kept = np.where(outliers[..., None], np.nan, points)
    max_step = None if max_gap_speed_m_s is None else max_gap_speed_m_s / fps
    filled_points, filled = fill_gaps(kept, max_gap_frames, max_step, gap_anchor)
    smoothed = smooth(filled_points, fps, method=smoother, cutoff_hz=cutoff_hz, order=order, window_frames=window_frames, polyorder=polyorder)
    return CleanTracks(points=smoothed, outliers=outliers & _present(points), filled=filled)
