"""project_ego: the 3D skeleton in every ego frame, from a take's raw Aria inputs only."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.artifacts import StageRecord
from pipeline.atomic import atomic_save_npz, load_npz
from pipeline.config import load_config
from pipeline.formats.take_folder import CAMERA_POSE_JSON, read_take
from stages import project_ego
from stages.base import StageContext
from triangulation.camera_models import Fisheye624Model
from triangulation.cameras import FieldOfView, MovingCamera
from triangulation.poses import POSE_NO_TIMESTAMP
from triangulation.visibility import (
    BEHIND_CAMERA,
    NO_POSE,
    NOT_RECONSTRUCTED,
    OUTSIDE_FIELD_OF_VIEW,
    OUTSIDE_IMAGE,
    VISIBLE,
    project_undistorted,
    project_with_visibility,
)
from workflow.synth.take_writer import SynthConfig, synthesize_take

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

FRAMES = 90


@pytest.fixture(scope="module")
def stage_output(tmp_path_factory):
    """The stage run on the truth's 3D of a take that has only raw Aria inputs."""
    root = tmp_path_factory.mktemp("project_ego")
    take_dir = root / "take"
    synthesize_take(take_dir, SynthConfig(seed=11, num_frames=FRAMES), render=False)
    assert not (take_dir / CAMERA_POSE_JSON).exists()
    config = load_config()
    take = read_take(take_dir, config.take)
    refine = root / "refine"
    atomic_save_npz(refine / "joints_3d.npz", points=load_npz(take_dir / "gt" / "joints_3d.npz")["joints_3d"])
    record = StageRecord(refine, {"files": {"joints_3d": "joints_3d.npz"}, "fingerprint": "truth"})
    work = root / "work"
    work.mkdir()
    files, summary = project_ego.STAGE.run(StageContext(take, config, {"refine": record}, work))
    return take, load_npz(work / files["projections"]), summary, {name: load_npz(take_dir / "gt" / f"{name}.npz") for name in ("ego_2d", "joints_2d")}


def test_export_names_the_timesync_convention(stage_output, tmp_path):
    """export's summary says which timesync row convention made the ego frames (take.timesync_first_row)."""
    from stages import export

    take, out, _, _ = stage_output
    points = load_npz(take.root / "gt" / "joints_3d.npz")["joints_3d"]
    refine, ego = tmp_path / "refine", tmp_path / "project_ego"
    atomic_save_npz(refine / "joints_3d.npz", points=points, num_views=np.full(points.shape[:2], 4), filled=np.zeros(points.shape[:2], bool))
    atomic_save_npz(ego / "projections.npz", **out)
    records = {
        "refine": StageRecord(refine, {"files": {"joints_3d": "joints_3d.npz"}, "fingerprint": "truth"}),
        "project_ego": StageRecord(ego, {"files": {"projections": "projections.npz"}, "fingerprint": "truth"}),
    }
    work = tmp_path / "work"
    work.mkdir()
    _, summary = export.STAGE.run(StageContext(take, load_config(), records, work))
    assert summary["timesync_first_row"] == "after_start_idx"


def test_truth_projects_onto_the_true_ego_2d_in_both_frames(stage_output):
    take, out, summary, gt = stage_output
    assert take.ego_pose_source == "aria_mps" and summary["ego"]["frames_with_pose"] == FRAMES
    assert summary["ego"]["timesync_first_row"] == "after_start_idx"  # the timesync convention the frame times were read with
    assert summary["ego"]["device_generation"] == take.ego_poses.calibration.generation == "gen1"
    raw_visible = gt["ego_2d"]["in_image"]
    undistorted_visible = gt["ego_2d"]["undistorted_in_image"]
    assert raw_visible.sum() > 500 and undistorted_visible.sum() > 500 and raw_visible[:, 17:].sum() > 100  # hands too
    raw_error = np.linalg.norm(out["ego_pixels"] - gt["ego_2d"]["pixels"], axis=-1)[raw_visible]
    undistorted_error = np.linalg.norm(out["ego_undistorted_pixels"] - gt["ego_2d"]["undistorted_pixels"], axis=-1)[undistorted_visible]
    print(f"\nego 2D of the truth through project_ego (raw inputs only): raw fisheye max {raw_error.max():.4f} px, "
          f"undistorted max {undistorted_error.max():.4f} px")  # fmt: skip
    assert raw_error.max() < 0.5 and undistorted_error.max() < 0.5
    np.testing.assert_allclose(out["ego_undistorted_K"], [[150, 0, 255.5], [0, 150, 255.5], [0, 0, 1]])


def test_visibility_flags_agree_with_the_truth(stage_output):
    _, out, summary, gt = stage_output
    # Agreement except on the very border (the interpolated pose moves points by micrometres).
    agree = (out["ego_visibility"] == VISIBLE) == gt["ego_2d"]["in_image"]
    assert agree.mean() > 0.999
    undistorted_agree = (out["ego_undistorted_visibility"] == VISIBLE) == gt["ego_2d"]["undistorted_in_image"]
    assert undistorted_agree.mean() > 0.999
    codes = set(np.unique(out["ego_visibility"]).tolist())
    assert {VISIBLE, BEHIND_CAMERA, OUTSIDE_FIELD_OF_VIEW} <= codes  # a wearer's own body: feet behind, arms outside the fov
    exo = out["exo_visibility"] == VISIBLE
    np.testing.assert_array_equal(exo, gt["joints_2d"]["in_image"])
    assert np.abs(out["exo_pixels"][exo] - gt["joints_2d"]["pixels"][exo]).max() < 1e-3  # float32 pixels


