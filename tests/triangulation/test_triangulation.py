"""Triangulation against ground truth on synthetic rigs, and against a reference optimiser."""

import numpy as np
import pytest
from scipy.optimize import least_squares

from triangulation.synthetic import observe, random_points, ring_of_cameras
from triangulation.triangulate import triangulate


@pytest.fixture(scope="module", params=["fisheye", "pinhole"])
def rig(request):
    return ring_of_cameras(5, model=request.param, seed=3)


def _errors_mm(result, truth):
    return np.linalg.norm(result.points - truth, axis=-1) * 1000.0


@pytest.mark.parametrize("ransac", [True, False])
def test_exact_recovery_without_noise(rig, ransac):
    truth = random_points(40, 59, seed=1)
    keypoints, _ = observe(rig, truth, seed=2)
    keypoints = np.stack([camera.project(truth) for camera in rig])  # float64, exact
    keypoints = np.concatenate([keypoints, np.ones(keypoints.shape[:-1] + (1,))], axis=-1)
    result = triangulate(rig, keypoints, ransac=ransac)
    assert np.max(np.linalg.norm(result.points - truth, axis=-1)) < 1e-9
    assert np.all(result.num_views == 5)
    assert np.all(result.inliers)
    assert np.nanmax(result.reprojection_error) < 1e-6
    assert np.allclose(result.confidence, 1.0)
    assert np.max(result.mean_inlier_error) < 1e-6


def test_ransac_near_noise_only_optimum_and_far_below_dlt(rig):
    truth = random_points(300, 59, seed=4)
    keypoints, outlier = observe(rig, truth, noise_px=2.0, drop_rate=0.1, outlier_rate=0.15, seed=5)
    clean_views = (~outlier & ~np.isnan(keypoints[..., 0])).sum(axis=0)
    judged = clean_views >= 3  # enough clean views that the outliers are identifiable

    # The noise-only optimum: the same observations with the outliers removed by an oracle.
    oracle_keypoints = keypoints.copy()
    oracle_keypoints[outlier] = np.nan
    oracle = _errors_mm(triangulate(rig, oracle_keypoints, ransac=False, refine_iterations=3), truth)

    # Outliers start at 40 px: a 20 px threshold (10 sigma of the noise) separates them.
    robust = triangulate(rig, keypoints, threshold_px=20.0)
    plain = triangulate(rig, keypoints, ransac=False, refine_iterations=0)
    robust_mm, plain_mm = _errors_mm(robust, truth), _errors_mm(plain, truth)

    assert np.isfinite(robust_mm[judged]).all()
    assert np.mean(robust_mm[judged]) < 1.02 * np.mean(oracle[judged])
    assert np.median(robust_mm[judged]) < 1.02 * np.median(oracle[judged])
    assert np.mean(plain_mm[judged]) > 4.0 * np.mean(robust_mm[judged])
    # The gross outliers are the rejected views.
    accepted_outliers = (robust.inliers & outlier)[:, judged].sum()
    assert accepted_outliers <= 0.001 * outlier[:, judged].sum()
    rejected_clean = (~robust.inliers & ~outlier & ~np.isnan(keypoints[..., 0]))[:, judged].sum()
    assert rejected_clean <= 0.01 * (~outlier & ~np.isnan(keypoints[..., 0]))[:, judged].sum()


def test_outlier_views_keep_their_error_for_qa(rig):
    truth = random_points(5, 3, seed=6)
    keypoints = np.stack([camera.project(truth) for camera in rig])
    keypoints = np.concatenate([keypoints, np.ones(keypoints.shape[:-1] + (1,))], axis=-1)
    keypoints[1, :, :, 0] += 150.0  # view 1 is wrong by 150 px everywhere
    result = triangulate(rig, keypoints, threshold_px=20.0)
    assert np.max(np.linalg.norm(result.points - truth, axis=-1)) < 1e-9
    assert not result.inliers[1].any() and result.inliers[[0, 2, 3, 4]].all()
    assert np.allclose(result.reprojection_error[1], 150.0, atol=1e-6)
    assert np.allclose(result.num_views, 4)
    assert np.allclose(result.confidence, 0.8)


