"""The rig checked by the people in it: each static camera's extrinsics and time offset.

A take has thousands of confident multi-view correspondences: the person's joints.
:func:`check_rig` uses them to re-estimate every camera against the others and says,
per camera, whether its calibration agrees with the rest (``ok``), is off by a
significant and well determined correction (``offset``), cannot be told
(``not_determined``) or has too few observations (``insufficient``).

Method
------
- **Samples**: (frame, joint) pairs seen confidently by ``min_views`` views with a
  finite triangulated point, at most ``max_samples``, chosen round-robin over
  (joint, 25 cm cell of the point) bins and, inside a bin, in bit-reversed frame order:
  spread over the take, the joints and the space (so the images), deterministic.
- **Leave-one-out adjustment** (the gauge): for a camera ``c``, every other trusted
  camera is fixed (their extrinsics define the world) and a robust bundle adjustment
  (Huber on the pixel distance, ``huber_px``) estimates ``c``'s rotation (a left
  update ``R = exp([w]) R0``), its centre ``C`` (``x_cam = R (X - C)``), optionally its
  time offset ``s`` and a focal scale, and the samples' 3D points. Only samples that
  ``c`` sees enter (the others do not depend on ``c``). The solver is Levenberg-
  Marquardt on the analytic Jacobian, the point blocks eliminated (Schur complement:
  a 3x3 block per point, a reduced system of 6-8 unknowns); :func:`sparse_jacobian`
  assembles the same Jacobian as a ``scipy.sparse`` matrix (tests, ``least_squares``).
  Observations farther than ``outlier_px`` from the start's reprojection (the given
  rig and points; for ``c``, at each frame its interpolation uses) are left out, and
  once more from the first solution's, which is then refined.
- **Time**: camera ``c``'s frame ``f`` shows the scene at reference time ``f + s_c``
  (frames; the reference is the trusted cameras' timeline, ms = frames * 1000 / fps).
  At reference frame ``g`` its observation is its 2D track at ``g - s_c``, linearly
  interpolated; ``d residual / d s_c`` is the track's velocity there. Its residuals
  are whitened by the interpolation's noise, ``sqrt((1 - a)^2 + a^2)`` at fraction
  ``a``: unweighted, averaging two noisy frames pays and the fit drifts ~0.13 frame
  towards half frames. Whole-frame offsets ``k`` in ``[-max_shift_frames,
  max_shift_frames]`` are searched first (median reprojection error of ``c``'s track
  shifted by ``k`` against the points triangulated without ``c``, after an affine map
  of the image that absorbs ``c``'s own extrinsic error), then ``s_c`` is fitted in
  ``[k - 1, k + 1]`` (at an edge of it: ``not_determined``). A camera whose median 2D
  speed (over +-3 frames) is below ``min_speed_px`` has no observable offset: it is
  not estimated (NaN) and said.
- **Uncertainty**: the Gauss-Newton covariance of ``c``'s parameters (the inverse
  Schur complement) times a robust residual variance, ``(1.4826 MAD)^2`` of the
  residual components corrected for the degrees of freedom. Each ``*_sigma`` is the
  1-sigma along the least determined axis (rotation in degrees, centre in mm, time in
  frames). It assumes independent 2D errors: detector errors correlated over frames
  make it optimistic, which the ``min_*`` thresholds cover.
- **Decision** per camera: a component (rotation, centre, time; with the focal, the
  focal scale as the angle it moves a point at the median field angle, against the
  rotation's thresholds) is *significant* above its ``min_*`` threshold and *well
  determined* above ``sigma_factor`` times its sigma. Status ``insufficient`` (fewer than ``min_frames`` frames or 10 observations),
  else ``not_determined`` (a sigma above its ``max_uncertainty_*``, or a significant
  component not well determined), else ``offset`` (a significant, well determined
  component), else ``ok``.
- **Trusted majority** (rule chosen): round 1 checks every camera against all the
  others. One wrong camera among the fixed ones makes the others look wrong too, so
  while a trusted camera is ``offset``, the flagged camera whose own adjustment leaves
  the fixed views agreeing best (the smallest worst-view median error,
  ``reference_px``) leaves the reference and every camera is re-checked against the
  remaining trusted ones (a left-out camera against all of them). The
  left-out cameras must stay a strict minority (``2 * left_out < views``) and at least 3
  cameras must stay trusted (each trusted camera is then checked against 2 fixed ones,
  the fewest that fix the scale); otherwise the rig status is ``no_majority`` (the
  cameras disagree and nothing is applied). With 3 cameras a flagged one is therefore
  ``no_majority``: 2 against 1 cannot say which is wrong.
- **Degenerate cases**, always said in ``reasons``: fewer than 3 cameras or
  ``min_frames`` frames (``insufficient``), a still person (offset unobservable, NaN,
  never applied), near-planar samples (planarity below ``max_planarity``: reported,
  :meth:`RigCheck.apply` names nothing).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse

from triangulation.cameras import Camera, rotation_from_rodrigues
from triangulation.schema import bounds
from triangulation.triangulate import _SYMMETRIC_PAIRS, _solve_3x3, triangulate

_CELL_M = 0.25  # size of the spatial cells that spread the samples [m]
_SPEED_HALF_WINDOW = 3  # 2D speed from the track at f +- 3 frames (noise averaged) [frames]
_MIN_OBSERVATIONS = 10  # a camera with fewer used observations is "insufficient"
_LM_TRIES = 8  # damping increases per iteration before giving up
_TIME_GRID = 21  # time offsets tried over the window [k - 1, k + 1] before the joint fit (0.1 frame apart)
_CONVERGED = 1e-8  # relative cost decrease below which the adjustment stops
# ... or steps below these (rotation rad, centre m, time frames, focal scale): far below any sigma
_STEP_TOLERANCE = [2e-5] * 3 + [1e-5] * 3 + [1e-3, 1e-6]


@dataclass(frozen=True)
class RigCheckSettings:
    """The settings of :func:`check_rig` (configs' ``calibrate_check`` section, minus the stage's own keys)."""

    min_confidence: float = field(metadata=bounds(0.0, 1.0))  # observations below are not used [0-1]
    min_views: int = field(metadata=bounds(2))  # a sample needs this many confident views [views]
    max_samples: int = field(metadata=bounds(1))  # samples (frame, joint) used at most [samples]
    min_frames: int = field(metadata=bounds(1))  # fewer frames with samples: "insufficient" [frames]
    huber_px: float = field(metadata=bounds(0.0, low_open=True))  # robust loss scale [pixels]
    outlier_px: float = field(metadata=bounds(0.0, low_open=True))  # observations farther are left out [pixels]
    estimate_time_offset: bool  # estimate a per-camera (sub-frame) time offset [bool]
    max_shift_frames: int = field(metadata=bounds(0))  # whole-frame offsets searched (0: none) [frames]
    min_speed_px: float = field(metadata=bounds(0.0))  # slower: time offset unobservable [pixels/frame]
    estimate_focal: bool  # also re-estimate each camera's focal length [bool]
    max_iterations: int = field(metadata=bounds(1))  # Levenberg-Marquardt iterations at most [iterations]
    min_rotation_deg: float = field(metadata=bounds(0.0))  # significant rotation [degrees]
    min_translation_mm: float = field(metadata=bounds(0.0))  # significant centre displacement [mm]
    min_time_offset_ms: float = field(metadata=bounds(0.0))  # significant time offset [ms]
    sigma_factor: float = field(metadata=bounds(0.0))  # well determined: above this many sigmas [ratio]
    max_uncertainty_rotation_deg: float = field(metadata=bounds(0.0, low_open=True))  # [degrees]
    max_uncertainty_translation_mm: float = field(metadata=bounds(0.0, low_open=True))  # [mm]
    max_uncertainty_time_ms: float = field(metadata=bounds(0.0, low_open=True))  # [ms]
    max_planarity: float = field(metadata=bounds(0.0, 1.0))  # below: near-planar samples [ratio]


def corrected_camera(camera: Camera, R: np.ndarray, t: np.ndarray, focal_scale: float = 1.0) -> Camera:
    """``camera`` with world-to-camera ``R (3, 3)``, ``t (3,)`` (metres) and its focal
    lengths times ``focal_scale``."""
    model = camera.model
    if focal_scale != 1.0:
        model = dataclasses.replace(model, fx=model.fx * focal_scale, fy=model.fy * focal_scale)
    return dataclasses.replace(camera, model=model, R=np.asarray(R, dtype=np.float64), t=np.asarray(t, dtype=np.float64))


@dataclass(frozen=True)
class CameraCheck:
    """One camera's check: the correction, its uncertainty and the decision (see the module)."""

    name: str
    status: str  # "ok" | "offset" | "not_determined" | "insufficient"
    rotation_deg: float  # angle of R_new R_old^T [degrees]
    rotation_sigma_deg: float  # 1-sigma, least determined axis [degrees]
    translation_mm: float  # |c_new - c_old| of the camera centres [mm]
    translation_sigma_mm: float  # [mm]
    time_offset_frames: float  # total offset s (whole + sub-frame), NaN when not estimated [frames]
    time_offset_sigma_frames: float  # [frames]
    whole_frame_offset: int  # the whole-frame search's result [frames]
    time_offset_observable: bool
    focal_scale: float  # new focal / old, 1.0 when not estimated
    reprojection_px_before: float  # median error, given camera and timing, against the adjustment's points [px]
    reprojection_px_after: float  # median error, estimated camera and offset [px]
    observations: int  # the camera's observations used
    R: np.ndarray  # estimated world-to-camera rotation (3, 3)
    t: np.ndarray  # estimated world-to-camera translation (3,) [m]
    reasons: tuple[str, ...]
    focal_scale_sigma: float = float("nan")  # [ratio]
    time_offset_applies: bool = False  # the time offset is significant and well determined
    score: float = 0.0  # largest significant, well determined correction / its threshold (0: none)
    reference_px: float = float("nan")  # the worst fixed view's median error in this camera's adjustment [px]

    def camera(self, original: Camera) -> Camera:
        """``original`` with the estimated ``R``, ``t`` (and focal length, when estimated)."""
        if original.name != self.name:
            raise ValueError(f"check of camera '{self.name}' applied to camera '{original.name}'")
        return corrected_camera(original, self.R, self.t, self.focal_scale if np.isfinite(self.focal_scale) else 1.0)


