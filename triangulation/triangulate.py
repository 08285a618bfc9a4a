"""Multi-view triangulation of 2D keypoints, vectorised over frames, joints and views.

Input: calibrated cameras (one per view) and keypoints ``(views, frames, joints, 3)``
= x, y (pixels), confidence; NaN (or confidence below a threshold) means missing.

Three steps, each batched over every (frame, joint) at once:

1. **Linear (DLT) triangulation, confidence-weighted.** Each observation gives two
   linear equations ``A X + b = 0`` in the world point ``X``: ``A = J R``, ``b = J t``
   where ``J (2x3)`` is the derivative of the camera's pixel projection at the
   observed unit ray (so distortion and fisheye models are handled exactly: a point
   on the ray satisfies the equations exactly). For an undistorted pinhole these are
   the classic DLT rows ``x P3 - P1``, in pixel units. ``|A X + b| / depth`` is the
   reprojection error to first order, so the system is solved twice: once
   unweighted by depth, once reweighted with the depths of the first solution. Each
   solve is a closed-form 3x3 solve per point.
2. **RANSAC over view subsets.** Hypotheses are the two-view solutions of every pair
   of observing views (exhaustive: 10 pairs for 5 views), scored on all views with
   the first-order pixel error and an MSAC cost truncated at the inlier threshold in
   *pixels*; the best hypothesis' inliers are re-solved linearly.
3. **Nonlinear refinement** of the exact pixel reprojection error on the inliers:
   Gauss-Newton with analytic Jacobians of the camera models, confidence weights and
   a Huber loss, then the inliers are re-read from the refined point.

Points with fewer than ``min_views`` inlier views are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from triangulation.camera_models import _MAX_NEWTON_ITERATIONS, _NEWTON_TOLERANCE, _SMALL_RADIUS, FisheyeModel, _odd_polynomial
from triangulation.cameras import Camera
from triangulation.schema import bounds

_CHUNK_POINTS = 4096  # points per vectorised batch: keeps (pairs, views, chunk) arrays in cache


@dataclass(frozen=True)
class Triangulation:
    """Result of :func:`triangulate` for ``views`` cameras, ``frames`` x ``joints`` points.

    - ``points``: ``(frames, joints, 3)`` float64 metres, NaN where not reconstructed.
    - ``num_views``: ``(frames, joints)`` int, inlier views used (0 where NaN).
    - ``inliers``: ``(views, frames, joints)`` bool, the views used for each point.
    - ``reprojection_error``: ``(views, frames, joints)`` float64 pixels, exact distance
      between each observation and the reprojected point (NaN where not observed or
      not reconstructed); outlier views keep their (large) error for QA.
    - ``confidence``: ``(frames, joints)`` in [0, 1]: the mean 2D confidence of the
      inlier views times the fraction of observing views that are inliers (0 where NaN).
    - ``small_angle``: ``(frames, joints)`` bool, points rejected because their inlier
      rays meet at less than ``min_ray_angle_deg`` (depth unconstrained: nearly
      collinear cameras).
    """

    points: np.ndarray
    num_views: np.ndarray
    inliers: np.ndarray
    reprojection_error: np.ndarray
    confidence: np.ndarray
    small_angle: np.ndarray | None = None

    @property
    def mean_inlier_error(self) -> np.ndarray:
        """``(frames, joints)`` mean reprojection error over inlier views, pixels."""
        errors = np.where(self.inliers, self.reprojection_error, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.num_views > 0, errors.sum(axis=0) / self.num_views, np.nan)


@dataclass(frozen=True)
class _LinearRows:
    """First-order pixel residual model of every observation, component-major ``(..., views, points)``.

    ``residual(X) = (A X + b) / (m . X + n)`` in pixels; ``A (2,3,V,N)``, ``b (2,V,N)``,
    ``m (3,V,N)``, ``n (V,N)``; ``weight (V,N)`` is the confidence, 0 where missing. Each
    component is a contiguous ``(V, N)`` array (elementwise passes over strided views
    of a ``(V, N, 2, 3)`` layout were the slower part of every step).
    """

    A: np.ndarray
    b: np.ndarray
    m: np.ndarray
    n: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True)
class _FisheyeRig:
    """Every view's Kannala-Brandt parameters as ``(V, 1)`` columns (``k (4, V, 1)``,
    ``R[i][j]``, ``t[i]``), so that a step runs on all views' ``(V, N)`` arrays at once."""

    fx: np.ndarray
    fy: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    k: np.ndarray
    R: list
    t: list