def test_refinement_reaches_the_reprojection_optimum(rig):
    """Our Gauss-Newton result equals scipy's least squares on the same pixel error."""
    truth = random_points(1, 12, seed=7)
    keypoints, _ = observe(rig, truth, noise_px=3.0, seed=8)
    keypoints = keypoints.astype(np.float64)
    keypoints[..., 2] = 1.0
    result = triangulate(rig, keypoints, ransac=False, refine_iterations=10, huber_px=1e9)
    for joint in range(truth.shape[1]):

        def residual(point, joint=joint):
            return np.concatenate([cam.project(point) - keypoints[v, 0, joint, :2] for v, cam in enumerate(rig)])

        reference = least_squares(residual, truth[0, joint], xtol=1e-14, ftol=1e-14, gtol=1e-14).x
        assert np.linalg.norm(result.points[0, joint] - reference) < 1e-8


def test_missing_data_and_min_views(rig):
    truth = random_points(4, 6, seed=9)
    keypoints = np.stack([camera.project(truth) for camera in rig])
    keypoints = np.concatenate([keypoints, np.ones(keypoints.shape[:-1] + (1,))], axis=-1)
    keypoints[:, 0] = np.nan  # frame 0 unseen
    keypoints[1:, 1, 0] = np.nan  # frame 1 joint 0: one view only
    keypoints[2:, 1, 1] = np.nan  # frame 1 joint 1: two views
    keypoints[:, 1, 2, 2] = 0.1  # frame 1 joint 2: every confidence below the threshold
    with np.errstate(all="raise"):
        result = triangulate(rig, keypoints, min_confidence=0.2)
    assert np.isnan(result.points[0]).all() and (result.num_views[0] == 0).all()
    assert np.isnan(result.points[1, 0]).all()
    assert np.linalg.norm(result.points[1, 1] - truth[1, 1]) < 1e-9 and result.num_views[1, 1] == 2
    assert np.isnan(result.points[1, 2]).all() and result.confidence[1, 2] == 0
    assert np.isnan(result.reprojection_error[:, 0]).all()
    strict = triangulate(rig, keypoints, min_views=3)
    assert np.isnan(strict.points[1, 1]).all()
    assert np.isfinite(strict.points[2:]).all()


def test_confidence_weighting_prefers_confident_views(rig):
    truth = random_points(200, 10, seed=10)
    rng = np.random.default_rng(11)
    pixels = np.stack([camera.project(truth) for camera in rig])
    sigma = np.array([0.5, 0.5, 8.0, 8.0, 8.0])[:, None, None, None]
    noisy = pixels + rng.normal(size=pixels.shape) * sigma
    right = np.concatenate([noisy, np.broadcast_to(1.0 / sigma, pixels.shape[:-1] + (1,))], axis=-1)
    flat = right.copy()
    flat[..., 2] = 1.0
    weighted = _errors_mm(triangulate(rig, right, ransac=False, min_confidence=0.0, huber_px=1e9), truth)
    unweighted = _errors_mm(triangulate(rig, flat, ransac=False, huber_px=1e9), truth)
    assert np.mean(weighted) < 0.7 * np.mean(unweighted)


def test_point_behind_a_pinhole_camera_is_not_seen_by_it():
    from triangulation.cameras import Camera

    rig = ring_of_cameras(4, model="pinhole", seed=12)
    turned = np.diag([-1.0, 1.0, -1.0]) @ rig[0].R  # same centre, looking the other way
    rig[0] = Camera("cam01", rig[0].model, turned, -turned @ rig[0].center)
    truth = random_points(2, 3, seed=13)
    assert not rig[0].in_front(truth).any()
    # The pinhole formula still gives pixels for points behind (x/z, y/z); a detector
    # could report them there, but the ray cannot reach the point.
    keypoints = np.stack([camera.model.project(camera.world_to_camera(truth)) for camera in rig])
    keypoints = np.concatenate([keypoints, np.ones(keypoints.shape[:-1] + (1,))], axis=-1)
    for ransac in (True, False):
        result = triangulate(rig, keypoints, ransac=ransac)
        assert not result.inliers[0].any()
        assert np.max(np.linalg.norm(result.points - truth, axis=-1)) < 1e-9


def test_batches_are_independent(rig):
    truth = random_points(200, 59, seed=14)  # more points than one internal chunk
    keypoints, _ = observe(rig, truth, noise_px=1.0, outlier_rate=0.1, drop_rate=0.1, seed=15)
    whole = triangulate(rig, keypoints)
    part = triangulate(rig, keypoints[:, 150:])
    np.testing.assert_array_equal(whole.points[150:], part.points)
    np.testing.assert_array_equal(whole.inliers[:, 150:], part.inliers)