@dataclass(frozen=True)
class RigCheck:
    """The rig's check: one :class:`CameraCheck` per camera, in the cameras' order."""

    cameras: tuple[CameraCheck, ...]
    samples: int  # samples selected
    frames: int  # frames with selected samples
    trusted: tuple[str, ...]  # the cameras whose rig is the gauge (empty unless "checked")
    planarity: float  # smallest / largest singular value of the samples' spread [ratio]
    status: str  # "checked" | "insufficient" | "no_majority"
    reasons: tuple[str, ...]
    planar: bool = False  # planarity below max_planarity: corrections are not applied

    def apply(self) -> tuple[str, ...]:
        """The cameras whose correction would be applied ("offset", rig "checked", not planar)."""
        if self.status != "checked" or self.planar:
            return ()
        return tuple(check.name for check in self.cameras if check.status == "offset")


def retime_keypoints(keypoints: np.ndarray, offset_frames: float) -> np.ndarray:
    """One view's keypoints ``(F, J, 3)`` (x, y px, confidence) on the reference timeline.

    The camera's frame ``f`` shows reference time ``f + offset_frames``, so reference
    frame ``g`` gets its track at ``g - offset_frames``, linearly interpolated; the
    confidence is the smaller neighbour's; NaN where a neighbour is missing or outside
    the take (at a whole offset the one frame is taken).
    """
    keypoints = np.asarray(keypoints)
    num_frames = keypoints.shape[0]
    source = np.arange(num_frames) - float(offset_frames)
    first = np.floor(source).astype(np.int64)
    fraction = (source - first)[:, None, None]
    second = np.where(fraction[:, 0, 0] > 0, first + 1, first)
    inside = (first >= 0) & (second < num_frames)
    a = keypoints[np.clip(first, 0, num_frames - 1)].astype(np.float64)
    b = keypoints[np.clip(second, 0, num_frames - 1)].astype(np.float64)
    out = np.empty(a.shape)
    out[..., :2] = (1.0 - fraction) * a[..., :2] + fraction * b[..., :2]
    out[..., 2] = np.minimum(a[..., 2], b[..., 2])
    out[~inside] = np.nan
    out[np.isnan(out).any(axis=-1)] = np.nan
    return out.astype(np.result_type(keypoints.dtype, np.float32))


