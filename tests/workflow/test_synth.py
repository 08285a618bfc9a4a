"""Synthetic take generator: motion, rig, detector simulation, take files, CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from fitting import skeleton
from pipeline.atomic import load_npz
from pipeline.formats.calibration import read_camera_pose_json, read_gopro_calibs_csv
from pipeline.formats.openpose import read_openpose_folder
from triangulation.camera_models import Fisheye624Model, FisheyeModel, PinholeModel
from triangulation.cameras import Camera, rodrigues_from_rotation
from workflow.synth import observations as obs_module
from workflow.synth.motion import joints_at, simulate_motion
from workflow.synth.perturbation import RigPerturbation
from workflow.synth.rig import RigConfig, look_at
from workflow.synth.take_writer import GENERATOR_VERSION, SynthConfig, generate_take, synthesize_take, write_take

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

SEED = 5
FRAMES = 300


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between vectors ``(..., 3)``."""
    cos = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


@pytest.fixture(scope="module")
def take_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synth") / "take"
    start = time.perf_counter()
    synthesize_take(folder, SynthConfig(seed=SEED, num_frames=FRAMES, camera_pose_json=True), render=False)
    elapsed = time.perf_counter() - start
    print(f"\nsynth: {FRAMES} frames x 4 exo cameras, no render: {elapsed:.2f} s")
    return folder


@pytest.fixture(scope="module")
def gt(take_dir):
    names = ("joints_3d", "joints_2d", "ego_2d", "observations")
    return {name: load_npz(take_dir / "gt" / f"{name}.npz") for name in names}


# --------------------------------------------------------------------------------------
# Files and determinism
# --------------------------------------------------------------------------------------


def test_take_layout(take_dir, gt):
    take = json.loads((take_dir / "take.json").read_text())
    cameras = ["cam01", "cam02", "cam03", "cam04"]
    assert take["num_frames"] == FRAMES and take["fps"] == 30.0 and take["seed"] == SEED
    assert take["exo_cameras"] == cameras and take["ego_camera"] == "aria01"
    assert take["take_name"] and take["take_uid"] and take["generator_version"]
    assert (take_dir / "trajectory" / "gopro_calibs.csv").is_file() and (take_dir / "camera_pose.json").is_file()
    for camera in cameras:
        files = sorted((take_dir / "keypoints2d" / "openpose" / camera).iterdir())
        assert len(files) == FRAMES and files[7].name == f"{camera}_000000000007_keypoints.json"
    assert not (take_dir / "frame_aligned_videos").exists()
    joints_3d = gt["joints_3d"]
    assert joints_3d["joints_3d"].shape == (FRAMES, 59, 3) and joints_3d["joints_3d"].dtype == np.float64
    assert joints_3d["bone_lengths"].shape == (len(skeleton.BONES),) and float(joints_3d["fps"]) == 30.0
    assert gt["joints_2d"]["pixels"].shape == (4, FRAMES, 59, 2) and gt["joints_2d"]["in_image"].dtype == bool
    assert gt["joints_2d"]["camera_names"].tolist() == cameras
    assert gt["ego_2d"]["pixels"].shape == (FRAMES, 59, 2) and gt["ego_2d"]["in_image"].shape == (FRAMES, 59)
    observed = gt["observations"]
    assert observed["keypoints"].shape == (4, FRAMES, 59, 3) and observed["keypoints"].dtype == np.float32
    for mask in ("dropped", "occluded", "outlier", "swapped", "out_of_image"):
        assert observed[mask].shape == (4, FRAMES, 59) and observed[mask].dtype == bool
    assert observed["noise_sigma_px"].shape == (4, FRAMES, 59)


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_same_seed_gives_identical_files(take_dir, tmp_path):
    synthesize_take(tmp_path / "again", SynthConfig(seed=SEED, num_frames=FRAMES, camera_pose_json=True), render=False)
    first, second = _file_bytes(take_dir), _file_bytes(tmp_path / "again")
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_other_seed_differs():
    a = generate_take(SynthConfig(seed=1, num_frames=20))
    b = generate_take(SynthConfig(seed=2, num_frames=20))
    assert not np.allclose(a.motion.joints, b.motion.joints)
    assert not np.allclose(a.motion.bone_lengths, b.motion.bone_lengths)
    assert a.config.take_uid != b.config.take_uid


