"""Camera models against OpenCV, projectaria-tools and pycolmap, and their own inverses."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from triangulation.camera_models import (
    CameraModelError,
    Fisheye624Model,
    FisheyeModel,
    PinholeModel,
    make_camera_model,
)
from triangulation.cameras import CalibrationError, Camera, MovingCamera, make_camera, rotation_from_rodrigues

# Realistic intrinsics: a 1080p pinhole, an Ego-Exo4D-like 4K GoPro (Kannala-Brandt)
# and an Aria RGB camera (FISHEYE624, 1408x1408).
PINHOLE_DISTORTIONS = {
    4: [-0.28, 0.09, 4e-4, -3e-4],
    5: [-0.28, 0.09, 4e-4, -3e-4, -0.012],
    8: [0.42, -0.11, 4e-4, -3e-4, 0.015, 0.71, -0.08, 0.03],
}
PINHOLE_INTRINSICS = dict(fx=1502.3, fy=1499.8, cx=961.4, cy=538.2)
PINHOLE_SIZE = (1920, 1080)
FISHEYE = FisheyeModel(1796.4, 1795.2, 1918.6, 1081.3, np.array([0.0352, -0.0127, 0.0041, -0.00062]))
FISHEYE_SIZE = (3840, 2160)
ARIA_PARAMS = np.array(
    [610.94, 715.11, 716.71]  # f, cx, cy
    + [0.3976, -0.3543, -0.2035, 0.8053, -0.6207, 0.1670]  # k0..k5
    + [3.6e-4, -1.9e-4]  # p0 p1
    + [-4.5e-4, 2.1e-4, 3.8e-4, -8e-5]  # s0..s3
)
ARIA_SIZE = (1408, 1408)
ARIA_VALID_RADIUS_PX = 700.0


def pinhole(n_coefficients: int) -> PinholeModel:
    return PinholeModel(**PINHOLE_INTRINSICS, distortion=np.array(PINHOLE_DISTORTIONS[n_coefficients]))


def aria() -> Fisheye624Model:
    f, cx, cy = ARIA_PARAMS[:3]
    return Fisheye624Model(f, f, cx, cy, ARIA_PARAMS[3:9], ARIA_PARAMS[9:11], ARIA_PARAMS[11:15])


ALL_MODELS = {
    "pinhole4": (pinhole(4), PINHOLE_SIZE),
    "pinhole5": (pinhole(5), PINHOLE_SIZE),
    "pinhole8": (pinhole(8), PINHOLE_SIZE),
    "fisheye": (FISHEYE, FISHEYE_SIZE),
    "fisheye624": (aria(), ARIA_SIZE),
}


def rays_within(max_angle: float, count: int = 300, seed: int = 0) -> np.ndarray:
    """Random camera-frame points ``(count, 3)`` within ``max_angle`` (radians) of +z, 0.5-6 m away."""
    rng = np.random.default_rng(seed)
    theta = max_angle * np.sqrt(rng.uniform(0, 1, count))
    phi = rng.uniform(-np.pi, np.pi, count)
    distance = rng.uniform(0.5, 6.0, count)
    directions = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
    return directions * distance[:, None]


def pixel_grid(size: tuple[int, int], step: int = 40) -> np.ndarray:
    """Pixel centres ``(n, 2)`` every ``step`` pixels over a ``(width, height)`` image."""
    u, v = np.meshgrid(np.arange(0, size[0], step, dtype=float), np.arange(0, size[1], step, dtype=float))
    return np.stack([u.ravel(), v.ravel()], axis=-1)


def model_pixels(name: str) -> np.ndarray:
    """Pixel grid inside the field of view of a test model."""
    model, size = ALL_MODELS[name]
    pixels = pixel_grid(size)
    if name == "fisheye624":
        pixels = pixels[np.linalg.norm(pixels - (model.cx, model.cy), axis=-1) < ARIA_VALID_RADIUS_PX]
    return pixels


def max_angle(name: str) -> float:
    """Largest off-axis angle (radians) well inside each test model's field of view."""
    return {"fisheye": np.radians(80), "fisheye624": np.radians(62)}.get(name, np.radians(32))