# --------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------


def _bit_reverse(values: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """``values`` (int) with their lowest ``bits`` bits reversed (elementwise)."""
    out = np.zeros_like(values)
    for bit in range(int(bits.max(initial=0))):
        out |= ((values >> bit) & 1) << np.maximum(bits - 1 - bit, 0)
    return out


def _select_samples(keypoints: np.ndarray, points: np.ndarray, settings: RigCheckSettings) -> np.ndarray:
    """Flat (frame * J + joint) indices ``(N,)`` of the samples, sorted (see the module)."""
    confident = _confident(keypoints, settings.min_confidence)
    usable = (confident.sum(axis=0) >= settings.min_views) & np.isfinite(points).all(axis=-1)
    candidates = np.flatnonzero(usable)
    if candidates.size <= settings.max_samples:
        return candidates
    joints = candidates % points.shape[1]
    cells = np.floor(points.reshape(-1, 3)[candidates] / _CELL_M).astype(np.int64)
    _, bins = np.unique(np.column_stack([joints, cells]), axis=0, return_inverse=True)
    bins = bins.reshape(-1)
    order = np.lexsort((candidates, bins))  # by bin, then frame
    counts = np.bincount(bins)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size) - starts[bins[order]]
    bits = np.ceil(np.log2(np.maximum(counts[bins], 1))).astype(np.int64)
    spread = _bit_reverse(rank, bits)  # a permutation of each bin, spread over its frames
    order = np.lexsort((spread, bins))
    round_ = np.empty_like(order)
    round_[order] = np.arange(order.size) - starts[bins[order]]
    chosen = np.lexsort((bins, spread / np.exp2(bits), round_))[: settings.max_samples]
    return np.sort(candidates[chosen])


