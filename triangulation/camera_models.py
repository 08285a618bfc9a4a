"""Camera projection models, batched over any number of points (numpy only).

Three intrinsic models, each a frozen dataclass with the same three methods:

- ``project(points_cam)``: camera-frame 3D points ``(..., 3)`` (any scale, metres
  by convention) -> pixels ``(..., 2)``.
- ``project_with_jacobian(points_cam)``: pixels ``(..., 2)`` and the derivative of the
  pixels with respect to the camera-frame point ``(..., 2, 3)`` in pixels per unit.
- ``unproject(pixels)``: pixels ``(..., 2)`` -> unit viewing rays ``(..., 3)`` in the
  camera frame (+z forward, +x right, +y down, as OpenCV).
- ``unproject_with_jacobian(pixels)``: the rays and ``project_with_jacobian`` at them,
  sharing the work (what triangulation needs for every observation).

Models:

- :class:`PinholeModel`: OpenCV pinhole with distortion ``k1 k2 p1 p2 [k3 [k4 k5 k6]]``
  (``cv2.projectPoints``).
- :class:`FisheyeModel`: OpenCV fisheye / Kannala-Brandt ``k1..k4``
  (``cv2.fisheye.projectPoints``), the Ego-Exo4D GoPro model ``KANNALABRANDTK3``.
- :class:`Fisheye624Model`: the Aria RGB model (projectaria-tools ``FISHEYE624``,
  COLMAP ``RAD_TAN_THIN_PRISM_FISHEYE``): ``f`` (or ``fx fy``), ``cx cy``,
  radial ``k0..k5``, tangential ``p0 p1``, thin prism ``s0..s3``.

The fisheye models are written in terms of the angle from the optical axis, so they
stay finite for rays at and beyond 90 degrees; the pinhole model needs ``z > 0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

# Newton iterations for unprojection; all models converge in far fewer within the
# field of view, the loop stops early once every point has converged.
_MAX_NEWTON_ITERATIONS = 30
_NEWTON_TOLERANCE = 1e-12  # normalised image units (about 1e-9 px for f ~ 1000)
_SMALL_RADIUS = 1e-12  # relative radius below which a point counts as on the optical axis


class CameraModelError(ValueError):
    """Raised for invalid intrinsic parameters; the message names the field."""


def _as_param_vector(name: str, values, lengths: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size not in lengths:
        raise CameraModelError(f"field '{name}' must have {' or '.join(map(str, lengths))} values, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise CameraModelError(f"field '{name}' contains NaN or infinite values: {array.tolist()}")
    return array


def _check_focal_center(fx: float, fy: float, cx: float, cy: float) -> None:
    for name, value in (("fx", fx), ("fy", fy), ("cx", cx), ("cy", cy)):
        if not np.isfinite(value):
            raise CameraModelError(f"field '{name}' is not finite: {value}")
    if fx <= 0 or fy <= 0:
        raise CameraModelError(f"fields 'fx', 'fy' must be positive, got fx={fx}, fy={fy}")


def _solve_2x2(jac: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``jac @ x = rhs`` for stacks of 2x2 systems: ``(..., 2, 2)``, ``(..., 2)``."""
    a, b = jac[..., 0, 0], jac[..., 0, 1]
    c, d = jac[..., 1, 0], jac[..., 1, 1]
    det = a * d - b * c
    with np.errstate(divide="ignore", invalid="ignore"):
        x0 = (d * rhs[..., 0] - b * rhs[..., 1]) / det
        x1 = (a * rhs[..., 1] - c * rhs[..., 0]) / det
    return np.stack([x0, x1], axis=-1)


def _newton_2d(target: np.ndarray, function_and_jacobian, start: np.ndarray) -> np.ndarray:
    """Solve ``f(x) = target`` for stacks of 2-vectors by Newton's method.

    ``function_and_jacobian(x)`` returns ``f(x) (..., 2)`` and ``df/dx (..., 2, 2)``.
    """
    x = start.copy()
    for _ in range(_MAX_NEWTON_ITERATIONS):
        value, jac = function_and_jacobian(x)
        step = _solve_2x2(jac, target - value)
        step = np.where(np.isfinite(step), step, 0.0)
        x = x + step
        if not np.any(np.abs(step) > _NEWTON_TOLERANCE):
            break
    return x


