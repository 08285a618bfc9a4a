"""Aria calibrations of both device generations, in the real files' layouts (our own values,
tests/aria_layouts.py): read as projectaria-tools 2.3.0 reads them (image size, valid radius,
maximum angle, resampling, projections < 1e-6 px), or refused naming the file and field."""

from __future__ import annotations

import copy
import gzip
import json

import numpy as np
import pytest

from pipeline.formats import aria
from pipeline.formats.aria_devices import GEN1, GEN2, RESCALE_RULES
from tests.aria_layouts import factory_calibration, imu, online_calibration_line

TOLERANCE = {"quaternion_tolerance": 1e-3}


@pytest.fixture(scope="module")
def pat():
    return pytest.importorskip("projectaria_tools.core", reason="projectaria-tools (test extra) is the reference")


def _write(path, document) -> str:
    path.write_text(json.dumps(document, indent=1))
    return str(path)


def _write_lines(path, lines) -> str:
    path.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
    return str(path)


def _camera_points(calibration: aria.AriaCameraCalibration, count: int = 400) -> np.ndarray:
    """Camera-frame points spread over the field of view (up to 0.9 of its maximum angle)."""
    rng = np.random.default_rng(11)
    angle = rng.uniform(0, 0.9 * min(calibration.field_of_view.max_angle_rad, 1.2), count)
    azimuth = rng.uniform(0, 2 * np.pi, count)
    rays = np.stack([np.sin(angle) * np.cos(azimuth), np.sin(angle) * np.sin(azimuth), np.cos(angle)], axis=1)
    return rays * rng.uniform(0.3, 4.0, (count, 1))


def assert_reads_as_projectaria(ours: aria.AriaCameraCalibration, theirs) -> int:
    """Same parameters, size, valid radius, maximum angle, T_device_camera; the same pixel
    (< 1e-6 px) for every point projectaria-tools projects. Returns the points compared."""
    m = ours.model
    np.testing.assert_allclose(theirs.get_projection_params(), [m.fx, m.cx, m.cy, *m.radial, *m.tangential, *m.thin_prism], rtol=1e-12, atol=1e-12)
    assert tuple(int(v) for v in theirs.get_image_size()) == ours.image_size
    assert theirs.get_valid_radius() == pytest.approx(ours.field_of_view.valid_radius_px, rel=1e-12)
    assert theirs.get_max_solid_angle() == pytest.approx(ours.field_of_view.max_angle_rad, rel=1e-12)
    T = np.asarray(theirs.get_transform_device_camera().to_matrix())
    np.testing.assert_allclose(T[:3, :3], ours.R_device_camera, atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], ours.t_device_camera, atol=1e-12)
    points = _camera_points(ours)
    mine = m.project(points)
    compared = 0
    for point, pixel in zip(points, mine):
        projected = theirs.project(point)
        if projected is not None:
            assert np.abs(np.asarray(projected).ravel() - pixel).max() < 1e-6
            compared += 1
    assert compared > 100
    return compared


# --------------------------------------------------------------------------------------
# Device calibration JSON: DeviceClassInfo decides the generation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "label", "size", "radius", "angle"),
    [
        (GEN1, "camera-rgb", (2880, 2880), 1415.0, 1.0),
        (GEN1, "camera-slam-left", (640, 480), 330.0, 1.4),
        (GEN2, "camera-rgb", (4032, 3024), 2202.0, 1.4),
        (GEN2, "slam-front-left", (512, 512), 300.0, 1.4),
        (GEN2, "slam-side-right", (512, 512), 300.0, 1.4),
    ],
)
def test_factory_calibration_reads_by_device_class_as_projectaria(tmp_path, pat, generation, label, size, radius, angle):
    """Cameras without ConfigData get their generation's defaults: a Gen2 (Oatmeal) RGB is
    4032 x 3024, valid radius 2202, maximum angle 1.4 (not Gen1's 2880 / 1415 / 1.0)."""
    from projectaria_tools.core import calibration as pat_calibration

    path = _write(tmp_path / "calib.json", factory_calibration(generation))
    ours = aria.read_device_calibration(path, label, **TOLERANCE)
    device = pat_calibration.device_calibration_from_json(path)
    assert device.get_device_version() == {GEN1: pat_calibration.DeviceVersion.Gen1, GEN2: pat_calibration.DeviceVersion.Gen2}[generation]
    assert ours.generation == generation
    assert (ours.image_size, ours.field_of_view.valid_radius_px, ours.field_of_view.max_angle_rad) == (size, radius, angle)
    assert_reads_as_projectaria(ours, device.get_camera_calib(label))


