"""Every QA flag carries its evidence: one injected fault per reason into clean label
arrays, and each reason flags exactly the injected frames, names the injected camera
(view reasons) and keeps the measured value and its threshold; one rule names a
stretch's camera."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fitting import skeleton
from fitting.quality import (
    PART_NAMES,
    REASON_TESTS,
    REASONS,
    VIEW_REASONS,
    LabelArrays,
    QualityThresholds,
    culprit_view,
    flag_stretches,
    flagged_frame_lists,
    frame_evidence,
    quality_flags,
    stretch_culprits,
)
from pipeline.config import load_config

VIEWS, FRAMES = 4, 150
BODY, LEFT, RIGHT = 0, 1, 2
CAMERAS = [f"cam{v + 1:02d}" for v in range(VIEWS)]


def _thresholds() -> QualityThresholds:
    return load_config().qa.flags


def _clean(seed: int = 0) -> dict:
    """Label arrays of a rigid figure moving through the take, seen by every view with
    0.7 px detector noise: nothing to flag."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(-0.5, 0.5, (59, 3))
    base[skeleton.LEFT_HAND.start] = base[skeleton.BODY_WRIST_OF_HAND["left_hand"]]
    base[skeleton.RIGHT_HAND.start] = base[skeleton.BODY_WRIST_OF_HAND["right_hand"]]
    points = base[None] + np.linspace(0.0, 1.0, FRAMES)[:, None, None] * np.array([1.0, 0.5, 0.0])
    projected = rng.uniform(100, 900, (VIEWS, FRAMES, 59, 2))
    noise = 0.7 * rng.standard_normal((VIEWS, FRAMES, 59, 2))
    keypoints = np.concatenate([projected + noise, np.full((VIEWS, FRAMES, 59, 1), 0.9)], axis=-1)
    return {
        "keypoints": keypoints,
        "triangulated": points + 0.005 * rng.standard_normal(points.shape),
        "points": points,
        "projected": projected,
        "num_views": np.full((FRAMES, 59), VIEWS, np.int16),
        "inliers": np.ones((VIEWS, FRAMES, 59), bool),
        "filled": np.zeros((FRAMES, 59), bool),
        "bone_lengths": skeleton.bone_lengths(base[None])[0],
    }


def _arrays(values: dict) -> LabelArrays:
    residual = np.linalg.norm(values["keypoints"][..., :2] - values["projected"], axis=-1)
    return LabelArrays(reprojection_error=residual, **values)


# reason -> (part, frames, camera or None, how the fault is injected)
def _inject_error(a, frames, part, view):  # one view's detections scattered by 9 px (no common shift)
    joints = skeleton.PARTS[PART_NAMES[part]]
    signs = np.where(np.arange(joints.stop - joints.start) % 2, 1.0, -1.0)
    a["keypoints"][view, frames, joints, 0] += 9.0 * signs
    a["keypoints"][view, frames, joints, 1] -= 9.0 * signs


def _inject_shift(a, frames, part, view):  # one view off by 4 px: under the 5 px error limit, a shift
    a["keypoints"][view, frames, skeleton.PARTS[PART_NAMES[part]], 0] += 4.0


def _inject_outliers(a, frames, part, view):  # 8 of the body's 17 joints rejected in one view
    a["inliers"][view, frames, 0:8] = False


def _inject_bone(a, frames, part, view):  # the nose 0.2 m off
    a["points"][frames, 0] += 0.2


def _inject_correction(a, frames, part, view):  # refine moved the whole hand 10 cm
    a["triangulated"][frames, skeleton.PARTS[PART_NAMES[part]]] += 0.1


def _inject_filled(a, frames, part, view):
    a["filled"][frames, skeleton.RIGHT_HAND.start + 3 : skeleton.RIGHT_HAND.start + 5] = True


def _inject_off_wrist(a, frames, part, view):  # the whole hand (labels and triangulation) 8 cm off the wrist
    for name in ("points", "triangulated"):
        a[name][frames, skeleton.RIGHT_HAND] += np.array([0.08, 0.0, 0.0])


def _inject_missing(a, frames, part, view):
    for name in ("points", "triangulated"):
        a[name][frames, skeleton.LEFT_HAND] = np.nan


def _inject_few_views(a, frames, part, view):
    a["num_views"][frames, skeleton.BODY] = 1


FAULTS = {
    "reprojection_error": (RIGHT, range(30, 40), 2, _inject_error),
    "part_shift": (BODY, range(50, 60), 1, _inject_shift),
    "outlier_view": (BODY, range(70, 75), 3, _inject_outliers),
    "bone_length": (BODY, range(80, 85), None, _inject_bone),
    "large_correction": (LEFT, range(90, 95), None, _inject_correction),
    "gap_filled": (RIGHT, range(100, 103), None, _inject_filled),
    "hand_off_wrist": (RIGHT, range(110, 115), None, _inject_off_wrist),
    "missing": (LEFT, range(120, 125), None, _inject_missing),
    "too_few_views": (BODY, range(130, 135), None, _inject_few_views),
}


@pytest.fixture(scope="module")
def faulty():
    values = _clean()
    for part, frames, view, inject in FAULTS.values():
        inject(values, list(frames), part, view)
    return quality_flags(_arrays(values), _thresholds())


def test_the_clean_arrays_raise_no_flag():
    assert not quality_flags(_arrays(_clean()), _thresholds()).flags.any()