class _IntrinsicMatrix:
    """The ``matrix`` property shared by the models (they all have fx, fy, cx, cy)."""

    fx: float
    fy: float
    cx: float
    cy: float

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 intrinsic matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


# --------------------------------------------------------------------------------------
# Pinhole (OpenCV)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinholeModel(_IntrinsicMatrix):
    """OpenCV pinhole camera with rational radial and tangential distortion.

    ``distortion`` is ``k1 k2 p1 p2 [k3 [k4 k5 k6]]`` (0, 4, 5 or 8 values), exactly
    the ``distCoeffs`` of ``cv2.projectPoints``.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(8))

    name: ClassVar[str] = "pinhole"

    def __post_init__(self) -> None:
        _check_focal_center(self.fx, self.fy, self.cx, self.cy)
        dist = _as_param_vector("distortion", self.distortion, (0, 4, 5, 8))
        object.__setattr__(self, "distortion", np.concatenate([dist, np.zeros(8 - dist.size)]))

    def _distort(self, xy: np.ndarray, with_jacobian: bool):
        """Normalised undistorted ``(..., 2)`` -> distorted ``(..., 2)`` [+ d/dxy (..., 2, 2)]."""
        k1, k2, p1, p2, k3, k4, k5, k6 = self.distortion
        x, y = xy[..., 0], xy[..., 1]
        x2, y2, xy_ = x * x, y * y, x * y
        r2 = x2 + y2
        numerator = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        denominator = 1.0 + r2 * (k4 + r2 * (k5 + r2 * k6))
        radial = numerator / denominator
        xd = x * radial + 2.0 * p1 * xy_ + p2 * (r2 + 2.0 * x2)
        yd = y * radial + p1 * (r2 + 2.0 * y2) + 2.0 * p2 * xy_
        distorted = np.stack([xd, yd], axis=-1)
        if not with_jacobian:
            return distorted, None
        d_num = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2)
        d_den = k4 + r2 * (2.0 * k5 + 3.0 * k6 * r2)
        d_radial_d_r2 = (d_num * denominator - numerator * d_den) / denominator**2
        jac = np.empty(xy.shape + (2,))
        jac[..., 0, 0] = radial + 2.0 * x2 * d_radial_d_r2 + 2.0 * p1 * y + 6.0 * p2 * x
        jac[..., 0, 1] = 2.0 * x * y * d_radial_d_r2 + 2.0 * p1 * x + 2.0 * p2 * y
        jac[..., 1, 0] = 2.0 * x * y * d_radial_d_r2 + 2.0 * p1 * x + 2.0 * p2 * y
        jac[..., 1, 1] = radial + 2.0 * y2 * d_radial_d_r2 + 6.0 * p1 * y + 2.0 * p2 * x
        return distorted, jac

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        points_cam = np.asarray(points_cam, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = points_cam[..., :2] / points_cam[..., 2:3]
        distorted, _ = self._distort(xy, with_jacobian=False)
        return distorted * (self.fx, self.fy) + (self.cx, self.cy)

    def project_with_jacobian(self, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        points_cam = np.asarray(points_cam, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_z = 1.0 / points_cam[..., 2]
            xy = points_cam[..., :2] * inv_z[..., None]
        distorted, d_dist = self._distort(xy, with_jacobian=True)
        pixels = distorted * (self.fx, self.fy) + (self.cx, self.cy)
        # d xy / d P = [[1/z, 0, -x/z], [0, 1/z, -y/z]]
        d_xy = np.zeros(points_cam.shape[:-1] + (2, 3))
        d_xy[..., 0, 0] = inv_z
        d_xy[..., 1, 1] = inv_z
        d_xy[..., 0, 2] = -xy[..., 0] * inv_z
        d_xy[..., 1, 2] = -xy[..., 1] * inv_z
        jac = d_dist @ d_xy
        jac[..., 0, :] *= self.fx
        jac[..., 1, :] *= self.fy
        return pixels, jac

    def unproject(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.asarray(pixels, dtype=np.float64)
        target = (pixels - (self.cx, self.cy)) / (self.fx, self.fy)
        if np.any(self.distortion != 0):
            target = _newton_2d(target, lambda xy: self._distort(xy, with_jacobian=True), start=target)
        rays = np.concatenate([target, np.ones(target.shape[:-1] + (1,))], axis=-1)
        return rays / np.linalg.norm(rays, axis=-1, keepdims=True)

    def unproject_with_jacobian(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit rays ``(..., 3)`` and the projection's Jacobian at them ``(..., 2, 3)``."""
        rays = self.unproject(pixels)
        return rays, self.project_with_jacobian(rays)[1]


