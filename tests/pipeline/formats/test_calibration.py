"""Calibration readers and writers: round trips, the real Pose2Sim rig, COLMAP, bad files."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.formats.calibration import (
    GOPRO_COLUMNS,
    read_calibration,
    read_camera_pose_json,
    read_colmap_reconstruction,
    read_gopro_calibs_csv,
    read_toml_calibration,
    write_camera_pose_json,
    write_gopro_calibs_csv,
    write_toml_calibration,
)
from triangulation.camera_models import (
    Fisheye624Model,
    FisheyeModel,
    PinholeModel,
    distortion_vector,
)
from triangulation.cameras import CalibrationError, Camera, MovingCamera, rotation_from_rodrigues

# --------------------------------------------------------------------------------------
# Test cameras: a rig of cameras around the origin looking at it
# --------------------------------------------------------------------------------------


def look_at(center, target=(0.0, 0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``R (3, 3)``, ``t (3,)`` of a camera at ``center`` looking at ``target`` (z up)."""
    center = np.asarray(center, dtype=float)
    forward = np.asarray(target, dtype=float) - center
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    return R, -R @ center


def rig_camera(name: str, model, azimuth_deg: float, image_size=(1920, 1080)) -> Camera:
    azimuth = np.radians(azimuth_deg)
    R, t = look_at((3.5 * np.cos(azimuth), 3.5 * np.sin(azimuth), 1.8))
    return Camera(name, model, R, t, image_size)


PINHOLE4 = PinholeModel(1502.3, 1499.8, 961.4, 538.2, np.array([-0.28, 0.09, 4e-4, -3e-4]))
PINHOLE5 = PinholeModel(1402.3, 1401.1, 955.0, 541.7, np.array([-0.21, 0.05, 1e-4, 2e-4, -0.01]))
PINHOLE8 = PinholeModel(1602.3, 1603.8, 951.4, 528.2, np.array([0.42, -0.11, 4e-4, -3e-4, 0.015, 0.71, -0.08, 0.03]))
GOPRO_A = FisheyeModel(1796.4, 1795.2, 1918.6, 1081.3, np.array([0.0352, -0.0127, 0.0041, -0.00062]))
GOPRO_B = FisheyeModel(1801.9, 1800.7, 1925.1, 1076.0, np.array([0.0311, -0.0098, 0.0022, -0.00031]))
ARIA = Fisheye624Model(
    610.94, 610.94, 715.11, 716.71,
    np.array([0.3976, -0.3543, -0.2035, 0.8053, -0.6207, 0.1670]),
    np.array([3.6e-4, -1.9e-4]),
    np.array([-4.5e-4, 2.1e-4, 3.8e-4, -8e-5]),
)  # fmt: skip


def pinhole_rig() -> list[Camera]:
    return [
        rig_camera("cam_01", PINHOLE4, 0),
        rig_camera("cam_02", PINHOLE5, 90),
        rig_camera("cam_03", PINHOLE8, 180),
        rig_camera("cam_04", GOPRO_A, 270, (3840, 2160)),
    ]


def gopro_rig() -> list[Camera]:
    models = (GOPRO_A, GOPRO_B, GOPRO_A)
    return [rig_camera(f"cam0{i + 1}", model, 120 * i, (3840, 2160)) for i, model in enumerate(models)]


def ego_camera(frames: int = 8) -> MovingCamera:
    """An Aria camera walking around, with no pose at frames 0 and 4."""
    rng = np.random.default_rng(11)
    R = rotation_from_rodrigues(rng.normal(0, 0.4, (frames, 3)))
    t = rng.normal(0, 0.3, (frames, 3)) + (0, 0, 2.5)
    R[[0, 4]], t[[0, 4]] = np.nan, np.nan
    return MovingCamera("aria01", ARIA, R, t, (1408, 1408))


def world_points(count: int = 200, seed: int = 0) -> np.ndarray:
    """Points ``(count, 3)`` in a 1 m box around (0, 0, 1): a person in the middle of the rig."""
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (count, 3)) + (0.0, 0.0, 1.0)