def _fisheye_rig(cameras: list[Camera], dtype) -> _FisheyeRig | None:
    """The rig's parameters as :class:`_FisheyeRig` in ``dtype``; None unless every camera is fisheye."""
    if not all(isinstance(camera.model, FisheyeModel) for camera in cameras):
        return None

    def column(values):
        return np.array(values, dtype=dtype)[..., None]

    R = column([camera.R for camera in cameras])  # (V, 3, 3, 1)
    t = column([camera.t for camera in cameras])  # (V, 3, 1)
    return _FisheyeRig(
        fx=column([camera.model.fx for camera in cameras]),
        fy=column([camera.model.fy for camera in cameras]),
        cx=column([camera.model.cx for camera in cameras]),
        cy=column([camera.model.cy for camera in cameras]),
        k=np.ascontiguousarray(column([camera.model.distortion for camera in cameras]).transpose(1, 0, 2)),
        R=[[np.ascontiguousarray(R[:, i, j]) for j in range(3)] for i in range(3)],
        t=[np.ascontiguousarray(t[:, i]) for i in range(3)],
    )


def _newton_theta(theta_d: np.ndarray, k: np.ndarray, tolerance: float, theta=None, iterations: int = _MAX_NEWTON_ITERATIONS):
    """The angles ``theta`` whose Kannala-Brandt ``theta_d(theta)`` is ``theta_d``: Newton from
    ``theta`` (default: the series inverse ``theta_d (1 - k0 theta_d^2)``) until every step is
    below ``tolerance`` or for ``iterations`` steps, in ``theta_d``'s dtype."""
    if theta is None:
        theta = theta_d * (1.0 - k[0] * theta_d * theta_d)
    for _ in range(iterations):
        value, derivative = _odd_polynomial(theta, k)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = (value - theta_d) / derivative
        step = np.where(np.isfinite(step), step, 0.0)
        theta = theta - step
        if not np.any(np.abs(step) > tolerance):
            break
    return theta