# --------------------------------------------------------------------------------------
# Reference implementations
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_coefficients", [4, 5, 8])
def test_pinhole_equals_cv2_project_points(n_coefficients):
    model = pinhole(n_coefficients)
    points = rays_within(np.radians(32))
    distortion = np.array(PINHOLE_DISTORTIONS[n_coefficients])
    expected, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), model.matrix, distortion)
    np.testing.assert_allclose(model.project(points), expected.reshape(-1, 2), rtol=0, atol=1e-6)


def test_fisheye_equals_cv2_fisheye_project_points():
    points = rays_within(np.radians(80))
    expected, _ = cv2.fisheye.projectPoints(points[:, None, :], np.zeros(3), np.zeros(3), FISHEYE.matrix, FISHEYE.distortion)
    np.testing.assert_allclose(FISHEYE.project(points), expected.reshape(-1, 2), rtol=0, atol=1e-6)


def aria_calibration():
    calibration = pytest.importorskip("projectaria_tools.core.calibration")
    from projectaria_tools.core.sophus import SE3

    return calibration.CameraCalibration("rgb", calibration.CameraModelType.FISHEYE624, ARIA_PARAMS, SE3(), *ARIA_SIZE, None, np.pi, "", 0.0, None)


def test_fisheye624_equals_projectaria_project():
    reference = aria_calibration()
    points = rays_within(np.radians(62))
    expected = np.array([reference.project_no_checks(point) for point in points])
    np.testing.assert_allclose(aria().project(points), expected, rtol=0, atol=1e-4)


def test_fisheye624_equals_projectaria_unproject():
    reference = aria_calibration()
    pixels = model_pixels("fisheye624")[::3]
    expected = np.array([reference.unproject_no_checks(pixel) for pixel in pixels])
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(aria().unproject(pixels), expected, rtol=0, atol=1e-7)


# --------------------------------------------------------------------------------------
# Self-consistency
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ALL_MODELS))
def test_unproject_then_project_is_identity(name):
    model, _ = ALL_MODELS[name]
    pixels = model_pixels(name)
    rays = model.unproject(pixels)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(model.project(rays), pixels, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(ALL_MODELS))
def test_project_then_unproject_returns_unit_ray(name):
    model, _ = ALL_MODELS[name]
    points = rays_within(max_angle(name), seed=3)
    expected = points / np.linalg.norm(points, axis=-1, keepdims=True)
    np.testing.assert_allclose(model.unproject(model.project(points)), expected, rtol=0, atol=1e-9)