def _confident(keypoints: np.ndarray, min_confidence: float) -> np.ndarray:
    """``(..., )`` bool: x, y, confidence finite and confidence >= ``min_confidence``."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(keypoints).all(axis=-1) & (keypoints[..., 2] >= min_confidence)


def _planarity(points: np.ndarray) -> float:
    """Smallest / largest singular value of the centred ``points (N, 3)``."""
    if len(points) < 3:
        return 0.0
    singular = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
    return float(singular[2] / singular[0]) if singular[0] > 0 else 0.0


# --------------------------------------------------------------------------------------
# The leave-one-out problem: residuals, analytic Jacobian, Schur-complement LM
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """Camera ``camera`` free against fixed ``references`` over ``n`` samples.

    ``window (n, 3, 2)``: its track at frames ``g - k - 1, g - k, g - k + 1`` [px] of
    each sample's reference frame ``g`` (all three the frame ``g - k`` when the time is
    not estimated); ``ref_pixels (R, n, 2)`` and ``ref_used (R, n)``: the fixed views'
    observations; ``k``: the whole-frame offset.
    """

    camera: Camera
    references: list[Camera]
    window: np.ndarray
    ref_pixels: np.ndarray
    ref_used: np.ndarray
    k: int
    with_time: bool
    with_focal: bool

    @property
    def num_params(self) -> int:
        return 6 + self.with_time + self.with_focal


def _skew(v: np.ndarray) -> np.ndarray:
    """``(..., 3)`` -> cross-product matrices ``(..., 3, 3)``."""
    zero = np.zeros(v.shape[:-1])
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)


def _left_jacobian(w: np.ndarray) -> np.ndarray:
    """SO(3) left Jacobian ``(3, 3)``: ``exp(w + dw) = exp(J_l(w) dw) exp(w)`` to first order."""
    angle = np.linalg.norm(w)
    W = _skew(w)
    if angle < 1e-8:
        return np.eye(3) + 0.5 * W
    return np.eye(3) + (1 - np.cos(angle)) / angle**2 * W + (angle - np.sin(angle)) / angle**3 * (W @ W)


def _start_params(problem: _Problem) -> np.ndarray:
    """``(P,)``: no rotation update, the given centre, offset ``k``, focal scale 1."""
    extra = ([float(problem.k)] if problem.with_time else []) + ([1.0] if problem.with_focal else [])
    return np.concatenate([np.zeros(3), problem.camera.center, extra])


def _unpack(problem: _Problem, params: np.ndarray):
    """``w (3,), C (3,) m, s frames, focal scale``."""
    s = params[6] if problem.with_time else float(problem.k)
    focal = params[6 + problem.with_time] if problem.with_focal else 1.0
    return params[:3], params[3:6], s, focal


def _interpolation(problem: _Problem, s: float):
    """The camera's track at ``g - s``: the neighbours ``(n, 2)`` px and the fraction ``(n, 1)``
    between them (``s`` within ``[k - 1, k + 1]``, the window)."""
    position = np.clip(np.full(len(problem.window), problem.k + 1.0 - s), 0.0, 2.0)  # in the window
    segment = np.minimum(np.floor(position), 1.0).astype(np.int64)
    rows = np.arange(len(segment))
    return problem.window[rows, segment], problem.window[rows, segment + 1], (position - segment)[:, None]


def _evaluate(problem: _Problem, params: np.ndarray, points: np.ndarray, jacobian: bool):
    """Residuals (projection - observation, px) and, with ``jacobian``, their derivatives.

    The camera's residuals are whitened: divided by the interpolated track's relative
    noise, ``sqrt((1 - a)^2 + a^2)`` at fraction ``a`` (averaging two noisy frames halves
    the variance; unweighted, the fit would drift to half frames).

    Returns ``r_cam (n, 2)``, ``r_ref (R, n, 2)`` and, or None: ``J_cam (n, 2, P)``
    (camera parameters), ``Jx_cam (n, 2, 3)``, ``Jx_ref (R, n, 2, 3)`` (the points).
    """
    w, center, s, focal = _unpack(problem, params)
    rotation = rotation_from_rodrigues(w) @ problem.camera.R
    in_camera = (points - center) @ rotation.T
    model = problem.camera.model
    principal = np.array([model.cx, model.cy])
    projected, d_projected = model.project_with_jacobian(in_camera)
    before, after, fraction = _interpolation(problem, s)
    variance = (1 - fraction) ** 2 + fraction**2  # of the interpolated track, in units of the 2D noise's
    whitening = 1.0 / np.sqrt(variance)
    r_cam = (principal + focal * (projected - principal) - ((1 - fraction) * before + fraction * after)) * whitening
    r_ref = np.empty(problem.ref_pixels.shape)
    Jx_ref = np.empty(problem.ref_pixels.shape + (3,)) if jacobian else None
    for v, reference in enumerate(problem.references):
        pixels, d_pixels = reference.model.project_with_jacobian(reference.world_to_camera(points))
        r_ref[v] = np.where(problem.ref_used[v][:, None], pixels - problem.ref_pixels[v], 0.0)
        if jacobian:
            Jx_ref[v] = (d_pixels @ reference.R) * problem.ref_used[v][:, None, None]
    if not jacobian:
        return r_cam, r_ref, None, None, None
    d_camera = (focal * whitening)[..., None] * d_projected  # (n, 2, 3): d r_cam / d camera-frame point
    Jx_cam = d_camera @ rotation
    J_cam = np.empty((len(points), 2, problem.num_params))
    J_cam[..., :3] = -d_camera @ _skew(in_camera) @ _left_jacobian(w)
    J_cam[..., 3:6] = -Jx_cam
    if problem.with_time:
        # d fraction / d s = -1: the track's velocity, and the whitening's derivative.
        J_cam[..., 6] = (after - before) * whitening + r_cam * (0.5 * (4 * fraction - 2) / variance)
    if problem.with_focal:
        J_cam[..., 6 + problem.with_time] = (projected - principal) * whitening
    return r_cam, r_ref, J_cam, Jx_cam, Jx_ref


def sparse_jacobian(problem: _Problem, params: np.ndarray, points: np.ndarray):
    """The stacked residual vector and its Jacobian as ``scipy.sparse.csr_matrix``.

    Unknowns: ``params (P,)`` then ``points (n, 3)`` flattened; residual rows: the
    camera's observations (2 each), then each used fixed-view observation (2 each).
    """
    r_cam, r_ref, J_cam, Jx_cam, Jx_ref = _evaluate(problem, params, points, jacobian=True)
    n, P = len(points), problem.num_params
    view, sample = np.nonzero(problem.ref_used)
    residual = np.concatenate([r_cam.reshape(-1), r_ref[view, sample].reshape(-1)])
    point_columns = P + 3 * np.arange(n)[:, None] + np.arange(3)  # (n, 3)
    cam_rows = np.arange(2 * n).reshape(n, 2)
    cam_values = np.concatenate([J_cam, Jx_cam], axis=-1)  # (n, 2, P + 3)
    cam_cols = np.concatenate([np.broadcast_to(np.arange(P), (n, P)), point_columns], axis=1)
    ref_rows = 2 * n + np.arange(2 * len(view)).reshape(-1, 2)
    rows = np.concatenate([np.repeat(cam_rows[..., None], P + 3, -1).reshape(-1), np.repeat(ref_rows[..., None], 3, -1).reshape(-1)])
    cols = np.concatenate(
        [np.broadcast_to(cam_cols[:, None], (n, 2, P + 3)).reshape(-1), np.broadcast_to(point_columns[sample][:, None], (len(view), 2, 3)).reshape(-1)]
    )
    values = np.concatenate([cam_values.reshape(-1), Jx_ref[view, sample].reshape(-1)])
    matrix = scipy.sparse.csr_matrix((values, (rows, cols)), shape=(residual.size, P + 3 * n))
    return residual, matrix


def _huber(norms: np.ndarray, scale: float):
    """Huber cost (0.5 e^2 inside ``scale``) and IRLS weights of residual norms."""
    inside = norms <= scale
    cost = np.where(inside, 0.5 * norms**2, scale * norms - 0.5 * scale**2)
    return cost, np.where(inside, 1.0, scale / np.maximum(norms, 1e-300))


def _cost(problem: _Problem, params, points, huber_px: float) -> float:
    r_cam, r_ref, *_ = _evaluate(problem, params, points, jacobian=False)
    cam_cost, _ = _huber(np.linalg.norm(r_cam, axis=-1), huber_px)
    ref_cost, _ = _huber(np.linalg.norm(r_ref, axis=-1), huber_px)
    return float(cam_cost.sum() + (ref_cost * problem.ref_used).sum())


def _normal_equations(problem: _Problem, params, points, huber_px: float):
    """The Huber-weighted normal equations' blocks: ``H_cc (P, P)``, ``H_cp (n, P, 3)``,
    ``H_pp (n, 3, 3)``, gradients ``g_c (P,)``, ``g_p (n, 3)``; and the residuals."""
    r_cam, r_ref, J_cam, Jx_cam, Jx_ref = _evaluate(problem, params, points, jacobian=True)
    _, w_cam = _huber(np.linalg.norm(r_cam, axis=-1), huber_px)
    _, w_ref = _huber(np.linalg.norm(r_ref, axis=-1), huber_px)
    w_ref = w_ref * problem.ref_used
    weighted_cam = np.swapaxes(J_cam * w_cam[:, None, None], 1, 2)  # (n, P, 2)
    weighted_x = np.swapaxes(Jx_cam * w_cam[:, None, None], 1, 2)  # (n, 3, 2)
    weighted_ref = np.swapaxes(Jx_ref * w_ref[..., None, None], 2, 3)  # (R, n, 3, 2)
    H_cc = weighted_cam.transpose(1, 0, 2).reshape(problem.num_params, -1) @ J_cam.reshape(-1, problem.num_params)
    H_cp = weighted_cam @ Jx_cam
    H_pp = weighted_x @ Jx_cam + (weighted_ref @ Jx_ref).sum(axis=0)
    g_c = (weighted_cam @ r_cam[..., None]).sum(axis=0)[:, 0]
    g_p = (weighted_x @ r_cam[..., None])[..., 0] + (weighted_ref @ r_ref[..., None]).sum(axis=0)[..., 0]
    return H_cc, H_cp, H_pp, g_c, g_p, r_cam, r_ref


def _point_blocks(H_pp: np.ndarray, damping: float = 0.0) -> np.ndarray:
    """The point blocks ``(n, 3, 3)`` as ``(n, 6)`` (xx xy xz yy yz zz), diagonals times ``1 + damping``."""
    return np.stack([H_pp[:, i, j] * (1 + damping * (i == j)) for i, j in _SYMMETRIC_PAIRS], axis=-1)


def _reduced_system(H_cc, H_cp, H_pp, g_c, g_p, damping: float):
    """Schur complement of the point blocks (Marquardt damping on the diagonals):
    ``S (P, P)``, ``b (P,)`` and the damped point blocks ``(n, 6)`` (xx xy xz yy yz zz)."""
    H_cc = H_cc + damping * np.diag(np.diag(H_cc) + 1e-12 * np.abs(np.diag(H_cc)).max())
    blocks = _point_blocks(H_pp, damping)
    coupling = _solve_3x3(blocks[:, None], H_cp)  # (n, P, 3): H_cp H_pp^-1 (H_pp symmetric)
    S = H_cc - coupling.transpose(1, 0, 2).reshape(len(H_cc), -1) @ H_cp.transpose(0, 2, 1).reshape(-1, len(H_cc))
    b = g_c - (coupling @ g_p[..., None]).sum(axis=0)[:, 0]
    return S, b, blocks


def _solve(problem: _Problem, params: np.ndarray, points: np.ndarray, settings: RigCheckSettings):
    """Levenberg-Marquardt from ``params``, ``points``: the solution and ``S (P, P)`` at it."""
    huber = settings.huber_px
    cost = _cost(problem, params, points, huber)
    damping = 1e-4
    low, high = problem.k - 1.0, problem.k + 1.0
    tolerance = np.array(_STEP_TOLERANCE[:6] + [_STEP_TOLERANCE[6]] * problem.with_time + [_STEP_TOLERANCE[7]] * problem.with_focal)
    # The interpolated track is piecewise linear in s: at a whole frame its derivative
    # jumps (the velocities of the two frame pairs differ by their noise), so a step may
    # fail in s alone; the iteration is then tried with s held, the pose still moving.
    # And s waits for the pose: from a pose degrees off, the first steps' gradient in s is
    # large, s runs to the edge of its window and the whitened cost's bumps between whole
    # frames keep it there (seen on the real capture: every camera at +1 frame, a worse
    # minimum than at 0). So the pose converges first with s held, then both move.
    # Between the two phases s starts from the best of a grid over its window, the pose
    # and points as they are (the kink at whole frames would hold an s started on one).
    phases = ((True,), (False, True)) if problem.with_time else ((False,),)
    for phase, holds in enumerate(phases):
        if phase == 1:
            best = (cost, params, points)
            for value in np.linspace(low, high, _TIME_GRID):
                trial = params.copy()
                trial[6] = value
                *_, H_pp, _, g_p, _, _ = _normal_equations(problem, trial, points, huber)
                moved = points - _solve_3x3(_point_blocks(H_pp), g_p)  # the points' Gauss-Newton step at this s
                trial_cost = _cost(problem, trial, moved, huber)
                if trial_cost < best[0]:
                    best = (trial_cost, trial, moved)
            cost, params, points = best
        for _ in range(settings.max_iterations):
            H_cc, H_cp, H_pp, g_c, g_p, *_ = _normal_equations(problem, params, points, huber)
            improved = accepted = False
            start_damping = damping
            for hold_time in holds:
                free = np.ones(len(g_c), dtype=bool)
                if hold_time:
                    free[6] = False
                damping = start_damping
                for _ in range(_LM_TRIES):
                    S, b, blocks = _reduced_system(H_cc, H_cp, H_pp, g_c, g_p, damping)
                    step = np.zeros(len(b))
                    try:
                        step[free] = -np.linalg.solve(S[np.ix_(free, free)], b[free])
                    except np.linalg.LinAlgError:
                        damping *= 4.0
                        continue
                    point_step = -_solve_3x3(blocks, g_p + step @ H_cp)
                    trial = params + step
                    if problem.with_time:
                        trial[6] = np.clip(trial[6], low, high)
                    trial_cost = _cost(problem, trial, points + point_step, huber)
                    if trial_cost < cost:
                        improved = np.any(np.abs(trial - params) > tolerance) and cost - trial_cost > _CONVERGED * cost
                        params, points, cost = trial, points + point_step, trial_cost
                        damping = max(damping / 3.0, 1e-9)
                        accepted = True
                        break
                    damping *= 4.0
                if accepted:
                    break
            if not improved:
                break
    H_cc, H_cp, H_pp, g_c, g_p, r_cam, r_ref = _normal_equations(problem, params, points, huber)
    S, *_ = _reduced_system(H_cc, H_cp, H_pp, g_c, g_p, 0.0)
    return params, points, S, r_cam, r_ref


# --------------------------------------------------------------------------------------
# One camera's leave-one-out check
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Track:
    """One view's 2D track ``(F, J, 3)`` and where it is confident ``(F, J)``."""

    keypoints: np.ndarray
    confident: np.ndarray

    def window(self, frames: np.ndarray, joints: np.ndarray, k: int, with_time: bool):
        """The track at ``frames - k + (-1, 0, 1)`` ``(N, 3, 2)`` and where all are usable ``(N,)``."""
        steps = np.array([-1, 0, 1]) if with_time else np.zeros(3, dtype=np.int64)
        at = frames[:, None] - k + steps
        inside = ((at >= 0) & (at < len(self.keypoints))).all(axis=1)
        at = np.clip(at, 0, len(self.keypoints) - 1)
        usable = inside & self.confident[at, joints[:, None]].all(axis=1)
        return self.keypoints[at, joints[:, None], :2], usable

    def median_speed(self, frames: np.ndarray, joints: np.ndarray) -> float:
        """Median 2D speed ``|x(f + 3) - x(f - 3)| / 6`` over the usable samples [px/frame]."""
        h = _SPEED_HALF_WINDOW
        ahead, behind = np.clip(frames + h, 0, len(self.keypoints) - 1), np.clip(frames - h, 0, len(self.keypoints) - 1)
        usable = (frames + h < len(self.keypoints)) & (frames >= h) & self.confident[ahead, joints] & self.confident[behind, joints]
        if not np.any(usable):
            return 0.0
        motion = self.keypoints[ahead, joints, :2] - self.keypoints[behind, joints, :2]
        return float(np.median(np.linalg.norm(motion[usable], axis=-1)) / (2 * h))