# --------------------------------------------------------------------------------------
# Fisheye models written on the angle from the optical axis
# --------------------------------------------------------------------------------------


def _odd_polynomial(theta: np.ndarray, coefficients: np.ndarray):
    """``theta * (1 + c0 theta^2 + c1 theta^4 + ...)`` and its derivative in theta."""
    theta2 = theta * theta
    # Horner on t = theta^2: value = sum c_i t^i, derivative = sum (2i + 1) c_i t^i.
    value = coefficients[-1] * theta2
    derivative = (2 * len(coefficients) + 1) * coefficients[-1] * theta2
    for power in range(len(coefficients) - 1, 0, -1):
        value = (value + coefficients[power - 1]) * theta2
        derivative = (derivative + (2 * power + 1) * coefficients[power - 1]) * theta2
    return theta * (1.0 + value), 1.0 + derivative


def _radial_fisheye(points_cam: np.ndarray, coefficients: np.ndarray, with_jacobian: bool, angles=None):
    """Equidistant-polynomial radial projection shared by the fisheye models.

    ``points_cam (..., 3)`` -> ``uv (..., 2) = theta_d(theta) * (x, y) / r`` with
    ``theta = atan2(r, z)``, ``r = |(x, y)|``; optionally ``d uv / d P (..., 2, 3)``.
    ``angles``: ``(r, theta)`` when the caller knows them already (unprojection).
    """
    x, y, z = points_cam[..., 0], points_cam[..., 1], points_cam[..., 2]
    if angles is None:
        # r is kept away from 0 (by 1e-12 relative): on the axis scale -> 1 / z and
        # the terms that cancel there are multiplied by x = y = 0.
        r = np.maximum(np.sqrt(x * x + y * y), _SMALL_RADIUS * np.abs(z))
        theta = np.arctan2(r, z)
    else:
        r, theta = angles
    theta_d, d_theta_d = _odd_polynomial(theta, coefficients)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = theta_d / r
    uv = np.stack([x * scale, y * scale], axis=-1)
    if not with_jacobian:
        return uv, None
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_rho2 = 1.0 / (r * r + z * z)  # d theta / d r = z / rho2 ; d theta / d z = -r / rho2
        d_scale_d_r = (d_theta_d * z * inv_rho2 - scale) / r
        d_scale_d_z = -d_theta_d * inv_rho2
        ux, uy = x / r, y / r
    jac = np.empty(points_cam.shape[:-1] + (2, 3))
    jac[..., 0, 0] = scale + x * d_scale_d_r * ux
    jac[..., 0, 1] = x * d_scale_d_r * uy
    jac[..., 0, 2] = x * d_scale_d_z
    jac[..., 1, 0] = y * d_scale_d_r * ux
    jac[..., 1, 1] = scale + y * d_scale_d_r * uy
    jac[..., 1, 2] = y * d_scale_d_z
    return uv, jac