@pytest.mark.parametrize("reason", list(FAULTS))
def test_each_reason_flags_exactly_its_injected_frames_with_camera_value_and_threshold(faulty, reason):
    part, frames, view, _ = FAULTS[reason]
    r = REASONS.index(reason)
    flagged = np.flatnonzero(faulty.flags[:, part, r])
    assert flagged.tolist() == list(frames), (reason, flagged)
    assert not np.delete(faulty.flags[:, :, r], part, axis=1).any()  # no other part
    test = REASON_TESTS[reason]
    values, limits = faulty.value[frames, part, r], faulty.threshold[frames, part, r]
    compare = {">": np.greater, ">=": np.greater_equal, "<": np.less}[test.comparison]
    assert compare(values, limits).all() and np.isfinite(limits).all()
    cameras = faulty.camera[frames, part, r]
    assert (cameras == (-1 if view is None else view)).all()
    if reason in VIEW_REASONS:
        assert (faulty.view_tripped[:, frames, part, VIEW_REASONS.index(reason)].sum(axis=0) == 1).all()  # that view alone


def test_values_and_thresholds_are_the_measured_ones(faulty):
    t = _thresholds()
    r = REASONS.index
    shift = faulty.value[50:60, BODY, r("part_shift")]
    assert np.all(np.abs(shift - 4.0) < 0.5) and np.all(faulty.threshold[50:60, BODY, r("part_shift")] == t.shift_px)
    assert np.all(faulty.value[50:60, BODY, r("reprojection_error")] < t.reprojection_error_px)  # a shift, not an error
    assert np.all(np.abs(faulty.value[30:40, RIGHT, r("reprojection_error")] - 9.0 * np.sqrt(2)) < 1.5)
    assert np.allclose(faulty.value[70:75, BODY, r("outlier_view")], 8 / 17) and faulty.threshold[70, BODY, r("outlier_view")] == np.float32(t.outlier_share)
    assert np.allclose(faulty.value[90:95, LEFT, r("large_correction")], 100.0 * np.sqrt(3), atol=20.0)  # 10 cm along each axis
    assert np.all(faulty.value[100:103, RIGHT, r("gap_filled")] == 2) and faulty.threshold[100, RIGHT, r("gap_filled")] == 0
    assert np.allclose(faulty.value[110:115, RIGHT, r("hand_off_wrist")], 80.0, atol=1e-3)
    assert np.all(faulty.value[120:125, LEFT, r("missing")] == 0.0)
    assert np.all(faulty.value[130:135, BODY, r("too_few_views")] == 1) and faulty.threshold[130, BODY, r("too_few_views")] == t.min_views


def test_a_camera_offset_for_the_whole_take_names_the_camera():
    values = _clean(1)
    values["keypoints"][0, :, skeleton.BODY, 0] += 6.0
    quality = quality_flags(_arrays(values), _thresholds())
    r = REASONS.index("camera_offset")
    assert quality.flags[:, BODY, r].all() and not quality.flags[:, 1:, r].any()
    assert (quality.camera[:, BODY, r] == 0).all() and np.allclose(quality.value[:, BODY, r], 6.0, atol=0.3)
    assert not quality.flags[:, :, REASONS.index("part_shift")].any()  # its usual shift: nothing stands out


def test_metrics_list_exactly_the_flagged_frames_with_their_evidence(faulty):
    listed = flagged_frame_lists(faulty, CAMERAS)
    expected = {(PART_NAMES[part], reason) for reason, (part, _, _, _) in FAULTS.items()}
    assert {(part, reason) for part, reasons in listed.items() for reason in reasons} == expected
    for reason, (part, frames, view, _) in FAULTS.items():
        entry = listed[PART_NAMES[part]][reason]
        assert entry["frames"] == list(frames)
        assert entry["camera"] == [None if view is None else CAMERAS[view]] * len(frames)
        assert np.allclose(entry["value"], faulty.value[list(frames), part, REASONS.index(reason)], atol=1e-3)
        assert len(entry["threshold"]) == len(frames)


def test_one_rule_names_the_stretch_camera_and_the_frame_it_is_shown_at(faulty):
    stretches = {(PART_NAMES[s.part], s.start): s for s in flag_stretches(faulty)}
    for reason, (part, frames, view, _) in FAULTS.items():
        stretch = stretches[(PART_NAMES[part], frames[0])]
        assert stretch.stop == frames[-1] + 1 and stretch.reasons == {reason: len(frames)}
        assert stretch.view == (-1 if view is None else view) and stretch.start <= stretch.worst_frame < stretch.stop
        (evidence,) = stretch.evidence
        assert evidence.reason == reason and evidence.frames == len(frames) and evidence.view == stretch.view
    culprits = stretch_culprits(list(stretches.values()), FRAMES)
    line = frame_evidence(faulty, culprits, 55, CAMERAS)
    assert line == [f"body [cam02]: part_shift {REASON_TESTS['part_shift'].describe(faulty.value[55, BODY, REASONS.index('part_shift')], 3.0)}"]
    assert re.fullmatch(r"body \[cam02\]: part_shift [34]\.\d px > 3", line[0]), line


def test_culprit_is_the_view_tripping_most_then_furthest_over():
    tripped = np.zeros((3, 4, 2), bool)
    ratio = np.zeros((3, 4, 2))
    tripped[0, :2, 0] = True  # view 0: 2 pairs, just over
    ratio[0, :2, 0] = 1.1
    tripped[1, :3, 0] = True  # view 1: 3 pairs
    ratio[1, :3, 0] = 1.2
    tripped[2, 0, 0] = True  # view 2: 1 pair, far over
    ratio[2, 0, 0] = 9.0
    assert culprit_view(tripped, ratio) == 1
    tripped[0, 2, 1] = True  # view 0 now also 3 pairs, its sum 1.1 + 1.1 + 2.0 over view 1's 3.6
    ratio[0, 2, 1] = 2.0
    assert culprit_view(tripped, ratio) == 0
    assert culprit_view(np.zeros((3, 4, 2), bool), ratio) == -1