@dataclass(frozen=True)
class _Loo:
    """A leave-one-out result: the solution, its covariance and the context of the decision."""

    params: np.ndarray
    covariance: np.ndarray | None  # of the camera's parameters, None: not adjusted
    problem: _Problem | None  # None: too few observations
    observations: int
    before_px: float = np.nan
    after_px: float = np.nan
    speed: float = np.nan  # median 2D speed [px/frame]
    observable: bool = False  # the time offset is estimated
    reasons: tuple[str, ...] = ()
    reference_px: float = np.inf  # the largest median error of a fixed view at the solution [px]
    field_angle: float = np.nan  # median angle of the observed points from the optical axis [rad]


def _whole_frame_offset(camera, references, ref_keypoints, track: _Track, frames, joints, settings) -> int:
    """The shift ``k`` whose track ``x(g - k)`` best fits the points triangulated without the camera.

    The score is the median reprojection error left after an affine map of the image
    (least squares, refitted without the errors above 3 medians): the camera's own
    extrinsic error moves the image nearly affinely and is not taken for a time shift.
    """
    shifts = np.arange(-settings.max_shift_frames, settings.max_shift_frames + 1)
    shifts = shifts[np.argsort(np.abs(shifts), kind="stable")]  # ties: the smallest shift
    observed = ref_keypoints[:, frames, joints][:, :, None]  # (R, N, 1, 3)
    points = triangulate(references, observed, min_confidence=settings.min_confidence, threshold_px=settings.outlier_px).points[:, 0]
    projected = camera.project(points)
    finite = np.isfinite(projected).all(axis=-1)
    if finite.sum() < _MIN_OBSERVATIONS:
        return 0
    centre, spread = projected[finite].mean(axis=0), projected[finite].std(axis=0) + 1e-9
    scores = []
    for k in shifts:  # a few shifts, each vectorised over the samples
        pixels, usable = track.window(frames, joints, int(k), with_time=False)
        usable &= finite
        if usable.sum() < _MIN_OBSERVATIONS:
            scores.append(np.inf)
            continue
        design = np.column_stack([(projected[usable] - centre) / spread, np.ones(usable.sum())])
        residual = pixels[usable, 1] - projected[usable]
        errors = np.linalg.norm(residual, axis=-1)
        for _ in range(2):
            fit = errors <= 3 * np.median(errors)
            affine = np.linalg.lstsq(design[fit], residual[fit], rcond=None)[0]
            errors = np.linalg.norm(residual - design @ affine, axis=-1)
        scores.append(np.median(errors))
    return int(shifts[int(np.argmin(scores))]) if np.isfinite(np.min(scores)) else 0


