"""Calibrated cameras: an intrinsic model plus world-to-camera extrinsics.

- :class:`Camera`: a static camera (the exo views), ``x_cam = R @ x_world + t``.
- :class:`MovingCamera`: one intrinsic model with one pose per frame (the ego view).

All arrays are float64, metres for positions, pixels for image coordinates.
Construction validates everything and raises :class:`CalibrationError` naming the
camera and the field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triangulation.camera_models import CameraModel, CameraModelError

ROTATION_TOLERANCE = 1e-6  # max |R R^T - I| and |det R - 1| accepted for a rotation


class CalibrationError(ValueError):
    """Invalid calibration; the message names the camera and the field."""


def _check_rotation(camera: str, field: str, rotation: np.ndarray) -> np.ndarray:
    rotation = np.asarray(rotation, dtype=np.float64)
    if rotation.shape[-2:] != (3, 3):
        raise CalibrationError(f"camera '{camera}': field '{field}' must be 3x3, got shape {rotation.shape}")
    if not np.all(np.isfinite(rotation)):
        raise CalibrationError(f"camera '{camera}': field '{field}' contains NaN or infinite values")
    orthogonality = np.abs(rotation @ np.swapaxes(rotation, -1, -2) - np.eye(3)).max(axis=(-2, -1))
    determinant = np.linalg.det(rotation)
    bad = (orthogonality > ROTATION_TOLERANCE) | (np.abs(determinant - 1.0) > ROTATION_TOLERANCE)
    if np.any(bad):
        where = "" if rotation.ndim == 2 else f" at frame index {int(np.flatnonzero(bad.reshape(-1))[0])}"
        raise CalibrationError(
            f"camera '{camera}': field '{field}' is not a rotation matrix{where} "
            f"(|R R^T - I| = {np.max(orthogonality):.3g}, det = {np.ravel(determinant)[0]:.6g})"
        )
    return rotation


def _check_translation(camera: str, field: str, translation: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    translation = np.asarray(translation, dtype=np.float64)
    if translation.shape != shape:
        raise CalibrationError(f"camera '{camera}': field '{field}' must have shape {shape}, got {translation.shape}")
    if not np.all(np.isfinite(translation)):
        raise CalibrationError(f"camera '{camera}': field '{field}' contains NaN or infinite values")
    return translation


def _check_image_size(camera: str, image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = np.asarray(image_size).reshape(-1)
    if size.size != 2 or not np.all(np.isfinite(size.astype(np.float64))) or np.any(size <= 0):
        raise CalibrationError(f"camera '{camera}': field 'image_size' must be [width, height] > 0, got {image_size!r}")
    return int(size[0]), int(size[1])


@dataclass(frozen=True)
class FieldOfView:
    """Where a camera's image is valid, beyond its bounds (Aria calibrations give both).

    ``valid_radius_px``: image points farther than this from the principal point are
    outside the valid (vignetted) area; ``max_angle_rad``: rays farther than this from
    the optical axis are outside the calibrated field of view. None: no limit.
    """

    valid_radius_px: float | None = None
    max_angle_rad: float | None = None

    def __post_init__(self) -> None:
        for name in ("valid_radius_px", "max_angle_rad"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise CalibrationError(f"field '{name}' must be a positive number or None, got {value!r}")


def _check_field_of_view(camera: str, field_of_view) -> FieldOfView | None:
    if field_of_view is None or isinstance(field_of_view, FieldOfView):
        return field_of_view
    raise CalibrationError(f"camera '{camera}': field 'field_of_view' must be a FieldOfView, got {field_of_view!r}")


def _check_model(camera: str, model) -> CameraModel:
    from triangulation.camera_models import Fisheye624Model, FisheyeModel, PinholeModel

    if not isinstance(model, (PinholeModel, FisheyeModel, Fisheye624Model)):
        raise CalibrationError(f"camera '{camera}': field 'model' is not a camera model: {model!r}")
    return model


def rotation_from_quaternion(quaternion_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` from unit quaternions ``(..., 4)`` ordered x, y, z, w."""
    q = np.asarray(quaternion_xyzw, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=-2,
    )


