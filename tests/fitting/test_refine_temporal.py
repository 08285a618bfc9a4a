"""Temporal cleaning (fitting.temporal) and take-wide bone lengths (fitting.bone_lengths) on
tracks whose truth is known."""

import warnings

import numpy as np
import pytest

from fitting import temporal
from fitting.bone_lengths import lag_product_bone_lengths, median_bone_lengths

FPS = 30.0


def walking_tracks(frames=120, joints=4, seed=0):
    """Smooth tracks ``(frames, joints, 3)``: joints 0.1 m apart moving at up to ~1.5 m/s."""
    t = np.arange(frames) / FPS
    base = np.stack([0.8 * np.sin(1.5 * t), 0.5 * np.cos(1.1 * t), 1.0 + 0.1 * np.sin(3.0 * t)], axis=-1)
    offsets = np.random.default_rng(seed).normal(0.0, 0.1, (joints, 3))
    return base[:, None, :] + offsets[None]


def test_median_outliers_flag_spikes_and_leave_a_moving_track_alone():
    truth = walking_tracks()
    assert not temporal.median_outliers(truth, window_frames=9, scale_factor=4.0, min_deviation_m=0.03).any()
    noisy = truth + np.random.default_rng(1).normal(0.0, 0.005, truth.shape)
    noisy[40, 1] += [0.0, 0.15, 0.0]
    noisy[0, 2] += [0.2, 0.0, 0.0]  # the very first sample
    flags = temporal.median_outliers(noisy, window_frames=9, scale_factor=4.0, min_deviation_m=0.03)
    assert flags[40, 1] and flags[0, 2]
    assert flags.sum() == 2


def test_local_prediction_in_chunks_equals_the_whole_take_at_once():
    rng = np.random.default_rng(5)
    points = np.cumsum(rng.normal(0, 0.01, (500, 4, 3)), axis=0)
    points[rng.random((500, 4)) < 0.1] = np.nan  # gaps, some across the chunk borders
    points[60:75, 2] = np.nan
    whole, whole_enough = temporal.local_prediction(points, 9)
    chunked, chunked_enough = temporal.local_prediction(points, 9, chunk_frames=64)
    np.testing.assert_array_equal(chunked_enough, whole_enough)
    np.testing.assert_array_equal(chunked, whole)  # NaN where NaN, equal elsewhere
    assert np.isfinite(whole).mean() > 0.8


def test_velocity_outliers_remove_a_burst_but_not_a_fast_real_motion():
    truth = walking_tracks()
    corrupted = truth.copy()
    corrupted[50:58, 0] += [0.35, 0.0, 0.0]  # 8 frames at the twin's position (a left/right swap)
    corrupted[70, 1] += [0.0, 0.0, 0.3]  # a single spike
    corrupted[90:95, 3] = np.nan  # a gap does not confuse it
    flags = temporal.velocity_outliers(corrupted, FPS, max_speed_m_s=6.0, max_burst_frames=15)
    expected = np.zeros(flags.shape, dtype=bool)
    expected[50:58, 0] = expected[70, 1] = True
    np.testing.assert_array_equal(flags, expected)
    # A real 4 m/s swing over 10 frames (no jump above 6 m/s) is kept.
    fast = truth.copy()
    fast[60:, 2] += np.clip(np.arange(60) - 0, 0, 10)[:, None] * [4.0 / FPS, 0.0, 0.0]
    assert not temporal.velocity_outliers(fast, FPS, max_speed_m_s=6.0, max_burst_frames=15).any()


def test_bone_length_outliers_flag_the_wrong_tip_not_its_neighbour():
    # A chain 0-1-2-3 (like a finger) plus a side bone 1-4.
    frames = 60
    truth = np.zeros((frames, 5, 3))
    truth[:, 1] = [0.04, 0.0, 0.0]
    truth[:, 2] = [0.07, 0.0, 0.0]
    truth[:, 3] = [0.09, 0.0, 0.0]
    truth[:, 4] = [0.04, 0.02, 0.0]
    truth += np.linspace(0, 0.3, frames)[:, None, None]
    bones = [(0, 1), (1, 2), (2, 3), (1, 4)]
    noisy = truth + np.random.default_rng(2).normal(0.0, 0.0005, truth.shape)
    noisy[20, 3] += [0.03, 0.02, 0.0]  # the tip is on another finger
    noisy[30, 1] += [0.0, 0.0, 0.03]  # a middle joint is wrong
    flags = temporal.bone_length_outliers(noisy, bones, scale_factor=4.0, min_deviation_ratio=0.2)
    assert flags[20, 3] and not flags[20, 2]
    assert flags[30, 1] and not flags[30, [0, 2, 3, 4]].any()
    assert flags.sum() == 2


def test_fill_gaps_fills_short_interior_gaps_only():
    line = np.linspace(0.0, 1.0, 40)[:, None, None] * np.ones((1, 2, 3))
    holes = line.copy()
    holes[10:14, 0] = np.nan  # 4 frames: filled
    holes[20:35, 1] = np.nan  # 15 frames: too long
    holes[:3, 0] = np.nan  # at the start: never filled
    filled, mask = temporal.fill_gaps(holes, max_gap_frames=5)
    np.testing.assert_allclose(filled[10:14, 0], line[10:14, 0])
    assert mask[10:14, 0].all() and mask.sum() == 4
    assert np.isnan(filled[20:35, 1]).all() and np.isnan(filled[:3, 0]).all()


