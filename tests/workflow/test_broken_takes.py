"""Broken takes, generated from good synthetic ones: each case ends in a correct result
with the problem recorded, or in a clear error naming the file, camera, frame or field.
Never a bare traceback, a partial or corrupt output, or a silent wrong answer.

Every test's name says the fault and the expected outcome.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.formats.take_folder import TakeError
from workflow import runner
from workflow.synth.take_writer import SynthConfig, synthesize_take

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

PRECOMPUTED = ["detect.backend=precomputed", "qa.overlay_videos=false"]
FRAMES = 30


@pytest.fixture(scope="module")
def good_take(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("broken") / "good"
    synthesize_take(folder, SynthConfig(seed=6, num_frames=FRAMES), render=False)
    return folder


@pytest.fixture(scope="module")
def rendered_take(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("broken_videos") / "rendered"
    synthesize_take(folder, SynthConfig(seed=8, num_frames=8), render=True)
    return folder


def _copy(take: Path, tmp_path: Path, name: str = "take") -> Path:
    copy = tmp_path / name
    shutil.copytree(take, copy)
    return copy


def _run(take: Path, out: Path, *overrides: str):
    """One take through the batch path (errors become the take's report, as for users)."""
    reports = runner.run_batch([take], out, load_config(overrides=[*PRECOMPUTED, *overrides]))
    return reports[0]


def _no_partial_outputs(out: Path) -> None:
    """Every stage folder is complete (manifest and files) and no temporary file is left."""
    for path in out.rglob("*"):
        assert not path.name.endswith(".tmp") and not path.name.startswith((".detect.", ".triangulate.", ".refine.", ".export.", ".qa."))
    for manifest in out.rglob("manifest.json"):
        files = json.loads(manifest.read_text())["files"]
        assert all((manifest.parent / name).is_file() for name in files.values())


# --------------------------------------------------------------------------------------
# Videos (model backend)
# --------------------------------------------------------------------------------------


def test_truncated_video_fails_naming_file_camera_and_frame(rendered_take, tmp_path):
    take = _copy(rendered_take, tmp_path)
    video = take / "frame_aligned_videos" / "cam02.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    report = _run(take, tmp_path / "out", "detect.backend=mediapipe")
    assert not report.ok and "cam02" in report.error and "cam02.mp4" in report.error and "frame" in report.error
    _no_partial_outputs(tmp_path / "out")


def test_truncated_video_with_mark_missing_records_the_lost_frames(rendered_take, tmp_path):
    take = _copy(rendered_take, tmp_path)
    video = take / "frame_aligned_videos" / "cam02.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    report = _run(take, tmp_path / "out", "detect.backend=mediapipe", "detect.on_decode_error=mark_missing")
    assert report.ok
    errors = report.summaries["detect"]["decode_errors"]
    assert errors and errors[0]["camera"] == "cam02" and errors[0]["frames_missing"] > 0


def test_corrupt_video_fails_naming_file_and_camera(rendered_take, tmp_path):
    take = _copy(rendered_take, tmp_path)
    (take / "frame_aligned_videos" / "cam03.mp4").write_bytes(b"\x00not a video" * 1000)
    report = _run(take, tmp_path / "out", "detect.backend=mediapipe")
    assert not report.ok and "cam03" in report.error and "cam03.mp4" in report.error
    _no_partial_outputs(tmp_path / "out")


def test_video_of_the_wrong_size_fails_naming_camera_and_sizes(rendered_take, tmp_path):
    """Neither a codec's cropped or padded edge nor an exact resize (1920x1080 would be one,
    read as the full-resolution calibration: tests/triangulation/test_image_frames.py)."""
    take = _copy(rendered_take, tmp_path)
    calibration = take / "trajectory" / "gopro_calibs.csv"
    calibration.write_text(calibration.read_text().replace(",960,540,", ",1000,540,", 1))
    report = _run(take, tmp_path / "out", "detect.backend=mediapipe")
    assert not report.ok and "cam01" in report.error and "960x540" in report.error and "1000x540" in report.error
    assert "gopro_calibs.csv" in report.error


def test_missing_camera_video_excludes_the_camera_and_records_it(rendered_take, tmp_path):
    take = _copy(rendered_take, tmp_path)
    (take / "frame_aligned_videos" / "cam04.mp4").unlink()
    report = _run(take, tmp_path / "out", "detect.backend=mediapipe")
    assert report.ok and report.summaries["detect"]["excluded_cameras"] == {"cam04": "no video"}


# --------------------------------------------------------------------------------------
# Precomputed 2D files
# --------------------------------------------------------------------------------------


def test_missing_camera_keypoint_folder_excludes_the_camera_and_records_it(good_take, tmp_path):
    take = _copy(good_take, tmp_path)
    shutil.rmtree(take / "keypoints2d" / "openpose" / "cam02")
    report = _run(take, tmp_path / "out")
    assert report.ok and report.summaries["detect"]["excluded_cameras"] == {"cam02": "no 2D keypoint folder"}
    keypoints = np.load(tmp_path / "out" / report.take / "detect" / "keypoints_2d.npz")["keypoints"]
    assert keypoints.shape[0] == 4 and np.isnan(keypoints[1]).all()  # the camera stays, empty
    assert report.summaries["triangulate"]["body"]["reconstructed"] > 0.9


def test_missing_camera_fails_when_set_to_fail(good_take, tmp_path):
    take = _copy(good_take, tmp_path)
    shutil.rmtree(take / "keypoints2d" / "openpose" / "cam02")
    report = _run(take, tmp_path / "out", "detect.missing_camera=fail")
    assert not report.ok and "cam02" in report.error


@pytest.mark.parametrize("content", ["", "{not json", '{"people": [{"pose_keypoints_2d": "oops"}]}'])
def test_empty_or_malformed_json_marks_that_frame_missing_and_records_the_file(good_take, tmp_path, content):
    take = _copy(good_take, tmp_path)
    bad = sorted((take / "keypoints2d" / "openpose" / "cam01").glob("*.json"))[7]
    bad.write_text(content)
    report = _run(take, tmp_path / "out")
    assert report.ok
    unreadable = report.summaries["detect"]["unreadable_files"]
    assert len(unreadable) == 1 and unreadable[0]["camera"] == "cam01" and unreadable[0]["frame"] == 7 and bad.name in unreadable[0]["file"]
    keypoints = np.load(tmp_path / "out" / report.take / "detect" / "keypoints_2d.npz")["keypoints"]
    assert np.isnan(keypoints[0, 7]).all() and np.isfinite(keypoints[0, 6]).any()


def test_malformed_json_fails_naming_the_file_when_set_to_fail(good_take, tmp_path):
    take = _copy(good_take, tmp_path)
    bad = sorted((take / "keypoints2d" / "openpose" / "cam01").glob("*.json"))[7]
    bad.write_text("{not json")
    report = _run(take, tmp_path / "out", "detect.on_bad_file=fail")
    assert not report.ok and bad.name in report.error


def test_a_camera_that_never_sees_the_person_is_recorded(good_take, tmp_path):
    take = _copy(good_take, tmp_path)
    for path in (take / "keypoints2d" / "openpose" / "cam03").glob("*.json"):
        path.write_text('{"version": 1.3, "people": []}\n')
    report = _run(take, tmp_path / "out")
    assert report.ok and report.summaries["detect"]["views_without_person"] == ["cam03"]
    assert report.summaries["triangulate"]["body"]["reconstructed"] > 0.8


def test_cameras_whose_frame_counts_disagree_use_every_frame_and_record_the_counts(good_take, tmp_path):
    take = _copy(good_take, tmp_path)
    meta = json.loads((take / "take.json").read_text())
    del meta["num_frames"]
    (take / "take.json").write_text(json.dumps(meta))
    for path in sorted((take / "keypoints2d" / "openpose" / "cam02").glob("*.json"))[20:]:
        path.unlink()
    report = _run(take, tmp_path / "out")
    assert report.ok and report.summaries["detect"]["frames"] == FRAMES
    assert report.summaries["detect"]["frame_counts"] == {"cam01": FRAMES, "cam02": 20, "cam03": FRAMES, "cam04": FRAMES}


# --------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------


def _edit_gopro(take: Path, row: int, column: str, value: str) -> None:
    path = take / "trajectory" / "gopro_calibs.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "column, value, field",
    [
        ("tx_world_cam", "nan", "tx_world_cam"),
        ("qw_world_cam", "3.0", "qx_world_cam/qy_world_cam/qz_world_cam/qw_world_cam"),
        ("intrinsics_0", "0", "fx"),
        ("intrinsics_4", "abc", "intrinsics_4"),
    ],
)
def test_bad_calibration_fails_naming_file_camera_and_field(good_take, tmp_path, column, value, field):
    take = _copy(good_take, tmp_path)
    _edit_gopro(take, 2, column, value)
    report = _run(take, tmp_path / "out")
    assert not report.ok and "gopro_calibs.csv" in report.error and "cam02" in report.error and field in report.error
    assert not (tmp_path / "out" / "synth_seed6").exists() or not any((tmp_path / "out" / "synth_seed6").glob("*/manifest.json"))


