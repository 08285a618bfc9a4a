"""OpenPose JSON keypoints: writing, reading, body layouts, errors, the Pose2Sim validation files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fitting import skeleton
from pipeline.formats.openpose import (
    BODY_LAYOUTS,
    OpenPoseFormatError,
    frame_number,
    openpose_text,
    read_openpose_file,
    read_openpose_folder,
    write_openpose_folder,
    write_openpose_frame,
)


def _random_keypoints(frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keypoints = (rng.random((frames, 59, 3)) * (1920.0, 1080.0, 1.0)).astype(np.float32)
    keypoints[..., 2] = np.maximum(keypoints[..., 2], np.float32(1e-3))
    keypoints[rng.random((frames, 59)) < 0.2] = np.nan
    keypoints[2] = np.nan  # a frame without detection
    keypoints[3, skeleton.LEFT_HAND] = np.nan  # a hand missed
    return keypoints


def _document(body=(), left=(), right=(), extra_people=()) -> dict:
    person = {"person_id": [-1], "pose_keypoints_2d": list(body), "face_keypoints_2d": []}
    person |= {"hand_left_keypoints_2d": list(left), "hand_right_keypoints_2d": list(right)}
    return {"version": 1.3, "people": [person, *extra_people]}


def _write(path: Path, document) -> Path:
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def _points(count: int, offset: float = 0.0) -> list[float]:
    """``count`` keypoints whose x is ``offset + index``, y = 10 * index, confidence 0.5."""
    return [value for i in range(count) for value in (offset + i, 10.0 * i, 0.5)]


# --------------------------------------------------------------------------------------
# Round trip
# --------------------------------------------------------------------------------------


def test_folder_round_trip_is_exact(tmp_path):
    keypoints = _random_keypoints(12)
    paths = write_openpose_folder(tmp_path / "cam01", keypoints, "cam01")
    assert [p.name for p in paths[:2]] == ["cam01_000000000000_keypoints.json", "cam01_000000000001_keypoints.json"]
    read = read_openpose_folder(tmp_path / "cam01")
    assert read.dtype == np.float32 and read.shape == keypoints.shape
    np.testing.assert_array_equal(read, keypoints)
    empty = json.loads(paths[2].read_text())
    assert empty["people"] == []
    person = json.loads(paths[3].read_text())["people"][0]
    assert len(person["pose_keypoints_2d"]) == 51 and len(person["hand_right_keypoints_2d"]) == 63
    assert person["hand_left_keypoints_2d"] == [0] * 63  # missing = 0, 0, 0
    assert person["person_id"] == [-1] and person["face_keypoints_2d"] == []


def test_rewriting_a_folder_replaces_it(tmp_path):
    write_openpose_folder(tmp_path / "cam", _random_keypoints(8), "cam")
    keypoints = _random_keypoints(5, seed=1)
    write_openpose_folder(tmp_path / "cam", keypoints, "cam")
    assert len(list((tmp_path / "cam").iterdir())) == 5
    np.testing.assert_array_equal(read_openpose_folder(tmp_path / "cam"), keypoints)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam"]  # no temporary folder left


def test_single_file_round_trip(tmp_path):
    keypoints = _random_keypoints(4)[1]
    write_openpose_frame(tmp_path / "x_000000000001_keypoints.json", keypoints)
    np.testing.assert_array_equal(read_openpose_file(tmp_path / "x_000000000001_keypoints.json"), keypoints)


def test_missing_frames_and_num_frames(tmp_path):
    keypoints = _random_keypoints(4)
    folder = tmp_path / "cam"
    write_openpose_folder(folder, keypoints, "cam")
    (folder / "cam_000000000001_keypoints.json").unlink()
    read = read_openpose_folder(folder, num_frames=6)
    assert read.shape == (6, 59, 3)
    assert np.isnan(read[1]).all() and np.isnan(read[4:]).all()
    np.testing.assert_array_equal(read[[0, 3]], keypoints[[0, 3]])
    np.testing.assert_array_equal(read_openpose_folder(folder, num_frames=1), keypoints[:1])


def test_empty_person_zero_confidence_and_several_people(tmp_path):
    assert np.isnan(read_openpose_file(_write(tmp_path / "a.json", {"version": 1.3, "people": [{}]}))).all()
    assert np.isnan(read_openpose_file(_write(tmp_path / "b.json", {"version": 1.3, "people": []}))).all()
    body = _points(17)
    body[3 * 5 + 2] = 0.0  # left shoulder with confidence 0
    other = _document(_points(17, offset=500.0))["people"][0]
    read = read_openpose_file(_write(tmp_path / "c.json", _document(body, extra_people=[other])))
    assert np.isnan(read[5]).all() and read[6, 0] == 6.0  # people[0] is read
    assert np.isnan(read[skeleton.LEFT_HAND]).all()


# --------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout, count", [("BODY_25", 25), ("COCO_18", 18), ("BODY_25B", 25), ("COCO_17", 17)])
def test_body_layouts(tmp_path, layout, count):
    path = _write(tmp_path / "f.json", _document(_points(count)))
    read = read_openpose_file(path, layout=layout)
    np.testing.assert_array_equal(read[:17, 0], np.array(BODY_LAYOUTS[layout], dtype=np.float32))
    np.testing.assert_array_equal(read[:17, 1], 10.0 * np.array(BODY_LAYOUTS[layout], dtype=np.float32))


def test_body_25_order():
    # BODY_25: 0 nose, 2 RShoulder, 5 LShoulder, 15 REye, 16 LEye, 17 REar, 18 LEar, 9 RHip, 12 LHip.
    order = dict(zip(skeleton.BODY_JOINT_NAMES, BODY_LAYOUTS["BODY_25"]))
    assert order["nose"] == 0 and order["left_eye"] == 16 and order["right_ear"] == 17
    assert order["left_shoulder"] == 5 and order["right_shoulder"] == 2 and order["right_wrist"] == 4
    assert order["left_hip"] == 12 and order["right_hip"] == 9 and order["left_ankle"] == 14


def test_layout_inferred_from_count_except_25(tmp_path):
    read = read_openpose_file(_write(tmp_path / "c17.json", _document(_points(17))))
    np.testing.assert_array_equal(read[:17, 0], np.arange(17, dtype=np.float32))
    read = read_openpose_file(_write(tmp_path / "c18.json", _document(_points(18))))
    assert read[5, 0] == 5.0 and read[6, 0] == 2.0  # COCO_18: left shoulder 5, right shoulder 2
    with pytest.raises(OpenPoseFormatError, match=r"b25\.json.*BODY_25 or BODY_25B"):
        read_openpose_file(_write(tmp_path / "b25.json", _document(_points(25))))
    with pytest.raises(OpenPoseFormatError, match=r"b25\.json.*pose_keypoints_2d.*layout COCO_17"):
        read_openpose_file(tmp_path / "b25.json", layout="coco")
    with pytest.raises(ValueError, match="unknown OpenPose body layout"):
        read_openpose_file(tmp_path / "b25.json", layout="BODY_135")


def test_wholebody_133_hands(tmp_path):
    body = _points(133)
    read = read_openpose_file(_write(tmp_path / "w.json", _document(body)))  # inferred
    np.testing.assert_array_equal(read[:17, 0], np.arange(17, dtype=np.float32))
    np.testing.assert_array_equal(read[skeleton.LEFT_HAND, 0], np.arange(91, 112, dtype=np.float32))
    np.testing.assert_array_equal(read[skeleton.RIGHT_HAND, 0], np.arange(112, 133, dtype=np.float32))
    # Explicit hand arrays take precedence.
    read = read_openpose_file(_write(tmp_path / "w2.json", _document(body, left=_points(21, offset=1000.0))))
    np.testing.assert_array_equal(read[skeleton.LEFT_HAND, 0], 1000.0 + np.arange(21, dtype=np.float32))
    np.testing.assert_array_equal(read[skeleton.RIGHT_HAND, 0], np.arange(112, 133, dtype=np.float32))


def test_hands_only(tmp_path):
    read = read_openpose_file(_write(tmp_path / "h.json", _document(left=_points(21), right=_points(21, 100.0))))
    assert np.isnan(read[:17]).all()
    np.testing.assert_array_equal(read[skeleton.RIGHT_HAND, 0], 100.0 + np.arange(21, dtype=np.float32))


# --------------------------------------------------------------------------------------
# File names and errors
# --------------------------------------------------------------------------------------


def test_frame_numbers():
    assert frame_number("cam01_000000000034_keypoints.json") == 34
    assert frame_number("/data/cam01_json/cam01.0012.json") == 12
    assert frame_number("take2_cam03_000000000100_keypoints.json") == 100
    with pytest.raises(OpenPoseFormatError, match="no frame number"):
        frame_number("keypoints.json")


def test_duplicate_frames_are_refused(tmp_path):
    _write(tmp_path / "cam.0001.json", _document(_points(17)))
    _write(tmp_path / "cam_000000000001_keypoints.json", _document(_points(17)))
    with pytest.raises(OpenPoseFormatError, match="frame 1"):
        read_openpose_folder(tmp_path)


@pytest.mark.parametrize(
    "document, message",
    [
        ("{not json", r"bad\.json: not valid JSON"),
        ([1, 2], r"bad\.json: the top level"),
        ({"version": 1.3}, r"bad\.json: field 'people'"),
        ({"people": ["x"]}, r"bad\.json: field 'people\[0\]'"),
        (_document(_points(17)[:-1]), r"bad\.json: field 'people\[0\]\.pose_keypoints_2d'.*triples"),
        (_document(["a"] * 51), r"bad\.json: field 'people\[0\]\.pose_keypoints_2d' must be a list of numbers"),
        (_document(_points(17), left=_points(20)), r"bad\.json: field 'people\[0\]\.hand_left_keypoints_2d'.*63"),
        (_document(_points(19)), r"bad\.json: field 'people\[0\]\.pose_keypoints_2d' has 19 keypoints"),
    ],
)
def test_bad_files_name_file_and_field(tmp_path, document, message):
    path = _write(tmp_path / "bad.json", document)
    with pytest.raises(OpenPoseFormatError, match=message):
        read_openpose_file(path)


def test_writer_refuses_wrong_shapes(tmp_path):
    with pytest.raises(ValueError, match="59, 3"):
        openpose_text(np.zeros((17, 3)))
    with pytest.raises(ValueError, match="frames, 59, 3"):
        write_openpose_folder(tmp_path / "x", np.zeros((59, 3)), "x")


# --------------------------------------------------------------------------------------
# Real files (Pose2Sim demo, BODY_25B)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("camera", ["cam01", "cam02", "cam03", "cam04"])
def test_pose2sim_folder_read_exactly(camera, pose2sim_balancing):
    folder = pose2sim_balancing / "pose-associated" / f"{camera}_json"
    files = sorted(folder.glob("*.json"))
    read = read_openpose_folder(folder, layout="BODY_25B")
    assert read.shape == (len(files), 59, 3) == (100, 59, 3)
    for path in files:  # compare with the raw numbers of every file
        frame = int(path.stem.split(".")[-1])
        people = json.loads(path.read_text())["people"]
        raw = people[0].get("pose_keypoints_2d", []) if people else []
        if not raw:
            assert np.isnan(read[frame]).all()
            continue
        expected = np.asarray(raw, dtype=np.float64).reshape(25, 3)[:17].astype(np.float32)
        expected[expected[:, 2] == 0] = np.nan
        np.testing.assert_array_equal(read[frame, :17], expected, err_msg=str(path))
        assert np.isnan(read[frame, 17:]).all()  # no hands in these files
    if camera == "cam03":
        assert np.isnan(read[52]).all()  # cam03.0052.json holds an empty person
        assert not np.isnan(read[51]).all()