def test_one_view_or_no_frame_gives_nothing_without_error(rig):
    truth = random_points(3, 4, seed=16)
    keypoints, _ = observe(rig, truth, noise_px=1.0, seed=17)
    single = triangulate(rig[:1], keypoints[:1])
    assert np.isnan(single.points).all() and not single.inliers.any() and (single.num_views == 0).all()
    empty = triangulate(rig, np.full((5, 0, 59, 3), np.nan))
    assert empty.points.shape == (0, 59, 3) and empty.inliers.shape == (5, 0, 59)


def test_bad_input_is_refused(rig):
    with pytest.raises(ValueError, match="views, frames, joints, 3"):
        triangulate(rig, np.zeros((5, 10, 3)))
    with pytest.raises(ValueError, match="4 cameras for 5 views"):
        triangulate(rig[:4], np.zeros((5, 1, 1, 3)))
    with pytest.raises(ValueError, match="min_views"):
        triangulate(rig, np.zeros((5, 1, 1, 3)), min_views=1)


def test_the_library_defaults_are_the_configured_settings():
    """A researcher calling ``triangulate(cameras, keypoints)`` gets what the pipeline runs
    (configs/default.yaml's triangulation section), not other numbers."""
    import inspect

    from pipeline.config import load_config

    defaults = {name: p.default for name, p in inspect.signature(triangulate).parameters.items() if p.default is not inspect.Parameter.empty}
    assert defaults == load_config().section("triangulation")


def test_all_views_fisheye_path_equals_the_camera_models():
    """The batched Kannala-Brandt formulas (every view at once) against the models' own
    per-view unprojection and projection."""
    from triangulation.triangulate import _fisheye_project, _fisheye_rays_and_jacobians, _fisheye_rig

    rig = ring_of_cameras(5, model="fisheye", seed=16)
    truth = random_points(30, 20, seed=17).reshape(-1, 3)
    pixels = np.stack([camera.project(truth) for camera in rig])  # (V, N, 2)
    parameters = _fisheye_rig(rig, np.float64)
    rays, J = _fisheye_rays_and_jacobians(parameters, pixels[..., 0], pixels[..., 1])
    projected, jacobian = _fisheye_project(parameters, truth, True)
    for v, camera in enumerate(rig):
        model_rays, model_jac = camera.model.unproject_with_jacobian(pixels[v])
        np.testing.assert_allclose(np.stack(rays, axis=-1)[v], model_rays, atol=1e-13)
        np.testing.assert_allclose(np.array(J)[:, :, v].transpose(2, 0, 1), model_jac, rtol=1e-11, atol=1e-9)
        model_pixels, model_jac = camera.model.project_with_jacobian(camera.world_to_camera(truth))
        np.testing.assert_allclose(projected[:, v].T, model_pixels, atol=1e-9)
        np.testing.assert_allclose(jacobian[:, :, v].transpose(2, 0, 1), model_jac @ camera.R, rtol=1e-11, atol=1e-9)


def test_a_mixed_rig_takes_the_per_view_path_to_the_same_points():
    """A Kannala-Brandt camera written as the same FISHEYE624 model (k4 = k5 = 0, no
    tangential or prism terms) sends the rig through the per-view path (float64 rays): the
    same inliers, and points within the float32 rays' effect on the batched path's linear
    start after one Gauss-Newton step (~1e-7 m)."""
    from triangulation.camera_models import Fisheye624Model
    from triangulation.cameras import Camera

    rig = ring_of_cameras(5, model="fisheye", seed=18)
    model = rig[0].model
    same = Fisheye624Model(model.fx, model.fy, model.cx, model.cy, radial=np.concatenate([model.distortion, [0.0, 0.0]]))
    mixed = [Camera(rig[0].name, same, rig[0].R, rig[0].t, rig[0].image_size)] + rig[1:]
    truth = random_points(100, 59, seed=19)
    keypoints, _ = observe(rig, truth, noise_px=2.0, drop_rate=0.1, outlier_rate=0.15, seed=20)
    fast, per_view = triangulate(rig, keypoints), triangulate(mixed, keypoints)
    np.testing.assert_array_equal(fast.inliers, per_view.inliers)
    np.testing.assert_allclose(fast.points, per_view.points, atol=5e-7, equal_nan=True)
    np.testing.assert_allclose(fast.reprojection_error, per_view.reprojection_error, atol=1e-4, equal_nan=True)