def assert_same_camera(actual, expected) -> None:
    """Same name, model, size and pose, and projections equal to 1e-9 px."""
    assert actual.name == expected.name
    assert type(actual.model) is type(expected.model)
    assert actual.image_size == expected.image_size
    np.testing.assert_allclose(actual.model.matrix, expected.model.matrix, rtol=1e-15, atol=0)
    np.testing.assert_allclose(distortion_vector(actual.model), distortion_vector(expected.model), rtol=1e-15, atol=0)
    np.testing.assert_allclose(actual.R, expected.R, rtol=0, atol=1e-13)
    np.testing.assert_allclose(actual.t, expected.t, rtol=0, atol=1e-13)
    points = world_points()
    expected_finite = True
    if isinstance(expected, MovingCamera):
        np.testing.assert_array_equal(actual.valid_frames, expected.valid_frames)
        points = np.broadcast_to(points, (expected.num_frames,) + points.shape)
        expected_finite = expected.valid_frames
    pixels = expected.project(points)
    assert np.all(np.isfinite(pixels[expected_finite])), "test points must project"
    np.testing.assert_allclose(actual.project(points), pixels, rtol=0, atol=1e-9)


def assert_same_cameras(actual, expected) -> None:
    assert [camera.name for camera in actual] == [camera.name for camera in expected]
    for got, want in zip(actual, expected):
        assert_same_camera(got, want)


