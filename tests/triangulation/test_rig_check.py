"""The rig check against ground truth: synthetic takes of a walking person-like point set
seen by a ring of fisheye cameras, one camera perturbed (extrinsics, time, focal) or none."""

import dataclasses

import numpy as np
import pytest
from scipy.optimize import least_squares

import triangulation.rig_check as rig_check
from triangulation.cameras import Camera, rodrigues_from_rotation, rotation_from_rodrigues
from triangulation.rig_check import RigCheckSettings, check_rig, retime_keypoints
from triangulation.synthetic import observe, ring_of_cameras
from triangulation.triangulate import triangulate

FPS = 30.0
SETTINGS = RigCheckSettings(
    min_confidence=0.3, min_views=2, max_samples=2000, min_frames=30, huber_px=3.0, outlier_px=30.0,
    estimate_time_offset=True, max_shift_frames=5, min_speed_px=1.0, estimate_focal=False, max_iterations=30,
    min_rotation_deg=0.2, min_translation_mm=10.0, min_time_offset_ms=10.0, sigma_factor=5.0,
    max_uncertainty_rotation_deg=0.1, max_uncertainty_translation_mm=10.0, max_uncertainty_time_ms=5.0, max_planarity=0.05,
)  # fmt: skip

# A 15-joint standing figure (metres, facing +y) whose limbs swing at 1 Hz while it walks
# a Lissajous path (up to ~0.6 m/s) and turns: analytic in time, so a camera can be
# observed at any time t + s exactly.
SKELETON = np.array(
    [[0, 0, 1.70], [0, 0, 1.50], [0.20, 0, 1.45], [-0.20, 0, 1.45], [0.25, 0, 1.15], [-0.25, 0, 1.15], [0.25, 0.05, 0.90],
     [-0.25, 0.05, 0.90], [0.12, 0, 0.95], [-0.12, 0, 0.95], [0.12, 0, 0.52], [-0.12, 0, 0.52], [0.12, 0, 0.08],
     [-0.12, 0, 0.08], [0, 0.08, 1.62]]
)  # fmt: skip
SWING = np.array([0, 0, 0, 0, 0.15, -0.15, 0.3, -0.3, 0, 0, -0.15, 0.15, -0.3, 0.3, 0])  # forward swing amplitude [m]


def person(times: np.ndarray, planar: bool = False) -> np.ndarray:
    """Joints ``(len(times), 15, 3)`` metres at ``times`` (frames, 30 fps); ``planar``: all at z = 1 m."""
    t = np.asarray(times, dtype=np.float64)[:, None]
    root = np.stack([0.8 * np.sin(2 * np.pi * t / 240), 0.6 * np.sin(2 * np.pi * t / 170 + 1.0), 0.03 * np.sin(2 * np.pi * t / 15)], -1)
    local = np.repeat(SKELETON[None], len(t), axis=0)
    local[..., 1] += SWING * np.sin(2 * np.pi * t / 30)
    if planar:
        local[..., 2], root[..., 2] = 1.0, 0.0
    heading = 2 * np.pi * t / 400
    cos, sin = np.cos(heading), np.sin(heading)
    turned = np.stack([cos * local[..., 0] - sin * local[..., 1], sin * local[..., 0] + cos * local[..., 1], local[..., 2]], -1)
    return turned + root


def scene(views=4, frames=600, seed=0, shift=None, still=False, planar=False):
    """The true cameras and keypoints ``(views, frames, 15, 3)``: 1.5 px noise, 5 % dropped,
    2 % gross outliers; ``shift = (view, s)``: that camera's frame f shows time f + s."""
    cameras = ring_of_cameras(views, "fisheye", seed=seed)
    keypoints = []
    for v, camera in enumerate(cameras):
        s = shift[1] if shift is not None and shift[0] == v else 0.0
        times = np.full(frames, 100.0) if still else np.arange(frames) + s
        observed, _ = observe([camera], person(times, planar), noise_px=1.5, drop_rate=0.05, outlier_rate=0.02, seed=100 * seed + v)
        keypoints.append(observed[0])
    return cameras, np.stack(keypoints)


def perturbed(camera: Camera, degrees: float, mm: float, seed: int) -> Camera:
    """``camera`` rotated by ``degrees`` about a random axis through its centre, moved by ``mm``."""
    rng = np.random.default_rng(seed)
    axis, direction = rng.normal(size=3), rng.normal(size=3)
    R = rotation_from_rodrigues(np.radians(degrees) * axis / np.linalg.norm(axis)) @ camera.R
    center = camera.center + direction / np.linalg.norm(direction) * mm / 1000.0
    return dataclasses.replace(camera, R=R, t=-R @ center)


def check(cameras, keypoints, settings=SETTINGS):
    return check_rig(cameras, keypoints, triangulate(cameras, keypoints).points, FPS, settings)