# --------------------------------------------------------------------------------------
# Motion
# --------------------------------------------------------------------------------------


def test_bone_lengths_constant_and_plausible(gt):
    joints, lengths = gt["joints_3d"]["joints_3d"], gt["joints_3d"]["bone_lengths"]
    assert np.all(np.isfinite(joints))
    deviation = np.abs(skeleton.bone_lengths(joints) - lengths)
    assert deviation.max() < 1e-9
    bones = {pair: length for pair, length in zip(skeleton.BONES, lengths)}
    for pair, (low, high) in {
        (5, 7): (0.25, 0.40),  # upper arm
        (7, 9): (0.19, 0.31),  # forearm
        (11, 13): (0.33, 0.52),  # thigh
        (13, 15): (0.33, 0.52),  # shank
        (5, 6): (0.28, 0.48),  # shoulders
        (11, 12): (0.13, 0.25),  # hips
        (5, 11): (0.38, 0.62),  # torso side
        (1, 2): (0.04, 0.08),  # eyes
    }.items():
        assert low < bones[pair] < high, (pair, bones[pair])
    np.testing.assert_allclose(bones[(5, 7)], bones[(6, 8)])  # symmetric person
    hand = lengths[19:39].reshape(5, 4)  # left hand: per finger, wrist->_1, _1->_2, _2->_3, _3->_4
    assert np.all((hand[1:, 0] > 0.06) & (hand[1:, 0] < 0.11))  # wrist to MCP
    assert np.all((hand[:, 1:] > 0.012) & (hand[:, 1:] < 0.06))  # phalanges
    assert np.all(hand[1:, 1] > hand[1:, 2])  # proximal longer than middle phalanx
    # Overall size: standing height within the sampled range (eyes ~ 93 % of it).
    height = np.max(joints[:, 1:3, 2]) / 0.93
    assert 1.4 < height < 2.05


def test_wrists_coincide_and_feet_on_floor(gt):
    joints = gt["joints_3d"]["joints_3d"]
    np.testing.assert_array_equal(joints[:, 9], joints[:, 17])
    np.testing.assert_array_equal(joints[:, 10], joints[:, 38])
    lowest = np.minimum(joints[:, 15, 2], joints[:, 16, 2])
    np.testing.assert_allclose(lowest, lowest[0], atol=1e-12)  # the lower ankle stays on the floor
    assert 0.04 < lowest[0] < 0.1 and joints[..., 2].min() > 0.0


def test_motion_is_human(gt):
    joints = gt["joints_3d"]["joints_3d"]
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1) * 30.0
    assert speed[:, :17].max() < 6.0  # m/s
    pelvis = joints[:, 11:13].mean(axis=1)
    walked = np.sum(np.linalg.norm(np.diff(pelvis[:, :2], axis=0), axis=-1))
    assert walked > 1.0  # walks about
    for upper, middle, lower, moves in ((5, 7, 9, 10), (6, 8, 10, 10), (11, 13, 15, 20), (12, 14, 16, 20)):
        bend = _angle(joints[:, middle] - joints[:, upper], joints[:, lower] - joints[:, middle])  # elbow, knee
        assert bend.max() < 150.0 and np.ptp(bend) > moves
    head = joints[:, 0:5]
    facing = joints[:, 0] - joints[:, 3:5].mean(axis=1)  # ears -> nose
    yaw = np.unwrap(np.arctan2(facing[:, 1], facing[:, 0]))
    assert np.ptp(np.degrees(yaw)) > 30.0  # turns the head / body
    assert np.all(head[..., 2] > 0.5)


