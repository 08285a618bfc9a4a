"""Per-view hand quality over a take (detection/hand_quality.py) on true projections of a synthetic take."""

import dataclasses

import numpy as np
import pytest

from detection.hand_quality import check_hands
from fitting.skeleton import LEFT_HAND, RIGHT_HAND
from pipeline.config import load_config
from workflow.synth.take_writer import SynthConfig, generate_take

FRAMES = 50


@pytest.fixture(scope="module")
def scene():
    take = generate_take(SynthConfig(seed=5, num_frames=FRAMES))
    cameras = take.exo_cameras
    keypoints = np.full((len(cameras), FRAMES, 59, 3), np.nan)
    keypoints[..., :2] = take.pixels
    keypoints[..., 2] = 0.9
    return cameras, take.motion.joints, keypoints


def projected(cameras, points):
    """``(views, frames, 21, 2)`` pixels of 3D hands ``(frames, 21, 3)``."""
    return np.stack([camera.project(points) for camera in cameras])


def test_true_hands_are_all_kept(scene):
    cameras, _, keypoints = scene
    rng = np.random.default_rng(0)
    noisy = keypoints.copy()
    noisy[..., :2] += rng.normal(0.0, 1.0, noisy[..., :2].shape)
    checked, summary = check_hands(cameras, noisy, load_config().detect)
    np.testing.assert_array_equal(checked, noisy)  # nothing dropped, confidences untouched
    assert summary["left_hand"]["dropped_disagreeing"] == 0 and summary["right_hand"]["dropped_bone_lengths"] == 0
    assert summary["left_hand"]["confirmed"] == summary["left_hand"]["seen"] == len(cameras) * FRAMES


def test_hands_the_other_views_contradict_are_dropped(scene):
    cameras, joints, keypoints = scene
    settings = load_config().detect
    bad = keypoints.copy()
    bad[0, 0:10, LEFT_HAND] = keypoints[0, 0:10, RIGHT_HAND]  # the other hand, in one view
    bad[1, 10:15, LEFT_HAND, :2] += 60.0  # a hand beside the real one
    # Two views left, and they disagree (across the epipolar lines of these cameras at
    # similar heights: two views can only disagree there).
    bad[:2, 20:25, LEFT_HAND] = np.nan
    bad[3, 20:25, LEFT_HAND, 1] += 80.0
    bad[[0, 1, 3], 30:35, LEFT_HAND] = np.nan  # seen by one view only
    bad[2, 30:45, LEFT_HAND, 2] = 0.1  # an unsure model: confirmed from frame 35 on, alone before
    checked, summary = check_hands(cameras, bad, settings)
    left = np.isfinite(checked[:, :, LEFT_HAND, 0]).all(axis=-1)
    assert not left[0, 0:10].any() and left[1:, 0:10].all()
    assert not left[1, 10:15].any() and left[[0, 2, 3], 10:15].all()
    assert not left[:, 20:25].any()
    assert left[2, 30:35].all()  # nothing contradicts it
    assert left[:, 35:].all() and np.isfinite(checked[:, :, RIGHT_HAND, 0]).all()
    assert summary["left_hand"]["dropped_disagreeing"] == 10 + 5 + 2 * 5
    # Kept hands keep their points; a confirmed joint is used by triangulation, an unconfirmed one keeps its score.
    np.testing.assert_array_equal(checked[:, :, LEFT_HAND][left][..., :2], bad[:, :, LEFT_HAND][left][..., :2])
    assert np.allclose(checked[2, 30:35, LEFT_HAND, 2], 0.1)
    assert np.allclose(checked[2, 35:45, LEFT_HAND, 2], settings.hand_confirmed_confidence)
    assert summary["left_hand"]["hands_with_confidence_raised"] == 10


def test_hands_whose_bones_do_not_fit_the_take_are_dropped(scene):
    cameras, joints, keypoints = scene
    settings = dataclasses.replace(load_config().detect, hand_bone_tolerance=0.05)
    hand = joints[:, LEFT_HAND]
    stretched = hand[:, :1] + 1.3 * (hand - hand[:, :1])  # fingers 30 % too long
    bad = keypoints.copy()
    # Frames 0-4: one of three views sees a stretched hand close enough to pass the
    # agreement test, but it spoils the 3D hand's bones: that view goes.
    bad[3, 0:5, LEFT_HAND] = np.nan
    bad[2, 0:5, LEFT_HAND, :2] = projected(cameras[2:3], stretched[0:5])[0]
    # Frames 10-14: the two views that see the hand agree on a stretched hand: no single
    # view explains it, the hand goes in both.
    bad[2:, 10:15, LEFT_HAND] = np.nan
    bad[:2, 10:15, LEFT_HAND, :2] = projected(cameras[:2], stretched[10:15])
    checked, summary = check_hands(cameras, bad, settings)
    left = np.isfinite(checked[:, :, LEFT_HAND, 0]).all(axis=-1)
    assert not left[2, 0:5].any() and left[:2, 0:5].all()
    assert not left[:, 10:15].any()
    assert left[:, 15:].all()
    assert summary["left_hand"]["dropped_bone_lengths"] == 5 + 2 * 5