def test_non_orthonormal_rotation_in_camera_pose_json_fails_naming_camera_and_field(good_take, tmp_path):
    take = _copy(good_take, tmp_path)
    (take / "trajectory" / "gopro_calibs.csv").unlink()
    from pipeline.formats.calibration import write_camera_pose_json
    from pipeline.formats.take_folder import read_take

    cameras = read_take(good_take).exo_cameras
    write_camera_pose_json(take / "camera_pose.json", cameras)
    document = json.loads((take / "camera_pose.json").read_text())
    document["cam03"]["camera_extrinsics"][0][0] *= 1.5
    (take / "camera_pose.json").write_text(json.dumps(document))
    report = _run(take, tmp_path / "out")
    assert not report.ok and "camera_pose.json" in report.error and "cam03" in report.error and "camera_extrinsics" in report.error


def test_nearly_collinear_cameras_reject_the_unconstrained_depth_and_record_it(tmp_path):
    from workflow.synth.rig import RigConfig

    rig = RigConfig(num_exo=2, exo_azimuth_jitter=0.0)
    folder = tmp_path / "collinear"
    synthesize_take(folder, SynthConfig(seed=2, num_frames=FRAMES, rig=rig), render=False)
    calibration = folder / "trajectory" / "gopro_calibs.csv"
    lines = calibration.read_text().splitlines()
    header = lines[0].split(",")
    first, second = lines[1].split(","), lines[2].split(",")
    for axis in ("tx_world_cam", "ty_world_cam", "tz_world_cam"):  # cam02 just beside cam01: a 3 cm baseline
        second[header.index(axis)] = str(float(first[header.index(axis)]) + (0.03 if axis == "tx_world_cam" else 0.0))
    for column in ("qx_world_cam", "qy_world_cam", "qz_world_cam", "qw_world_cam"):
        second[header.index(column)] = first[header.index(column)]
    calibration.write_text("\n".join([lines[0], ",".join(first), ",".join(second)]) + "\n")
    report = _run(folder, tmp_path / "out", "detect.precomputed_person=first")
    assert report.ok
    summary = report.summaries["triangulate"]
    assert summary["rejected_small_angle"] > 0  # points whose rays meet at a grazing angle are not invented


