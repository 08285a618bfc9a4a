"""Take folders (both layouts), TRC files and the evaluation metrics."""

import numpy as np
import pytest

from fitting import metrics
from fitting.skeleton import BONES, JOINT_NAMES
from pipeline.formats.take_folder import TakeError, read_take
from pipeline.formats.trc import read_trc, write_trc
from workflow.evaluation import evaluate_arrays


def test_rig_folder_of_the_validation_capture(pose2sim_balancing):
    take = read_take(pose2sim_balancing)
    assert take.layout == "rig" and take.exo_names == ("cam_01", "cam_02", "cam_03", "cam_04")
    assert take.num_frames == 100 and take.fps == pytest.approx(60.0)
    assert [take.videos[name].name for name in take.exo_names] == [f"cam0{i}.mp4" for i in range(1, 5)]
    assert [take.keypoints_2d[name].name for name in take.exo_names] == [f"cam0{i}_json" for i in range(1, 5)]


def test_egoexo_take_of_a_synthetic_capture(tmp_path):
    from workflow.synth.take_writer import SynthConfig, synthesize_take

    synthesize_take(tmp_path / "t", SynthConfig(seed=2, num_frames=12), render=False)
    take = read_take(tmp_path / "t")
    assert take.layout == "egoexo" and take.num_frames == 12 and len(take.exo_cameras) == 4
    assert take.ego_camera is not None and take.ego_camera.num_frames == 12
    assert take.exo_cameras[0].model.name == "fisheye"  # from gopro_calibs.csv
    assert set(take.keypoints_2d) == set(take.exo_names)


def test_not_a_take_is_refused_with_the_path(tmp_path):
    with pytest.raises(TakeError, match="take folder not found"):
        read_take(tmp_path / "nothing")
    with pytest.raises(TakeError, match=f"{tmp_path}: not a take folder"):
        read_take(tmp_path)


def test_trc_round_trip_and_the_reference_file(tmp_path, pose2sim_balancing):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(7, 3, 3))
    points[2, 1] = np.nan
    path = write_trc(tmp_path / "a.trc", points, ["a", "b", "c"], rate=50.0)
    data = read_trc(path)
    assert data.marker_names == ("a", "b", "c") and data.rate == 50.0
    np.testing.assert_array_equal(data.to_world(), points)
    reference = read_trc(pose2sim_balancing / "pose-3d" / "S00_P00_T01_BalancingTrial_0-100.trc")
    assert reference.points.shape == (100, 21, 3) and reference.marker_names[0] == "RHip"
    assert reference.points[0, 0, 0] == pytest.approx(-0.06497214796810755)
    # Z-up world: the hips are about 0.9 m above the floor.
    assert 0.7 < reference.to_world()[:, 0, 2].mean() < 1.1


def test_procrustes_alignment_undoes_a_similarity():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(5, 17, 3))
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rotation *= np.sign(np.linalg.det(rotation))
    moved = 1.3 * truth @ rotation.T + np.array([0.5, -2.0, 1.0])
    moved[0, 3] = np.nan
    aligned = metrics.procrustes_aligned(moved, truth)
    assert np.isnan(aligned[0, 3]).all()
    np.testing.assert_allclose(np.nan_to_num(aligned), np.where(np.isnan(moved), 0, truth), atol=1e-9)


def test_evaluation_metrics_on_known_errors():
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(30, 59, 3))
    predicted = truth + np.array([0.01, 0.0, 0.0])  # 10 mm everywhere
    predicted[:, 40:] = np.nan  # part of the right hand missing
    report = evaluate_arrays(
        predicted, truth, fps=30.0, true_bone_lengths=np.linalg.norm(truth[0, [b for _, b in BONES]] - truth[0, [a for a, _ in BONES]], axis=-1)
    )
    body = report["parts"]["body"]
    assert body["mpjpe_mm"] == pytest.approx(10.0) and body["pa_mpjpe_mm"] < 1e-6
    assert body["completeness"] == 1.0
    assert report["parts"]["right_hand"]["completeness"] == pytest.approx(2 / 21)
    assert report["parts"]["left_hand"]["per_joint_mpjpe_mm"][JOINT_NAMES[20]] == pytest.approx(10.0)
    constant = np.repeat(truth[:1], 30, axis=0)
    assert metrics.jitter(constant, 30.0) == 0.0
    assert np.nanmax(metrics.bone_length_variation(constant, BONES)) < 1e-12


POSE2SIM_CONFIG = """\
[project]
multi_person = false
participant_height = 1.72
participant_mass = 70.0
frame_rate = 60
frame_range = []
exclude_from_batch = []

[pose]
vid_img_extension = 'mp4'
pose_model = 'Body_with_feet'
mode = 'balanced'

[calibration]
calibration_type = 'convert'
  [calibration.convert]
  convert_from = 'qualisys'

[triangulation]
reproj_error_threshold_triangulation = 15
"""


def _pose2sim_trial(root, validation, calibration_in_subfolder: bool):
    """A trial folder as Pose2Sim lays it out, its files linked from the validation capture."""
    trial = root / "Trial_1"
    (trial / "pose").mkdir(parents=True)
    (trial / "Config.toml").write_text(POSE2SIM_CONFIG)
    calibration = trial / "calibration" if calibration_in_subfolder else trial
    calibration.mkdir(exist_ok=True)
    (calibration / "Calib_qualisys.toml").symlink_to(validation / "Calib_qualisys.toml")
    for folder in sorted((validation / "pose-associated").iterdir()):
        (trial / "pose" / folder.name).symlink_to(folder)
    (trial / "videos").symlink_to(validation / "videos")
    return trial


@pytest.mark.parametrize("in_subfolder", [True, False])
def test_pose2sim_trial_with_config_toml_runs_in_place(pose2sim_balancing, tmp_path, in_subfolder):
    from pipeline.config import load_config
    from workflow import runner

    trial = _pose2sim_trial(tmp_path, pose2sim_balancing, in_subfolder)
    take = read_take(trial)
    assert take.layout == "rig" and take.metadata["calibration"].endswith("Calib_qualisys.toml")
    assert take.fps == 60.0 and len(take.exo_cameras) == 4 and len(take.keypoints_2d) == 4
    report = runner.run_take(
        trial, tmp_path / "out", load_config(overrides=["detect.backend=precomputed", "detect.openpose_layout=BODY_25B"]), until="triangulate"
    )
    assert report.ran == ["detect", "triangulate"]
    assert report.summaries["triangulate"]["body"]["reconstructed"] > 0.9


def test_calibration_is_recognised_by_content(tmp_path):
    from pipeline.formats.calibration import write_toml_calibration
    from triangulation.synthetic import ring_of_cameras

    (tmp_path / "Config.toml").write_text(POSE2SIM_CONFIG)
    with pytest.raises(TakeError, match="no camera_pose.json.*calibration .toml"):
        read_take(tmp_path)  # Config.toml alone is not a calibration
    write_toml_calibration(tmp_path / "calibration" / "Calib_board.toml", ring_of_cameras(3))
    assert len(read_take(tmp_path).exo_cameras) == 3
    write_toml_calibration(tmp_path / "calibration" / "Calib_other.toml", ring_of_cameras(3))
    with pytest.raises(TakeError, match="several calibration files"):
        read_take(tmp_path)