def rotation_error_deg(R: np.ndarray, truth: np.ndarray) -> float:
    return float(np.degrees(np.linalg.norm(rodrigues_from_rotation(R @ truth.T))))


# --------------------------------------------------------------------------------------
# The adjustment's Jacobian and solver
# --------------------------------------------------------------------------------------


def _small_problem(model: str):
    """Camera 2 free against cameras 1, 3, 4 over 40 samples, time and focal estimated, shift 1."""
    cameras, keypoints = scene(frames=120, seed=1, shift=(1, 1.4))
    if model == "pinhole":
        cameras = ring_of_cameras(4, "pinhole", seed=1)
        keypoints = np.stack([np.concatenate([c.project(person(np.arange(120))), np.ones((120, 15, 1))], -1) for c in cameras])
    frames, joints = np.arange(20, 60), np.arange(40) % 15
    track = rig_check._Track(keypoints[1], rig_check._confident(keypoints[1], 0.3))
    window, usable = track.window(frames, joints, 1, with_time=True)
    refs = [0, 2, 3]
    problem = rig_check._Problem(
        camera=cameras[1], references=[cameras[r] for r in refs], window=window.astype(float),
        ref_pixels=keypoints[refs][:, frames, joints, :2].astype(float),
        ref_used=rig_check._confident(keypoints[refs][:, frames, joints], 0.3), k=1, with_time=True, with_focal=True,
    )  # fmt: skip
    points = person(np.arange(120))[frames, joints]
    problem, index = rig_check._gate(problem, rig_check._start_params(problem), points, 30.0, usable)
    return problem, points[index]


@pytest.mark.parametrize("model", ["fisheye", "pinhole"])
def test_analytic_jacobian_equals_finite_differences(model):
    problem, points = _small_problem(model)
    params = rig_check._start_params(problem) + np.array([0.01, -0.02, 0.005, 0.01, -0.02, 0.03, 0.35, 0.01])
    points = points + 0.002
    _, jacobian = rig_check.sparse_jacobian(problem, params, points)
    x = np.concatenate([params, points.reshape(-1)])

    def residual(x):
        return rig_check.sparse_jacobian(problem, x[:8], x[8:].reshape(-1, 3))[0]

    step = 1e-6
    numeric = np.stack([(residual(x + step * e) - residual(x - step * e)) / (2 * step) for e in np.eye(x.size)], axis=1)
    assert jacobian.shape == numeric.shape
    assert np.abs(jacobian.toarray() - numeric).max() < 1e-5 * np.abs(numeric).max()
    # The sparsity: each residual row touches its point's 3 columns (and the camera's 8).
    assert jacobian.nnz <= 2 * len(points) * (8 + 3) + 2 * problem.ref_used.sum() * 3


def test_schur_solver_equals_scipy_least_squares():
    problem, points = _small_problem("fisheye")
    settings = dataclasses.replace(SETTINGS, huber_px=1e6, max_iterations=100)  # plain least squares
    start = rig_check._start_params(problem)
    params, solved, S, *_ = rig_check._solve(problem, start, points, settings)
    x0 = np.concatenate([start, points.reshape(-1)])
    reference = least_squares(
        lambda x: rig_check.sparse_jacobian(problem, x[:8], x[8:].reshape(-1, 3))[0],
        x0,
        jac=lambda x: rig_check.sparse_jacobian(problem, x[:8], x[8:].reshape(-1, 3))[1].toarray(),
        method="trf",
        x_scale="jac",
        xtol=1e-12,
        ftol=1e-12,
    )
    residual = rig_check.sparse_jacobian(problem, params, solved)[0]
    cost = 0.5 * np.sum(residual**2)
    assert abs(cost - reference.cost) <= 1e-6 * reference.cost
    # The same minimum: the parameters agree to 2 % of their 1-sigma uncertainty.
    sigma = np.sqrt(np.diag(np.linalg.inv(S)) * 2 * cost / (residual.size - reference.x.size))
    assert np.all(np.abs(params - reference.x[:8]) < 0.02 * sigma)


# --------------------------------------------------------------------------------------
# Corrections found
# --------------------------------------------------------------------------------------


def test_rotated_and_moved_camera_is_estimated_and_flagged():
    truth, keypoints = scene(seed=2)
    given = list(truth)
    given[2] = perturbed(truth[2], 1.0, 30.0, seed=5)
    # 5000 samples: the centre's 1-sigma is ~1 mm (with 2000, ~1.7 mm: 5 mm is then a 3-sigma error).
    result = check(given, keypoints, dataclasses.replace(SETTINGS, max_samples=5000))
    assert result.status == "checked" and result.trusted == ("cam01", "cam02", "cam04")
    assert result.apply() == ("cam03",)
    assert [c.status for c in result.cameras] == ["ok", "ok", "offset", "ok"]
    found = result.cameras[2]
    assert abs(found.rotation_deg - 1.0) < 0.1 and abs(found.translation_mm - 30.0) < 5.0
    corrected = found.camera(given[2])
    assert rotation_error_deg(corrected.R, truth[2].R) < 0.1
    assert np.linalg.norm(corrected.center - truth[2].center) * 1000 < 5.0
    assert found.reprojection_px_before > 5 * found.reprojection_px_after
    assert found.rotation_sigma_deg < 0.1 and found.translation_sigma_mm < 5.0