# --------------------------------------------------------------------------------------
# Takes, names, sizes, disks
# --------------------------------------------------------------------------------------


def test_ego_poses_missing_for_some_frames_are_recorded(good_take, tmp_path):
    take = _copy(good_take, tmp_path)
    lines = (take / "timesync.csv").read_text().splitlines()
    meta = json.loads((take / "take.json").read_text())
    for frame in (3, 4, 5):
        row = meta["timesync_start_idx"] + 1 + frame + 1
        lines[row] = "," + lines[row].split(",", 1)[1]
    (take / "timesync.csv").write_text("\n".join(lines) + "\n")
    report = _run(take, tmp_path / "out")
    assert report.ok and report.summaries["project_ego"]["ego"]["frames_without_pose"] == {"no_timestamp": 3}
    assert report.summaries["export"]["ego_frames_with_pose"] == FRAMES - 3


def test_a_two_frame_take_runs_through_every_stage(tmp_path):
    folder = tmp_path / "tiny"
    synthesize_take(folder, SynthConfig(seed=1, num_frames=2), render=False)
    report = _run(folder, tmp_path / "out")
    assert report.ok, report.error
    assert report.summaries["refine"]["frames"] == 2


def test_paths_with_spaces_and_non_ascii_characters_work(good_take, tmp_path):
    take = _copy(good_take, tmp_path, "prise de vue ünicode")
    report = _run(take, tmp_path / "sortie ß")
    assert report.ok and (tmp_path / "sortie ß" / report.take / "export" / "body_annotation.json").is_file()