def _gate(problem: _Problem, params, points, outlier_px: float, keep: np.ndarray):
    """The problem restricted to the samples ``keep`` whose observations lie within
    ``outlier_px`` at ``params``, ``points`` (the camera's at each frame of its window);
    and the kept samples' indices."""
    r_cam, r_ref, *_ = _evaluate(problem, params, points, jacobian=False)
    ref_used = problem.ref_used & (np.linalg.norm(r_ref, axis=-1) <= outlier_px)
    keep = keep & ref_used.any(axis=0)
    # Each frame of the camera's window (an outlier there would enter the interpolation).
    for shift in (-1.0, 0.0, 1.0) if problem.with_time else (0.0,):
        at_frame = params.copy()
        at_frame[6 : 6 + problem.with_time] = problem.k + shift
        r_cam, *_ = _evaluate(problem, at_frame, points, jacobian=False)
        keep &= np.linalg.norm(r_cam, axis=-1) <= outlier_px
    index = np.flatnonzero(keep)
    gated = dataclasses.replace(problem, window=problem.window[index], ref_pixels=problem.ref_pixels[:, index], ref_used=ref_used[:, index])
    return gated, index


def _check_camera(v: int, refs: list[int], cameras, keypoints, points, frames, joints, fps, settings) -> _Loo:
    """Camera ``v`` adjusted against the fixed cameras ``refs`` on the samples ``(frames, joints)``."""
    camera, track = cameras[v], _Track(keypoints[v], _confident(keypoints[v], settings.min_confidence))
    ref_confident = _confident(keypoints[refs][:, frames, joints], settings.min_confidence)  # (R, N)
    speed = track.median_speed(frames, joints)
    observable = settings.estimate_time_offset and speed >= settings.min_speed_px
    reasons = []
    if settings.estimate_time_offset and not observable:
        reasons.append(f"time offset unobservable: median speed {speed:.2f} px/frame < {settings.min_speed_px:g}")
    k = 0
    if observable and settings.max_shift_frames > 0:
        k = _whole_frame_offset(camera, [cameras[r] for r in refs], keypoints[refs], track, frames, joints, settings)
    window, usable = track.window(frames, joints, k, with_time=observable)
    full = _Problem(
        camera=camera,
        references=[cameras[r] for r in refs],
        window=window.astype(np.float64),
        ref_pixels=keypoints[refs][:, frames, joints, :2].astype(np.float64),
        ref_used=ref_confident,
        k=k,
        with_time=observable,
        with_focal=settings.estimate_focal,
    )
    start = _start_params(full)
    all_points = points[frames, joints].astype(np.float64)
    problem, index = _gate(full, start, all_points, settings.outlier_px, usable)
    params, solved = start, all_points[index]
    if len(index) >= _MIN_OBSERVATIONS:
        params, solved, *_ = _solve(problem, start, solved, settings)
        all_points = all_points.copy()
        all_points[index] = solved
        problem, index = _gate(full, params, all_points, settings.outlier_px, usable)  # again at the solution
    used_frames = len(np.unique(frames[index]))
    if len(index) < _MIN_OBSERVATIONS or used_frames < settings.min_frames:
        reasons.append(f"{len(index)} observations in {used_frames} frames (at least {_MIN_OBSERVATIONS} in {settings.min_frames} needed)")
        return _Loo(start, None, None, len(index), speed=speed, observable=observable, reasons=tuple(reasons))
    params, solved, S, r_cam, r_ref = _solve(problem, params, all_points[index], settings)
    residuals = np.concatenate([r_cam.reshape(-1), r_ref[problem.ref_used].reshape(-1)])
    dof = residuals.size - problem.num_params - solved.size
    variance = (1.4826 * np.median(np.abs(residuals))) ** 2 * residuals.size / max(dof, 1)
    try:
        covariance = variance * np.linalg.inv(S)
    except np.linalg.LinAlgError:
        covariance = np.full(S.shape, np.inf)
    raw = keypoints[v][frames[index], joints[index]]
    raw_ok = track.confident[frames[index], joints[index]]
    before = np.linalg.norm(camera.project(solved) - raw[:, :2], axis=-1)[raw_ok]
    fraction = _interpolation(problem, _unpack(problem, params)[2])[2][:, 0]
    after = np.linalg.norm(r_cam, axis=-1) * np.sqrt((1 - fraction) ** 2 + fraction**2)  # pixels, not whitened
    norms = np.linalg.norm(r_ref, axis=-1)
    reference_px = max(float(np.median(norm[used])) for norm, used in zip(norms, problem.ref_used) if used.any())
    w, center, *_ = _unpack(problem, params)
    in_camera = (solved - center) @ (rotation_from_rodrigues(w) @ camera.R).T
    return _Loo(
        params, covariance, problem, len(index), float(np.median(before)) if before.size else np.nan, float(np.median(after)), speed, observable,
        tuple(reasons), reference_px, float(np.median(np.arctan2(np.linalg.norm(in_camera[:, :2], axis=-1), in_camera[:, 2]))),
    )  # fmt: skip