@pytest.mark.parametrize("rule", sorted(RESCALE_RULES), ids=lambda rule: f"{rule[0]}-{rule[3][0]}x{rule[3][1]}")
def test_rgb_streams_resample_as_projectaria_per_generation(tmp_path, pat, rule):
    """Every resampling rule (Gen1 2880 -> 1408 / 704 with the 32 px crop; Gen2 4032 x 3024 ->
    2016 x 1512, 2560 x 3024 with 640 px cropped on the left, 2560 x 1920 by 0.635) equals
    projectaria-tools' ``rescale_camera_calibration`` for that device version."""
    from projectaria_tools.core import calibration as pat_calibration

    generation, label, _, new_size = rule
    path = _write(tmp_path / "calib.json", factory_calibration(generation))
    ours = aria.read_device_calibration(path, label, **TOLERANCE).rescaled(new_size)
    full = pat_calibration.device_calibration_from_json(path).get_camera_calib(label)
    version = {GEN1: pat_calibration.DeviceVersion.Gen1, GEN2: pat_calibration.DeviceVersion.Gen2}[generation]
    theirs = pat_calibration.rescale_camera_calibration(full, np.array(new_size, np.int32), version)
    assert ours.image_size == new_size
    assert_reads_as_projectaria(ours, theirs)


def test_a_gen2_rgb_is_not_cropped_like_a_gen1(tmp_path):
    """The Gen1 crop is Gen1's: a Gen2 2016 x 1512 stream is a plain half."""
    gen2 = aria.read_device_calibration(_write(tmp_path / "calib.json", factory_calibration(GEN2)), "camera-rgb", **TOLERANCE)
    half = gen2.rescaled((2016, 1512)).model
    assert half.cx == pytest.approx(0.5 * (gen2.model.cx + 0.5) - 0.5) and half.fx == pytest.approx(gen2.model.fx / 2)


def test_the_vrs_export_layout_reads_the_same(tmp_path, pat):
    """projectaria-tools' JSON export (what a VRS file's calibration becomes, with ConfigData
    and the device class it decided) reads as the factory file it came from."""
    from projectaria_tools.core import calibration as pat_calibration

    for generation in (GEN1, GEN2):
        factory = _write(tmp_path / f"{generation}.json", factory_calibration(generation))
        exported = pat_calibration.device_calibration_to_json_string(pat_calibration.device_calibration_from_json(factory))
        document = json.loads(exported)
        assert all("ConfigData" in entry for entry in document["CameraCalibrations"])
        assert document["DeviceClassInfo"]["DeviceClass"] == {GEN1: "Aria", GEN2: "Oatmeal"}[generation]
        ours = aria.device_calibration_from_document("export", document, "camera-rgb", **TOLERANCE)
        original = aria.read_device_calibration(factory, "camera-rgb", **TOLERANCE)
        assert ours.generation == original.generation == generation
        assert ours.image_size == original.image_size and ours.field_of_view == original.field_of_view
        np.testing.assert_allclose(ours.model.project(_camera_points(ours)), original.model.project(_camera_points(ours)), atol=1e-9)


def test_device_class_names_as_projectaria_decides_them(tmp_path, pat):
    from projectaria_tools.core import calibration as pat_calibration

    document = factory_calibration(GEN1)
    for name, expected in (("Aria", GEN1), ("aria-gen1-variant", GEN1), ("ARIA", GEN1), ("Oatmeal", GEN2), ("oatmeal", GEN2)):
        assert aria.generation_of_device_class(name) == expected
        assert pat_calibration.from_device_class_name(name) == {GEN1: pat_calibration.DeviceVersion.Gen1, GEN2: pat_calibration.DeviceVersion.Gen2}[expected]
    assert aria.generation_of_device_class("Oatmeal2") is None and pat_calibration.from_device_class_name("Oatmeal2") == pat_calibration.DeviceVersion.NotValid
    simulated = copy.deepcopy(document)
    simulated["DeviceClassInfo"] = {"BuildVersion": "SimulatedDevice", "DeviceClass": "Unknown"}
    simulated["ImuCalibrations"] = [imu("imu-sim")]  # projectaria-tools' patch of simulated devices wants one
    path = _write(tmp_path / "simulated.json", simulated)
    ours = aria.read_device_calibration(path, "camera-rgb", **TOLERANCE)
    assert ours.generation == GEN1
    assert_reads_as_projectaria(ours, pat_calibration.device_calibration_from_json(path).get_camera_calib("camera-rgb"))


