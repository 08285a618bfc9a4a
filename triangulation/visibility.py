"""Where 3D points land in a camera, and why a point is not visible there.

:func:`project_with_visibility` projects world points through a static or moving
camera and gives every point a code (:data:`VISIBILITY_NAMES`): visible, or the first
reason it is not, checked in this order: not reconstructed (NaN point), no camera pose
at that frame, behind the camera, nearer than a minimum depth (a head-worn camera's
wearer's own face), outside the camera's valid field of view (ray angle or valid
radius of :class:`~triangulation.cameras.FieldOfView`), outside the image.

:func:`project_rectified` projects into an undistorted pinhole with a camera's pose (an
undistorted image of it: the release's undistorted exo frames), and
:func:`linear_camera` is the undistorted ego frame of the Ego-Exo4D releases
(projectaria-tools ``get_linear_camera_calibration(w, h, f)``: a pinhole with the
principal point at ``((w - 1) / 2, (h - 1) / 2)``). A point is visible there when it is
in that pinhole image *and* visible in the source fisheye (what the consumers' valid
mask, the undistortion of an all-white fisheye image, keeps).

Image bounds follow the pixel-area convention of projectaria-tools' ``is_visible``:
``-0.5 <= x <= w - 0.5`` and the same for y (pixel centres at integers).
"""

from __future__ import annotations

import numpy as np

from triangulation.camera_models import PinholeModel
from triangulation.cameras import Camera, FieldOfView, MovingCamera

VISIBLE = 0
NOT_RECONSTRUCTED = 1
NO_POSE = 2
BEHIND_CAMERA = 3
OUTSIDE_FIELD_OF_VIEW = 4
OUTSIDE_IMAGE = 5
TOO_CLOSE = 6
VISIBILITY_NAMES = {
    VISIBLE: "visible",
    NOT_RECONSTRUCTED: "not_reconstructed",
    NO_POSE: "no_camera_pose",
    BEHIND_CAMERA: "behind_camera",
    OUTSIDE_FIELD_OF_VIEW: "outside_field_of_view",
    OUTSIDE_IMAGE: "outside_image",
    TOO_CLOSE: "too_close",
}


def linear_camera(width: int, height: int, focal_px: float) -> PinholeModel:
    """The undistorted linear camera ``width x height`` pixels with ``focal_px`` (no distortion)."""
    return PinholeModel(focal_px, focal_px, (width - 1) / 2.0, (height - 1) / 2.0, np.zeros(4))


def inside_image(pixels: np.ndarray, image_size: tuple[int, int] | None) -> np.ndarray:
    """``(...)`` bool: ``pixels (..., 2)`` lie on the image (pixel areas); True everywhere when the size is unknown."""
    finite = np.isfinite(pixels).all(axis=-1)
    if image_size is None:
        return finite
    width, height = image_size
    x, y = pixels[..., 0], pixels[..., 1]
    with np.errstate(invalid="ignore"):
        return finite & (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)


def inside_field_of_view(points_cam: np.ndarray, pixels: np.ndarray, model, field_of_view: FieldOfView | None) -> np.ndarray:
    """``(...)`` bool: the ray of ``points_cam (..., 3)`` is within the maximum angle and its
    pixel ``(..., 2)`` within the valid radius of the principal point."""
    ok = np.ones(points_cam.shape[:-1], dtype=bool)
    if field_of_view is None:
        return ok
    with np.errstate(invalid="ignore"):
        if field_of_view.max_angle_rad is not None:
            angle = np.arctan2(np.linalg.norm(points_cam[..., :2], axis=-1), points_cam[..., 2])
            ok &= angle <= field_of_view.max_angle_rad
        if field_of_view.valid_radius_px is not None:
            radius = np.hypot(pixels[..., 0] - model.cx, pixels[..., 1] - model.cy)
            ok &= radius <= field_of_view.valid_radius_px
    return ok


