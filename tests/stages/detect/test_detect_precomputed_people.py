"""The precomputed backend chooses the camera wearer among the people of OpenPose files.

A synthetic take's OpenPose files are rewritten so that every file holds the true
wearer (the simulated detections of gt/observations.npz) and one or two bystanders
(the wearer's motion, delayed, moved 1-2 m and projected) in a random order; in a few
frames the wearer is absent from some files. ``select`` must give back the wearer's
rows (or nothing where the wearer is absent); ``first`` (``people[0]``) must not.
"""

import numpy as np
import pytest

from detection.people import agreement, rig_centre, select_wearer
from detection.track import triangulate_body
from fitting.skeleton import BODY, NUM_JOINTS
from pipeline.config import load_config
from pipeline.formats.openpose import openpose_file_name, read_openpose_people, write_openpose_frame
from pipeline.formats.take_folder import read_take
from stages.detect.stage import detect_take
from workflow.synth.take_writer import SynthConfig, synthesize_take

FRAMES = 60
ABSENT_ONE_VIEW = (0, range(20, 26))  # view 0: only bystanders in these frames
ABSENT_ALL_VIEWS = range(40, 43)  # every view: only bystanders in these frames


def bystanders(joints: np.ndarray, cameras, rng: np.random.Generator, count: int = 2) -> np.ndarray:
    """``(views, frames, count, 59, 3)`` float32 keypoints of ``count`` bystanders.

    Each is the wearer's motion ``joints (frames, 59, 3)`` (metres) delayed by a few
    frames and moved 1-2 m horizontally (+z is up), projected, with 1.5 px noise and
    confidence 0.8; NaN behind the camera or outside the image.
    """
    frames = len(joints)
    result = np.full((len(cameras), frames, count, NUM_JOINTS, 3), np.nan, dtype=np.float32)
    for b in range(count):
        angle, distance = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 2.0)
        moved = joints[(np.arange(frames) + 7 * (b + 1)) % frames] + distance * np.array([np.cos(angle), np.sin(angle), 0.0])
        for v, camera in enumerate(cameras):
            pixels = camera.project(moved) + rng.normal(0.0, 1.5, moved.shape[:-1] + (2,))
            width, height = camera.image_size
            seen = camera.in_front(moved) & np.all((pixels >= 0) & (pixels < [width, height]), axis=-1)
            result[v, :, b] = np.where(seen[..., None], np.concatenate([pixels, np.full(seen.shape + (1,), 0.8)], -1), np.nan)
    return result


@pytest.fixture(scope="module")
def crowded_take(tmp_path_factory):
    """(take folder, expected wearer keypoints (views, frames, 59, 3), bystanders (views, frames, 2, 59, 3),
    share of files whose people[0] is not the wearer)."""
    folder = tmp_path_factory.mktemp("crowded") / "take"
    synthesize_take(folder, SynthConfig(seed=11, num_frames=FRAMES), render=False)
    take = read_take(folder)
    wearer = np.load(folder / "gt" / "observations.npz")["keypoints"].astype(np.float32)
    joints = np.load(folder / "gt" / "joints_3d.npz")["joints_3d"]
    rng = np.random.default_rng(3)
    others = bystanders(joints, take.exo_cameras, rng)
    expected = wearer.copy()
    view, frames = ABSENT_ONE_VIEW
    expected[view, list(frames)] = np.nan
    expected[:, list(ABSENT_ALL_VIEWS)] = np.nan
    not_first = 0
    for v, name in enumerate(take.exo_names):
        for f in range(FRAMES):  # one file per view and frame
            people = [expected[v, f]] + list(others[v, f, : rng.integers(1, 3)])
            order = rng.permutation(len(people))
            not_first += order[0] != 0
            write_openpose_frame(take.keypoints_2d[name] / openpose_file_name(name, f), np.stack(people)[order])
    return folder, expected, others, not_first / (len(take.exo_names) * FRAMES)


def triangulated_mean(take, bodies: np.ndarray) -> np.ndarray:
    """Mean (metres) of the body joints triangulated from ``bodies (views, 59, 3)``."""
    settings = load_config().detect
    points, _ = triangulate_body(list(take.exo_cameras), bodies[:, BODY].astype(np.float64), settings)
    return np.nanmean(points, axis=0)


def detect(folder, *overrides):
    # Rows as chosen: the later per-view hand check (detection/hand_quality.py) is off.
    settings = load_config(overrides=["detect.backend=precomputed", "detect.hand_quality=false", *overrides]).detect
    return detect_take(read_take(folder), settings)


