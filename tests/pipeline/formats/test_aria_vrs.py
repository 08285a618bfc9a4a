"""The Aria calibration of a VRS recording (optional extra: projectaria-tools).

No VRS writer is at hand (pyvrs is not installed and projectaria-tools writes no VRS), so
these tests replace projectaria-tools' ``create_vrs_data_provider`` only: the provider it
returns gives a real projectaria-tools ``DeviceCalibration`` (loaded from a factory file
in the real layout), and everything after it runs for real (projectaria-tools' JSON
export, our reader, the take reader). ``test_missing_extra_*`` makes the import fail.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.formats import aria, aria_vrs
from pipeline.formats.aria_devices import GEN1, GEN2
from pipeline.formats.take_folder import read_take
from tests.aria_layouts import factory_calibration
from tests.pipeline.formats.test_aria_generations import assert_reads_as_projectaria
from workflow.synth.take_writer import DEVICE_CALIBRATION_JSON, ONLINE_CALIBRATION_JSONL, SynthConfig, synthesize_take

TAKE_SETTINGS = load_config().take
TOLERANCE = {"quaternion_tolerance": 1e-3}


@pytest.fixture(scope="module")
def pat():
    return pytest.importorskip("projectaria_tools.core", reason="projectaria-tools (the aria extra) reads VRS files")


class _Provider:
    def __init__(self, device):
        self.device = device

    def get_device_calibration(self):
        return self.device


@pytest.fixture
def vrs_holding(monkeypatch, pat):
    """``vrs_holding(path, device)``: a file at ``path`` whose VRS provider gives ``device``
    (a projectaria-tools DeviceCalibration); returns the paths projectaria-tools was asked to open."""
    from projectaria_tools.core import data_provider

    opened, devices = [], {}

    def create_vrs_data_provider(path):
        opened.append(path)
        return _Provider(devices[path]) if path in devices else None

    monkeypatch.setattr(data_provider, "create_vrs_data_provider", create_vrs_data_provider)

    def hold(path, device):
        path.write_bytes(b"stand-in for a VRS file")
        devices[str(path)] = device
        return opened

    return hold


@pytest.mark.parametrize(("generation", "size"), [(GEN1, (2880, 2880)), (GEN2, (4032, 3024))])
def test_vrs_calibration_reads_through_the_json_reader_as_projectaria(tmp_path, pat, vrs_holding, generation, size):
    from projectaria_tools.core import calibration as pat_calibration

    device = pat_calibration.device_calibration_from_json_string(json.dumps(factory_calibration(generation)))
    vrs = tmp_path / "aria01_noimagestreams.vrs"
    opened = vrs_holding(vrs, device)
    ours = aria_vrs.read_vrs_calibration(vrs, "camera-rgb", **TOLERANCE)
    assert opened == [str(vrs)] and ours.source.startswith(f"{vrs} (device calibration)")
    assert ours.generation == generation and ours.image_size == size
    assert_reads_as_projectaria(ours, device.get_camera_calib("camera-rgb"))
    label = "camera-slam-left" if generation == GEN1 else "slam-front-left"
    assert_reads_as_projectaria(aria_vrs.read_vrs_calibration(vrs, label, **TOLERANCE), device.get_camera_calib(label))


def test_a_vrs_file_projectaria_cannot_open_is_refused_by_name(tmp_path, vrs_holding):
    vrs_holding(tmp_path / "other.vrs", None)
    unreadable = tmp_path / "aria01.vrs"
    unreadable.write_bytes(b"not a VRS file")
    with pytest.raises(aria.AriaFormatError, match=r"aria01\.vrs: projectaria-tools cannot open this VRS file"):
        aria_vrs.read_vrs_calibration(unreadable, "camera-rgb", **TOLERANCE)
    with pytest.raises(aria.AriaFormatError, match=r"other\.vrs: the VRS file holds no device calibration"):
        aria_vrs.read_vrs_calibration(tmp_path / "other.vrs", "camera-rgb", **TOLERANCE)
    with pytest.raises(FileNotFoundError, match=r"missing\.vrs: Aria VRS file not found"):
        aria_vrs.read_vrs_calibration(tmp_path / "missing.vrs", "camera-rgb", **TOLERANCE)


def test_missing_extra_is_named_with_the_file(tmp_path, monkeypatch):
    """Without projectaria-tools (its import fails) the message names the file and the extra."""
    vrs = tmp_path / "aria01_noimagestreams.vrs"
    vrs.write_bytes(b"stand-in for a VRS file")
    for name in [name for name in sys.modules if name == "projectaria_tools" or name.startswith("projectaria_tools.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "projectaria_tools", None)  # `import projectaria_tools...` raises ImportError
    with pytest.raises(aria.AriaFormatError) as error:
        aria_vrs.read_vrs_calibration(vrs, "camera-rgb", **TOLERANCE)
    message = str(error.value)
    assert message.startswith(f"{vrs}: reading the Aria calibration of a VRS file needs projectaria-tools")
    assert "'aria' extra" in message and "pip install --no-deps projectaria-tools==2.3.0" in message


@pytest.fixture(scope="module")
def take_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aria_vrs") / "take"
    synthesize_take(folder, SynthConfig(seed=5, num_frames=20), render=False)
    return folder


def test_a_take_without_json_calibration_reads_its_vrs(take_dir, tmp_path, pat, vrs_holding):
    """No online or device calibration JSON: the take reads ``<aria>_noimagestreams.vrs``
    (setting take.aria_vrs), and gets the same ego camera as from the JSON it came from;
    the VRS file is one of the take's inputs (its fingerprint)."""
    from projectaria_tools.core import calibration as pat_calibration

    with_json = read_take(take_dir, TAKE_SETTINGS)
    copy = tmp_path / "take"
    shutil.copytree(take_dir, copy)
    device = pat_calibration.device_calibration_from_json(str(copy / DEVICE_CALIBRATION_JSON))
    (copy / DEVICE_CALIBRATION_JSON).unlink()
    (copy / ONLINE_CALIBRATION_JSONL).unlink()
    vrs = copy / "aria01_noimagestreams.vrs"
    vrs_holding(vrs, device)
    take = read_take(copy, TAKE_SETTINGS)
    assert vrs in take.input_files and take.ego_poses.calibration.source.startswith(str(vrs))
    np.testing.assert_allclose(take.ego_camera.R, with_json.ego_camera.R, atol=1e-12)
    np.testing.assert_allclose(take.ego_camera.t, with_json.ego_camera.t, atol=1e-12)
    ours, theirs = take.ego_poses.calibration, with_json.ego_poses.calibration
    assert ours.image_size == theirs.image_size and ours.field_of_view == theirs.field_of_view
    assert ours.model.fx == pytest.approx(theirs.model.fx, rel=1e-12) and ours.model.cx == pytest.approx(theirs.model.cx, rel=1e-12)
    full = copy / "aria01.vrs"
    vrs.rename(full)
    with pytest.raises(ValueError, match=r"without a camera calibration \(looked for .*aria01_noimagestreams\.vrs: settings .*take\.aria_vrs\)"):
        read_take(copy, TAKE_SETTINGS)
    vrs_holding(full, device)
    assert read_take(copy, dataclasses.replace(TAKE_SETTINGS, aria_vrs="{ego_name}.vrs")).ego_poses.calibration.source.startswith(str(full))