def _camera(frames: int = 3) -> MovingCamera:
    model = Fisheye624Model(220.0, 220.0, 255.5, 255.5, np.array([0.4, -0.46, 0.04, 1.3, -1.77, 0.65]), np.zeros(2), np.zeros(4))
    R = np.repeat(np.eye(3)[None], frames, axis=0)
    t = np.zeros((frames, 3))
    R[2], t[2] = np.nan, np.nan  # frame 2: no pose
    return MovingCamera("aria01", model, R, t, (512, 512), FieldOfView(250.0, 1.0))


def test_each_reason_for_not_being_visible():
    camera = _camera()
    points = np.array(
        [
            [0.0, 0.0, 1.0],  # straight ahead: visible
            [0.0, 0.0, -1.0],  # behind
            [np.tan(1.2), 0.0, 1.0],  # 69 degrees off axis: beyond the 1 rad maximum angle
            [np.nan, 0.0, 1.0],  # not reconstructed
        ]
    )
    frames = np.repeat(points[None], 3, axis=0)
    _, codes = project_with_visibility(camera, frames)
    assert codes[0].tolist() == [VISIBLE, BEHIND_CAMERA, OUTSIDE_FIELD_OF_VIEW, NOT_RECONSTRUCTED]
    assert codes[2].tolist() == [NO_POSE, NO_POSE, NO_POSE, NOT_RECONSTRUCTED]
    # Outside the image but inside the fov: a camera whose image is a narrow strip.
    strip = MovingCamera("aria01", camera.model, camera.R, camera.t, (512, 40), None)
    _, strip_codes = project_with_visibility(strip, np.repeat(np.array([[0.0, 0.5, 1.0]])[None], 3, axis=0))
    assert strip_codes[0, 0] == OUTSIDE_IMAGE
    # Outside the valid radius (250 px) but inside the image: the same ray, a 100 px radius.
    small = MovingCamera("aria01", camera.model, camera.R, camera.t, (512, 512), FieldOfView(100.0, None))
    _, small_codes = project_with_visibility(small, np.repeat(np.array([[0.0, 0.5, 1.0]])[None], 3, axis=0))
    assert small_codes[0, 0] == OUTSIDE_FIELD_OF_VIEW


def test_undistorted_frame_needs_the_point_in_the_fisheyes_valid_area():
    camera = _camera()
    inside_both = [0.1, 0.1, 1.0]
    corner = [1.6, 1.6, 1.0]  # 66 degrees off axis: inside the 512 linear image's corner, beyond the fisheye's 1 rad
    outside_linear = [3.0, 0.0, 1.0]  # 71 degrees: beyond the linear image (x = 705 px)
    points = np.repeat(np.array([inside_both, corner, outside_linear])[None], 3, axis=0)
    pixels, codes = project_undistorted(camera, points, (512, 512), 150.0)
    np.testing.assert_allclose(pixels[0, 0], [255.5 + 15.0, 255.5 + 15.0])
    assert codes[0].tolist() == [VISIBLE, OUTSIDE_FIELD_OF_VIEW, OUTSIDE_FIELD_OF_VIEW]
    assert 0 <= pixels[0, 1, 0] <= 511  # the corner point is in the linear image, yet not visible


@pytest.mark.parametrize("extra_frames", [5, -5])
def test_take_length_and_timesync_frame_count_disagreeing_is_reported(tmp_path, caplog, extra_frames):
    """take.json's num_frames against timesync's end - start - 1 frame times: warned by the take
    reader; project_ego pads (no timestamp, no pose) or leaves frame times out and says so."""
    import json
    import logging

    take_dir = tmp_path / "take"
    frames = 20
    synthesize_take(take_dir, SynthConfig(seed=11, num_frames=frames), render=False)
    meta = json.loads((take_dir / "take.json").read_text())
    meta["num_frames"] = frames + extra_frames
    (take_dir / "take.json").write_text(json.dumps(meta))
    config = load_config()
    with caplog.at_level(logging.WARNING, logger="pipeline.formats.take_folder"):
        take = read_take(take_dir, config.take)
    warning = next(record.getMessage() for record in caplog.records if "num_frames" in record.getMessage())
    assert str(take_dir / "take.json") in warning and str(take_dir / "timesync.csv") in warning
    assert f"{frames + extra_frames}" in warning and f"{frames} frame times" in warning
    truth = load_npz(take_dir / "gt" / "joints_3d.npz")["joints_3d"]
    points = np.full((take.num_frames, 59, 3), np.nan)
    points[: min(frames, take.num_frames)] = truth[: take.num_frames]
    refine = tmp_path / "refine"
    atomic_save_npz(refine / "joints_3d.npz", points=points)
    work = tmp_path / "work"
    work.mkdir()
    record = StageRecord(refine, {"files": {"joints_3d": "joints_3d.npz"}, "fingerprint": "truth"})
    files, summary = project_ego.STAGE.run(StageContext(take, config, {"refine": record}, work))
    out = load_npz(work / files["projections"])
    assert summary["ego"]["frame_count_mismatch"] == {"take_frames": frames + extra_frames, "ego_frames": frames}
    assert out["ego_pose_status"].shape == (take.num_frames,)
    if extra_frames > 0:
        assert summary["ego"]["frames_without_pose"] == {"no_timestamp": extra_frames}
        assert (out["ego_pose_status"][frames:] == POSE_NO_TIMESTAMP).all() and (out["ego_visibility"][frames:] != VISIBLE).all()
    else:
        assert summary["ego"]["frames_with_pose"] == take.num_frames