@pytest.mark.parametrize("name", ["../escape", "a/../../b", "/abs", "..", ""])
def test_a_take_name_that_escapes_the_output_folder_is_refused(good_take, tmp_path, name):
    take = _copy(good_take, tmp_path)
    meta = json.loads((take / "take.json").read_text())
    meta["take_name"] = name
    (take / "take.json").write_text(json.dumps(meta))
    out = tmp_path / "nested" / "out"
    report = _run(take, out)
    assert not report.ok and "take_name" in report.error
    assert [path for path in tmp_path.rglob("*") if "escape" in path.name or path.name == "b"] == []


def test_a_full_disk_during_a_write_fails_the_take_cleanly_and_keeps_finished_stages(good_take, tmp_path, monkeypatch):
    import errno
    import os

    from pipeline import atomic

    out = tmp_path / "out"
    first = _run(good_take, out)
    assert first.ok
    real = os.fsync

    def full(descriptor):  # the disk fills while body_annotation.json is being written
        target = os.readlink(f"/proc/self/fd/{descriptor}")
        if ".body_annotation.json." in target:
            raise OSError(errno.ENOSPC, "No space left on device", target)
        return real(descriptor)

    monkeypatch.setattr(atomic.os, "fsync", full)
    report = _run(good_take, out, "export.filled_joints=zero_views")
    assert not report.ok and "No space left" in report.error and "body_annotation.json" in report.error
    _no_partial_outputs(out)
    assert (out / first.take / "refine" / "manifest.json").is_file()  # finished stages are intact
    assert json.loads((out / first.take / "export" / "manifest.json").read_text())["fingerprint"]  # the old export stays


def test_the_same_take_and_config_twice_give_byte_identical_json_and_array_outputs(good_take, tmp_path):
    first, second = _run(good_take, tmp_path / "a"), _run(good_take, tmp_path / "b")
    assert first.ok and second.ok
    files = sorted(
        path.relative_to(tmp_path / "a")
        for path in (tmp_path / "a").rglob("*")
        if path.suffix in (".json", ".npz", ".trc") and path.name != "batch_summary.json"
    )
    assert len(files) > 10 and any(path.suffix == ".npz" for path in files)
    different = [str(path) for path in files if (tmp_path / "a" / path).read_bytes() != (tmp_path / "b" / path).read_bytes()]
    assert different == []


def test_an_unreadable_take_folder_is_a_clear_error():
    with pytest.raises(TakeError, match="take folder not found"):
        runner.run_take("/no/such/take", "/tmp/out", load_config())
