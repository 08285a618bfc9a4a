"""The embedded detector (MediaPipe) on the real Pose2Sim capture: bystanders in view.

Runs the detect stage's own loop (:func:`detection.track.detect_frames`) on every
5th frame of the 100 (20 frames x 4 views, streamed from the videos), triangulates the
detections and compares with Pose2Sim's reference TRC (a peer's triangulation of
OpenPose BODY_25B, not marker ground truth) on the 13 joints both share.
"""

import numpy as np
import pytest

from fitting.skeleton import JOINT_NAMES, LEFT_HAND, RIGHT_HAND
from pipeline.config import load_config
from pipeline.formats.take_folder import read_take
from pipeline.formats.trc import read_trc
from pipeline.formats.video import iter_frames
from tests.triangulation.test_validation_pose2sim import TRC_TO_COCO
from triangulation.triangulate import triangulate

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

FRAMES, STEP = 100, 5


def every_nth_frame(videos, stop, step):
    """Lockstep frames of all videos, yielding frames 0, step, 2 * step, ... (all decoded, most skipped)."""
    streams = [iter_frames(path, 0, stop) for path in videos]
    for frame in range(stop):
        images = [next(stream)[1] for stream in streams]
        if frame % step == 0:
            yield frame, images


@pytest.fixture(scope="module")
def detections(pose2sim_balancing):
    from detection.track import detect_frames
    from stages.detect.backend import make_detector

    take = read_take(pose2sim_balancing)  # the cameras in their videos' pixel frames (two are 1080 wide)
    cameras = list(take.exo_cameras)
    videos = [take.videos[camera.name] for camera in cameras]
    settings = load_config().detect
    detector = make_detector(settings)
    try:
        keypoints, summary = detect_frames(detector, cameras, every_nth_frame(videos, FRAMES, STEP), 0, FRAMES, settings)
    finally:
        detector.close()
    keypoints = keypoints[:, ::STEP]
    trc = read_trc(pose2sim_balancing / "pose-3d" / "S00_P00_T01_BalancingTrial_0-100.trc")
    world = trc.to_world()[:FRAMES:STEP]
    reference = np.stack([world[:, trc.marker_names.index(marker)] for marker in TRC_TO_COCO], axis=1)
    joints = [JOINT_NAMES.index(joint) for joint in TRC_TO_COCO.values()]
    return cameras, keypoints, summary, reference, joints


def test_the_subject_is_found_not_the_bystanders(detections):
    cameras, keypoints, summary, reference, joints = detections
    found_rates = []
    for v, camera in enumerate(cameras):
        truth = camera.project(reference)  # (frames, 13, 2)
        error = np.linalg.norm(keypoints[v][:, joints, :2] - truth, axis=-1)
        height = truth[..., 1].max(axis=1) - truth[..., 1].min(axis=1)
        # Found: the detected body's median joint lies within 10 % of the subject's height.
        with np.errstate(invalid="ignore"):
            found = np.nanmedian(np.where(np.isfinite(error), error, np.inf), axis=1) < 0.1 * height
        found_rates.append(found.mean())
        left = np.isfinite(keypoints[v][:, LEFT_HAND, 0]).any(axis=1).mean()
        right = np.isfinite(keypoints[v][:, RIGHT_HAND, 0]).any(axis=1).mean()
        print(
            f"\n{camera.name}: subject found in {found.mean():.0%} of {len(found)} frames, median 2D error "
            f"{np.nanmedian(error):.1f} px; hands found: left {left:.0%}, right {right:.0%}; ROI {summary['views'][camera.name]['roi_sources']}"
        )
    assert np.mean(found_rates) >= 0.95


def test_triangulated_detections_are_near_the_reference(detections):
    cameras, keypoints, _, reference, joints = detections
    result = triangulate(cameras, keypoints, **load_config().section("triangulation"))
    distance = np.linalg.norm(result.points[:, joints] - reference, axis=-1) * 1000.0
    for index, joint in enumerate(joints):
        print(f"  {JOINT_NAMES[joint]:15s} median {np.nanmedian(distance[:, index]):6.1f} mm")
    print(f"  all joints median {np.nanmedian(distance):.1f} mm, reconstructed {np.isfinite(distance).mean():.0%}")
    assert np.isfinite(distance).mean() > 0.95
    assert np.nanmedian(distance) < 40.0
    # Hands (no reference here): triangulated in most frames, each with a plausible size.
    for hand in (LEFT_HAND, RIGHT_HAND):
        points = result.points[:, hand]
        reconstructed = np.isfinite(points[..., 0]).mean()
        palm = np.linalg.norm(points[:, 9] - points[:, 0], axis=-1) * 1000.0  # wrist to middle knuckle, mm
        print(f"  hand {JOINT_NAMES[hand.start]}: reconstructed {reconstructed:.0%}, palm length median {np.nanmedian(palm):.0f} mm")
        assert reconstructed >= 0.85
        assert 60.0 < np.nanmedian(palm) < 130.0