def rotation_from_rodrigues(rotation_vector: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` from axis-angle vectors ``(..., 3)`` in radians."""
    rotation_vector = np.asarray(rotation_vector, dtype=np.float64)
    angle = np.linalg.norm(rotation_vector, axis=-1)
    safe = np.where(angle > 1e-12, angle, 1.0)
    axis = rotation_vector / safe[..., None]
    kx, ky, kz = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(kx)
    cross = np.stack([np.stack([zero, -kz, ky], -1), np.stack([kz, zero, -kx], -1), np.stack([-ky, kx, zero], -1)], -2)
    sin = np.sin(angle)[..., None, None]
    cos = np.cos(angle)[..., None, None]
    rotation = np.eye(3) + sin * cross + (1 - cos) * (cross @ cross)
    return np.where((angle > 1e-12)[..., None, None], rotation, np.eye(3))


def rodrigues_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """Axis-angle vectors ``(..., 3)`` (radians) from rotation matrices ``(..., 3, 3)``."""
    from scipy.spatial.transform import Rotation

    rotation = np.asarray(rotation, dtype=np.float64)
    return Rotation.from_matrix(rotation.reshape(-1, 3, 3)).as_rotvec().reshape(rotation.shape[:-2] + (3,))


@dataclass(frozen=True)
class Camera:
    """A static calibrated camera: ``x_cam = R @ x_world + t``; pixels from ``model``.

    ``name``: camera id (e.g. ``cam01``); ``R (3, 3)``, ``t (3,)`` metres;
    ``image_size``: (width, height) in pixels, or None when unknown;
    ``field_of_view``: the valid image area beyond its bounds, or None.
    """

    name: str
    model: CameraModel
    R: np.ndarray
    t: np.ndarray
    image_size: tuple[int, int] | None = None
    field_of_view: FieldOfView | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_of_view", _check_field_of_view(self.name, self.field_of_view))
        object.__setattr__(self, "model", _check_model(self.name, self.model))
        object.__setattr__(self, "R", _check_rotation(self.name, "R", self.R))
        object.__setattr__(self, "t", _check_translation(self.name, "t", self.t, (3,)))
        object.__setattr__(self, "image_size", _check_image_size(self.name, self.image_size))

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates ``(3,)``."""
        return -self.R.T @ self.t

    def world_to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """``(..., 3)`` world points -> ``(..., 3)`` camera-frame points."""
        return np.asarray(points_world, dtype=np.float64) @ self.R.T + self.t

    def project(self, points_world: np.ndarray) -> np.ndarray:
        """``(..., 3)`` world points -> ``(..., 2)`` pixels (NaN stays NaN)."""
        return self.model.project(self.world_to_camera(points_world))

    def unproject(self, pixels: np.ndarray) -> np.ndarray:
        """``(..., 2)`` pixels -> unit rays ``(..., 3)`` in the world frame."""
        return self.model.unproject(pixels) @ self.R

    def in_front(self, points_world: np.ndarray) -> np.ndarray:
        """``(...)`` bool: the point is in front of the camera (positive depth)."""
        return self.world_to_camera(points_world)[..., 2] > 0


@dataclass(frozen=True)
class MovingCamera:
    """A camera with one world-to-camera pose per frame (the ego camera).

    ``R (frames, 3, 3)``, ``t (frames, 3)``; frames without a pose are NaN and listed
    by :attr:`valid_frames`.
    """

    name: str
    model: CameraModel
    R: np.ndarray
    t: np.ndarray
    image_size: tuple[int, int] | None = None
    field_of_view: FieldOfView | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_of_view", _check_field_of_view(self.name, self.field_of_view))
        R = np.asarray(self.R, dtype=np.float64)
        t = np.asarray(self.t, dtype=np.float64)
        if R.ndim != 3 or R.shape[1:] != (3, 3):
            raise CalibrationError(f"camera '{self.name}': field 'R' must have shape (frames, 3, 3), got {R.shape}")
        if t.shape != (R.shape[0], 3):
            raise CalibrationError(f"camera '{self.name}': field 't' must have shape ({R.shape[0]}, 3), got {t.shape}")
        valid = np.all(np.isfinite(R), axis=(1, 2)) & np.all(np.isfinite(t), axis=1)
        if np.any(valid):
            # Identity in the frames without a pose, so an error names the frame number.
            _check_rotation(self.name, "R", np.where(valid[:, None, None], R, np.eye(3)))
        object.__setattr__(self, "model", _check_model(self.name, self.model))
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "image_size", _check_image_size(self.name, self.image_size))

    @property
    def num_frames(self) -> int:
        return self.R.shape[0]

    @property
    def valid_frames(self) -> np.ndarray:
        """``(frames,)`` bool: a pose is known for the frame."""
        return np.all(np.isfinite(self.R), axis=(1, 2)) & np.all(np.isfinite(self.t), axis=1)

    @property
    def centers(self) -> np.ndarray:
        """Camera centres per frame ``(frames, 3)``, NaN where the pose is unknown."""
        return -np.einsum("fji,fj->fi", self.R, self.t)

    def at_frame(self, frame: int) -> Camera:
        """The static camera of one frame."""
        if not self.valid_frames[frame]:
            raise CalibrationError(f"camera '{self.name}': no pose for frame {frame}")
        return Camera(self.name, self.model, self.R[frame], self.t[frame], self.image_size, self.field_of_view)

    def world_to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """``(frames, ..., 3)`` world points -> camera-frame points with each frame's pose."""
        points_world = np.asarray(points_world, dtype=np.float64)
        extra = points_world.ndim - 2
        R = self.R.reshape(self.R.shape[:1] + (1,) * extra + (3, 3))
        t = self.t.reshape(self.t.shape[:1] + (1,) * extra + (3,))
        return np.einsum("...ij,...j->...i", R, points_world) + t

    def project(self, points_world: np.ndarray) -> np.ndarray:
        """``(frames, ..., 3)`` world points -> ``(frames, ..., 2)`` pixels."""
        return self.model.project(self.world_to_camera(points_world))


__all__ = [
    "Camera",
    "FieldOfView",
    "MovingCamera",
    "CalibrationError",
    "CameraModelError",
    "rotation_from_quaternion",
    "rotation_from_rodrigues",
    "rodrigues_from_rotation",
]


def make_camera(name: str, model: str, matrix, distortion, R, t, image_size=None) -> Camera:
    """Build and validate a :class:`Camera` from plain values (what readers parse).

    ``model``: ``pinhole``, ``fisheye`` or ``fisheye624``; ``matrix``: 3x3 K;
    ``distortion``: the model's flat vector; ``R (3, 3)``, ``t (3,)`` world-to-camera.
    """
    from triangulation.camera_models import make_camera_model

    try:
        intrinsics = make_camera_model(model, matrix, distortion)
    except CameraModelError as error:
        raise CalibrationError(f"camera '{name}': {error}") from None
    return Camera(name, intrinsics, R, t, image_size)