def test_hands_articulate(gt):
    joints = gt["joints_3d"]["joints_3d"]
    for hand in (skeleton.LEFT_HAND, skeleton.RIGHT_HAND):
        points = joints[:, hand].reshape(FRAMES, 21, 3)
        fingers = points[:, 1:].reshape(FRAMES, 5, 4, 3)
        # PIP (fingers) / MCP (thumb) flexion: angle between consecutive segments.
        flexion = _angle(fingers[:, :, 1] - fingers[:, :, 0], fingers[:, :, 2] - fingers[:, :, 1])
        moved = np.ptp(flexion, axis=0)  # degrees: thumb MCP, index..pinky PIP
        assert moved[0] > 10.0 and np.all(moved[1:] > 25.0), moved
        assert flexion.max() < 130.0
        steps = np.abs(np.diff(flexion, axis=0)).max()
        assert steps < 20.0  # smooth: no jump between frames (degrees per frame at 30 fps)


def test_hands_work_in_front_of_the_body_as_well_as_hang(gt):
    """Hands like a wearer's: raised (gesturing, reaching: the wrist above its elbow), at
    work in front of the body (above the hips) and hanging, each for a good share of the take."""
    joints = gt["joints_3d"]["joints_3d"]
    hips = joints[:, 11:13, 2].mean(axis=1)
    for wrist, elbow in ((9, 7), (10, 8)):
        raised = (joints[:, wrist, 2] > joints[:, elbow, 2]).mean()
        working = (joints[:, wrist, 2] > hips + 0.2).mean()
        hanging = (joints[:, wrist, 2] < hips).mean()
        assert raised > 0.15 and working > 0.25 and hanging > 0.25, (raised, working, hanging)


# --------------------------------------------------------------------------------------
# Cameras and ground truth projections
# --------------------------------------------------------------------------------------


def test_truth_matches_written_calibration(take_dir, gt):
    joints = gt["joints_3d"]["joints_3d"]
    from_csv = read_gopro_calibs_csv(take_dir / "trajectory" / "gopro_calibs.csv")
    from_json, ego, metadata = read_camera_pose_json(take_dir / "camera_pose.json")
    assert [c.name for c in from_csv] == [c.name for c in from_json] == gt["joints_2d"]["camera_names"].tolist()
    assert metadata["take_uid"] == json.loads((take_dir / "take.json").read_text())["take_uid"]
    pixels = gt["joints_2d"]["pixels"]
    for view, (csv_camera, json_camera) in enumerate(zip(from_csv, from_json)):
        assert isinstance(csv_camera.model, FisheyeModel) and isinstance(json_camera.model, FisheyeModel)
        assert np.abs(csv_camera.project(joints) - pixels[view]).max() < 0.01
        assert np.abs(json_camera.project(joints) - pixels[view]).max() < 0.01
    assert isinstance(ego.model, Fisheye624Model) and ego.num_frames == FRAMES and ego.image_size == (512, 512)
    in_image = gt["ego_2d"]["in_image"]
    assert in_image.mean() > 0.3
    assert np.abs(ego.project(joints)[in_image] - gt["ego_2d"]["pixels"][in_image]).max() < 0.01


def test_exo_rig_is_gopro_like(take_dir, gt):
    cameras = read_gopro_calibs_csv(take_dir / "trajectory" / "gopro_calibs.csv")
    joints = gt["joints_3d"]["joints_3d"]
    pelvis = joints[:, 11:13].mean(axis=1)
    for view, camera in enumerate(cameras):
        width, height = camera.image_size
        assert (width, height) == (960, 540)
        edge = camera.model.unproject(np.array([[0.0, camera.model.cy], [width, camera.model.cy]]))
        assert 95.0 < _angle(edge[0], edge[1]) < 125.0  # horizontal field of view
        assert 0.0 < camera.model.distortion[0] < 0.1 and np.all(np.abs(camera.model.distortion) < 0.1)
        assert 1.0 <= camera.center[2] <= 2.0
        distance = np.linalg.norm(pelvis - camera.center, axis=1)
        assert 0.9 < distance.min() and distance.max() < 4.5
        assert gt["joints_2d"]["in_image"][view].mean() > 0.9  # looks at the person