def recovered(keypoints: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """``(views, frames)`` bool: the chosen rows are exactly the expected ones (NaN where expected)."""
    same = (keypoints == expected) | (np.isnan(keypoints) & np.isnan(expected))
    return same.all(axis=(2, 3))


def test_files_hold_the_wearer_and_bystanders(crowded_take):
    folder, expected, _, not_first = crowded_take
    take = read_take(folder)
    name = take.exo_names[1]
    people = read_openpose_people(take.keypoints_2d[name] / openpose_file_name(name, 5))
    assert people.shape[0] in (2, 3) and people.shape[1:] == (NUM_JOINTS, 3)
    assert any(np.array_equal(person, expected[1, 5], equal_nan=True) for person in people)
    assert 0.4 < not_first < 0.8


@pytest.mark.parametrize("ego_prior", ["true", "false"])
def test_select_recovers_the_wearer_and_first_does_not(crowded_take, ego_prior):
    folder, expected, others, _ = crowded_take
    if ego_prior == "false":
        # Without the ego camera the first frame's choice is the person nearest the point
        # the rig looks at: here the wearer (true of this take, not of every take).
        take = read_take(folder)
        joints = np.load(folder / "gt" / "joints_3d.npz")["joints_3d"][0, BODY]
        centre = rig_centre(list(take.exo_cameras))
        distance = np.linalg.norm(joints.mean(axis=0) - centre)
        assert distance < 0.5 and distance < min(np.linalg.norm(triangulated_mean(take, others[:, 0, b]) - centre) for b in range(others.shape[2]))
    keypoints, summary = detect(folder, f"detect.ego_prior={ego_prior}")
    rate = recovered(keypoints, expected).mean()
    first, _ = detect(folder, f"detect.ego_prior={ego_prior}", "detect.precomputed_person=first")
    first_rate = recovered(first, expected).mean()
    print(f"ego_prior={ego_prior}: select {100 * rate:.2f} %, first {100 * first_rate:.2f} % of frames x views")
    assert rate >= 0.99, summary["person_selection"]
    assert first_rate < 0.8
    # Where only bystanders are in a file, nothing is chosen: no bystander hijacks the track.
    view, frames = ABSENT_ONE_VIEW
    assert np.isnan(keypoints[view, list(frames)]).all()
    assert np.isnan(keypoints[:, list(ABSENT_ALL_VIEWS)]).all()
    for b in range(others.shape[2]):
        bystander = (keypoints == others[:, :, b]).all(axis=(2, 3))
        assert not bystander.any()
    # ... and the wearer is found again right after.
    assert recovered(keypoints[:, ABSENT_ALL_VIEWS.stop :], expected[:, ABSENT_ALL_VIEWS.stop :]).mean() >= 0.99


def test_a_consistent_bystander_in_every_view_is_dropped_at_the_ego_camera(crowded_take):
    """Only one bystander, the same in every view, for a few frames, and priors that let
    it through (no 3D prior older than a frame, a 3 m ego cylinder): it triangulates
    well, but its head is not at the ego camera, so it is never chosen."""
    folder, expected, others, _ = crowded_take
    take = read_take(folder)
    overrides = ["detect.backend=precomputed", "detect.prior_max_age=0", "detect.ego_box_radius_m=3.0"]
    settings = load_config(overrides=overrides).detect
    people = np.stack([expected, others[:, :, 0]], axis=2)  # (views, frames, 2, 59, 3)
    hijack = range(30, 34)
    people[:, list(hijack), 0] = np.nan
    keypoints, summary = select_wearer(list(take.exo_cameras), people, settings, take.ego_camera.centers[:FRAMES])
    assert summary["frames_dropped_head_not_at_ego"] >= 1
    assert np.isnan(keypoints[:, list(hijack)]).all()
    assert not (keypoints == others[:, :, 0]).all(axis=(2, 3)).any()  # the bystander is never chosen


def test_agreement_ignores_left_right_and_counts_joints():
    reference = np.stack([np.arange(17.0) * 10, np.arange(17.0) * 5], axis=1)
    body = np.concatenate([reference, np.full((17, 1), 0.9)], axis=1)
    from fitting.skeleton import left_right_swap_index

    mirrored = body[left_right_swap_index()[:17]]
    far = body + [200.0, 0.0, 0.0]
    far[0, 2] = np.nan  # a missing joint is not counted
    good, total, error = agreement(reference, np.stack([body, mirrored, far]), 0.3, 40.0)
    assert list(good) == [17, 17, 0] and list(total) == [17, 17, 16]
    assert np.allclose(error[:2], 0.0) and np.isclose(error[2], 200.0)


def test_select_wearer_names_wrong_shapes(crowded_take):
    folder, *_ = crowded_take
    take = read_take(folder)
    settings = load_config().detect
    with pytest.raises(ValueError, match="people must have shape"):
        select_wearer(list(take.exo_cameras), np.zeros((4, 3, NUM_JOINTS, 3)), settings)
    with pytest.raises(ValueError, match="cameras for 3 views"):
        select_wearer(list(take.exo_cameras), np.zeros((3, 2, 1, NUM_JOINTS, 3)), settings)