def test_a_step_that_fails_in_the_time_offset_still_moves_the_pose(monkeypatch):
    """At a whole frame the interpolated track's derivative jumps, so a joint step can fail
    in ``s`` alone (seen on a rendered 60-frame take: every step rejected, the pose left at
    the calibration's). Here any move of ``s`` off its whole frame costs more than the
    Jacobian knows (a kink): the pose must still be found."""
    from triangulation import rig_check

    cost = rig_check._cost

    def kinked(problem, params, points, huber_px):
        extra = 1e9 * abs(params[6] - problem.k) if problem.with_time else 0.0
        return cost(problem, params, points, huber_px) + extra

    monkeypatch.setattr(rig_check, "_cost", kinked)
    truth, keypoints = scene(seed=2)
    given = list(truth)
    given[2] = perturbed(truth[2], 1.0, 30.0, seed=5)
    found = check(given, keypoints, dataclasses.replace(SETTINGS, max_shift_frames=0)).cameras[2]
    assert rotation_error_deg(found.camera(given[2]).R, truth[2].R) < 0.1
    assert found.reprojection_px_before > 5 * found.reprojection_px_after


@pytest.mark.parametrize("shift", [1.5, 3.0])
def test_time_offset_is_estimated(shift):
    cameras, keypoints = scene(seed=3, shift=(1, shift))
    result = check(cameras, keypoints)
    assert result.status == "checked" and result.apply() == ("cam02",)
    found = result.cameras[1]
    assert found.time_offset_observable and found.time_offset_applies
    assert abs(found.time_offset_frames - shift) < 0.1
    assert abs(found.whole_frame_offset - shift) <= 0.5  # the search's whole frames, then the sub-frame fit
    assert found.rotation_deg < 0.1 and found.translation_mm < 5.0
    for other in result.cameras[:1] + result.cameras[2:]:
        assert other.status == "ok" and abs(other.time_offset_frames) < 0.1
    # Re-timed with the estimate, its keypoints match the scene at the reference times.
    retimed = retime_keypoints(keypoints[1], found.time_offset_frames)
    truth = cameras[1].project(person(np.arange(keypoints.shape[1])))
    errors = np.linalg.norm(retimed[..., :2] - truth, axis=-1)
    assert np.nanmedian(errors) < 2.0 < np.nanmedian(np.linalg.norm(keypoints[1][..., :2] - truth, axis=-1))


def test_focal_length_is_estimated_when_asked():
    truth, keypoints = scene(seed=4)
    given = list(truth)
    model = truth[1].model
    given[1] = dataclasses.replace(truth[1], model=dataclasses.replace(model, fx=model.fx * 1.03, fy=model.fy * 1.03))
    result = check(given, keypoints, dataclasses.replace(SETTINGS, estimate_focal=True))
    assert result.apply() == ("cam02",)
    found = result.cameras[1]
    assert abs(found.camera(given[1]).model.fx - model.fx) < 0.003 * model.fx
    assert all(c.focal_scale == 1.0 for c in check(truth, keypoints).cameras)  # not estimated by default


# --------------------------------------------------------------------------------------
# No false corrections, and the degenerate cases said
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_unperturbed_rig_changes_nothing(seed):
    cameras, keypoints = scene(frames=400, seed=10 + seed)
    result = check(cameras, keypoints)
    assert result.status == "checked" and result.apply() == ()
    assert all(c.status != "offset" for c in result.cameras)
    for found in result.cameras:  # every correction below its significance threshold
        assert found.rotation_deg < SETTINGS.min_rotation_deg and found.translation_mm < SETTINGS.min_translation_mm
        assert abs(found.time_offset_frames) * 1000 / FPS < SETTINGS.min_time_offset_ms
        assert abs(found.time_offset_frames) < 0.05  # unbiased (unwhitened interpolation drifts ~0.13 frame)


def test_two_disagreeing_cameras_of_four_have_no_majority():
    truth, keypoints = scene(seed=6)
    given = list(truth)
    given[0], given[2] = perturbed(truth[0], 1.0, 30.0, seed=1), perturbed(truth[2], 1.0, 30.0, seed=2)
    result = check(given, keypoints)
    assert result.status == "no_majority" and result.apply() == () and result.trusted == ()
    assert any("no consistent trusted majority" in reason for reason in result.reasons)