def assert_refused(read, path: Path, *fragments: str) -> str:
    """``read(path)`` raises CalibrationError whose message starts with the path and holds each fragment."""
    with pytest.raises(CalibrationError) as caught:
        read(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --------------------------------------------------------------------------------------
# anipose / Pose2Sim TOML
# --------------------------------------------------------------------------------------


def test_toml_round_trip(tmp_path):
    cameras = pinhole_rig()
    path = write_toml_calibration(tmp_path / "calib.toml", cameras)
    assert_same_cameras(read_toml_calibration(path), cameras)
    assert "[metadata]" in path.read_text()
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_toml_writes_short_pinhole_distortion(tmp_path):
    text = write_toml_calibration(tmp_path / "calib.toml", pinhole_rig()).read_text()
    counts = [line.count(",") + 1 for line in text.splitlines() if line.startswith("distortions")]
    assert counts == [4, 5, 8, 4]


def test_toml_refuses_to_write_fisheye624(tmp_path):
    path = tmp_path / "calib.toml"
    with pytest.raises(CalibrationError, match=rf"^{re.escape(str(path))}: camera 'aria': field 'model' is fisheye624"):
        write_toml_calibration(path, [rig_camera("aria", ARIA, 0)])
    assert not path.exists()


@pytest.fixture
def qualisys_cameras(pose2sim_balancing) -> list[Camera]:
    """The real capture's Qualisys calibration (skips where ../shared/validation is absent)."""
    return read_toml_calibration(pose2sim_balancing / "Calib_qualisys.toml")


def test_real_pose2sim_toml_values(qualisys_cameras):
    cameras = qualisys_cameras
    assert [camera.name for camera in cameras] == ["cam_01", "cam_02", "cam_03", "cam_04"]
    assert all(camera.image_size == (1088, 1920) for camera in cameras)
    first = cameras[0]
    assert isinstance(first.model, PinholeModel)
    assert (first.model.fx, first.model.fy) == (1681.244873046875, 1681.075439453125)
    assert (first.model.cx, first.model.cy) == (532.97369384375, 948.137390140625)
    np.testing.assert_array_equal(first.model.distortion[:4], [-0.000721609375, 0.002187234375, 9.5e-06, 1.078125e-05])
    np.testing.assert_array_equal(first.t, [0.3211048899999996, 0.9563320600000009, 2.8907130499999996])
    rotation = rotation_from_rodrigues(np.array([1.68827548, 1.04832205, -0.41955852]))
    np.testing.assert_allclose(first.R, rotation, atol=1e-8)
    for camera in cameras:
        center = camera.center
        assert 2.0 < np.linalg.norm(center) < 6.0, (camera.name, center)
        assert 1.0 < center[2] < 3.0, (camera.name, center)  # z up, cameras on tripods
        # The middle of the capture volume is seen by every camera.
        for point in ((0.0, 0.0, 0.0), (0.0, 0.0, 1.0)):
            pixel = camera.project(np.array(point))
            assert camera.in_front(np.array(point))
            assert 0 <= pixel[0] < camera.image_size[0] and 0 <= pixel[1] < camera.image_size[1], (camera.name, pixel)


def test_real_pose2sim_toml_round_trip(tmp_path, qualisys_cameras):
    cameras = qualisys_cameras
    assert_same_cameras(read_toml_calibration(write_toml_calibration(tmp_path / "rig.toml", cameras)), cameras)


def set_toml_value(text: str, table: str, key: str, value: str | None) -> str:
    """Replace (or with None remove) ``key = ...`` in ``[table]`` of a TOML text."""
    start = text.index(f"[{table}]\n")
    end = text.find("\n[", start + 1)
    line = rf"^{key} = .*\n" if value is None else rf"^{key} = .*$"
    section = re.sub(line, "" if value is None else f"{key} = {value}", text[start:end], count=1, flags=re.M)
    return text[:start] + section + text[end:]


@pytest.mark.parametrize(
    "key, value, fragments",
    [
        ("translation", "[ nan, 0.0, 3.0]", ("field 'translation'", "NaN")),
        ("rotation", "[ 0.1, 0.2]", ("field 'rotation'", "shape (3,)")),
        ("matrix", "[ [ 1500.0, 0.0, 960.0], [ 0.0, 1500.0, 540.0]]", ("field 'matrix'", "shape (3, 3)")),
        ("matrix", '[ [ 1500.0, 0.0, "960"], [ 0.0, 1500.0, 540.0], [ 0.0, 0.0, 1.0]]', ("field 'matrix'", "numbers")),
        ("matrix", "[ [ -1500.0, 0.0, 960.0], [ 0.0, 1500.0, 540.0], [ 0.0, 0.0, 1.0]]", ("'fx'", "positive")),
        ("distortions", "[ 0.1, 0.01, 0.0]", ("field 'distortions'", "got 3")),
        ("size", "[ 1920, -1080]", ("field 'size'",)),
        ("size", "[ 1920.5, 1080]", ("field 'size'", "whole pixels")),
        ("fisheye", '"no"', ("field 'fisheye'", "true or false")),
        ("rotation", None, ("missing field 'rotation'",)),
        ("translation", None, ("missing field 'translation'",)),
    ],
)
def test_toml_bad_values_refused(tmp_path, key, value, fragments):
    text = write_toml_calibration(tmp_path / "good.toml", pinhole_rig()).read_text()
    path = tmp_path / "bad.toml"
    path.write_text(set_toml_value(text, "cam_02", key, value))
    assert_refused(read_toml_calibration, path, "camera 'cam_02'", *fragments)


def test_toml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[cam_01\nname = 'x'\n")
    assert_refused(read_toml_calibration, path, "not a valid TOML file")


def test_toml_fisheye_distortion_count(tmp_path):
    text = write_toml_calibration(tmp_path / "good.toml", pinhole_rig()).read_text()
    path = tmp_path / "bad.toml"
    path.write_text(set_toml_value(text, "cam_04", "distortions", "[ 0.1, 0.01, 0.0, 0.0, 0.0]"))
    assert_refused(read_toml_calibration, path, "camera 'cam_04'", "field 'distortions' must have 4 values, got 5")


# --------------------------------------------------------------------------------------
# Ego-Exo4D gopro_calibs.csv
# --------------------------------------------------------------------------------------


def test_gopro_csv_round_trip(tmp_path):
    cameras = gopro_rig()
    path = write_gopro_calibs_csv(tmp_path / "trajectory" / "gopro_calibs.csv", cameras, 12, 3456, graph_uid="world-7")
    assert_same_cameras(read_gopro_calibs_csv(path), cameras)
    rows = list(csv.DictReader(path.open()))
    assert tuple(rows[0]) == GOPRO_COLUMNS
    assert [(row["cam_uid"], row["graph_uid"], row["intrinsics_type"], row["quality"]) for row in rows] == [
        (name, "world-7", "KANNALABRANDTK3", "1") for name in ("cam01", "cam02", "cam03")
    ]
    assert (rows[0]["start_frame_idx"], rows[0]["end_frame_idx"]) == ("12", "3456")
    whole = list(csv.DictReader(write_gopro_calibs_csv(tmp_path / "whole.csv", cameras).open()))
    assert (whole[0]["start_frame_idx"], whole[0]["end_frame_idx"]) == ("-1", "-1")  # projectaria-tools: no range
    np.testing.assert_allclose([float(rows[1][f"t{axis}_world_cam"]) for axis in "xyz"], cameras[1].center, atol=1e-12)


def test_gopro_csv_leaves_out_cameras_that_were_not_localized(tmp_path):
    path = write_gopro_calibs_csv(tmp_path / "gopro_calibs.csv", gopro_rig())
    text = path.read_text().splitlines()
    text[2] = text[2][: text[2].rfind(",")] + ",0"  # cam02: quality 0
    path.write_text("\n".join(text) + "\n")
    cameras, excluded = read_gopro_calibs_csv(path, with_excluded=True)
    assert [camera.name for camera in cameras] == ["cam01", "cam03"] and excluded == ["cam02"]


GOPRO_ROW = {
    "cam_uid": "cam07", "graph_uid": "g7",
    "tx_world_cam": "1.0", "ty_world_cam": "2.0", "tz_world_cam": "1.5",
    "qx_world_cam": "0.0", "qy_world_cam": "0.0",
    "qz_world_cam": "0.7071067811865476", "qw_world_cam": "0.7071067811865476",
    "image_width": "3840", "image_height": "2160", "intrinsics_type": "KANNALABRANDTK3",
    "intrinsics_0": "1796.4", "intrinsics_1": "1795.2", "intrinsics_2": "1918.6", "intrinsics_3": "1081.3",
    "intrinsics_4": "0.0352", "intrinsics_5": "-0.0127", "intrinsics_6": "0.0041", "intrinsics_7": "-0.00062",
    "start_frame_idx": "0", "end_frame_idx": "-1",
}  # fmt: skip


def write_gopro_rows(path: Path, rows: list[dict], columns=GOPRO_COLUMNS) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue())
    return path


def test_gopro_csv_pose_is_camera_to_world(tmp_path):
    (camera,) = read_gopro_calibs_csv(write_gopro_rows(tmp_path / "gopro_calibs.csv", [GOPRO_ROW]))
    rotation_world_cam = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 degrees about z
    np.testing.assert_allclose(camera.center, [1.0, 2.0, 1.5], atol=1e-12)
    np.testing.assert_allclose(camera.R, rotation_world_cam.T, atol=1e-12)
    assert isinstance(camera.model, FisheyeModel) and camera.image_size == (3840, 2160)
    np.testing.assert_array_equal(camera.model.distortion, [0.0352, -0.0127, 0.0041, -0.00062])
    assert (camera.model.fx, camera.model.fy, camera.model.cx, camera.model.cy) == (1796.4, 1795.2, 1918.6, 1081.3)
    # The optical axis (camera +z) is the world +z axis here: a point above the camera projects to the centre.
    np.testing.assert_allclose(camera.project(np.array([1.0, 2.0, 5.0])), [1918.6, 1081.3], atol=1e-9)


@pytest.mark.parametrize(
    "column, value, fragments",
    [
        ("tx_world_cam", "abc", ("field 'tx_world_cam' is not a number",)),
        ("qz_world_cam", "nan", ("field 'qz_world_cam' is NaN",)),
        ("qz_world_cam", "", ("field 'qz_world_cam' is not a number",)),
        ("qw_world_cam", "0.9", ("not a unit quaternion",)),
        ("intrinsics_type", "PINHOLE", ("field 'intrinsics_type'", "'PINHOLE'")),
        ("intrinsics_0", "-5", ("'fx'", "positive")),
        ("image_height", "0", ("field 'image_width/image_height'",)),
    ],
)
def test_gopro_csv_bad_values_refused(tmp_path, column, value, fragments):
    rows = [GOPRO_ROW, {**GOPRO_ROW, "cam_uid": "cam02", column: value}]
    path = write_gopro_rows(tmp_path / "gopro_calibs.csv", rows)
    assert_refused(read_gopro_calibs_csv, path, "camera 'cam02'", *fragments)


def test_gopro_csv_missing_column_refused(tmp_path):
    columns = [column for column in GOPRO_COLUMNS if column != "qw_world_cam"]
    path = write_gopro_rows(tmp_path / "gopro_calibs.csv", [GOPRO_ROW], columns)
    assert_refused(read_gopro_calibs_csv, path, "missing column(s) 'qw_world_cam'")


def test_gopro_csv_duplicate_camera_refused(tmp_path):
    path = write_gopro_rows(tmp_path / "gopro_calibs.csv", [GOPRO_ROW, GOPRO_ROW])
    assert_refused(read_gopro_calibs_csv, path, "camera 'cam07'", "field 'name' is used by more than one camera")


def test_gopro_csv_writer_refuses_pinhole(tmp_path):
    path = tmp_path / "gopro_calibs.csv"
    with pytest.raises(CalibrationError, match=rf"^{re.escape(str(path))}: camera 'cam_01': field 'model' is pinhole"):
        write_gopro_calibs_csv(path, pinhole_rig())
    assert not path.exists()


# --------------------------------------------------------------------------------------
# Ego-Exo4D camera_pose JSON
# --------------------------------------------------------------------------------------

METADATA = {"take_name": "upenn_0711_Cooking_2_2", "take_uid": "1a2b", "fps": 30}


def exo_cameras() -> list[Camera]:
    return [*gopro_rig()[:2], rig_camera("cam03", PINHOLE8, 240), rig_camera("cam04", ARIA, 300, None)]


def test_camera_pose_json_round_trip(tmp_path):
    exo, ego = exo_cameras(), ego_camera()
    path = write_camera_pose_json(tmp_path / "camera_pose.json", exo, ego, METADATA)
    read_exo, read_ego, metadata = read_camera_pose_json(path)
    assert_same_cameras(read_exo, exo)
    assert_same_camera(read_ego, ego)
    assert read_ego.num_frames == ego.num_frames and metadata == METADATA
    document = json.loads(path.read_text())
    assert sorted(document["aria01"]["camera_extrinsics"], key=int) == ["1", "2", "3", "5", "6", "7"]
    assert document["cam03"]["camera_model"] == "pinhole" and len(document["cam03"]["distortion_coeffs"]) == 8
    assert document["cam04"]["image_size"] is None and len(document["cam04"]["distortion_coeffs"]) == 12


def test_camera_pose_json_without_ego(tmp_path):
    exo = gopro_rig()
    exo_read, ego, metadata = read_camera_pose_json(write_camera_pose_json(tmp_path / "pose.json", exo))
    assert_same_cameras(exo_read, exo)
    assert ego is None and metadata == {}


def release_document() -> dict:
    """A camera_pose JSON as released: undistorted pinholes, no extension keys."""
    K = [[1200.0, 0.0, 960.0], [0.0, 1200.0, 540.0], [0.0, 0.0, 1.0]]
    R, t = look_at((3.0, 0.0, 1.5))
    pose = np.hstack([R, t[:, None]]).tolist()
    return {
        "metadata": {"take_name": "t", "take_uid": "u"},
        "aria01": {"camera_intrinsics": K, "camera_extrinsics": {"2": pose, "5": pose}},
        "cam01": {"camera_intrinsics": K, "camera_extrinsics": pose},
        "cam02": {"camera_intrinsics": K, "camera_extrinsics": pose},
    }


def test_camera_pose_json_release_format(tmp_path):
    path = tmp_path / "camera_pose.json"
    path.write_text(json.dumps(release_document()))
    exo, ego, metadata = read_camera_pose_json(path)
    assert [camera.name for camera in exo] == ["cam01", "cam02"] and metadata["take_uid"] == "u"
    assert all(isinstance(camera.model, PinholeModel) and not camera.model.distortion.any() for camera in exo)
    assert exo[0].image_size is None
    assert ego.name == "aria01" and ego.num_frames == 6
    assert ego.valid_frames.tolist() == [False, False, True, False, False, True]
    np.testing.assert_allclose(ego.at_frame(5).center, [3.0, 0.0, 1.5], atol=1e-12)
    np.testing.assert_allclose(exo[0].project(np.array([0.0, 0.0, 1.0])), [960.0, 540.0], atol=1e-9)


def mutate(document: dict, camera: str, key: str, value) -> dict:
    """Copy of ``document`` with ``document[camera][key] = value`` (delete when value is ...)."""
    document = json.loads(json.dumps(document))
    if value is ...:
        del document[camera][key]
    else:
        document[camera][key] = value
    return document


def scaled_pose(scale: float) -> list:
    R, t = look_at((3.0, 0.0, 1.5))
    return np.hstack([R * scale, t[:, None]]).tolist()


@pytest.mark.parametrize(
    "camera, key, value, fragments",
    [
        ("cam02", "camera_extrinsics", scaled_pose(1.05), ("field 'camera_extrinsics' is not a rotation matrix",)),
        ("cam02", "camera_extrinsics", scaled_pose(1.0)[:2], ("field 'camera_extrinsics' must have shape (3, 4)",)),
        ("cam02", "camera_extrinsics", [[1, 0, 0, "x"], [0, 1, 0, 0], [0, 0, 1, 0]],
         ("field 'camera_extrinsics' must contain only numbers",)),
        ("cam02", "camera_intrinsics", [[1200, 0, 960], [0, 1200, 540], [0, 0, None]],
         ("field 'camera_intrinsics' must contain only numbers",)),
        ("cam02", "camera_intrinsics", ..., ("missing field 'camera_intrinsics'",)),
        ("cam02", "camera_extrinsics", ..., ("missing field 'camera_extrinsics'",)),
        ("cam02", "camera_model", "orthographic", ("field 'camera_model'", "'orthographic'")),
        ("cam02", "camera_model", "fisheye", ("field 'distortion_coeffs' must have 4 values, got 0",)),
        ("cam02", "distortion_coeffs", [0.1, float("nan"), 0.0, 0.0], ("field 'distortion_coeffs'", "NaN")),
        ("cam02", "image_size", [1920], ("field 'image_size'",)),
        ("aria01", "camera_extrinsics", {"2": scaled_pose(1.0), "5": scaled_pose(0.9)},
         ("field 'camera_extrinsics' is not a rotation matrix at frame index 5",)),
        ("aria01", "camera_extrinsics", {"2": scaled_pose(1.0), "x": scaled_pose(1.0)},
         ("field 'camera_extrinsics' has an invalid frame key 'x'",)),
        ("aria01", "camera_extrinsics", {}, ("field 'camera_extrinsics' lists no frame",)),
    ],
)  # fmt: skip
def test_camera_pose_json_bad_values_refused(tmp_path, camera, key, value, fragments):
    path = tmp_path / "camera_pose.json"
    path.write_text(json.dumps(mutate(release_document(), camera, key, value)))
    assert_refused(read_camera_pose_json, path, f"camera '{camera}'", *fragments)


def test_camera_pose_json_two_ego_cameras_refused(tmp_path):
    document = release_document()
    document["aria02"] = document["aria01"]
    path = tmp_path / "camera_pose.json"
    path.write_text(json.dumps(document))
    assert_refused(read_camera_pose_json, path, "more than one camera with per-frame extrinsics", "aria02")


def test_camera_pose_json_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "camera_pose.json"
    path.write_text('{"cam01": ')
    assert_refused(read_camera_pose_json, path, "not a valid JSON file")


# --------------------------------------------------------------------------------------
# COLMAP
# --------------------------------------------------------------------------------------

COLMAP_CAMERAS = [
    ("SIMPLE_PINHOLE", [1500.0, 960.5, 540.5]),
    ("PINHOLE", [1500.0, 1498.0, 960.5, 540.5]),
    ("SIMPLE_RADIAL", [1500.0, 960.5, 540.5, -0.08]),
    ("RADIAL", [1500.0, 960.5, 540.5, -0.08, 0.01]),
    ("OPENCV", [1500.0, 1498.0, 960.5, 540.5, -0.28, 0.09, 4e-4, -3e-4]),
    ("FULL_OPENCV", [1500.0, 1498.0, 960.5, 540.5, 0.42, -0.11, 4e-4, -3e-4, 0.015, 0.71, -0.08, 0.03]),
    ("OPENCV_FISHEYE", [1796.4, 1795.2, 1918.6, 1081.3, 0.0352, -0.0127, 0.0041, -0.00062]),
    ("RAD_TAN_THIN_PRISM_FISHEYE", [610.94, 610.94, 715.11, 716.71, *distortion_vector(ARIA)]),
]


def write_colmap(folder: Path, cameras: list[tuple[str, list[float]]], image_folder: str = "") -> Path:
    """A COLMAP model in ``folder``: camera i seen by one image ``<image_folder>view_i.jpg`` on the rig circle."""
    pycolmap = pytest.importorskip("pycolmap")
    reconstruction = pycolmap.Reconstruction()
    for index, (model, params) in enumerate(cameras, start=1):
        reconstruction.add_camera_with_trivial_rig(pycolmap.Camera(model=model, width=1920, height=1080, params=params, camera_id=index))
        R, t = look_at((3.5 * np.cos(index), 3.5 * np.sin(index), 1.0 + 0.1 * index))
        image = pycolmap.Image(name=f"{image_folder}view_{index}.jpg", camera_id=index, image_id=index)
        reconstruction.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(R), t))
    folder.mkdir(parents=True, exist_ok=True)
    reconstruction.write(str(folder))
    return folder


