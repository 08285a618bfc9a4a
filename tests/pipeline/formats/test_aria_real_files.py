"""Our Aria readers on projectaria-tools' own sample files (opt-in: the files are theirs).

Run with the ``data/`` folder of a projectaria_tools checkout (git clone
https://github.com/facebookresearch/projectaria_tools; the VRS files are in Git LFS)::

    PROJECTARIA_TOOLS_DATA=/path/to/projectaria_tools/data python -m pytest -q -s tests/pipeline/formats/test_aria_real_files.py

Every file below is read by our code and by projectaria-tools 2.3.0 and compared:
sample MPS outputs (closed-loop trajectories of three column sets, both online
calibration layouts, global points; the open-loop trajectory is refused as such) and the
device calibrations of a Gen1 and a Gen2 VRS recording, both as projectaria-tools'
provider gives them and as the factory JSON inside the file (which, resampled by our
rule to the recorded stream's size, equals the provider's camera). Without the variable the
tests skip (nothing of theirs ships with this repository; tests/aria_layouts.py
reproduces the layouts with our own values for the tests that always run).
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.formats import aria, aria_vrs
from tests.pipeline.formats.test_aria_generations import assert_reads_as_projectaria

DATA = os.environ.get("PROJECTARIA_TOOLS_DATA")
pytestmark = pytest.mark.skipif(not DATA, reason="opt-in: set PROJECTARIA_TOOLS_DATA to a projectaria_tools checkout's data/ folder")
TOLERANCE = {"quaternion_tolerance": 1e-3}
MPS = "gen1/mps_sample/trajectory"
VRS = {"gen1": "gen1/aria_unit_test_timecode_sequence_calib.vrs", "gen2": "gen2/aria_gen2_unit_test_sequence_with_bluetooth.vrs"}


def _path(relative: str) -> Path:
    path = Path(DATA) / relative
    if not path.is_file() or path.stat().st_size < 1000:
        pytest.fail(f"{path}: missing or a Git LFS pointer (git lfs pull)")
    return path


@pytest.mark.parametrize("name", ["online_calibration.jsonl", "online_calibration_v1_1_0.jsonl"])
def test_sample_online_calibrations(name):
    from projectaria_tools.core import mps

    path = _path(f"{MPS}/{name}")
    _, ours = aria.read_online_calibrations(path, "camera-rgb", **TOLERANCE)
    theirs = mps.read_online_calibration(str(path))
    assert len(ours) == len(theirs) > 100
    compared = sum(assert_reads_as_projectaria(mine, record.get_camera_calib("camera-rgb")) for mine, record in zip(ours, theirs))
    print(f"\n{name}: {len(ours)} lines, {ours[0].generation}, {ours[0].image_size}, {ours[0].field_of_view}, {compared} projections within 1e-6 px")


@pytest.mark.parametrize("name", ["closed_loop_trajectory.csv", "closed_loop_trajectory_geo_available.csv", "closed_loop_trajectory_geo_missing.csv"])
def test_sample_closed_loop_trajectories(name):
    from projectaria_tools.core import mps

    path = _path(f"{MPS}/{name}")
    ours = aria.read_closed_loop_trajectory(path, **TOLERANCE)
    theirs = mps.read_closed_loop_trajectory(str(path))
    assert len(theirs) == len(ours.timestamps_us) > 100
    np.testing.assert_array_equal([pose.tracking_timestamp // datetime.timedelta(microseconds=1) for pose in theirs], ours.timestamps_us)
    matrices = np.stack([np.asarray(pose.transform_world_device.to_matrix()) for pose in theirs])
    np.testing.assert_allclose(matrices[:, :3, 3], ours.translations, atol=1e-12)
    np.testing.assert_allclose(matrices[:, :3, :3], aria.rotation_from_quaternion(ours.quaternions), atol=1e-12)
    print(f"\n{name}: {len(theirs)} poses equal")


def test_sample_open_loop_trajectory_is_refused_and_global_points_read():
    from projectaria_tools.core import mps

    with pytest.raises(aria.AriaFormatError, match="an MPS open-loop trajectory"):
        aria.read_closed_loop_trajectory(_path(f"{MPS}/open_loop_trajectory.csv"), **TOLERANCE)
    path = _path(f"{MPS}/global_points.csv.gz")
    ours = aria.read_semidense_points(path, 0.005, 0.05)
    theirs = [p for p in mps.read_global_point_cloud(str(path)) if p.inverse_distance_std <= 0.005 and p.distance_std <= 0.05]
    np.testing.assert_allclose(ours, np.stack([p.position_world for p in theirs]), atol=1e-12)
    print(f"\nglobal_points.csv.gz: {len(ours)} points equal")


def _factory_json(path: Path) -> dict:
    """The factory calibration JSON stored in the VRS file (its ``calib_json`` tag)."""
    data = path.read_bytes()
    start = data.index(b'{"AlgorithmName"') if b'{"AlgorithmName"' in data else data.index(b'"CameraCalibrations"')
    while data[start : start + 1] != b"{":
        start -= 1
    document, _ = json.JSONDecoder().raw_decode(data[start:].decode("utf-8", "ignore"))
    return document


@pytest.mark.parametrize("generation", ["gen1", "gen2"])
def test_sample_vrs_calibrations(generation):
    from projectaria_tools.core import calibration as pat_calibration
    from projectaria_tools.core import data_provider

    path = _path(VRS[generation])
    device = data_provider.create_vrs_data_provider(str(path)).get_device_calibration()
    factory = _factory_json(path)
    factory_device = pat_calibration.device_calibration_from_json_string(json.dumps(factory))
    for label in [label for label in device.get_camera_labels() if "-et-" not in label]:
        ours = aria_vrs.read_vrs_calibration(path, label, **TOLERANCE)
        assert ours.generation == generation
        compared = assert_reads_as_projectaria(ours, device.get_camera_calib(label))
        raw = aria.device_calibration_from_document("factory", factory, label, **TOLERANCE)
        assert_reads_as_projectaria(raw, factory_device.get_camera_calib(label))
        assert_reads_as_projectaria(raw.rescaled(ours.image_size), device.get_camera_calib(label))  # our resampling rule = the provider's
        print(f"\n{path.name} {label}: VRS {ours.image_size} r {ours.field_of_view.valid_radius_px} a {ours.field_of_view.max_angle_rad} "
              f"({compared} projections within 1e-6 px); factory JSON {raw.image_size} r {raw.field_of_view.valid_radius_px}")  # fmt: skip