def test_what_cannot_be_read_exactly_is_refused_by_file_and_field(tmp_path):
    """An unknown device class or a missing DeviceClassInfo without ConfigData, and a label
    the generation does not have, are refused; nothing takes another generation's defaults."""
    unknown = factory_calibration(GEN2)
    unknown["DeviceClassInfo"]["DeviceClass"] = "Granola"
    path = _write(tmp_path / "unknown.json", unknown)
    with pytest.raises(
        aria.AriaFormatError,
        match=r"unknown\.json: camera 'camera-rgb': no 'ConfigData' and field 'DeviceClassInfo.DeviceClass' 'Granola' is no Aria generation",
    ):
        aria.read_device_calibration(path, "camera-rgb", **TOLERANCE)
    del unknown["DeviceClassInfo"]
    path = _write(tmp_path / "no_class.json", unknown)
    with pytest.raises(aria.AriaFormatError, match=r"no_class\.json: camera 'camera-rgb': no 'ConfigData' and no field 'DeviceClassInfo'"):
        aria.read_device_calibration(path, "camera-rgb", **TOLERANCE)
    mislabelled = factory_calibration(GEN1)
    mislabelled["CameraCalibrations"][0]["Label"] = "slam-front-left"  # a Gen2 label in a Gen1 (Aria) file
    path = _write(tmp_path / "mislabelled.json", mislabelled)
    with pytest.raises(
        aria.AriaFormatError,
        match=r"camera 'slam-front-left': no 'ConfigData' and no Gen1 camera of this label \(read as Gen1 by field 'DeviceClassInfo.DeviceClass' 'Aria'; Gen1 labels: camera-et-left",
    ):
        aria.read_device_calibration(path, "slam-front-left", **TOLERANCE)


def test_a_camera_with_its_own_config_data_reads_exactly_whatever_the_class(tmp_path, pat):
    """ConfigData states size, radius and angle: read them even when the class is unknown (where
    projectaria-tools refuses the whole file); resampling such a file to a size that some
    generation's rule covers is refused (the crop depends on the generation)."""
    from projectaria_tools.core import calibration as pat_calibration

    document = factory_calibration(GEN1)
    rgb = document["CameraCalibrations"][4]
    rgb["ConfigData"] = {"ImageWidth": 2880, "ImageHeight": 2880, "MaxSolidAngle": 1.0, "ValidRadius": 1415.0}
    reference = aria.read_device_calibration(_write(tmp_path / "gen1.json", document), "camera-rgb", **TOLERANCE)
    document["DeviceClassInfo"]["DeviceClass"] = "Granola"
    path = _write(tmp_path / "granola.json", document)
    with pytest.raises(RuntimeError, match="Unsupported device version"):
        pat_calibration.device_calibration_from_json(path)
    ours = aria.read_device_calibration(path, "camera-rgb", **TOLERANCE)
    assert ours.generation is None and ours.image_size == (2880, 2880) and ours.field_of_view == reference.field_of_view
    assert ours.rescaled((720, 720)).image_size == (720, 720)  # no rule of any generation: a plain scale
    with pytest.raises(
        aria.AriaFormatError, match=r"granola\.json: camera 'camera-rgb': cannot rescale 2880x2880 to 1408x1408: the file names no device generation.*Gen1"
    ):
        ours.rescaled((1408, 1408))