def test_ego_camera_on_the_head_looking_down(take_dir, gt):
    _, ego, _ = read_camera_pose_json(take_dir / "camera_pose.json")
    joints = gt["joints_3d"]["joints_3d"]
    eyes = joints[:, 1:3].mean(axis=1)
    assert np.linalg.norm(ego.centers - eyes, axis=1).max() < 0.05
    axis = ego.R[:, 2, :]  # optical axis in the world
    down = np.degrees(np.arcsin(-axis[:, 2]))
    assert 15.0 < np.median(down) < 75.0
    # Head joints are never in view; the hands often are.
    in_image = gt["ego_2d"]["in_image"]
    assert not in_image[:, :5].any()
    assert in_image[:, skeleton.LEFT_HAND].mean() > 0.3 and in_image[:, skeleton.RIGHT_HAND].mean() > 0.3


# --------------------------------------------------------------------------------------
# Simulated detections
# --------------------------------------------------------------------------------------


def test_observation_masks_consistent(gt):
    observed, truth = gt["observations"], gt["joints_2d"]
    keypoints, sigma = observed["keypoints"], observed["noise_sigma_px"].astype(np.float64)
    in_image = truth["in_image"]
    np.testing.assert_array_equal(observed["out_of_image"], ~in_image)
    missing = np.isnan(keypoints).any(axis=-1)
    np.testing.assert_array_equal(missing, observed["dropped"] | observed["out_of_image"])
    assert np.array_equal(np.isnan(keypoints).all(axis=-1), missing)
    for mask in ("dropped", "occluded", "outlier", "swapped"):
        assert not np.any(observed[mask] & ~in_image), mask
        assert 0.001 < observed[mask][in_image].mean() < 0.35, (mask, observed[mask][in_image].mean())
    assert not np.any((observed["outlier"] | observed["swapped"]) & missing)

    twin = skeleton.left_right_swap_index()
    pixels = truth["pixels"]
    source = np.where(observed["swapped"][..., None], pixels[..., twin, :], pixels)
    error = np.linalg.norm(keypoints[..., :2] - source, axis=-1)
    outlier, swapped = observed["outlier"], observed["swapped"]
    clean = ~missing & ~outlier
    # Inliers (and swapped joints, about their twin) are within the recorded noise.
    assert np.all(error[clean] < 7.0 * sigma[clean] + 1e-3)
    np.testing.assert_array_equal(swapped, swapped[..., twin])  # swaps come in pairs
    own_error = np.linalg.norm(keypoints[..., :2] - pixels, axis=-1)
    apart = np.linalg.norm(pixels - pixels[..., twin, :], axis=-1)
    wide = swapped & clean & (apart > 20 * sigma)
    assert np.all(own_error[wide] > 0.5 * apart[wide])
    # Outliers are far from where they belong.
    assert np.all(error[outlier] > 30.0 - 7.0 * sigma[outlier])
    assert np.median(error[outlier]) > 60.0
    # Noise grows with depth and is larger for hands and occluded joints.
    assert np.median(sigma[..., 17:][in_image[..., 17:]]) > np.median(sigma[..., :17][in_image[..., :17]])
    occluded = observed["occluded"]
    assert np.median(sigma[occluded]) > np.median(sigma[in_image & ~occluded])


def test_confidence_follows_error(gt):
    observed, truth = gt["observations"], gt["joints_2d"]
    keypoints = observed["keypoints"]
    reported = ~np.isnan(keypoints[..., 2])
    confidence = keypoints[..., 2]
    assert np.all((confidence[reported] > 0) & (confidence[reported] <= 1))
    error = np.linalg.norm(keypoints[..., :2] - truth["pixels"], axis=-1)
    inlier = reported & ~observed["outlier"] & ~observed["swapped"]
    assert np.corrcoef(confidence[inlier], error[inlier])[0, 1] < -0.3
    outlier = observed["outlier"]
    assert confidence[outlier].mean() < confidence[inlier].mean()
    assert np.any(confidence[outlier] > 0.5)  # some outliers are confident
    occluded = observed["occluded"] & reported
    assert confidence[occluded].mean() < confidence[inlier & ~observed["occluded"]].mean()