def test_gaps_are_filled_only_where_the_joint_and_its_anchor_moved_slowly():
    fps = 30.0
    frames = np.arange(60)
    # Joint 0 moves at 0.3 m/s, joint 1 at 3 m/s; both are hidden for 6 frames.
    tracks = np.zeros((60, 2, 3))
    tracks[:, 0, 0] = 0.3 * frames / fps
    tracks[:, 1, 0] = 3.0 * frames / fps
    holes = tracks.copy()
    holes[20:26] = np.nan
    filled, mask = temporal.fill_gaps(holes, max_gap_frames=10, max_step_m=1.0 / fps)
    assert mask[20:26, 0].all() and not mask[:, 1].any()
    np.testing.assert_allclose(filled[20:26, 0], tracks[20:26, 0])
    # A hand that went away and came back (its two ends meet) while its wrist swung 0.6 m.
    back = holes.copy()
    back[:, 1] = back[:, 0]
    anchor = tracks[:, 0].copy()
    anchor[20:26, 1] = 0.3 * np.sin(np.pi * (frames[20:26] - 19) / 7)
    _, mask = temporal.fill_gaps(back, max_gap_frames=10, max_step_m=1.0 / fps)
    assert mask[20:26].all()
    _, mask = temporal.fill_gaps(back, max_gap_frames=10, max_step_m=1.0 / fps, anchor=anchor)
    assert not mask.any()
    missing_anchor = tracks[:, 0].copy()
    missing_anchor[22] = np.nan  # an unknown anchor is not slow
    _, mask = temporal.fill_gaps(holes[:, :1], max_gap_frames=10, max_step_m=1.0 / fps, anchor=missing_anchor)
    assert not mask.any()
    _, mask = temporal.fill_gaps(holes[:, :1], max_gap_frames=5, max_step_m=1.0 / fps, anchor=tracks[:, 0])
    assert not mask.any()  # too long


@pytest.mark.parametrize("method", ["butterworth", "savgol"])
def test_smoothing_removes_noise_and_keeps_missing_samples_missing(method):
    truth = walking_tracks()
    noisy = truth + np.random.default_rng(3).normal(0.0, 0.01, truth.shape)
    noisy[30:40, 0] = np.nan
    smoothed = temporal.smooth(noisy, FPS, method=method, cutoff_hz=4.0, order=4, window_frames=11, polyorder=3)
    assert np.isnan(smoothed[30:40, 0]).all() and np.isfinite(smoothed[40:, 0]).all()
    error_before = np.nanmean(np.linalg.norm(noisy - truth, axis=-1))
    error_after = np.nanmean(np.linalg.norm(smoothed - truth, axis=-1))
    assert error_after < 0.6 * error_before


def test_savgol_keeps_a_cubic_exactly():
    t = np.arange(50, dtype=float)
    cubic = (1e-5 * t**3 - 1e-3 * t**2 + 0.02 * t)[:, None, None] * np.ones((1, 1, 3))
    np.testing.assert_allclose(temporal.smooth(cubic, FPS, method="savgol", window_frames=9, polyorder=3), cubic, atol=1e-12)


def test_lag_product_lengths_have_no_noise_bias():
    """A 25 mm bone turning slowly, its ends seen with 12 mm noise per axis: the median
    length is ~10 mm too long, the lag-product estimate is within a millimetre."""
    frames, length = 600, 0.025
    angle = np.linspace(0.0, 4.0, frames)
    direction = np.stack([np.cos(angle), np.sin(angle), 0.3 * np.sin(0.5 * angle)], axis=-1)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    truth = np.stack([np.zeros((frames, 3)), length * direction], axis=1) + [0.0, 0.0, 1.0]
    noisy = truth + np.random.default_rng(4).normal(0.0, 0.012, truth.shape)
    noisy[::17, 1] = np.nan
    biased = median_bone_lengths(noisy, [(0, 1)])[0]
    unbiased = lag_product_bone_lengths(noisy, [(0, 1)], trim=0.1, min_pairs=10)[0]
    assert biased - length > 0.008
    assert abs(unbiased - length) < 0.001
    assert np.isnan(lag_product_bone_lengths(noisy[:5], [(0, 1)], trim=0.1, min_pairs=10)[0])


def test_clean_tracks_combines_the_steps():
    truth = walking_tracks()
    noisy = truth + np.random.default_rng(5).normal(0.0, 0.004, truth.shape)
    noisy[60, 0] += [0.0, 0.4, 0.0]
    noisy[80:83, 1] = np.nan
    cleaned = temporal.clean_tracks(
        noisy,
        FPS,
        bones=[(0, 1), (1, 2), (2, 3)],
        median_window_frames=9,
        median_scale_factor=4.0,
        min_deviation_m=0.03,
        max_speed_m_s=6.0,
        max_burst_frames=15,
        bone_scale_factor=4.0,
        bone_min_deviation_ratio=0.2,
        max_gap_frames=5,
        smoother="butterworth",
        cutoff_hz=6.0,
    )
    assert cleaned.outliers[60, 0] and cleaned.outliers.sum() <= 2
    assert cleaned.filled[60, 0] and cleaned.filled[80:83, 1].all()
    assert np.linalg.norm(cleaned.points - truth, axis=-1).max() < 0.02


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 12, 15])
def test_nanmedian_last_axis_is_numpys_bit_for_bit(width):
    rng = np.random.default_rng(width)
    values = rng.standard_normal((400, 6, width))
    values[rng.random(values.shape) < 0.4] = np.nan  # rows with every count of values, none included
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        expected = np.nanmedian(values, axis=-1)
    np.testing.assert_array_equal(temporal.nanmedian_last_axis(values), expected)