@pytest.mark.parametrize("views", [4, 5])
def test_a_camera_without_observations_is_not_part_of_the_majority(views):
    """A camera that saw nothing (a video missing, a detector that never fired) can neither
    be checked nor fix the world: with 4 cameras one wrong among the 3 others has no
    majority; with 5, the wrong one is found among the 4 that see."""
    truth, keypoints = scene(views=views, seed=3)
    keypoints[-1] = np.nan
    given = list(truth)
    given[1] = perturbed(truth[1], 1.0, 30.0, seed=4)
    result = check(given, keypoints)
    assert result.cameras[-1].status == "insufficient" and truth[-1].name not in result.trusted
    assert any(reason.startswith(f"{truth[-1].name} sees 0 of the samples") for reason in result.reasons)
    if views == 4:
        assert result.status == "no_majority" and result.apply() == ()
    else:
        assert result.status == "checked" and result.apply() == (truth[1].name,)
        assert rotation_error_deg(result.cameras[1].camera(given[1]).R, truth[1].R) < 0.1


def test_still_person_time_offset_unobservable():
    cameras, keypoints = scene(seed=7, still=True)
    result = check(cameras, keypoints)
    assert result.apply() == ()
    for found in result.cameras:
        assert not found.time_offset_observable and np.isnan(found.time_offset_frames) and not found.time_offset_applies
        assert any("time offset unobservable" in reason for reason in found.reasons)


def test_too_few_frames_are_insufficient():
    cameras, keypoints = scene(frames=20, seed=8)
    result = check(cameras, keypoints)
    assert result.status == "insufficient" and result.apply() == ()
    assert all(c.status == "insufficient" for c in result.cameras)
    assert any("20 frames" in reason for reason in result.reasons)


def test_two_cameras_are_insufficient():
    cameras, keypoints = scene(views=4, frames=60, seed=8)
    result = check(cameras[:2], keypoints[:2])
    assert result.status == "insufficient" and result.apply() == ()


def test_planar_structure_is_said_and_nothing_applied():
    truth, keypoints = scene(seed=9, planar=True)
    given = list(truth)
    given[2] = perturbed(truth[2], 1.0, 30.0, seed=5)
    result = check(given, keypoints)
    assert result.planar and result.planarity < SETTINGS.max_planarity
    assert any("planar" in reason for reason in result.reasons)
    assert result.apply() == ()


# --------------------------------------------------------------------------------------
# Samples and re-timing
# --------------------------------------------------------------------------------------


def test_samples_are_spread_and_deterministic():
    cameras, keypoints = scene(frames=600, seed=0)
    points = triangulate(cameras, keypoints).points
    settings = dataclasses.replace(SETTINGS, max_samples=900)
    selected = rig_check._select_samples(keypoints, points, settings)
    assert len(selected) == 900 and np.array_equal(selected, rig_check._select_samples(keypoints, points, settings))
    frames, joints = np.divmod(selected, 15)
    assert np.all(np.bincount(joints, minlength=15) >= 30)  # every joint
    assert np.all(np.bincount(frames // 60, minlength=10) >= 40)  # every tenth of the take


def test_retime_keypoints_against_an_analytic_track():
    frames = 50
    t = np.arange(frames, dtype=np.float64)
    track = np.stack([10.0 + 3.0 * t, 200.0 - 0.5 * t, np.full(frames, 0.9)], -1)[:, None]  # linear: exact
    track = np.concatenate([track, track + 1.0], axis=1)  # (F, 2, 3)
    track[:, 1, 2] = np.linspace(0.2, 0.8, frames)
    track[30, 0] = np.nan
    out = retime_keypoints(track.astype(np.float32), 2.25)
    # At reference frame g the track shows time g - 2.25 of the camera's frames.
    g = np.arange(3, 27)
    assert np.allclose(out[g, 0, 0], 10.0 + 3.0 * (g - 2.25), atol=1e-4)
    assert np.allclose(out[g, 0, 1], 200.0 - 0.5 * (g - 2.25), atol=1e-4)
    assert np.allclose(out[g, 1, 2], np.minimum(track[g - 3, 1, 2], track[g - 2, 1, 2]), atol=1e-6)  # the smaller
    assert np.all(np.isnan(out[:3])) and not np.isnan(out[3]).any()  # before the take
    assert np.all(np.isnan(out[[32, 33], 0])) and not np.isnan(out[[31, 34], 0]).any()  # frame 30 missing
    whole = retime_keypoints(track, -2.0)
    assert np.allclose(whole[:28, 0, :2], track[2:30, 0, :2]) and np.all(np.isnan(whole[28, 0]))  # frame 30
    assert np.all(np.isnan(whole[-2:]))  # after the take
    assert np.array_equal(retime_keypoints(track, 0.0), track, equal_nan=True)
