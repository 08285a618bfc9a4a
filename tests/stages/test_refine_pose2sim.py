"""Refine on real data: the Pose2Sim balancing capture (4 cameras, 60 fps, OpenPose BODY_25B).

There is no 3D truth; the checks are the ones a user of the ground truth needs: the
bone lengths become constant while the 3D joints keep explaining the detections (the mean
reprojection error over all confident observations rises by less than a pixel), no body
joint is lost, and the hand joints, which this capture has no detections for, stay missing.
"""

import numpy as np
import pytest

from fitting.metrics import bone_length_variation
from fitting.refine import refine
from fitting.skeleton import BODY, BODY_BONES, LEFT_HAND, RIGHT_HAND
from pipeline.config import load_config
from triangulation.triangulate import triangulate

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

FPS = 60.0


@pytest.fixture(scope="module")
def refined_capture(pose2sim_openpose):
    cameras, keypoints = pose2sim_openpose
    config = load_config()
    raw = triangulate(cameras, keypoints, **config.section("triangulation"))
    refined = refine(cameras, keypoints, raw.points, raw.inliers, FPS, config.refine)
    return cameras, keypoints, raw, refined, config


def _errors(cameras, points, keypoints, min_confidence):
    errors = np.stack([np.linalg.norm(camera.project(points) - keypoints[v, ..., :2], axis=-1) for v, camera in enumerate(cameras)])
    return np.where(keypoints[..., 2] >= min_confidence, errors, np.nan)


def test_bones_become_constant_and_reprojection_rises_by_less_than_a_pixel(refined_capture):
    cameras, keypoints, raw, refined, config = refined_capture
    minimum = config.refine.fit.min_confidence
    before = _errors(cameras, raw.points, keypoints, minimum)
    after = _errors(cameras, refined.points, keypoints, minimum)
    common = np.isfinite(before) & np.isfinite(after)
    on_inliers = common & raw.inliers
    variation_before = 100.0 * np.nanmean(bone_length_variation(raw.points[:, BODY], BODY_BONES))
    variation_after = 100.0 * np.nanmean(bone_length_variation(refined.points[:, BODY], BODY_BONES))
    print(
        f"\npose2sim_balancing refine: bone CV {variation_before:.1f} % -> {variation_after:.2f} %; mean reprojection "
        f"over {common.sum()} confident observations {before[common].mean():.2f} -> {after[common].mean():.2f} px "
        f"(median {np.median(before[common]):.2f} -> {np.median(after[common]):.2f}); over triangulation's inliers "
        f"{before[on_inliers].mean():.2f} -> {after[on_inliers].mean():.2f} px; body bone lengths (mm) "
        f"{np.round(1000 * refined.bone_lengths[: len(BODY_BONES)]).astype(int).tolist()}"
    )
    assert variation_before > 5.0 and variation_after < 1.0
    assert after[common].mean() - before[common].mean() < 1.0
    assert after[on_inliers].mean() - before[on_inliers].mean() < 1.0


def test_no_body_joint_is_lost_and_the_absent_hands_stay_missing(refined_capture):
    _, _, raw, refined, _ = refined_capture
    had = np.isfinite(raw.points[:, BODY, 0])
    assert np.isfinite(refined.points[:, BODY, 0])[had].all()
    for hand in (LEFT_HAND, RIGHT_HAND):
        assert np.isnan(refined.points[:, hand]).all() and (refined.num_views[:, hand] == 0).all()
    assert np.isfinite(refined.bone_lengths[: len(BODY_BONES)]).all()
    assert np.isnan(refined.bone_lengths[len(BODY_BONES) :]).all()