def _codes(points_world: np.ndarray, points_cam: np.ndarray, min_depth: float) -> np.ndarray:
    codes = np.full(points_cam.shape[:-1], VISIBLE, dtype=np.int8)
    reconstructed = np.isfinite(points_world).all(axis=-1)
    posed = np.isfinite(points_cam).all(axis=-1)
    codes[~reconstructed] = NOT_RECONSTRUCTED
    codes[reconstructed & ~posed] = NO_POSE
    with np.errstate(invalid="ignore"):
        depth = points_cam[..., 2]
        codes[(codes == VISIBLE) & ~(depth > 0)] = BEHIND_CAMERA
        codes[(codes == VISIBLE) & ~(depth > min_depth)] = TOO_CLOSE
    return codes


def project_with_visibility(camera: Camera | MovingCamera, points_world: np.ndarray, min_depth: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(..., 2)`` and visibility codes ``(...)`` int8 of world points in ``camera``.

    ``points_world``: ``(..., 3)`` metres for a static camera, ``(frames, ..., 3)`` for a
    moving one (one pose per frame); ``min_depth``: metres along the optical axis below
    which a point in front is too close to be seen. Pixels are NaN where the point is not
    reconstructed, has no pose or is behind or too close to the camera.
    """
    points_world = np.asarray(points_world, dtype=np.float64)
    points_cam = camera.world_to_camera(points_world)
    codes = _codes(points_world, points_cam, min_depth)
    front = codes == VISIBLE
    pixels = np.full(points_cam.shape[:-1] + (2,), np.nan)
    pixels[front] = camera.model.project(points_cam[front])
    fov = inside_field_of_view(points_cam, pixels, camera.model, camera.field_of_view)
    codes[front & ~fov] = OUTSIDE_FIELD_OF_VIEW
    codes[(codes == VISIBLE) & ~inside_image(pixels, camera.image_size)] = OUTSIDE_IMAGE
    return pixels, codes


def project_undistorted(
    camera: Camera | MovingCamera, points_world: np.ndarray, size: tuple[int, int], focal_px: float, min_depth: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(..., 2)`` and codes ``(...)`` in the linear ``size`` / ``focal_px`` camera that
    shares ``camera``'s pose; a point is visible when it is in that image and visible in ``camera``."""
    return project_rectified(camera, points_world, linear_camera(size[0], size[1], focal_px), size, min_depth)


def project_rectified(
    camera: Camera | MovingCamera, points_world: np.ndarray, target: PinholeModel, size: tuple[int, int], min_depth: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(..., 2)`` and codes ``(...)`` in the undistorted pinhole ``target`` (``size``
    pixels, no distortion) that shares ``camera``'s pose (an undistorted image of that
    camera); a point is visible when it is in that image and visible in ``camera``."""
    points_world = np.asarray(points_world, dtype=np.float64)
    points_cam = camera.world_to_camera(points_world)
    codes = _codes(points_world, points_cam, min_depth)
    front = codes == VISIBLE
    pixels = np.full(points_cam.shape[:-1] + (2,), np.nan)
    pixels[front] = target.project(points_cam[front])
    source = np.full_like(pixels, np.nan)
    source[front] = camera.model.project(points_cam[front])
    in_source = inside_field_of_view(points_cam, source, camera.model, camera.field_of_view)
    in_source &= inside_image(source, camera.image_size)
    codes[front & ~in_source] = OUTSIDE_FIELD_OF_VIEW
    codes[(codes == VISIBLE) & ~inside_image(pixels, size)] = OUTSIDE_IMAGE
    return pixels, codes


def rectified_to_raw(camera: Camera | MovingCamera, target: PinholeModel, pixels: np.ndarray) -> np.ndarray:
    """Pixels ``(..., 2)`` of the undistorted pinhole ``target`` (as :func:`project_rectified`
    makes them) back to ``camera``'s own image: the ray of each pixel through ``camera``'s
    model. NaN stays NaN."""
    pixels = np.asarray(pixels, dtype=np.float64)
    rays = np.concatenate([(pixels - (target.cx, target.cy)) / (target.fx, target.fy), np.ones(pixels.shape[:-1] + (1,))], axis=-1)
    return camera.model.project(rays)