def test_openpose_files_hold_the_observations(take_dir, gt):
    keypoints = gt["observations"]["keypoints"]
    for view, camera in enumerate(gt["joints_2d"]["camera_names"]):
        read = read_openpose_folder(take_dir / "keypoints2d" / "openpose" / str(camera), FRAMES, layout="COCO_17")
        np.testing.assert_array_equal(read, keypoints[view])


def test_occlusion_by_the_torso():
    motion = simulate_motion(1, 30.0, seed=1)  # a pose whose near arm does not hang in front of the near hip
    joints = motion.joints
    pelvis = joints[0, 11:13].mean(axis=0)
    left = joints[0, 11] - joints[0, 12]
    left /= np.linalg.norm(left)
    center = pelvis + 2.5 * left + np.array([0.0, 0.0, 0.4])  # on the person's left side
    R, t = look_at(center, pelvis + np.array([0.0, 0.0, 0.4]))
    camera = Camera("side", PinholeModel(500.0, 500.0, 480.0, 270.0), R, t, (960, 540))
    occluded = obs_module.occlusion(joints, [camera])[0, 0]
    assert occluded[12] and not occluded[11]  # far hip hidden, near hip visible
    assert occluded[6] and not occluded[5]  # far shoulder hidden, near shoulder visible


def test_bursts_have_the_requested_rate():
    rng = np.random.default_rng(0)
    active = obs_module.bursts(rng, (200, 1000), 0.01, 5.0)
    assert 0.03 < active.mean() < 0.07  # about p * mean length
    runs = np.diff(active.astype(int), axis=1)
    assert np.count_nonzero(runs == 1) > 0


# --------------------------------------------------------------------------------------
# Command line and rendering hook
# --------------------------------------------------------------------------------------


def test_cli_synth_no_render(tmp_path):
    from workflow.cli import main

    out = tmp_path / "cli_take"
    status = main(["synth", str(out), "--seed", "2", "--frames", "12", "--fps", "25", "--exo-cameras", "2",
                   "--width", "640", "--height", "360", "--no-render"])  # fmt: skip
    assert status == 0
    take = json.loads((out / "take.json").read_text())
    assert take["num_frames"] == 12 and take["fps"] == 25.0 and take["exo_cameras"] == ["cam01", "cam02"]
    cameras = read_gopro_calibs_csv(out / "trajectory" / "gopro_calibs.csv")
    assert [c.image_size for c in cameras] == [(640, 360), (640, 360)]
    assert load_npz(out / "gt" / "observations.npz")["keypoints"].shape == (2, 12, 59, 3)
    assert not (out / "frame_aligned_videos").exists()


def test_render_hook_receives_the_take(tmp_path, monkeypatch):
    from workflow.synth import render

    calls = []
    visible = np.zeros((4, 6, 59), bool)
    visible[1, 2, skeleton.LEFT_HAND.start : skeleton.LEFT_HAND.start + 11] = True  # 11 of 21 joints: seen
    visible[2, 3, skeleton.RIGHT_HAND.start : skeleton.RIGHT_HAND.start + 10] = True  # 10 of 21: not seen
    monkeypatch.setattr(render, "render_take_videos", lambda *args, **kwargs: calls.append((args, kwargs)) or visible)
    take = synthesize_take(tmp_path / "rendered", SynthConfig(seed=4, num_frames=6), render=True)
    (((take_dir, joints, exo, ego, fps, seed), kwargs),) = calls
    assert kwargs == {"view_joints": {}}  # no camera sees other times
    assert take_dir == tmp_path / "rendered" and fps == 30.0 and seed == 4
    np.testing.assert_array_equal(joints, take.motion.joints)
    assert [c.name for c in exo] == ["cam01", "cam02", "cam03", "cam04"] and ego.name == "aria01"
    truth = load_npz(tmp_path / "rendered" / "gt" / "visibility.npz")
    np.testing.assert_array_equal(truth["visible"], visible)
    assert truth["hand_visible"].shape == (4, 6, 2) and np.argwhere(truth["hand_visible"]).tolist() == [[1, 2, 0]]
    assert list(truth["camera_names"]) == ["cam01", "cam02", "cam03", "cam04"]
    synthesize_take(tmp_path / "rendered", SynthConfig(seed=4, num_frames=6), render=False)
    assert not (tmp_path / "rendered" / "gt" / "visibility.npz").exists()  # no stale truth of the videos


