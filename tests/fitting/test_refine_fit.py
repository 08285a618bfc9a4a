"""The spatio-temporal bone-length fit (fitting.bone_fit) and the refine stage on synthetic
takes with ground truth: accuracy, bone lengths, missing parts, long takes, Jacobians."""

import dataclasses

import numpy as np
import pytest

from fitting import bone_fit, skeleton
from fitting.refine import refine
from pipeline.config import load_config
from triangulation.synthetic import ring_of_cameras
from triangulation.triangulate import triangulate
from workflow.evaluation import evaluate_arrays
from workflow.synth.take_writer import SynthConfig, generate_take

CONFIG = load_config()


def run_refine(take, keypoints=None, overrides=()):
    config = load_config(overrides=list(overrides)) if overrides else CONFIG
    keypoints = take.observations.keypoints if keypoints is None else keypoints
    raw = triangulate(take.exo_cameras, keypoints, **config.section("triangulation"))
    return raw, refine(take.exo_cameras, keypoints, raw.points, raw.inliers, take.config.fps, config.refine)


@pytest.fixture(scope="module")
def synthetic():
    # Seed 4: with generator version 3, seed 3 became an almost still take (true jitter
    # 1.0 m/s^2), below the fit's noise floor for the jitter bound of the first test.
    take = generate_take(SynthConfig(seed=4, num_frames=150))
    raw, refined = run_refine(take)
    return take, raw, refined


def test_refine_beats_triangulation_on_every_part(synthetic):
    take, raw, refined = synthetic
    truth, fps, lengths = take.motion.joints, take.config.fps, take.motion.bone_lengths
    before = evaluate_arrays(raw.points, truth, fps, lengths)["parts"]
    after = evaluate_arrays(refined.points, truth, fps, lengths)["parts"]
    for part in skeleton.PARTS:
        b, a = before[part], after[part]
        print(
            f"\n{part}: MPJPE {b['mpjpe_mm']:.1f} -> {a['mpjpe_mm']:.1f} mm, bone CV {b['bone_length_cv_percent']:.1f} -> "
            f"{a['bone_length_cv_percent']:.2f} %, jitter {b['jitter_m_s2']:.1f} -> {a['jitter_m_s2']:.1f} m/s^2 "
            f"(truth {a['truth_jitter_m_s2']:.1f}), completeness {b['completeness']:.3f} -> {a['completeness']:.3f}"
        )
        assert a["mpjpe_mm"] < 0.5 * b["mpjpe_mm"]
        assert a["bone_length_cv_percent"] < 1.0
        assert a["jitter_m_s2"] < 0.25 * b["jitter_m_s2"] and a["jitter_m_s2"] < 2.0 * a["truth_jitter_m_s2"]
        assert a["completeness"] >= b["completeness"]
    assert after["body"]["mpjpe_mm"] < 10.0 and after["left_hand"]["mpjpe_mm"] < 16.0 and after["right_hand"]["mpjpe_mm"] < 16.0


def test_bone_lengths_of_the_person_are_recovered(synthetic):
    take, _, refined = synthetic
    error_mm = np.abs(refined.bone_lengths - take.motion.bone_lengths) * 1000.0
    body, hands = error_mm[: len(skeleton.BODY_BONES)], error_mm[len(skeleton.BODY_BONES) :]
    print(f"\nbone length error: body mean {body.mean():.2f} max {body.max():.2f} mm, hands mean {hands.mean():.2f} max {hands.max():.2f} mm")
    assert body.mean() < 2.0 and body.max() < 6.0
    assert hands.mean() < 3.0 and hands.max() < 8.0
    # The refined tracks have exactly these lengths, up to the soft constraint.
    measured = np.nanmedian(skeleton.bone_lengths(refined.points), axis=0)
    np.testing.assert_allclose(measured, refined.bone_lengths, rtol=0.005)


def test_hand_wrist_is_held_at_the_body_wrist(synthetic):
    _, _, refined = synthetic
    for part, wrist in skeleton.BODY_WRIST_OF_HAND.items():
        gap = np.linalg.norm(refined.points[:, skeleton.PARTS[part].start] - refined.points[:, wrist], axis=-1)
        assert np.nanmedian(gap) < 0.01