def _fisheye_rays_and_jacobians(rig: _FisheyeRig, px: np.ndarray, py: np.ndarray):
    """Unit rays (3 arrays ``(V, N)``, camera frame) of pixels ``px, py (V, N)`` and the
    projection's Jacobian at them (``J[r][c]``, pixels per unit), in the rig's dtype.

    The Kannala-Brandt inverse of :func:`triangulation.camera_models._invert_radial_fisheye`
    (Newton on the angle from the axis, to the dtype's precision) with its Jacobian written
    in the ray's radial and tangential directions: with ``s, c = sin, cos theta``,
    ``d = (du, dv)`` the image direction, ``scale = theta_d / s`` and
    ``q = theta_d' c - scale``: ``d uv / d P = [scale I + q d d^T | -theta_d' s d]``.
    """
    u = (px - rig.cx) / rig.fx
    v = (py - rig.cy) / rig.fy
    theta_d = np.sqrt(u * u + v * v)
    tolerance = _NEWTON_TOLERANCE if u.dtype == np.float64 else 1e-6  # float32: its precision after the next step
    theta = _newton_theta(theta_d, rig.k, tolerance)
    theta = np.maximum(theta, _SMALL_RADIUS)  # on the axis: ray (0, 0, 1), scale 1
    sin, cos = np.sin(theta), np.cos(theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(theta_d > 0, 1.0 / theta_d, 0.0)
    du, dv = u * inverse, v * inverse
    value, derivative = _odd_polynomial(theta, rig.k)
    scale = value / sin
    q = derivative * cos - scale
    qdu, qdv = q * du, q * dv
    radial = -derivative * sin
    J = [
        [rig.fx * (scale + qdu * du), rig.fx * (qdu * dv), rig.fx * (radial * du)],
        [rig.fy * (qdv * du), rig.fy * (scale + qdv * dv), rig.fy * (radial * dv)],
    ]
    return (du * sin, dv * sin, cos), J


def _fisheye_project(rig: _FisheyeRig, points: np.ndarray, with_jacobian: bool):
    """Pixels ``(2, V, N)`` [and d pixels / d world point ``(2, 3, V, N)``] of ``points (N, 3)``,
    every view at once (the formulas of ``FisheyeModel.project_with_jacobian``)."""
    X, Y, Z = np.ascontiguousarray(points.T)
    R, t = rig.R, rig.t
    x = R[0][0] * X + R[0][1] * Y + R[0][2] * Z + t[0]
    y = R[1][0] * X + R[1][1] * Y + R[1][2] * Z + t[1]
    z = R[2][0] * X + R[2][1] * Y + R[2][2] * Z + t[2]
    r = np.maximum(np.sqrt(x * x + y * y), _SMALL_RADIUS * np.abs(z))
    theta = np.arctan2(r, z)
    theta_d, d_theta_d = _odd_polynomial(theta, rig.k)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = theta_d / r
    pixels = np.empty((2,) + x.shape)
    pixels[0] = (x * scale) * rig.fx + rig.cx
    pixels[1] = (y * scale) * rig.fy + rig.cy
    if not with_jacobian:
        return pixels, None
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_rho2 = 1.0 / (r * r + z * z)
        q = (d_theta_d * z * inv_rho2 - scale) / (r * r)
        d_scale_d_z = -d_theta_d * inv_rho2
    qx, qy = q * x, q * y
    cam = [
        [rig.fx * (scale + qx * x), rig.fx * (qx * y), rig.fx * (x * d_scale_d_z)],
        [rig.fy * (qy * x), rig.fy * (scale + qy * y), rig.fy * (y * d_scale_d_z)],
    ]
    jacobian = np.empty((2, 3) + x.shape)
    for a in range(2):
        for c in range(3):
            jacobian[a, c] = cam[a][0] * R[0][c] + cam[a][1] * R[1][c] + cam[a][2] * R[2][c]
    return pixels, jacobian


def _linear_rows(cameras: list[Camera], px: np.ndarray, py: np.ndarray, weight: np.ndarray, ray_dtype) -> _LinearRows:
    """Build :class:`_LinearRows` (float64) from pixels ``px, py (V, N)`` (finite everywhere;
    ``weight`` 0 = unused).

    ``ray_dtype``: the dtype of the fisheye unprojection (the camera-frame rays and
    Jacobians). ``float32`` where Gauss-Newton refines the result: the linear stage only
    starts it and picks the inliers, and rays to ~1e-7 rad move its start by ~1e-7
    relative, which one exact step shrinks to ~1e-13 m without noise. The products with
    the poses and the sums over views stay float64, so the linear points keep the
    equivariances of the exact ones (order of the views, rigid motions and scale of the
    world) to float64 rounding.
    """
    num_views, num_points = px.shape
    rig = _fisheye_rig(cameras, np.float64)
    if rig is not None:  # every view at once
        rays, J = _fisheye_rays_and_jacobians(_fisheye_rig(cameras, ray_dtype), px.astype(ray_dtype), py.astype(ray_dtype))
        rays, J = [a.astype(np.float64) for a in rays], [[a.astype(np.float64) for a in row] for row in J]
        R, t = rig.R, rig.t
    else:
        rays_list, jac_list = zip(*(camera.model.unproject_with_jacobian(np.stack([px[v], py[v]], axis=-1)) for v, camera in enumerate(cameras)))
        rays = list(np.stack(rays_list).transpose(2, 0, 1))  # 3 x (V, N)
        jac = np.stack(jac_list).transpose(2, 3, 0, 1)  # (2, 3, V, N)
        J = [[np.ascontiguousarray(jac[r, c]) for c in range(3)] for r in range(2)]
        R_all = np.array([camera.R for camera in cameras])[..., None]
        t_all = np.array([camera.t for camera in cameras])[..., None]
        R = [[R_all[:, i, j] for j in range(3)] for i in range(3)]
        t = [t_all[:, i] for i in range(3)]
    dtype = np.float64
    # Elementwise products (not BLAS, whose rounding may depend on a point's place in
    # the chunk): a point's rows are the same in any batch.
    A = np.empty((2, 3, num_views, num_points), dtype=dtype)
    b = np.empty((2, num_views, num_points), dtype=dtype)
    m = np.empty((3, num_views, num_points), dtype=dtype)
    for r in range(2):  # rows of the pixel Jacobian
        for c in range(3):
            A[r, c] = J[r][0] * R[0][c] + J[r][1] * R[1][c] + J[r][2] * R[2][c]
        b[r] = J[r][0] * t[0] + J[r][1] * t[1] + J[r][2] * t[2]
    for c in range(3):
        m[c] = rays[0] * R[0][c] + rays[1] * R[1][c] + rays[2] * R[2][c]
    n = rays[0] * t[0] + rays[1] * t[1] + rays[2] * t[2]
    unused = weight <= 0
    if np.any(unused):  # zero rows (depth 1): multiplications, not scattered masked writes
        keep = (~unused).astype(dtype)
        A *= keep
        b *= keep
        m *= keep
        n = n * keep + unused
    return _LinearRows(A, b, m, n, weight)


def _subset(rows: _LinearRows, index: np.ndarray) -> _LinearRows:
    """The rows of the points ``index``."""
    return _LinearRows(rows.A[..., index], rows.b[..., index], rows.m[..., index], rows.n[:, index], rows.weight[:, index])


def _solve_3x3(M: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Solve symmetric ``M X = r`` for stacks ``M (..., 6)`` (xx, xy, xz, yy, yz, zz), ``r (..., 3)``.

    Closed form (adjugate); singular systems give NaN.
    """
    return np.stack(_solve_3x3_components([M[..., i] for i in range(6)], [r[..., i] for i in range(3)]), axis=-1)


def _solve_3x3_components(M, r):
    """:func:`_solve_3x3` on separate component arrays: ``M`` the 6 entries, ``r`` the 3
    (contiguous arrays run faster than strided ``[..., i]`` views); returns x, y, z."""
    a, b, c, d, e, f = M
    co_a = d * f - e * e
    co_b = c * e - b * f
    co_c = b * e - c * d
    det = a * co_a + b * co_b + c * co_c
    co_d = a * f - c * c
    co_e = b * c - a * e
    co_f = a * d - b * b
    r0, r1, r2 = r
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_det = np.where(np.abs(det) > 1e-300, 1.0 / det, np.nan)
        x = (co_a * r0 + co_b * r1 + co_c * r2) * inv_det
        y = (co_b * r0 + co_d * r1 + co_e * r2) * inv_det
        z = (co_c * r0 + co_e * r1 + co_f * r2) * inv_det
    return x, y, z


_SYMMETRIC_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def _times_matrix(stack: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``stack (..., k) @ matrix (k, l)`` as one BLAS product (faster than stacked matmul)."""
    return (stack.reshape(-1, stack.shape[-1]) @ matrix).reshape(stack.shape[:-1] + matrix.shape[1:])


def _normal_terms(rows: _LinearRows) -> tuple[np.ndarray, np.ndarray]:
    """Per-observation ``A^T A`` as 6 unique entries ``(6, V, N)`` and ``A^T b`` ``(3, V, N)``,
    component-major: each entry a contiguous ``(V, N)`` array."""
    A, b = rows.A, rows.b
    ata = np.stack([A[0][a] * A[0][c] + A[1][a] * A[1][c] for a, c in _SYMMETRIC_PAIRS])
    atb = np.stack([A[0][c] * b[0] + A[1][c] * b[1] for c in range(3)])
    return ata, atb


def _depths(rows: _LinearRows, points: np.ndarray) -> np.ndarray:
    """Depth along each observed ray ``(..., V, N)`` of points ``(..., N, 3)``."""
    P = points[..., None, :, :]
    return rows.m[0] * P[..., 0] + rows.m[1] * P[..., 1] + rows.m[2] * P[..., 2] + rows.n


def _first_order_squared_errors(rows: _LinearRows, points: np.ndarray) -> np.ndarray:
    """Squared first-order pixel errors ``(..., V, N)`` of points ``(..., N, 3)``; inf behind a view."""
    P = points[..., None, :, :]  # (..., 1, N, 3)
    A, b = rows.A, rows.b
    res0 = A[0, 0] * P[..., 0] + A[0, 1] * P[..., 1] + A[0, 2] * P[..., 2] + b[0]
    res1 = A[1, 0] * P[..., 0] + A[1, 1] * P[..., 1] + A[1, 2] * P[..., 2] + b[1]
    depth = _depths(rows, points)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        squared = (res0 * res0 + res1 * res1) / (depth * depth)
    return np.where(depth > 0, squared, np.inf)


def _weighted_solve(ata: np.ndarray, atb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``(N, 3)``: the least-squares point of the rows weighted by ``weight (V, N)``
    (``ata (6, V, N)``, ``atb (3, V, N)`` from :func:`_normal_terms`)."""
    x, y, z = _solve_3x3_components(list((weight * ata).sum(axis=1)), list(-(weight * atb).sum(axis=1)))
    return np.stack([x, y, z], axis=-1)


def _weighted_linear_solve(rows: _LinearRows, ata, atb, use: np.ndarray, reweight_steps: int) -> np.ndarray:
    """Weighted least squares on the linear rows of the views in ``use (V, N)``: ``(N, 3)``.

    Weights: confidence, then confidence / depth^2 (pixel error) for ``reweight_steps``.
    """
    weight = rows.weight * use  # finite weights: a product, not a scattered np.where
    points = _weighted_solve(ata, atb, weight)
    for _ in range(reweight_steps):
        depth = _depths(rows, points)
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(use & (depth > 0), weight / (depth * depth), 0.0)
        # Normalise weights per point so the closed-form determinant stays well scaled.
        norm = scaled.sum(axis=0, keepdims=True)
        scaled = np.divide(scaled, norm, out=np.zeros_like(scaled), where=norm > 0)
        refined = _weighted_solve(ata, atb, scaled)
        points = np.where(np.isfinite(refined), refined, points)
    return points


def _all_views_agree(rows: _LinearRows, points: np.ndarray, threshold_px: float) -> np.ndarray:
    """``(N,)`` bool: every observing view is within the threshold of ``points (N, 3)`` (first order)."""
    squared = _first_order_squared_errors(rows, points)
    return np.all((squared < threshold_px * threshold_px) | (rows.weight <= 0), axis=0)


def _ransac(rows: _LinearRows, ata, atb, threshold_px: float) -> np.ndarray:
    """Best inlier mask ``(V, N)`` over all two-view hypotheses (MSAC, pixel threshold).

    Hypotheses are only scored, so this runs in float32 (pixel errors to ~1e-4 px). The
    scoring is one batched matrix product per chunk: each observation's first-order
    model ``[A | b; m | n] (3, 4)`` times every hypothesis ``[X; 1]`` of its point, all
    views at once (``(N, 3 V, 4) @ (N, 4, P)``), instead of elementwise passes over
    ``(P, V, N)`` temporaries.
    """
    num_views, num_points = rows.weight.shape
    observed = rows.weight > 0
    if num_views < 2:
        return np.zeros_like(observed)  # one view cannot confirm anything
    pairs = np.array(list(combinations(range(num_views), 2)))  # (P, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    weight = rows.weight.astype(np.float32)
    # Component-major (6 or 3, V, N): every entry of the pair sums is a contiguous (P, N) array.
    weighted_ata = (weight * ata).astype(np.float32)  # (6, V, N)
    weighted_atb = (weight * atb).astype(np.float32)
    x, y, z = _solve_3x3_components([entry[i] + entry[j] for entry in weighted_ata], [-(entry[i] + entry[j]) for entry in weighted_atb])  # each (P, N)
    valid = observed[i] & observed[j] & np.isfinite(x) & np.isfinite(y) & np.isfinite(z)  # (P, N)
    # Per point: the model rows of every view (N, V, 3, 4) and the hypotheses (N, 4, P).
    model = np.empty((num_points, num_views, 3, 4), dtype=np.float32)
    model[:, :, :2, :3] = rows.A.transpose(3, 2, 0, 1)
    model[:, :, :2, 3] = rows.b.transpose(2, 1, 0)
    model[:, :, 2, :3] = rows.m.transpose(2, 1, 0)
    model[:, :, 2, 3] = rows.n.T
    homogeneous = np.ones((num_points, 4, len(pairs)), dtype=np.float32)
    for k, coordinate in enumerate((x, y, z)):
        homogeneous[:, k] = coordinate.T  # invalid hypotheses (NaN or garbage) get an infinite cost below
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        projected = np.matmul(model.reshape(num_points, 3 * num_views, 4), homogeneous).reshape(num_points, num_views, 3, len(pairs))
        depth = projected[:, :, 2]
        squared = (projected[:, :, 0] ** 2 + projected[:, :, 1] ** 2) / (depth * depth)  # (N, V, P)
    squared = np.where(depth > 0, squared, np.inf)
    limit = np.float32(threshold_px * threshold_px)
    # Unobserved views' rows are zero (residual 0, depth 1): they add 0, no mask needed.
    cost = np.minimum(squared, limit).sum(axis=1)  # (N, P)
    cost = np.where(valid.T, cost, np.inf)
    best = np.argmin(cost, axis=1)  # (N,)
    best_squared = np.take_along_axis(squared, best[:, None, None], axis=2)[..., 0].T  # (V, N)
    has_hypothesis = np.isfinite(np.min(cost, axis=1))
    return observed & (best_squared < limit) & has_hypothesis[None]


def _project_all(cameras: list[Camera], points: np.ndarray, with_jacobian: bool, rig: _FisheyeRig | None = None):
    """Pixels ``(2, V, N)`` [and d pixels / d world point ``(2, 3, V, N)``] of points ``(N, 3)``,
    component-major; ``rig``: the cameras as a :class:`_FisheyeRig` (float64) where they all are.

    Pixels are NaN where a pinhole camera sees the point behind it (the fisheye
    models are defined all around the camera).
    """
    if rig is not None:
        return _fisheye_project(rig, points, with_jacobian)
    num_views, num_points = len(cameras), points.shape[0]
    pixels = np.empty((2, num_views, num_points))
    jacobians = np.empty((2, 3, num_views, num_points)) if with_jacobian else None
    for v, camera in enumerate(cameras):
        points_cam = camera.world_to_camera(points)
        if with_jacobian:
            projected, jac = camera.model.project_with_jacobian(points_cam)
            jacobians[:, :, v] = _times_matrix(jac, camera.R).transpose(1, 2, 0)
        else:
            projected = camera.model.project(points_cam)
        pixels[:, v] = projected.T
        if camera.model.name == "pinhole":
            behind = points_cam[:, 2] <= 0
            pixels[:, v, behind] = np.nan
            if with_jacobian:
                jacobians[:, :, v, behind] = 0.0
    return pixels, jacobians


def _pixel_errors(projected: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Pixel distances ``(V, N)`` between ``(2, V, N)`` stacks; infinite where the projection does not exist."""
    d0, d1 = projected[0] - pixels[0], projected[1] - pixels[1]
    error = np.sqrt(d0 * d0 + d1 * d1)
    return np.where(np.isnan(error), np.inf, error)


def _robust_cost(projected: np.ndarray, pixels: np.ndarray, weight: np.ndarray, huber_px: float):
    """Huber cost per point ``(N,)``, IRLS weights ``(V, N)`` and residuals ``(2, V, N)`` px.

    A projection that does not exist (NaN: behind a pinhole camera) costs as a
    residual of 1e6 px. Branch-free (``np.where`` on scattered masks is the slow pass):
    with ``m = min(|r|, h)`` the Huber cost is ``m (2 |r| - m)`` and its IRLS weight ``h / max(|r|, h)``.
    """
    residual = projected - pixels
    if np.isnan(residual).any():
        residual = np.where(np.isnan(residual), 1e6, residual)
    norm = np.sqrt(residual[0] * residual[0] + residual[1] * residual[1])
    clipped = np.minimum(norm, huber_px)
    cost = clipped * (2.0 * norm - clipped)
    robust = huber_px / np.maximum(norm, huber_px)
    return (weight * cost).sum(axis=0), weight * robust, residual


def _refine(
    cameras: list[Camera],
    points: np.ndarray,
    pixels: np.ndarray,
    weight: np.ndarray,
    huber_px: float,
    iterations: int,
    rig: _FisheyeRig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Newton (IRLS) on the exact pixel error with a Huber loss.

    ``points (N, 3)`` start values, ``pixels (2, V, N)``, ``weight (V, N)`` (0 = unused).
    A step that raises a point's cost is undone and that point stops. Returns the
    points and their exact projections ``(2, V, N)`` (NaN behind a pinhole camera).
    Every array keeps all N points (masks, no gathers): the points that cannot move
    are few, computing them costs less than indexing the others.
    """
    finite = np.all(np.isfinite(points), axis=-1)
    points = np.where(finite[:, None], points, 0.0)
    active = finite & ((weight > 0).sum(axis=0) >= 2)
    previous_points, previous_cost = points.copy(), np.full(points.shape[0], np.inf)
    for iteration in range(iterations + 1):
        last = iteration == iterations or not np.any(active)
        projected, jac = _project_all(cameras, points, not last, rig)
        if iterations == 0:
            break
        cost, w, residual = _robust_cost(projected, pixels, weight, huber_px)
        worse = active & (cost > previous_cost)
        if np.any(worse):  # undo the step; the point stops here
            points[worse] = previous_points[worse]
            projected[:, :, worse], _ = _project_all(cameras, points[worse], False, rig)
            active &= ~worse
        if last:
            break
        # Component by component (contiguous (V, N) arrays): J^T W J (6 entries) and J^T W r.
        WJ = [[w * jac[r, c] for c in range(3)] for r in range(2)]
        H6 = [(WJ[0][a] * jac[0, c] + WJ[1][a] * jac[1, c]).sum(axis=0) for a, c in _SYMMETRIC_PAIRS]
        g = [(WJ[0][c] * residual[0] + WJ[1][c] * residual[1]).sum(axis=0) for c in range(3)]
        # Levenberg damping relative to the diagonal keeps near-degenerate points stable.
        for k in (0, 3, 5):
            H6[k] = H6[k] * (1.0 + 1e-6)
        step = np.stack(_solve_3x3_components(H6, [-entry for entry in g]), axis=-1)
        active &= np.all(np.isfinite(step), axis=-1)
        previous_points, previous_cost = points.copy(), cost
        points = np.where(active[:, None], points + np.nan_to_num(step), points)
    points[~finite] = np.nan
    return points, projected


@dataclass(frozen=True)
class TriangulationSettings:
    """The keyword arguments of :func:`triangulate` (configs/default.yaml's ``triangulation`` section, whose schema it is)."""

    min_confidence: float = field(metadata=bounds(0.0, 1.0))
    min_views: int = field(metadata=bounds(2))
    ransac: bool
    threshold_px: float = field(metadata=bounds(0.0, low_open=True))
    refine_iterations: int = field(metadata=bounds(0))
    huber_px: float = field(metadata=bounds(0.0, low_open=True))
    min_ray_angle_deg: float = field(metadata=bounds(0.0, 90.0))


def triangulate(
    cameras: list[Camera],
    keypoints: np.ndarray,
    *,
    min_confidence: float = 0.3,
    min_views: int = 2,
    ransac: bool = True,
    threshold_px: float = 30.0,
    refine_iterations: int = 1,
    huber_px: float = 5.0,
    min_ray_angle_deg: float = 2.0,
) -> Triangulation:
    """Triangulate keypoints ``(views, frames, joints, 3)`` seen by ``cameras`` (one per view).

    - ``min_confidence``: observations with a lower confidence are ignored.
    - ``min_views``: a point needs at least this many inlier views, else it is NaN.
    - ``ransac``: reject outlier views by RANSAC over view pairs; without it every
      observing view is used (plain confidence-weighted DLT + refinement).
    - ``threshold_px``: inlier threshold on the reprojection error, pixels.
    - ``refine_iterations``: Gauss-Newton iterations on the exact pixel error
      (0: linear solution only).
    - ``huber_px``: Huber loss scale of the refinement, pixels.
    - ``min_ray_angle_deg``: a point whose inlier rays all meet at a smaller angle is
      rejected (its depth is not constrained: cameras nearly in line with it).
    """
    keypoints = np.asarray(keypoints)
    if keypoints.ndim != 4 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must have shape (views, frames, joints, 3), got {keypoints.shape}")
    num_views, num_frames, num_joints, _ = keypoints.shape
    if len(cameras) != num_views:
        raise ValueError(f"{len(cameras)} cameras for {num_views} views of keypoints")
    if min_views < 2:
        raise ValueError(f"min_views must be at least 2, got {min_views}")
    flat = keypoints.reshape(num_views, -1, 3)  # converted to float64 chunk by chunk
    num_points = flat.shape[1]
    points = np.full((num_points, 3), np.nan)
    inliers = np.zeros((num_views, num_points), dtype=bool)
    errors = np.full((num_views, num_points), np.nan)
    small_angle = np.zeros(num_points, dtype=bool)
    num_used = np.zeros(num_points, dtype=np.int64)
    confidence = np.zeros(num_points)
    # Every step is per point: chunks keep the temporaries small (fresh large arrays cost
    # page faults: a 20,000-frame take in one piece took 10.5 s, in chunks 3.6 s).
    for start in range(0, num_points, _CHUNK_POINTS):
        chunk = slice(start, min(start + _CHUNK_POINTS, num_points))
        observations = np.moveaxis(flat[:, chunk], -1, 0).astype(np.float64)  # (3, V, n): contiguous components
        chunk_points, chunk_inliers, chunk_errors = _triangulate_chunk(
            cameras, observations, min_confidence, min_views, ransac, threshold_px, refine_iterations, huber_px
        )
        if min_ray_angle_deg > 0:
            reconstructed = np.all(np.isfinite(chunk_points), axis=-1)
            narrow = reconstructed & (largest_ray_angle(cameras, chunk_points, chunk_inliers) < np.radians(min_ray_angle_deg))
            chunk_points[narrow] = np.nan
            chunk_inliers[:, narrow] = False
            chunk_errors[:, narrow] = np.nan
            small_angle[chunk] = narrow
        confidence_2d = np.nan_to_num(observations[2])
        used = chunk_inliers.sum(axis=0)
        observed = np.maximum((~np.isnan(chunk_errors)).sum(axis=0), 1)
        mean_confidence = (confidence_2d * chunk_inliers).sum(axis=0) / np.maximum(used, 1)
        points[chunk], inliers[:, chunk], errors[:, chunk] = chunk_points, chunk_inliers, chunk_errors
        num_used[chunk] = used
        confidence[chunk] = np.clip(np.where(used > 0, mean_confidence, 0.0) * used / observed, 0.0, 1.0)
    shape = (num_frames, num_joints)
    return Triangulation(
        points=points.reshape(shape + (3,)),
        num_views=num_used.reshape(shape),
        inliers=inliers.reshape((num_views,) + shape),
        reprojection_error=errors.reshape((num_views,) + shape),
        confidence=confidence.reshape(shape),
        small_angle=small_angle.reshape(shape),
    )


def largest_ray_angle(cameras: list[Camera], points: np.ndarray, inliers: np.ndarray) -> np.ndarray:
    """``(N,)`` radians: the largest angle between two inlier views' rays to each of ``points
    (N, 3)`` (``inliers (views, N)``); 0 with fewer than two inlier views."""
    rays = np.stack([points - camera.center for camera in cameras])  # (V, N, 3)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    largest = np.zeros(points.shape[0])
    for a, b in combinations(range(len(cameras)), 2):  # view pairs
        cosine = np.clip(np.sum(rays[a] * rays[b], axis=-1), -1.0, 1.0)
        both = inliers[a] & inliers[b]
        largest = np.where(both, np.maximum(largest, np.nan_to_num(np.arccos(cosine))), largest)
    return largest


def _triangulate_chunk(cameras, observations, min_confidence, min_views, ransac, threshold_px, refine_iterations, huber_px):
    """:func:`triangulate` on ``observations (3, V, N)`` (x, y, confidence; component-major):
    points ``(N, 3)``, inliers and errors ``(V, N)``."""
    confidence = observations[2]
    # A sum is finite only where every term is (one pass instead of a reduction over a
    # length-3 axis).
    observed = np.isfinite(observations.sum(axis=0)) & (confidence >= min_confidence) & (confidence > 0)
    weight = np.where(observed, confidence, 0.0)
    # Unused observations sit at the principal point: finite, and quick to unproject.
    # Pixels component-major (2, V, N).
    pixels = observations[:2]
    unused = ~observed
    if np.any(unused):
        centres = np.array([[camera.model.cx, camera.model.cy] for camera in cameras]).T[:, :, None]
        pixels = np.where(unused[None], centres, pixels)
    # The fisheye unprojection runs in float32 where Gauss-Newton follows (see _linear_rows).
    ray_dtype = np.float32 if refine_iterations > 0 else np.float64
    rows = _linear_rows(cameras, pixels[0], pixels[1], weight, ray_dtype)
    rig = _fisheye_rig(cameras, np.float64)
    ata, atb = _normal_terms(rows)
    # The depth reweighting makes the linear solution minimise the first-order pixel
    # error; Gauss-Newton does that (exactly) when it runs.
    reweight = 0 if refine_iterations > 0 else 1
    points = _weighted_linear_solve(rows, ata, atb, observed, reweight)
    use = observed.copy()
    if ransac:
        # Points on which every view agrees keep them all; the rest go through RANSAC.
        doubtful = np.flatnonzero(~_all_views_agree(rows, points, threshold_px))
        if doubtful.size:
            subset = _subset(rows, doubtful)
            use[:, doubtful] = _ransac(subset, ata[:, :, doubtful], atb[:, :, doubtful], threshold_px)
            points[doubtful] = _weighted_linear_solve(subset, ata[:, :, doubtful], atb[:, :, doubtful], use[:, doubtful], reweight)
    enough = use.sum(axis=0) >= min_views
    use &= enough[None]
    # Cheirality: a view whose ray would have to point backwards to reach the point
    # cannot have seen it.
    behind = use & (_depths(rows, points) <= 0)
    if np.any(behind):
        use &= ~behind
        enough = use.sum(axis=0) >= min_views
        use &= enough[None]
        redo = np.flatnonzero(np.any(behind, axis=0) & enough)
        points[redo] = _weighted_linear_solve(_subset(rows, redo), ata[:, :, redo], atb[:, :, redo], use[:, redo], reweight)
    points = points.astype(np.float64)
    points, projected = _refine(cameras, points, pixels, weight * use, huber_px, refine_iterations, rig)
    errors = _pixel_errors(projected, pixels)
    if ransac:
        # Re-read the inliers from the refined point; refine again where views joined.
        refreshed = observed & (errors < threshold_px) & enough[None]
        changed = np.flatnonzero(np.any(refreshed & ~use, axis=0))
        if changed.size:
            points[changed], projected = _refine(
                cameras,
                points[changed],
                pixels[:, :, changed],
                np.where(refreshed[:, changed], weight[:, changed], 0.0),
                huber_px,
                refine_iterations,
                rig,
            )
            errors[:, changed] = _pixel_errors(projected, pixels[:, :, changed])
            refreshed[:, changed] = observed[:, changed] & (errors[:, changed] < threshold_px)
        use = refreshed
    valid = (use.sum(axis=0) >= min_views) & np.all(np.isfinite(points), axis=-1)
    points[~valid] = np.nan
    use &= valid[None]
    errors = np.where(observed & valid[None], errors, np.nan)
    return points, use, errors