def central_differences(model, points: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """``d pixels / d point`` ``(n, 2, 3)`` by central differences (step in metres)."""
    columns = []
    for axis in range(3):
        offset = np.zeros(3)
        offset[axis] = step
        columns.append((model.project(points + offset) - model.project(points - offset)) / (2 * step))
    return np.stack(columns, axis=-1)


@pytest.mark.parametrize("name", list(ALL_MODELS))
def test_project_with_jacobian_equals_finite_differences(name):
    model, _ = ALL_MODELS[name]
    points = np.concatenate([rays_within(max_angle(name), count=100, seed=5), [[0.0, 0.0, 2.0]]])
    pixels, jacobian = model.project_with_jacobian(points)
    np.testing.assert_allclose(pixels, model.project(points), rtol=0, atol=1e-9)
    assert jacobian.shape == (len(points), 2, 3)
    np.testing.assert_allclose(jacobian, central_differences(model, points), rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("name", list(ALL_MODELS))
def test_unproject_with_jacobian_equals_unproject_then_project_with_jacobian(name):
    model, _ = ALL_MODELS[name]
    pixels = np.concatenate([model_pixels(name), [[model.cx, model.cy]]])  # the optical axis too
    rays, jacobian = model.unproject_with_jacobian(pixels)
    np.testing.assert_allclose(rays, model.unproject(pixels), rtol=0, atol=1e-12)
    _, reference = model.project_with_jacobian(model.unproject(pixels))
    np.testing.assert_allclose(jacobian, reference, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(jacobian[-1], central_differences(model, rays[-1:])[0], rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("model", [FISHEYE, aria()], ids=["fisheye", "fisheye624"])
def test_fisheye_models_finite_at_and_beyond_90_degrees(model):
    angles = np.radians([90.0, 95.0, 110.0])
    points = np.stack([np.sin(angles), 0.3 * np.sin(angles), np.cos(angles)], axis=-1) * 2.0
    pixels, jacobian = model.project_with_jacobian(points)
    assert np.all(np.isfinite(pixels)) and np.all(np.isfinite(jacobian))
    assert np.all(pixels[:, 0] > model.cx)  # rays to +x land right of the centre
    if isinstance(model, FisheyeModel):  # radius at exactly 90 degrees is theta_d(pi / 2) * f
        theta = np.pi / 2
        theta_d = theta * (1 + sum(k * theta ** (2 * i + 2) for i, k in enumerate(model.distortion)))
        normalised = (pixels[0] - (model.cx, model.cy)) / (model.fx, model.fy)
        np.testing.assert_allclose(np.linalg.norm(normalised), theta_d, rtol=1e-12)


# --------------------------------------------------------------------------------------
# pycolmap
# --------------------------------------------------------------------------------------


def colmap_cases() -> list[tuple[str, list[float], object]]:
    fx, fy, cx, cy = PINHOLE_INTRINSICS.values()
    k4, k8 = PINHOLE_DISTORTIONS[4], PINHOLE_DISTORTIONS[8]
    return [
        ("SIMPLE_PINHOLE", [fx, cx, cy], PinholeModel(fx, fx, cx, cy)),
        ("PINHOLE", [fx, fy, cx, cy], PinholeModel(fx, fy, cx, cy)),
        ("SIMPLE_RADIAL", [fx, cx, cy, k4[0]], PinholeModel(fx, fx, cx, cy, [k4[0], 0, 0, 0])),
        ("RADIAL", [fx, cx, cy, *k4[:2]], PinholeModel(fx, fx, cx, cy, [*k4[:2], 0, 0])),
        ("OPENCV", [fx, fy, cx, cy, *k4], pinhole(4)),
        ("FULL_OPENCV", [fx, fy, cx, cy, *k8[:4], *k8[4:]], pinhole(8)),
        ("OPENCV_FISHEYE", [FISHEYE.fx, FISHEYE.fy, FISHEYE.cx, FISHEYE.cy, *FISHEYE.distortion], FISHEYE),
        ("RAD_TAN_THIN_PRISM_FISHEYE", [ARIA_PARAMS[0], *ARIA_PARAMS], aria()),
    ]


@pytest.mark.parametrize("colmap_model, params, model", colmap_cases(), ids=[case[0] for case in colmap_cases()])
def test_models_equal_pycolmap(colmap_model, params, model):
    pycolmap = pytest.importorskip("pycolmap")
    reference = pycolmap.Camera(model=colmap_model, width=2000, height=2000, params=params)
    angle = np.radians(62 if "FISHEYE" in colmap_model else 32)
    points = rays_within(angle, seed=7)
    expected = np.asarray(reference.img_from_cam(points))
    np.testing.assert_allclose(model.project(points), expected, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------
# Cameras: extrinsics, moving camera, validation
# --------------------------------------------------------------------------------------


def random_poses(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rotation_from_rodrigues(rng.normal(0, 0.5, (count, 3))), rng.normal(0, 0.3, (count, 3)) + (0, 0, 4)


def test_camera_projects_world_points_through_its_pose():
    R, t = random_poses(1)
    camera = Camera("cam01", FISHEYE, R[0], t[0])
    points = np.random.default_rng(1).normal(0, 0.5, (50, 3))
    np.testing.assert_allclose(camera.project(points), FISHEYE.project(points @ R[0].T + t[0]), atol=1e-9)
    np.testing.assert_allclose(camera.world_to_camera(camera.center), 0.0, atol=1e-12)
    rays = camera.unproject(camera.project(points))
    directions = points - camera.center
    np.testing.assert_allclose(rays, directions / np.linalg.norm(directions, axis=-1, keepdims=True), atol=1e-9)


def test_moving_camera_projects_each_frame_with_its_own_pose():
    R, t = random_poses(6, seed=2)
    R[3], t[3] = np.nan, np.nan  # a frame without a pose
    moving = MovingCamera("aria01", aria(), R, t, ARIA_SIZE)
    points = np.random.default_rng(3).normal(0, 0.4, (6, 17, 3))
    pixels = moving.project(points)
    assert pixels.shape == (6, 17, 2)
    for frame in np.flatnonzero(moving.valid_frames):
        expected = Camera("aria01", aria(), R[frame], t[frame], ARIA_SIZE).project(points[frame])
        np.testing.assert_allclose(pixels[frame], expected, rtol=0, atol=1e-9)
        np.testing.assert_allclose(moving.at_frame(frame).project(points[frame]), expected, rtol=0, atol=1e-9)
    assert np.all(np.isnan(pixels[3]))
    assert moving.valid_frames.tolist() == [True, True, True, False, True, True]
    with pytest.raises(CalibrationError, match=r"camera 'aria01': no pose for frame 3"):
        moving.at_frame(3)


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: PinholeModel(np.nan, 1000.0, 500.0, 500.0), "fx"),
        (lambda: PinholeModel(-1000.0, 1000.0, 500.0, 500.0), "fx"),
        (lambda: FisheyeModel(1000.0, 0.0, 500.0, 500.0), "fy"),
        (lambda: PinholeModel(1000.0, 1000.0, 500.0, 500.0, [0.1, 0.0, 0.0]), "distortion"),
        (lambda: FisheyeModel(1000.0, 1000.0, 500.0, 500.0, [0.1, 0.0, 0.0, 0.0, 0.0]), "distortion"),
        (lambda: PinholeModel(1000.0, 1000.0, 500.0, 500.0, [0.1, np.nan, 0.0, 0.0]), "distortion"),
        (lambda: Fisheye624Model(600.0, 600.0, 700.0, 700.0, radial=np.zeros(5)), "radial"),
        (lambda: make_camera_model("fisheye624", np.eye(3), np.zeros(11)), "distortion"),
        (lambda: make_camera_model("pinhole", [[1000, 0, 5], [0, 1000, 5], [0, 0, np.nan]], []), "matrix"),
        (lambda: make_camera_model("pinhole", np.eye(4), []), "matrix"),
        (lambda: make_camera_model("pinhole", [[1000, 3, 5], [0, 1000, 5], [0, 0, 1]], []), "matrix"),
        (lambda: make_camera_model("kannala", np.eye(3), np.zeros(4)), "model"),
    ],
)
def test_bad_intrinsics_raise_naming_the_field(build, field):
    with pytest.raises(CameraModelError, match=rf"fields? (.*, )?'{field}'"):
        build()


def test_make_camera_names_the_camera_for_bad_intrinsics():
    with pytest.raises(CalibrationError, match=r"camera 'cam03': field 'model': unknown camera model 'orthographic'"):
        make_camera("cam03", "orthographic", np.eye(3), [], np.eye(3), np.zeros(3))


@pytest.mark.parametrize(
    "R, t, field, text",
    [
        (np.full((3, 3), np.nan), np.zeros(3), "R", "NaN"),
        (np.eye(3) * 1.1, np.zeros(3), "R", "not a rotation matrix"),
        (np.diag([1.0, 1.0, -1.0]), np.zeros(3), "R", "not a rotation matrix"),
        (np.eye(3)[:, :2], np.zeros(3), "R", "must be 3x3"),
        (np.eye(3), np.zeros(4), "t", "must have shape"),
        (np.eye(3), [0.0, np.inf, 0.0], "t", "NaN or infinite"),
    ],
)
def test_bad_extrinsics_raise_naming_camera_and_field(R, t, field, text):
    with pytest.raises(CalibrationError, match=rf"camera 'cam02': field '{field}'.*{text}"):
        Camera("cam02", FISHEYE, R, t)


def test_moving_camera_bad_pose_names_the_frame():
    R, t = random_poses(4)
    R[0], t[0] = np.nan, np.nan
    R[2] = R[2] * 1.01
    with pytest.raises(CalibrationError, match=r"camera 'aria01': field 'R' is not a rotation matrix at frame index 2"):
        MovingCamera("aria01", aria(), R, t)
    with pytest.raises(CalibrationError, match=r"camera 'aria01': field 't' must have shape \(4, 3\)"):
        MovingCamera("aria01", aria(), random_poses(4)[0], np.zeros((3, 3)))