def test_quality_arrays_are_consistent(synthetic):
    take, raw, refined = synthetic
    keypoints = take.observations.keypoints
    present = np.isfinite(refined.points).all(-1)
    assert not (refined.inliers & ~np.isfinite(keypoints[..., 0])).any()
    np.testing.assert_array_equal(refined.num_views, refined.inliers.sum(axis=0))
    assert (refined.reprojection_error[refined.inliers] < CONFIG.refine.fit.gate_px).all()
    assert ((refined.confidence >= 0) & (refined.confidence <= 1)).all() and (refined.confidence[~present] == 0).all()
    # Filled: estimated without any view that agrees with it after the fit (a sample
    # interpolated across a gap and seen again by agreeing views is observed, not filled).
    np.testing.assert_array_equal(refined.filled, present & (refined.num_views == 0))
    not_triangulated = ~np.isfinite(raw.points).all(-1) | refined.outliers
    assert (refined.filled <= (present & not_triangulated)).all()  # only where triangulation gave nothing
    assert np.isnan(refined.reprojection_error[:, ~present]).all()


def test_a_hand_absent_and_a_joint_never_seen_stay_missing():
    take = generate_take(SynthConfig(seed=4, num_frames=90))
    keypoints = take.observations.keypoints.copy()
    keypoints[:, :, skeleton.LEFT_HAND] = np.nan  # no left hand in any view, any frame
    ear = skeleton.JOINT_NAMES.index("right_ear")
    keypoints[:, :, ear] = np.nan
    raw, refined = run_refine(take, keypoints)
    assert np.isnan(refined.points[:, skeleton.LEFT_HAND]).all() and np.isnan(refined.points[:, ear]).all()
    assert (refined.num_views[:, skeleton.LEFT_HAND] == 0).all() and not refined.inliers[:, :, ear].any()
    missing_bones = [i for i, bone in enumerate(skeleton.BONES) if ear in bone or skeleton.LEFT_HAND.start <= bone[0] < skeleton.LEFT_HAND.stop]
    assert np.isnan(refined.bone_lengths[missing_bones]).all()
    assert np.isfinite(np.delete(refined.bone_lengths, missing_bones)).all()
    after = evaluate_arrays(refined.points, take.motion.joints, take.config.fps)["parts"]
    before = evaluate_arrays(raw.points, take.motion.joints, take.config.fps)["parts"]
    for part in ("body", "right_hand"):
        assert after[part]["mpjpe_mm"] < 0.5 * before[part]["mpjpe_mm"] and after[part]["bone_length_cv_percent"] < 1.0


def test_refine_does_not_invent_a_hand_hidden_long_or_moving_fast(synthetic):
    """A hand hidden from every view for longer than ``hand_max_gap_s``, or while its
    wrist moves faster than ``hand_max_gap_speed_m_s``, stays missing; what is filled is marked."""
    take, _, _ = synthetic
    fps = take.config.fps
    wrist = take.motion.joints[:, skeleton.BODY_WRIST_OF_HAND["left_hand"]]
    speed = np.linalg.norm(np.diff(wrist, axis=0), axis=1) * fps  # m/s between frames
    slow = int(np.argmin([speed[f : f + 5].max() for f in range(20, 120)])) + 20
    fast = int(np.argmax([speed[f : f + 5].min() for f in range(20, 140)])) + 20
    settings = CONFIG.refine.smoothing
    assert speed[slow : slow + 5].max() < 0.5 * settings.hand_max_gap_speed_m_s
    assert speed[fast : fast + 5].min() > 1.2 * settings.hand_max_gap_speed_m_s
    keypoints = take.observations.keypoints.copy()
    gaps = {"long": (80, 80 + int(2 * settings.hand_max_gap_s * fps)), "slow": (slow + 1, slow + 4), "fast": (fast + 1, fast + 4)}
    assert slow + 4 < 80 and 80 + 2 * settings.hand_max_gap_s * fps < fast  # three separate gaps
    for start, stop in gaps.values():
        keypoints[:, start:stop, skeleton.LEFT_HAND] = np.nan
    _, refined = run_refine(take, keypoints)
    hand = np.isfinite(refined.points[:, skeleton.LEFT_HAND, 0])
    assert not hand[slice(*gaps["long"])].any() and not hand[slice(*gaps["fast"])].any()
    assert hand[slice(*gaps["slow"])].all() and refined.filled[slice(*gaps["slow"]), skeleton.LEFT_HAND].all()
    error = np.linalg.norm(refined.points - take.motion.joints, axis=-1)[slice(*gaps["slow"]), skeleton.LEFT_HAND]
    assert error.mean() < 0.03  # metres: a slow hand's gap is bridged well