def _invert_radial_fisheye(uv: np.ndarray, coefficients: np.ndarray, with_jacobian: bool = False):
    """Rays ``(..., 3)`` whose radial fisheye projection is ``uv (..., 2)``.

    With ``with_jacobian``, also ``d uv / d P`` at the rays ``(..., 2, 3)`` (the radial
    projection's Jacobian, without recomputing the angles).
    """
    theta_d = np.linalg.norm(uv, axis=-1)
    # Start from the series inverse theta ~ theta_d (1 - c0 theta_d^2): Newton then
    # converges to 1e-12 in about two steps instead of three.
    theta = theta_d * (1.0 - coefficients[0] * theta_d * theta_d)
    for _ in range(_MAX_NEWTON_ITERATIONS):
        value, derivative = _odd_polynomial(theta, coefficients)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = (value - theta_d) / derivative
        step = np.where(np.isfinite(step), step, 0.0)
        theta = theta - step
        if not np.any(np.abs(step) > _NEWTON_TOLERANCE):
            break
    theta = np.maximum(theta, _SMALL_RADIUS)  # the axis: direction (0, 0, 1), see _radial_fisheye
    sin_theta = np.sin(theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        direction = np.where(theta_d[..., None] > 0, uv / theta_d[..., None], 0.0)
    rays = np.concatenate([direction * sin_theta[..., None], np.cos(theta)[..., None]], axis=-1)
    if not with_jacobian:
        return rays
    _, jac = _radial_fisheye(rays, coefficients, True, angles=(sin_theta, theta))
    return rays, jac


@dataclass(frozen=True)
class FisheyeModel(_IntrinsicMatrix):
    """OpenCV fisheye (Kannala-Brandt) camera: ``theta_d = theta (1 + k1 theta^2 + ... + k4 theta^8)``.

    Equal to ``cv2.fisheye.projectPoints`` (with zero skew) and to the Ego-Exo4D
    ``KANNALABRANDTK3`` GoPro calibration ``[fx fy cx cy k1 k2 k3 k4]``.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(4))

    name: ClassVar[str] = "fisheye"

    def __post_init__(self) -> None:
        _check_focal_center(self.fx, self.fy, self.cx, self.cy)
        object.__setattr__(self, "distortion", _as_param_vector("distortion", self.distortion, (4,)))

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        uv, _ = _radial_fisheye(np.asarray(points_cam, dtype=np.float64), self.distortion, False)
        return uv * (self.fx, self.fy) + (self.cx, self.cy)

    def project_with_jacobian(self, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        uv, jac = _radial_fisheye(np.asarray(points_cam, dtype=np.float64), self.distortion, True)
        jac[..., 0, :] *= self.fx
        jac[..., 1, :] *= self.fy
        return uv * (self.fx, self.fy) + (self.cx, self.cy), jac

    def unproject(self, pixels: np.ndarray) -> np.ndarray:
        uv = (np.asarray(pixels, dtype=np.float64) - (self.cx, self.cy)) / (self.fx, self.fy)
        return _invert_radial_fisheye(uv, self.distortion)

    def unproject_with_jacobian(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit rays ``(..., 3)`` and the projection's Jacobian at them ``(..., 2, 3)``."""
        uv = (np.asarray(pixels, dtype=np.float64) - (self.cx, self.cy)) / (self.fx, self.fy)
        rays, jac = _invert_radial_fisheye(uv, self.distortion, with_jacobian=True)
        jac[..., 0, :] *= self.fx
        jac[..., 1, :] *= self.fy
        return rays, jac


@dataclass(frozen=True)
class Fisheye624Model(_IntrinsicMatrix):
    """Aria RGB camera model (projectaria-tools FISHEYE624, COLMAP RAD_TAN_THIN_PRISM_FISHEYE).

    ``radial``: k0..k5 (6), ``tangential``: p0 p1, ``thin_prism``: s0..s3. Aria
    calibrations use one focal length (``fx == fy``); two are accepted, as COLMAP.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    radial: np.ndarray = field(default_factory=lambda: np.zeros(6))
    tangential: np.ndarray = field(default_factory=lambda: np.zeros(2))
    thin_prism: np.ndarray = field(default_factory=lambda: np.zeros(4))

    name: ClassVar[str] = "fisheye624"

    def __post_init__(self) -> None:
        _check_focal_center(self.fx, self.fy, self.cx, self.cy)
        object.__setattr__(self, "radial", _as_param_vector("radial", self.radial, (6,)))
        object.__setattr__(self, "tangential", _as_param_vector("tangential", self.tangential, (2,)))
        object.__setattr__(self, "thin_prism", _as_param_vector("thin_prism", self.thin_prism, (4,)))

    def _tangential_prism(self, uv: np.ndarray, with_jacobian: bool):
        """Radially distorted ``uv (..., 2)`` -> final normalised coordinates [+ 2x2 Jacobian]."""
        p0, p1 = self.tangential
        s0, s1, s2, s3 = self.thin_prism
        u, v = uv[..., 0], uv[..., 1]
        r2 = u * u + v * v
        dot = 2.0 * (u * p0 + v * p1)
        out_u = u * (1.0 + dot) + p0 * r2 + r2 * (s0 + s1 * r2)
        out_v = v * (1.0 + dot) + p1 * r2 + r2 * (s2 + s3 * r2)
        out = np.stack([out_u, out_v], axis=-1)
        if not with_jacobian:
            return out, None
        prism_u = s0 + 2.0 * s1 * r2  # d(r2 (s0 + s1 r2)) / d r2
        prism_v = s2 + 2.0 * s3 * r2
        jac = np.empty(uv.shape + (2,))
        jac[..., 0, 0] = 1.0 + dot + 2.0 * p0 * u + 2.0 * u * (p0 + prism_u)
        jac[..., 0, 1] = 2.0 * p1 * u + 2.0 * v * (p0 + prism_u)
        jac[..., 1, 0] = 2.0 * p0 * v + 2.0 * u * (p1 + prism_v)
        jac[..., 1, 1] = 1.0 + dot + 2.0 * p1 * v + 2.0 * v * (p1 + prism_v)
        return out, jac

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        uv, _ = _radial_fisheye(np.asarray(points_cam, dtype=np.float64), self.radial, False)
        out, _ = self._tangential_prism(uv, with_jacobian=False)
        return out * (self.fx, self.fy) + (self.cx, self.cy)

    def project_with_jacobian(self, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        uv, d_uv = _radial_fisheye(np.asarray(points_cam, dtype=np.float64), self.radial, True)
        out, d_out = self._tangential_prism(uv, with_jacobian=True)
        jac = d_out @ d_uv
        jac[..., 0, :] *= self.fx
        jac[..., 1, :] *= self.fy
        return out * (self.fx, self.fy) + (self.cx, self.cy), jac

    def unproject(self, pixels: np.ndarray) -> np.ndarray:
        target = (np.asarray(pixels, dtype=np.float64) - (self.cx, self.cy)) / (self.fx, self.fy)
        uv = _newton_2d(target, lambda uv: self._tangential_prism(uv, True), start=target)
        return _invert_radial_fisheye(uv, self.radial)

    def unproject_with_jacobian(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit rays ``(..., 3)`` and the projection's Jacobian at them ``(..., 2, 3)``."""
        target = (np.asarray(pixels, dtype=np.float64) - (self.cx, self.cy)) / (self.fx, self.fy)
        uv = _newton_2d(target, lambda uv: self._tangential_prism(uv, True), start=target)
        rays, d_uv = _invert_radial_fisheye(uv, self.radial, with_jacobian=True)
        _, d_out = self._tangential_prism(uv, with_jacobian=True)
        jac = d_out @ d_uv
        jac[..., 0, :] *= self.fx
        jac[..., 1, :] *= self.fy
        return rays, jac


CameraModel = PinholeModel | FisheyeModel | Fisheye624Model

CAMERA_MODEL_NAMES = ("pinhole", "fisheye", "fisheye624")


def make_camera_model(model: str, matrix, distortion=()) -> CameraModel:
    """Build a model from a name, a 3x3 K and a flat distortion vector.

    ``fisheye624`` distortion is ``k0..k5 p0 p1 s0..s3`` (12 values), as projectaria-tools.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (3, 3):
        raise CameraModelError(f"field 'matrix' must be 3x3, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise CameraModelError("field 'matrix' contains NaN or infinite values")
    if abs(matrix[0, 1]) > 1e-9 or np.any(np.abs(matrix[2] - (0, 0, 1)) > 1e-9) or abs(matrix[1, 0]) > 1e-9:
        raise CameraModelError(f"field 'matrix' must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (no skew), got {matrix.tolist()}")
    fx, fy, cx, cy = matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2]
    if model == "pinhole":
        return PinholeModel(fx, fy, cx, cy, distortion)
    if model == "fisheye":
        return FisheyeModel(fx, fy, cx, cy, distortion)
    if model == "fisheye624":
        values = _as_param_vector("distortion", distortion, (12,))
        return Fisheye624Model(fx, fy, cx, cy, values[:6], values[6:8], values[8:12])
    raise CameraModelError(f"field 'model': unknown camera model {model!r}, expected one of {CAMERA_MODEL_NAMES}")


def distortion_vector(model: CameraModel) -> np.ndarray:
    """The flat distortion vector that :func:`make_camera_model` takes back."""
    if isinstance(model, Fisheye624Model):
        return np.concatenate([model.radial, model.tangential, model.thin_prism])
    return model.distortion.copy()