# --------------------------------------------------------------------------------------
# Rig perturbation: a wrong calibration and a camera out of sync, with their truth
# --------------------------------------------------------------------------------------

SHIFT_FRAMES = 24


def _write(take, folder: Path) -> dict[str, bytes]:
    write_take(take, folder)
    return _file_bytes(folder)


def test_unperturbed_take_is_as_before_perturbations(tmp_path):
    config = SynthConfig()
    if GENERATOR_VERSION != "3":
        pytest.skip("the pinned uid is of generator version 3 (recorded before perturbations existed)")
    assert config.take_uid == "e1d50b3a-d7e4-59d4-90ae-8a12d8185dcc"  # the uid of SynthConfig() before perturbations existed
    assert SynthConfig(seed=0, num_frames=40, camera_pose_json=True).take_uid == "1613fb3d-6bdd-5e32-9497-4ea781e0a674"
    inert = RigPerturbation(rotation_deg=5.0, time_shift_frames=-3.0)  # no camera named: nothing is perturbed
    assert SynthConfig(perturbation=inert).take_uid == config.take_uid
    small = SynthConfig(seed=7, num_frames=6, camera_pose_json=True)
    files = _write(generate_take(small), tmp_path / "default")
    assert "perturbation" not in json.loads(files["take.json"])["generator_config"]
    assert "gt/rig_perturbation.json" not in files
    explicit = _write(generate_take(SynthConfig(seed=7, num_frames=6, camera_pose_json=True, perturbation=inert)), tmp_path / "explicit")
    assert explicit == files
    perturbed = SynthConfig(seed=7, num_frames=6, perturbation=RigPerturbation(camera="cam01"))
    assert perturbed.take_uid != small.take_uid and "perturbation" in perturbed.document()


@pytest.fixture(scope="module")
def unshifted():
    return generate_take(SynthConfig(seed=SEED, num_frames=SHIFT_FRAMES))


def test_perturbed_camera_written_off_by_the_truth(tmp_path, unshifted):
    perturbation = RigPerturbation(camera="cam02", rotation_deg=1.0, translation_m=0.03)
    take = generate_take(SynthConfig(seed=SEED, num_frames=SHIFT_FRAMES, camera_pose_json=True, perturbation=perturbation))
    write_take(take, tmp_path)
    truth = json.loads((tmp_path / "gt" / "rig_perturbation.json").read_text())
    from_csv = read_gopro_calibs_csv(tmp_path / "trajectory" / "gopro_calibs.csv")
    from_json, _, _ = read_camera_pose_json(tmp_path / "camera_pose.json")
    for written in (from_csv, from_json):
        for camera, true in zip(written, unshifted.exo_cameras):
            relative = rodrigues_from_rotation(true.R.T @ camera.R)  # R_written = R_true Q^T: the rotation vector of Q^T
            moved = camera.center - true.center
            if camera.name != "cam02":
                assert np.abs(relative).max() < 1e-12 and np.abs(moved).max() < 1e-12, camera.name
                continue
            assert np.degrees(np.linalg.norm(relative)) == pytest.approx(1.0, abs=1e-9)
            assert np.linalg.norm(moved) == pytest.approx(0.03, abs=1e-12)
            np.testing.assert_allclose(-relative / np.linalg.norm(relative), truth["axis"], atol=1e-9)
            np.testing.assert_allclose(moved / 0.03, truth["direction"], atol=1e-9)
            np.testing.assert_allclose(camera.R, truth["written"]["R"], atol=1e-12)
            np.testing.assert_allclose(camera.t, truth["written"]["t"], atol=1e-12)
            np.testing.assert_allclose(true.R, truth["true"]["R"], atol=0)
            np.testing.assert_allclose(true.center, truth["true"]["center"], atol=0)
    assert truth["camera"] == "cam02" and truth["rotation_deg"] == 1.0 and truth["translation_m"] == 0.03
    assert truth["time_shift_camera"] is None and truth["time_shift_frames"] is None and truth["time_shift_ms"] is None
    assert "reference time (f + s_c) / fps" in truth["time_convention"] and "R_written" in truth["pose_convention"]
    # What is observed is the true rig: pixels and detections are the unperturbed take's.
    np.testing.assert_array_equal(load_npz(tmp_path / "gt" / "joints_2d.npz")["pixels"], unshifted.pixels)
    np.testing.assert_array_equal(take.observations.keypoints, unshifted.observations.keypoints)
    # Another seed, another axis and direction (stream [seed, 7]).
    other = RigPerturbation(camera="cam02").draw(SEED + 1)
    assert not np.allclose(other[0], truth["axis"]) and not np.allclose(other[1], truth["direction"])
    # The same folder written unperturbed loses the stale truth.
    write_take(unshifted, tmp_path)
    assert not (tmp_path / "gt" / "rig_perturbation.json").exists()