def test_a_long_take_in_windows_shares_one_length_per_bone():
    take = generate_take(SynthConfig(seed=6, num_frames=200))
    _, whole = run_refine(take)
    _, windowed = run_refine(take, overrides=["refine.fit.chunk_frames=70", "refine.fit.overlap_frames=20"])
    truth = take.motion.joints
    report = evaluate_arrays(windowed.points, truth, take.config.fps, take.motion.bone_lengths)["parts"]
    single = evaluate_arrays(whole.points, truth, take.config.fps, take.motion.bone_lengths)["parts"]
    for part in skeleton.PARTS:
        assert report[part]["bone_length_cv_percent"] < 1.0
        assert report[part]["mpjpe_mm"] < 1.1 * single[part]["mpjpe_mm"]
        assert report[part]["jitter_m_s2"] < 1.2 * single[part]["jitter_m_s2"]  # no seams between windows
    np.testing.assert_allclose(windowed.bone_lengths, whole.bone_lengths, atol=0.002)


def test_a_float32_factorization_reaches_the_float64_fit(synthetic):
    """refine.fit.factor_precision: the banded factor in float32 only changes the path to the
    minimum (the gradient and the cost that accepts a step are float64)."""
    take, _, refined = synthetic
    _, exact = run_refine(take, overrides=["refine.fit.factor_precision=float64"])
    assert CONFIG.refine.fit.factor_precision == "float32"
    assert np.nanmax(np.abs(refined.points - exact.points)) < 2e-4  # metres: 0.2 mm, against ~10 mm errors
    np.testing.assert_array_equal(np.isnan(refined.points), np.isnan(exact.points))
    np.testing.assert_allclose(refined.bone_lengths, exact.bone_lengths, atol=2e-5, equal_nan=True)
    truth, fps = take.motion.joints, take.config.fps
    single, double = evaluate_arrays(refined.points, truth, fps)["parts"], evaluate_arrays(exact.points, truth, fps)["parts"]
    for part in skeleton.PARTS:
        assert abs(single[part]["mpjpe_mm"] - double[part]["mpjpe_mm"]) < 0.05


def test_a_failed_float32_factorization_is_retried_in_float64(monkeypatch):
    """A float32 factorization that fails (rounding) switches the window to float64; the
    damping is not raised for it, so the result is the float64 fit's."""
    take = generate_take(SynthConfig(seed=2, num_frames=40))
    _, exact = run_refine(take, overrides=["refine.fit.factor_precision=float64"])
    calls = []

    def failing(ab, lower, overwrite_ab):
        calls.append(ab.dtype)
        return ab, 1  # info 1: the leading minor of order 1 is not positive definite

    monkeypatch.setattr(bone_fit.lapack, "spbtrf", failing)
    _, retried = run_refine(take)
    assert calls and all(dtype == np.float32 for dtype in calls)
    np.testing.assert_array_equal(retried.points, exact.points)


def test_without_the_fit_the_result_is_the_cleaned_tracks(synthetic):
    take, raw, refined = synthetic
    _, cleaned = run_refine(take, overrides=["refine.fit.enabled=false"])
    truth, fps = take.motion.joints, take.config.fps
    plain = evaluate_arrays(cleaned.points, truth, fps)["parts"]
    fitted = evaluate_arrays(refined.points, truth, fps)["parts"]
    before = evaluate_arrays(raw.points, truth, fps)["parts"]
    for part in skeleton.PARTS:
        assert fitted[part]["mpjpe_mm"] < plain[part]["mpjpe_mm"] < before[part]["mpjpe_mm"]
        assert fitted[part]["bone_length_cv_percent"] < plain[part]["bone_length_cv_percent"]


def _tiny_block(loss):
    """A block of 3 joints over 6 frames seen by 3 fisheye cameras; observations within
    0.01 px of the truth, so the IRLS weights are 1 to 1e-5 and the model is exact."""
    cameras = ring_of_cameras(3, model="fisheye", seed=1)
    rng = np.random.default_rng(0)
    frames, joints = 6, 3
    truth = np.array([0.0, 0.0, 1.0]) + rng.normal(0.0, 0.2, (frames, joints, 3))
    pixels = np.stack([camera.project(truth) for camera in cameras]) + rng.normal(0.0, 0.01, (3, frames, joints, 2))
    observations = np.concatenate([pixels, rng.uniform(0.5, 1.0, (3, frames, joints, 1))], axis=-1)
    support = np.ones((frames, joints), dtype=bool)
    support[2, 1] = False  # not an unknown: no column may touch it
    weights = bone_fit._Weights(pixel_sigma_px=3.0, loss=loss, loss_scale_px=5.0, acceleration_sigma=np.full(joints, 5.0), fps=30.0, anchor_sigma_m=0.01)
    anchors = np.full((frames, joints, 3), np.nan)
    anchors[:, 0] = truth[:, 0] + 0.01
    use = np.ones((3, frames, joints), dtype=bool)
    block = bone_fit._Block(np.arange(joints), support, observations, use, [(0, 1), (1, 2)], [0, 1], np.array([40.0, 60.0]), anchors, weights)
    return cameras, block, truth, np.array([0.3, 0.25])