# --------------------------------------------------------------------------------------
# MPS online calibration: both layouts, both generations
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "image_sizes", "size", "radius", "angle"),
    [
        (GEN1, False, (2880, 2880), 1415.0, 1.0),  # before trajectory version 1.1.0
        (GEN1, True, (1408, 1408), 1415.0, 1.0),  # 1.1.0: ImageSizes replace the size, not the radius (as projectaria-tools)
        (GEN2, False, (4032, 3024), 2202.0, 1.4),
        (GEN2, True, (2016, 1512), 2202.0, 1.4),
    ],
)
def test_online_calibration_layouts_read_as_projectaria(tmp_path, pat, generation, image_sizes, size, radius, angle):
    from projectaria_tools.core import mps

    lines = [online_calibration_line(generation, 10_000_000 + 1_000_000 * i, image_sizes=image_sizes, scale=1 + 0.001 * i) for i in range(3)]
    path = _write_lines(tmp_path / "online_calibration.jsonl", lines)
    stamps, ours = aria.read_online_calibrations(path, "camera-rgb", **TOLERANCE)
    theirs = mps.read_online_calibration(path)
    assert stamps.tolist() == [line["tracking_timestamp_us"] for line in lines] and len(theirs) == 3
    for calibration, record in zip(ours, theirs):
        assert calibration.generation == generation
        assert (calibration.image_size, calibration.field_of_view.valid_radius_px, calibration.field_of_view.max_angle_rad) == (size, radius, angle)
        assert_reads_as_projectaria(calibration, record.get_camera_calib("camera-rgb"))
    if image_sizes:
        assert ours[0].time_offset_s == lines[0]["CameraCalibrations"][-1]["TimeOffsetSec_Device_Camera"]
    slam = "camera-slam-left" if generation == GEN1 else "slam-front-left"
    _, slams = aria.read_online_calibrations(path, slam, **TOLERANCE)
    assert_reads_as_projectaria(slams[0], theirs[0].get_camera_calib(slam))


def test_online_calibration_generation_from_labels_where_the_camera_count_misleads(tmp_path, pat):
    """projectaria-tools counts cameras (4 or 5: Gen2); the labels are what differs. A Gen1 line
    with its eye-tracking cameras (5 cameras) is Gen1 by its labels: projectaria-tools takes it
    for Gen2 and fails on camera-slam-left; we read the RGB with Gen1's defaults."""
    from projectaria_tools.core import mps

    line = online_calibration_line(GEN1, 5_000_000, image_sizes=False)
    factory = factory_calibration(GEN1)["CameraCalibrations"]
    line["CameraCalibrations"] = line["CameraCalibrations"][:2] + factory[2:4] + line["CameraCalibrations"][2:]
    path = _write_lines(tmp_path / "online_calibration.jsonl", [line])
    with pytest.raises(RuntimeError, match="No config found for camera camera-slam-left"):
        mps.read_online_calibration(path)
    _, (ours,) = aria.read_online_calibrations(path, "camera-rgb", **TOLERANCE)
    assert ours.generation == GEN1 and ours.image_size == (2880, 2880)
    mixed = online_calibration_line(GEN2, 5_000_000, image_sizes=False)
    mixed["CameraCalibrations"][0]["Label"] = "camera-slam-left"
    path = _write_lines(tmp_path / "mixed.jsonl", [mixed])
    with pytest.raises(
        aria.AriaFormatError, match=r"mixed\.jsonl: line 1: field 'CameraCalibrations' mixes Gen1 and Gen2 camera labels \(camera-slam-left, slam-front-right"
    ):
        aria.read_online_calibrations(path, "camera-rgb", **TOLERANCE)


def test_online_calibration_before_june_2023_is_refused_by_name(tmp_path):
    """The earlier MPS layout stored the calibrations as strings (and the timestamp too)."""
    line = online_calibration_line(GEN1, 5_000_000, image_sizes=False)
    line["tracking_timestamp_us"] = str(line["tracking_timestamp_us"])
    line["CameraCalibrations"] = json.dumps(line["CameraCalibrations"])
    path = _write_lines(tmp_path / "online_calibration.jsonl", [line])
    with pytest.raises(aria.AriaFormatError, match=r"line 1: field 'tracking_timestamp_us' is a string: the MPS online calibration layout before June 2023"):
        aria.read_online_calibrations(path, "camera-rgb", **TOLERANCE)


# --------------------------------------------------------------------------------------
# MPS trajectories and points in their real column sets
# --------------------------------------------------------------------------------------

CLOSED_LOOP = aria.TRAJECTORY_COLUMNS
GEO = ("geo_available", "tx_ecef_device", "ty_ecef_device", "tz_ecef_device", "qx_ecef_device", "qy_ecef_device", "qz_ecef_device", "qw_ecef_device")
OPEN_LOOP = (
    "tracking_timestamp_us", "utc_timestamp_ns", "session_uid", "tx_odometry_device", "ty_odometry_device", "tz_odometry_device",
    "qx_odometry_device", "qy_odometry_device", "qz_odometry_device", "qw_odometry_device", "device_linear_velocity_x_odometry",
    "device_linear_velocity_y_odometry", "device_linear_velocity_z_odometry", "angular_velocity_x_device", "angular_velocity_y_device",
    "angular_velocity_z_device", "gravity_x_odometry", "gravity_y_odometry", "gravity_z_odometry", "quality_score",
)  # fmt: skip