def _observation_arrays(take, view: int) -> dict[str, np.ndarray]:
    return {name: array[view] for name, array in take.observations.arrays().items()}


def test_time_shifted_camera_sees_the_motion_at_its_times(tmp_path, unshifted):
    take = generate_take(SynthConfig(seed=SEED, num_frames=SHIFT_FRAMES, perturbation=RigPerturbation(time_shift_camera="cam03", time_shift_frames=1.0)))
    shifted = 2  # cam03
    # A whole-frame shift: frame f shows what the unshifted cam03 shows at frame f + 1.
    np.testing.assert_allclose(take.pixels[shifted, :-1], unshifted.pixels[shifted, 1:], atol=1e-9)
    np.testing.assert_array_equal(take.in_image[shifted, :-1], unshifted.in_image[shifted, 1:])
    np.testing.assert_array_equal(take.observations.occluded[shifted, :-1], unshifted.observations.occluded[shifted, 1:])
    assert not np.allclose(take.pixels[shifted], unshifted.pixels[shifted])
    for view in (0, 1, 3):  # the other views, their detections included (the detector noise is drawn as before)
        np.testing.assert_array_equal(take.pixels[view], unshifted.pixels[view])
        for name, array in _observation_arrays(take, view).items():
            np.testing.assert_array_equal(array, _observation_arrays(unshifted, view)[name], err_msg=name)
    np.testing.assert_array_equal(take.motion.joints, unshifted.motion.joints)  # the reference (gt/joints_3d) is unchanged
    np.testing.assert_array_equal(take.ego_pixels, unshifted.ego_pixels)

    # A sub-frame shift: the projection of the motion at (f + 1.5) / fps.
    config = SynthConfig(seed=SEED, num_frames=SHIFT_FRAMES, perturbation=RigPerturbation(time_shift_camera="cam03", time_shift_frames=1.5))
    half = generate_take(config)
    times = (np.arange(SHIFT_FRAMES) + 1.5) / config.fps
    expected = half.exo_cameras[shifted].project(joints_at(times, SHIFT_FRAMES, config.fps, SEED, config.motion))
    np.testing.assert_allclose(half.pixels[shifted], expected, atol=1e-9)
    between = 0.5 * (unshifted.pixels[shifted, 1:-1] + unshifted.pixels[shifted, 2:])  # halfway between frames f + 1 and f + 2
    step = np.linalg.norm(unshifted.pixels[shifted, 2:] - unshifted.pixels[shifted, 1:-1], axis=-1)
    off = np.linalg.norm(half.pixels[shifted, :-2] - between, axis=-1)
    assert np.nanmedian(off) < 0.05 * np.nanmedian(step) + 1e-3 and np.nanmedian(step) > 0.5
    # Its detections are noisy copies of the shifted truth, not of the unshifted one.
    keypoints = half.observations.keypoints[shifted, ..., :2]
    clean = ~np.isnan(keypoints[..., 0]) & ~half.observations.outlier[shifted] & ~half.observations.swapped[shifted]
    sigma = half.observations.noise_sigma_px[shifted].astype(np.float64)
    assert np.all(np.linalg.norm(keypoints - half.pixels[shifted], axis=-1)[clean] < 7.0 * sigma[clean] + 1e-3)

    write_take(half, tmp_path)
    truth = json.loads((tmp_path / "gt" / "rig_perturbation.json").read_text())
    assert truth["time_shift_camera"] == "cam03" and truth["time_shift_frames"] == 1.5
    assert truth["time_shift_ms"] == pytest.approx(50.0) and truth["fps"] == 30.0 and truth["camera"] is None
    np.testing.assert_array_equal(load_npz(tmp_path / "gt" / "joints_2d.npz")["pixels"], half.pixels)  # the truth as observed
    # The written calibration is the true rig.
    for camera, true in zip(read_gopro_calibs_csv(tmp_path / "trajectory" / "gopro_calibs.csv"), half.exo_cameras):
        assert np.abs(camera.R - true.R).max() < 1e-12 and np.abs(camera.t - true.t).max() < 1e-12