@pytest.mark.parametrize("loss", bone_fit.LOSSES)
def test_analytic_jacobian_matches_finite_differences(loss):
    cameras, block, x, lengths = _tiny_block(loss)
    r, J_x, J_l = block.linearise(cameras, x, lengths)
    assert np.isclose((r**2).sum(), block.cost(cameras, x, lengths), rtol=1e-6)  # the residuals are the cost's
    step = 1e-7
    numeric = np.empty(J_x.shape)
    for i in range(x.size):  # tiny problem: one variable at a time
        shifted = x.reshape(-1).copy()
        shifted[i] += step
        numeric[:, i] = (block.linearise(cameras, shifted.reshape(x.shape), lengths)[0] - r) / step
    analytic = J_x.toarray()
    unused = ~np.repeat(block.support.reshape(-1), 3)
    assert np.abs(analytic[:, unused]).max() == 0.0
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-3 * np.abs(analytic).max())
    numeric_l = np.stack([(block.linearise(cameras, x, lengths + step * np.eye(2)[b])[0] - r) / step for b in range(2)], axis=1)
    np.testing.assert_allclose(J_l.toarray(), numeric_l, rtol=1e-4, atol=1e-3)


def test_fit_tracks_refuses_inconsistent_inputs():
    cameras = ring_of_cameras(2, seed=0)
    observations = np.full((2, 4, 3, 3), np.nan)
    start = np.zeros((4, 3, 3))
    common = dict(fps=30.0, pixel_sigma_px=3.0, loss="cauchy", loss_scale_px=5.0, acceleration_sigma_m_s2=5.0, bone_sigma_ratio=0.01)
    use = np.zeros((2, 4, 3), bool)
    support = np.ones((4, 3), bool)
    with pytest.raises(ValueError, match="same block"):
        bone_fit.fit_tracks(cameras, observations, use, start, support, blocks=[[0, 1], [2]], bones=[(1, 2)], **common)
    with pytest.raises(ValueError, match="overlap_frames"):
        bone_fit.fit_tracks(cameras, observations, use, start, support, blocks=[[0, 1, 2]], bones=[], chunk_frames=10, overlap_frames=10, **common)
    with pytest.raises(ValueError, match="unknown loss"):
        bone_fit.fit_tracks(cameras, observations, use, start, support, blocks=[[0, 1, 2]], bones=[], **{**common, "loss": "l1"})


def test_refine_settings_reach_the_library_and_are_validated():
    settings = dataclasses.asdict(CONFIG.refine)
    assert set(settings) == {"executor", "ray_min_frames", "outliers", "smoothing", "fit"}
    with pytest.raises(ValueError, match="refine.executor"):
        load_config(overrides=["refine.executor=threads"])
    with pytest.raises(ValueError, match="refine.fit.bone_sigma_percent"):
        load_config(overrides=["refine.fit.bone_sigma_percent=0"])
    with pytest.raises(ValueError, match="refine.smoothing.method"):
        load_config(overrides=["refine.smoothing.method=kalman"])