def _worst_sigma(covariance: np.ndarray) -> float:
    """1-sigma along the least determined axis of a covariance block."""
    if not np.all(np.isfinite(covariance)):
        return np.inf
    return float(np.sqrt(max(np.linalg.eigvalsh(0.5 * (covariance + covariance.T)).max(), 0.0)))


def _camera_check(camera: Camera, loo: _Loo, fps: float, settings: RigCheckSettings) -> CameraCheck:
    """The decision on one camera from its leave-one-out result (see the module)."""
    reasons = list(loo.reasons)
    nan = float("nan")
    common = dict(name=camera.name, observations=loo.observations, time_offset_observable=bool(loo.observable))
    if loo.problem is None:
        return CameraCheck(
            status="insufficient", rotation_deg=nan, rotation_sigma_deg=nan, translation_mm=nan, translation_sigma_mm=nan,
            time_offset_frames=nan, time_offset_sigma_frames=nan, whole_frame_offset=0, focal_scale=1.0,
            reprojection_px_before=nan, reprojection_px_after=nan, R=camera.R, t=camera.t, reasons=tuple(reasons), **common,
        )  # fmt: skip
    problem = loo.problem
    w, center, s, focal = _unpack(problem, loo.params)
    R = rotation_from_rodrigues(w) @ camera.R
    cov = loo.covariance
    rotation = (np.degrees(np.linalg.norm(w)), np.degrees(_worst_sigma(cov[:3, :3])))
    translation = (1000 * np.linalg.norm(center - camera.center), 1000 * _worst_sigma(cov[3:6, 3:6]))
    time = (float(s), float(np.sqrt(cov[6, 6]))) if problem.with_time else (nan, nan)
    focal_sigma = float(np.sqrt(cov[-1, -1])) if problem.with_focal else nan
    ms = 1000.0 / fps
    components = [
        ("rotation", rotation[0], rotation[1], settings.min_rotation_deg, settings.max_uncertainty_rotation_deg, "deg"),
        ("centre", translation[0], translation[1], settings.min_translation_mm, settings.max_uncertainty_translation_mm, "mm"),
    ]
    if problem.with_focal:  # a focal scale moves a point at field angle theta by about theta |scale - 1|
        angle, unit = np.degrees(loo.field_angle), "deg at the median field angle"
        components.append(("focal", angle * abs(focal - 1), angle * focal_sigma, settings.min_rotation_deg, settings.max_uncertainty_rotation_deg, unit))
    if problem.with_time:
        components.append(("time offset", abs(time[0]) * ms, time[1] * ms, settings.min_time_offset_ms, settings.max_uncertainty_time_ms, "ms"))
    undetermined, scores, time_applies = False, [], False
    for label, value, sigma, minimum, max_sigma, unit in components:
        if not sigma <= max_sigma:
            undetermined = True
            reasons.append(f"{label} not determined: sigma {sigma:.3g} {unit} > {max_sigma:g}")
        elif value > minimum and value > settings.sigma_factor * sigma:
            scores.append(value / max(minimum, 1e-12))
            reasons.append(f"{label} {value:.3g} {unit} (sigma {sigma:.2g}) > {minimum:g}")
            time_applies |= label == "time offset"
        elif value > minimum:
            undetermined = True
            reasons.append(f"{label} {value:.3g} {unit} > {minimum:g} but within {settings.sigma_factor:g} sigma ({sigma:.2g})")
    if problem.with_time and abs(time[0] - problem.k) > 0.999:
        undetermined = True
        reasons.append(f"time offset {time[0]:.3g} frames at the edge of its window [{problem.k - 1}, {problem.k + 1}]: beyond the search")
    status = "not_determined" if undetermined else "offset" if scores else "ok"
    return CameraCheck(
        status=status, rotation_deg=float(rotation[0]), rotation_sigma_deg=float(rotation[1]),
        translation_mm=float(translation[0]), translation_sigma_mm=float(translation[1]),
        time_offset_frames=time[0], time_offset_sigma_frames=time[1], whole_frame_offset=problem.k,
        focal_scale=float(focal), reprojection_px_before=loo.before_px, reprojection_px_after=loo.after_px,
        R=R, t=-R @ center, reasons=tuple(reasons), focal_scale_sigma=focal_sigma,
        time_offset_applies=time_applies and status == "offset", score=max(scores, default=0.0),
        reference_px=loo.reference_px, **common,
    )  # fmt: skip


