"""Hand metrics against a rendered take's truth visibility (workflow/evaluation.py)."""

import numpy as np

from fitting.skeleton import LEFT_HAND, NUM_JOINTS, RIGHT_HAND
from pipeline.atomic import atomic_save_npz
from workflow.evaluation import evaluate, evaluate_hands_2d, format_report


def test_2d_hand_coverage_and_error_among_visible_views():
    views, frames = 2, 5
    truth = np.random.default_rng(0).uniform(100, 500, (views, frames, NUM_JOINTS, 2))
    visible = np.zeros((views, frames, 2), bool)
    visible[:, :4, 0] = True  # left hand seen in 8 view-frames
    visible[0, :, 1] = True  # right hand in 5
    keypoints = np.full((views, frames, NUM_JOINTS, 3), np.nan)
    keypoints[..., :2] = truth + [3.0, 0.0]  # found everywhere, 3 px off in x
    keypoints[..., 2] = 0.9
    keypoints[1, 0:2, LEFT_HAND] = np.nan  # two visible left hands missed
    keypoints[0, 0, LEFT_HAND, 2] = 0.1  # one found with a low confidence
    keypoints[0, 4, RIGHT_HAND, :2] += 40.0  # one wrong hand
    report = evaluate_hands_2d(keypoints, truth, visible, 0.3)
    left, right, both = report["left_hand"], report["right_hand"], report["both"]
    assert left["visible_views"] == 8 and left["coverage"] == 6 / 8 and left["coverage_confident"] == 5 / 8
    assert np.isclose(left["median_error_px"], 3.0) and left["wrong_hands"] == 0.0
    assert left["found_not_visible"] == 2  # frame 4 in both views
    assert right["coverage"] == 1.0 and right["wrong_hands"] == 1 / 5 and right["found_not_visible"] == 5
    assert both["visible_views"] == 13 and np.isclose(both["coverage"], 11 / 13) and np.isclose(both["median_error_px"], 3.0)


def test_hands_are_evaluated_where_two_views_see_them(tmp_path):
    frames = 6
    truth = np.random.default_rng(1).normal(0.0, 0.3, (frames, NUM_JOINTS, 3)) + [0.0, 0.0, 1.0]
    predicted = truth + [0.01, 0.0, 0.0]  # 10 mm everywhere
    predicted[0:3, LEFT_HAND] = truth[0:3, LEFT_HAND] + [0.05, 0.0, 0.0]  # 50 mm where one view sees it
    predicted[5, RIGHT_HAND] = np.nan  # a right hand missing where two views see it
    visible = np.zeros((3, frames, 2), bool)
    visible[0, :, :] = True
    visible[1, 3:, 0] = True  # left hand: two views from frame 3 on
    visible[2, :, 1] = True  # right hand: two views everywhere
    atomic_save_npz(tmp_path / "gt" / "joints_3d.npz", joints_3d=truth, fps=np.float64(30.0))
    atomic_save_npz(tmp_path / "gt" / "visibility.npz", hand_visible=visible)
    atomic_save_npz(tmp_path / "pred.npz", points=predicted)
    report = evaluate(tmp_path / "pred.npz", tmp_path)
    left, right = report["hands_seen"]["left_hand"], report["hands_seen"]["right_hand"]
    assert left["frames"] == 3 and np.isclose(left["mpjpe_mm"], 10.0) and left["completeness"] == 1.0
    assert np.isclose(report["parts"]["left_hand"]["mpjpe_mm"], 30.0)  # all frames: 50 and 10 mm
    assert right["frames"] == 6 and np.isclose(right["completeness"], 5 / 6) and np.isclose(right["pa_mpjpe_mm"], 0.0, atol=1e-6)
    assert "left_hand in the 3 frames where >= 2 views see it" in format_report(report)