@pytest.mark.parametrize("loss", bone_fit.LOSSES)
def test_normal_equations_are_the_products_of_the_jacobian(loss):
    """The solver assembles J^T J (banded), J^T r and the length columns directly: they
    equal the products of the analytic Jacobian (checked above against finite differences)."""
    cameras, block, x, lengths = _tiny_block(loss)
    r, J_x, J_l = block.linearise(cameras, x, lengths)
    kd, n = block.bandwidth, block.size
    free = np.array([1])  # the second bone's length is an unknown, the first one fixed
    ab = np.full((kd + 1, n), np.nan, order="F")  # every entry must be written
    rhs = np.full((n, 1 + free.size), np.nan, order="F")
    length_diagonal, length_gradient = block.normal_equations(cameras, x, lengths, free, block.constant_normal(), ab, rhs)
    dense = np.zeros((n, n))
    for offset in range(kd + 1):  # lower banded storage: ab[offset, j] = N[j + offset, j]
        j = np.arange(n - offset)
        dense[j + offset, j] = ab[offset, j]
    dense = np.tril(dense) + np.tril(dense, -1).T
    N = (J_x.T @ J_x).toarray()
    np.testing.assert_allclose(dense, N, rtol=1e-12, atol=1e-12 * np.abs(N).max())
    assert not np.any(np.abs(np.subtract.outer(np.arange(n), np.arange(n)))[N != 0] > kd)  # the band holds all of N
    np.testing.assert_allclose(rhs[:, 0], J_x.T @ r, rtol=1e-12, atol=1e-12 * np.abs(J_x.T @ r).max())
    J_free = J_l[:, block.pair_ids[free]].toarray()
    np.testing.assert_allclose(rhs[:, 1:], J_x.T @ J_free, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(length_diagonal, np.diag(J_free.T @ J_free), rtol=1e-12)
    np.testing.assert_allclose(length_gradient, J_free.T @ r, rtol=1e-12)


def test_length_correction_levels_are_the_bone_by_bone_sweep():
    """correct_lengths sweeps bones level by level; bones of a level share no joint, and each
    bone comes after every earlier bone it shares a joint with (the sequential order)."""
    bones = [(0, 1), (1, 2), (0, 3), (3, 4), (2, 5), (0, 6)]
    both = np.ones((4, len(bones)), dtype=bool)
    both[1, 2] = False
    levels = bone_fit._correction_levels(np.array(bones), both)
    level_of = {}
    for number, (t, a, c, local) in enumerate(levels):
        assert len(set(a) | set(c)) == 2 * len(set(local))  # no joint twice within a level
        for frame, bone in zip(t, local):
            assert both[frame, bone]
            level_of[int(bone)] = number
        for frame in range(4):  # no (frame, joint) twice within a level
            joints = np.concatenate([a[t == frame], c[t == frame]])
            assert joints.size == np.unique(joints).size
    assert sum(t.size for t, *_ in levels) == both.sum()
    for i, first in enumerate(bones):
        for j in range(i + 1, len(bones)):
            if set(first) & set(bones[j]):
                assert level_of[i] < level_of[j]


def test_length_correction_equals_the_bone_by_bone_sweep_bit_for_bit():
    """A hand (a star of five chains) over 8 frames with a few joints missing."""
    rng = np.random.default_rng(3)
    frames, joints = 8, 21
    support = rng.random((frames, joints)) > 0.1
    weights = bone_fit._Weights(pixel_sigma_px=3.0, loss="cauchy", loss_scale_px=5.0, acceleration_sigma=np.full(joints, 5.0), fps=30.0, anchor_sigma_m=0.01)
    bones = skeleton.HAND_BONES_LOCAL
    scale = np.full(len(bones), 100.0)
    observations = np.zeros((1, frames, joints, 3))
    block = bone_fit._Block(np.arange(joints), support, observations, np.zeros((1, frames, joints), bool), bones, np.arange(len(bones)), scale, None, weights)
    assert len(block.levels) < len(bones)  # some bones share a level
    x = rng.normal(0.0, 0.05, (frames, joints, 3))
    lengths = rng.uniform(0.02, 0.05, len(bones))
    before = x + rng.normal(0.0, 0.01, x.shape)

    def sweep(x, targets):  # the sequential Gauss-Seidel order: bone after bone, all frames at once
        x = x.copy()
        for _ in range(bone_fit._CORRECTION_SWEEPS):
            for b, (a, c) in enumerate(block.pairs):
                rows = block.both[:, b]
                d = x[rows, c] - x[rows, a]
                norm = np.maximum(np.sqrt((d**2).sum(-1)), 1e-9)
                shift = (0.5 * (norm - targets[b]) / norm)[:, None] * d
                x[rows, a] += shift
                x[rows, c] -= shift
        return x

    fixed = [np.full(int(block.both[:, b].sum()), lengths[block.pair_ids[b]]) for b in range(len(block.pairs))]
    np.testing.assert_array_equal(block.correct_lengths(x, lengths), sweep(x, fixed))
    predicted = []
    for b, (a, c) in enumerate(block.pairs):
        rows = block.both[:, b]
        d_old = before[rows, c] - before[rows, a]
        norm_old = np.maximum(np.sqrt((d_old**2).sum(-1)), 1e-9)
        predicted.append(norm_old + (d_old * ((x[rows, c] - x[rows, a]) - d_old)).sum(-1) / norm_old)
    np.testing.assert_array_equal(block.correct_lengths(x, lengths, before), sweep(x, predicted))