def test_time_shifted_camera_renders_the_shifted_motion(tmp_path):
    rig = RigConfig(num_exo=2, exo_image_size=(192, 108), ego_image_size=(96, 96))
    frames = 5
    base = SynthConfig(seed=2, num_frames=frames, rig=rig)
    shifted = SynthConfig(seed=2, num_frames=frames, rig=rig, perturbation=RigPerturbation(time_shift_camera="cam02", time_shift_frames=1.0))
    synthesize_take(tmp_path / "base", base, render=True)
    synthesize_take(tmp_path / "shifted", shifted, render=True)
    before = load_npz(tmp_path / "base" / "gt" / "visibility.npz")["visible"]
    after = load_npz(tmp_path / "shifted" / "gt" / "visibility.npz")["visible"]
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1, :-1], before[1, 1:])  # its frame f is the unshifted frame f + 1
    assert after[1].any() and not np.array_equal(after[1], before[1])
    videos = "frame_aligned_videos"
    for name in ("cam01.mp4", "aria01.mp4"):  # the other cameras' videos are unchanged
        assert (tmp_path / "base" / videos / name).read_bytes() == (tmp_path / "shifted" / videos / name).read_bytes()
    assert (tmp_path / "base" / videos / "cam02.mp4").read_bytes() != (tmp_path / "shifted" / videos / "cam02.mp4").read_bytes()


def test_perturbation_names_unknown_cameras_and_bad_values(tmp_path):
    with pytest.raises(ValueError, match=r"camera 'cam05' in the rig \(cameras: cam01, cam02, cam03, cam04\)"):
        SynthConfig(perturbation=RigPerturbation(camera="cam05"))
    with pytest.raises(ValueError, match=r"time_shift_camera: no exo camera 'aria01'.*cam01, cam02\)"):
        SynthConfig(rig=RigConfig(num_exo=2), perturbation=RigPerturbation(time_shift_camera="aria01"))
    for bad in ({"rotation_deg": -1.0}, {"translation_m": float("nan")}, {"time_shift_frames": float("inf")}, {"camera": ""}):
        with pytest.raises(ValueError):
            RigPerturbation(**bad)
    from workflow.cli import main

    assert main(["synth", str(tmp_path / "t"), "--frames", "3", "--no-render", "--perturb-camera", "cam09"]) == 1
    assert not (tmp_path / "t").exists()


def test_cli_synth_perturbation(tmp_path):
    from workflow.cli import main

    out = tmp_path / "cli_perturbed"
    status = main(["synth", str(out), "--frames", "8", "--exo-cameras", "3", "--no-render", "--perturb-camera", "cam02",
                   "--perturb-rotation-deg", "2", "--perturb-translation-m", "0.05", "--time-shift-camera", "cam03",
                   "--time-shift-frames", "-0.5"])  # fmt: skip
    assert status == 0
    truth = json.loads((out / "gt" / "rig_perturbation.json").read_text())
    assert (truth["camera"], truth["rotation_deg"], truth["translation_m"]) == ("cam02", 2.0, 0.05)
    assert (truth["time_shift_camera"], truth["time_shift_frames"]) == ("cam03", -0.5)
    assert json.loads((out / "take.json").read_text())["generator_config"]["perturbation"]["time_shift_camera"] == "cam03"