def _disagreement_without(culprit: int, trusted: list[int], cache: dict, cameras, keypoints, points, frames, joints, fps, settings) -> tuple[int, float]:
    """How much the trusted cameras other than ``culprit`` still disagree once it leaves the
    reference: each is checked against the rest of them; (cameras with a significant, well
    determined correction, the sum of their scores). The culprit is the suspect whose
    removal leaves the least disagreement (one wrong camera among the fixed ones makes the
    others look wrong, sometimes more than itself)."""
    rest = [v for v in trusted if v != culprit]
    scores = []
    for v in rest:
        refs = tuple(r for r in rest if r != v)
        if (v, refs) not in cache:
            cache[v, refs] = _check_camera(v, list(refs), cameras, keypoints, points, frames, joints, fps, settings)
        scores.append(_camera_check(cameras[v], cache[v, refs], fps, settings).score)
    return sum(score > 0 for score in scores), float(sum(scores))


def check_rig(cameras: list[Camera], keypoints: np.ndarray, points: np.ndarray, fps: float, settings: RigCheckSettings) -> RigCheck:
    """Check (and estimate corrections of) every camera of a static rig from the people.

    ``keypoints (V, F, J, 3)``: x, y pixels and confidence (NaN missing), one view per
    camera; ``points (F, J, 3)`` metres: the triangulation on the given rig (NaN
    missing), used to start and to select the samples; ``fps``: frames per second
    (for ms). See the module for the method, the rule for the trusted majority and
    the degenerate cases.
    """
    keypoints, points = np.asarray(keypoints), np.asarray(points, dtype=np.float64)
    V = len(cameras)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if keypoints.ndim != 4 or keypoints.shape[0] != V or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must have shape ({V}, frames, joints, 3), got {keypoints.shape}")
    if points.shape != keypoints.shape[1:3] + (3,):
        raise ValueError(f"points must have shape {keypoints.shape[1:3] + (3,)}, got {points.shape}")
    selected = _select_samples(keypoints, points, settings)
    frames, joints = np.divmod(selected, points.shape[1])
    num_frames = len(np.unique(frames))
    planarity = _planarity(points[frames, joints])
    planar = planarity < settings.max_planarity
    reasons = [f"near-planar samples: planarity {planarity:.3g} < {settings.max_planarity:g}, corrections not applied"] if planar else []

    def insufficient(why: str) -> RigCheck:
        loo = _Loo(np.zeros(6), None, None, 0, reasons=(why,))
        checks = tuple(_camera_check(camera, loo, fps, settings) for camera in cameras)
        return RigCheck(checks, len(selected), num_frames, (), planarity, "insufficient", tuple(reasons + [why]), planar)

    if V < 3:
        return insufficient(f"{V} cameras: a camera is checked against at least 2 fixed ones")
    if num_frames < settings.min_frames:
        return insufficient(f"{num_frames} frames with samples seen by {settings.min_views} views < {settings.min_frames}")
    # A camera that sees too few of the samples can neither be checked nor fix the world:
    # it never enters the reference, and the majority is counted without it.
    seen = _confident(keypoints[:, frames, joints], settings.min_confidence)  # (V, N)
    absent = [v for v in range(V) if seen[v].sum() < _MIN_OBSERVATIONS or len(np.unique(frames[seen[v]])) < settings.min_frames]
    for v in absent:
        reasons.append(f"{cameras[v].name} sees {int(seen[v].sum())} of the samples: not part of the reference")
    present = V - len(absent)
    if present < 3:
        return insufficient(f"{present} cameras see the samples: a camera is checked against at least 2 fixed ones")
    cache: dict[tuple[int, tuple[int, ...]], _Loo] = {}
    left_out: list[int] = []
    while True:
        trusted = [v for v in range(V) if v not in left_out and v not in absent]
        checks = []
        for v in range(V):
            refs = tuple(r for r in trusted if r != v)
            if (v, refs) not in cache:
                cache[v, refs] = _check_camera(v, list(refs), cameras, keypoints, points, frames, joints, fps, settings)
            checks.append(_camera_check(cameras[v], cache[v, refs], fps, settings))
        # Suspects: a significant, well determined correction of any component (a camera
        # may also have another component not determined: a shifted camera among the fixed
        # ones makes the others' rotations look uncertain).
        flagged = [v for v in trusted if checks[v].score > 0]
        if not flagged:
            status = "checked"
            break
        if 2 * (len(left_out) + 1) >= present or len(trusted) - 1 < 3:
            status = "no_majority"
            names = ", ".join(cameras[v].name for v in flagged)
            after = f" once {', '.join(cameras[v].name for v in left_out)} left out" if left_out else ""
            reasons.append(
                f"no consistent trusted majority: {names} disagree with the reference{after} (3 trusted cameras and a majority needed, {present} cameras see the samples)"
            )
            break
        worst = min(flagged, key=lambda c: _disagreement_without(c, trusted, cache, cameras, keypoints, points, frames, joints, fps, settings))
        left_out.append(worst)
        reasons.append(f"{cameras[worst].name} left out of the reference ({'; '.join(checks[worst].reasons)})")
    trusted_names = tuple(cameras[v].name for v in trusted) if status == "checked" else ()
    return RigCheck(tuple(checks), len(selected), num_frames, trusted_names, planarity, status, tuple(reasons), planar)