def _trajectory_rows(count: int) -> list[list[str]]:
    """Our own device poses: a slow turn and walk at 1 kHz, MPS' text formatting."""
    rows = []
    for i in range(count):
        angle = 0.002 * i
        q = [0.0, 0.0, np.sin(angle / 2), np.cos(angle / 2)]
        rows.append(
            ["our-graph", str(100_000_000 + 1000 * i), str(1767323045000000000 + 1_000_000 * i)]
            + [f"{0.001 * i:.6f}", f"{-0.0005 * i:.6f}", "1.520000"]
            + [f"{v:.9f}" for v in q]
            + ["0.100000", "0.000000", "0.000000", "0.000000", "0.000000", "0.002000", "0.000000", "0.000000", "-9.810000", "0.5"]
        )
    return rows


@pytest.mark.parametrize("geo", ["missing", "unavailable", "available"])
def test_closed_loop_trajectory_column_sets_read_as_projectaria(tmp_path, pat, geo):
    """The three column sets of MPS closed-loop trajectories: 20 columns (geo_missing), and the
    ECEF columns with geo_available 0 or 1 (ignored: the take's world is the MPS graph)."""
    from projectaria_tools.core import mps

    header = list(CLOSED_LOOP) + (list(GEO) if geo != "missing" else [])
    rows = _trajectory_rows(50)
    if geo != "missing":
        flag = "1" if geo == "available" else "0"
        rows = [row + [flag, "4120000.125000", "-95000.500000", "4850000.250000", "0.100000000", "0.200000000", "0.300000000", "0.927361850"] for row in rows]
    path = tmp_path / "closed_loop_trajectory.csv"
    path.write_text("\n".join(",".join(cells) for cells in [header] + rows) + "\n")
    ours = aria.read_closed_loop_trajectory(path, **TOLERANCE)
    theirs = mps.read_closed_loop_trajectory(str(path))
    assert len(theirs) == len(ours.timestamps_us) == 50 and ours.graph_uid == theirs[0].graph_uid == "our-graph"
    matrices = np.stack([np.asarray(pose.transform_world_device.to_matrix()) for pose in theirs])
    np.testing.assert_allclose(matrices[:, :3, 3], ours.translations, atol=1e-12)
    np.testing.assert_allclose(matrices[:, :3, :3], aria.rotation_from_quaternion(ours.quaternions), atol=1e-12)


def test_an_open_loop_trajectory_is_refused_as_such(tmp_path, pat):
    """open_loop_trajectory.csv (odometry frame, drifts, no graph_uid) is not the ego pose:
    refused naming the file, with what it is."""
    from projectaria_tools.core import mps

    rows = [[row[1], row[2], "our-session"] + row[3:] for row in _trajectory_rows(20)]
    path = tmp_path / "open_loop_trajectory.csv"
    path.write_text("\n".join(",".join(cells) for cells in [list(OPEN_LOOP)] + rows) + "\n")
    assert len(mps.read_open_loop_trajectory(str(path))) == 20  # the real layout, as projectaria-tools reads it
    with pytest.raises(aria.AriaFormatError, match=r"open_loop_trajectory\.csv: an MPS open-loop trajectory \(odometry frame"):
        aria.read_closed_loop_trajectory(path, **TOLERANCE)


def test_global_points_layout_reads_as_projectaria(tmp_path, pat):
    """MPS global_points.csv.gz (the earlier name of semidense_points.csv.gz), same columns."""
    from projectaria_tools.core import mps

    rng = np.random.default_rng(5)
    points = rng.normal(0, 2, (300, 3))
    inv, dist = rng.uniform(0, 0.01, 300), rng.uniform(0, 0.1, 300)
    lines = ["uid,graph_uid,px_world,py_world,pz_world,inv_dist_std,dist_std"]
    lines += [f"{uid},our-graph,{x:.6f},{y:.6f},{z:.6f},{a:.6f},{b:.6f}" for uid, ((x, y, z), a, b) in enumerate(zip(points, inv, dist))]
    path = tmp_path / "global_points.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    ours = aria.read_semidense_points(path, 0.005, 0.05)
    theirs = [p for p in mps.read_global_point_cloud(str(path)) if p.inverse_distance_std <= 0.005 and p.distance_std <= 0.05]
    assert len(ours) == len(theirs) > 20
    np.testing.assert_allclose(ours, np.stack([p.position_world for p in theirs]), atol=1e-12)