def test_colmap_reconstruction_projects_as_pycolmap_in_opencv_pixels(tmp_path):
    """Equal to pycolmap after moving from COLMAP's pixel centres (0.5) to OpenCV's (0)."""
    pycolmap = pytest.importorskip("pycolmap")
    folder = write_colmap(tmp_path / "sparse" / "0", COLMAP_CAMERAS, image_folder="exo/")
    cameras = read_colmap_reconstruction(folder)
    assert [camera.name for camera in cameras] == [f"exo/view_{i}" for i in range(1, 9)]
    expected_models = [PinholeModel] * 6 + [FisheyeModel, Fisheye624Model]
    assert [type(camera.model) for camera in cameras] == expected_models
    reference = pycolmap.Reconstruction(str(folder))
    points = world_points(50)
    for camera in cameras:
        image = reference.find_image_with_name(f"{camera.name}.jpg")
        assert camera.image_size == (1920, 1080)
        pose = image.cam_from_world()
        expected = np.asarray(image.camera.img_from_cam(pose * points)) - 0.5
        np.testing.assert_allclose(camera.project(points), expected, rtol=0, atol=1e-9)
        for point, pixel in zip(points[:5], camera.project(points[:5])):
            np.testing.assert_allclose(pixel, np.asarray(image.project_point(point)).ravel() - 0.5, rtol=0, atol=1e-9)


