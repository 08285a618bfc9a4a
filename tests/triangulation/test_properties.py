"""Property-based tests (hypothesis) of the camera models and triangulation.

- every model: project / unproject round trips (rays and pixels) over random
  intrinsics and directions within the field of view;
- triangulation: invariant to a rigid transform of the world, to the order of the views
  and to the world's scale (pixels unchanged), with noise and outliers in the input.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis (test extra)")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from triangulation.camera_models import Fisheye624Model, FisheyeModel, PinholeModel  # noqa: E402
from triangulation.cameras import Camera  # noqa: E402
from triangulation.synthetic import observe, random_points, ring_of_cameras  # noqa: E402
from triangulation.triangulate import triangulate  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def _model(kind: str, rng: np.random.Generator):
    f = rng.uniform(300.0, 1500.0)
    fy = f * rng.uniform(0.98, 1.02)
    cx, cy = rng.uniform(400.0, 600.0), rng.uniform(300.0, 500.0)
    if kind == "pinhole":
        return PinholeModel(f, fy, cx, cy, rng.uniform([-0.2, -0.05, -0.002, -0.002, -0.01], [0.1, 0.1, 0.002, 0.002, 0.01])), 0.6
    if kind == "fisheye":
        return FisheyeModel(f, fy, cx, cy, rng.uniform([-0.05, -0.02, -0.005, -0.001], [0.05, 0.02, 0.005, 0.001])), 1.2
    radial = rng.uniform(-0.05, 0.05, 6) * np.array([1.0, 0.5, 0.2, 0.05, 0.02, 0.01])
    return Fisheye624Model(f, f, cx, cy, radial, rng.uniform(-5e-4, 5e-4, 2), rng.uniform(-5e-4, 5e-4, 4)), 1.1


def _directions(rng: np.random.Generator, max_angle: float, count: int) -> np.ndarray:
    angle = rng.uniform(0.0, max_angle, count)
    azimuth = rng.uniform(0.0, 2 * np.pi, count)
    return np.stack([np.sin(angle) * np.cos(azimuth), np.sin(angle) * np.sin(azimuth), np.cos(angle)], axis=1)


@SETTINGS
@given(kind=st.sampled_from(["pinhole", "fisheye", "fisheye624"]), seed=seeds)
def test_project_unproject_round_trip(kind, seed):
    rng = np.random.default_rng(seed)
    model, max_angle = _model(kind, rng)
    rays = _directions(rng, max_angle, 64)
    depth = rng.uniform(0.3, 8.0, (64, 1))
    pixels = model.project(rays * depth)
    back = model.unproject(pixels)
    np.testing.assert_allclose(back, rays, atol=1e-9)  # unit rays, whatever the depth
    np.testing.assert_allclose(model.project(back), pixels, atol=1e-7)


def _rigid(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix(), rng.uniform(-5.0, 5.0, 3)


def _scene(seed: int):
    cameras = ring_of_cameras(5, "fisheye", seed=seed % 1000)
    points = random_points(6, 10, seed=seed % 997)
    keypoints, _ = observe(cameras, points, noise_px=1.5, drop_rate=0.1, outlier_rate=0.1, seed=seed % 991)
    return cameras, points, keypoints


@SETTINGS
@given(seed=seeds)
def test_triangulation_is_invariant_to_a_rigid_transform_of_the_world(seed):
    rng = np.random.default_rng(seed)
    cameras, _, keypoints = _scene(seed)
    Q, s = _rigid(rng)  # x' = Q x + s; a camera x_cam = R x + t becomes R Q^T x' + (t - R Q^T s)
    moved = [Camera(c.name, c.model, c.R @ Q.T, c.t - c.R @ Q.T @ s, c.image_size) for c in cameras]
    original = triangulate(cameras, keypoints)
    transformed = triangulate(moved, keypoints)
    np.testing.assert_array_equal(np.isnan(original.points), np.isnan(transformed.points))
    np.testing.assert_allclose(transformed.points, original.points @ Q.T + s, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(original.inliers, transformed.inliers)


@SETTINGS
@given(seed=seeds, order=st.permutations(range(5)))
def test_triangulation_does_not_depend_on_the_order_of_the_views(seed, order):
    cameras, _, keypoints = _scene(seed)
    order = list(order)
    original = triangulate(cameras, keypoints)
    permuted = triangulate([cameras[v] for v in order], keypoints[order])
    np.testing.assert_allclose(permuted.points, original.points, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(permuted.inliers, original.inliers[order])
    np.testing.assert_allclose(permuted.reprojection_error, original.reprojection_error[order], atol=1e-6, equal_nan=True)


@SETTINGS
@given(seed=seeds, scale=st.floats(min_value=0.05, max_value=20.0))
def test_triangulation_scales_with_the_world(seed, scale):
    cameras, _, keypoints = _scene(seed)
    scaled = [Camera(c.name, c.model, c.R, c.t * scale, c.image_size) for c in cameras]
    original = triangulate(cameras, keypoints)
    result = triangulate(scaled, keypoints)
    np.testing.assert_allclose(result.points, original.points * scale, rtol=1e-6, atol=1e-9 * scale, equal_nan=True)
    np.testing.assert_allclose(result.reprojection_error, original.reprojection_error, atol=1e-6, equal_nan=True)
