"""Triangulation on real data: the Pose2Sim balancing capture against Pose2Sim's own TRC.

The reference is a peer's result, not marker ground truth: the test requires our
reprojection error to be no worse than the reference's, computed the same way on the
same observations, and reports the 3D difference per joint.
"""

import numpy as np
import pytest

from fitting.skeleton import JOINT_NAMES
from pipeline.config import load_config
from pipeline.formats.trc import read_trc
from triangulation.triangulate import triangulate

# Pose2Sim TRC markers that are COCO-17 joints (the TRC has no eyes or ears).
TRC_TO_COCO = {
    "Nose": "nose",
    "LShoulder": "left_shoulder",
    "RShoulder": "right_shoulder",
    "LElbow": "left_elbow",
    "RElbow": "right_elbow",
    "LWrist": "left_wrist",
    "RWrist": "right_wrist",
    "LHip": "left_hip",
    "RHip": "right_hip",
    "LKnee": "left_knee",
    "RKnee": "right_knee",
    "LAnkle": "left_ankle",
    "RAnkle": "right_ankle",
}


@pytest.fixture(scope="module")
def capture(pose2sim_balancing, pose2sim_openpose):
    cameras, keypoints = pose2sim_openpose
    trc = read_trc(pose2sim_balancing / "pose-3d" / "S00_P00_T01_BalancingTrial_0-100.trc")
    reference = np.full(keypoints.shape[1:3] + (3,), np.nan)
    world = trc.to_world()
    for marker, joint in TRC_TO_COCO.items():
        reference[:, JOINT_NAMES.index(joint)] = world[:, trc.marker_names.index(marker)]
    joints = [JOINT_NAMES.index(joint) for joint in TRC_TO_COCO.values()]
    return cameras, keypoints, reference, joints


def reprojection_errors(cameras, points, keypoints, min_confidence):
    """Pixel errors ``(views, frames, joints)`` of 3D points against every confident observation."""
    errors = np.stack([np.linalg.norm(cam.project(points) - keypoints[v, ..., :2], axis=-1) for v, cam in enumerate(cameras)])
    return np.where(keypoints[..., 2] >= min_confidence, errors, np.nan)


def test_reference_is_read_as_the_peer_published_it(capture):
    cameras, keypoints, reference, joints = capture
    errors = reprojection_errors(cameras, reference, keypoints, 0.3)[:, :, joints]
    # README of the validation data: about 14.8 px mean over its 21 markers; these 13 are COCO joints.
    assert 12.0 < np.nanmean(errors) < 18.0


def test_triangulation_reprojects_no_worse_than_the_reference(capture):
    cameras, keypoints, reference, joints = capture
    settings = load_config().section("triangulation")
    result = triangulate(cameras, keypoints, **settings)

    ours = reprojection_errors(cameras, result.points, keypoints, settings["min_confidence"])[:, :, joints]
    theirs = reprojection_errors(cameras, reference, keypoints, settings["min_confidence"])[:, :, joints]
    common = np.isfinite(ours) & np.isfinite(theirs)
    reconstructed = np.isfinite(result.points[:, joints, 0]).mean()
    inlier_error = np.nanmean(np.where(result.inliers, result.reprojection_error, np.nan)[:, :, joints])
    distance_mm = np.linalg.norm(result.points - reference, axis=-1)[:, joints] * 1000.0
    print(
        f"\npose2sim_balancing: reprojection over all {common.sum()} observations: ours {ours[common].mean():.2f} px "
        f"(median {np.median(ours[common]):.2f}), reference {theirs[common].mean():.2f} px "
        f"(median {np.median(theirs[common]):.2f}); ours over inlier views {inlier_error:.2f} px; "
        f"{reconstructed:.1%} of joints x frames reconstructed"
    )
    for index, joint in enumerate(joints):
        print(
            f"  {JOINT_NAMES[joint]:15s} 3D distance to reference: median {np.nanmedian(distance_mm[:, index]):6.1f} mm, "
            f"mean {np.nanmean(distance_mm[:, index]):6.1f} mm"
        )
    assert ours[common].mean() <= theirs[common].mean()
    assert inlier_error < 0.9 * theirs[common].mean()
    assert reconstructed > 0.99
    assert np.nanmedian(distance_mm) < 25.0