def test_colmap_unsupported_model_refused(tmp_path):
    cameras = [("OPENCV", COLMAP_CAMERAS[4][1]), ("FOV", [1500.0, 1500.0, 960.0, 540.0, 0.9])]
    folder = write_colmap(tmp_path / "sparse", cameras)
    assert_refused(read_colmap_reconstruction, folder, "camera 'view_2'", "field 'model' is COLMAP FOV")


def test_colmap_folder_without_model_refused(tmp_path):
    assert_refused(read_colmap_reconstruction, tmp_path, "not a COLMAP model folder")


# --------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------


def test_read_calibration_dispatches_on_the_path(tmp_path):
    rig, gopros = pinhole_rig(), gopro_rig()
    assert_same_cameras(read_calibration(write_toml_calibration(tmp_path / "rig.toml", rig)), rig)
    assert_same_cameras(read_calibration(write_gopro_calibs_csv(tmp_path / "gopro_calibs.csv", gopros)), gopros)
    pose_json = write_camera_pose_json(tmp_path / "camera_pose.json", gopros, ego_camera())
    assert_same_cameras(read_calibration(pose_json), gopros)
    try:
        import pycolmap  # noqa: F401
    except ImportError:
        return  # the COLMAP folder case needs pycolmap (the colmap extra)
    folder = write_colmap(tmp_path / "colmap", COLMAP_CAMERAS[:2])
    assert [camera.name for camera in read_calibration(folder)] == ["view_1", "view_2"]


def test_read_calibration_unknown_format_names_the_path(tmp_path):
    path = tmp_path / "calib.yaml"
    path.write_text("cameras: []\n")
    assert_refused(read_calibration, path, "unknown calibration format '.yaml'")
    assert_refused(read_calibration, tmp_path, "not a COLMAP model folder")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing.toml"))):
        read_calibration(tmp_path / "missing.toml")
