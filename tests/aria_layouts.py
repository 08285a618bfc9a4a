"""Aria calibration files in the layouts real devices and MPS write, with our own values.

Each builder reproduces one real layout (key sets, nesting, camera labels and order)
found in projectaria-tools' sample data (studied, not copied):

- :func:`factory_calibration`: the device calibration a VRS recording carries (its
  ``calib_json`` tag, what the public hand preparation extracts with ``vrs | grep
  calib_json``): ``DeviceClassInfo``, ``OriginSpecification``, cameras *without*
  ``ConfigData``. Gen1 (``Aria``, ``DVT-S``): camera-slam-left/right, camera-et-left/right
  (KannalaBrandtK3), camera-rgb at 2880 x 2880. Gen2 (``Oatmeal``, ``EVT_SS``):
  camera-et-left/right, camera-rgb at 4032 x 3024, slam-front-left/right,
  slam-side-left/right.
- :func:`online_calibration_line`: one MPS ``online_calibration.jsonl`` line:
  ``utc_timestamp_ns``, ``tracking_timestamp_us``, ``ImuCalibrations``,
  ``CameraCalibrations`` (no ``ConfigData``); from trajectory version 1.1.0 on also
  ``ImageSizes`` (one ``[w, h]`` per camera, the recorded streams: RGB 1408) and
  ``ReadoutTimesSec`` (``[[camera index, seconds]]``), the RGB camera with
  ``TimeOffsetSec_Device_Camera``. Gen1 lines hold the two SLAM cameras and the RGB;
  Gen2 lines the four SLAM cameras and the RGB.
"""

from __future__ import annotations

import numpy as np

# FISHEYE624 parameters (f, cx, cy, k0..k5, p0, p1, s0..s3) at each camera's full size.
GEN1_RGB_2880 = [1223.5, 1447.1, 1436.8, 0.404, -0.451, 0.061, 1.21, -1.62, 0.583, 4.1e-4, -3.2e-4, -1.2e-3, 2.1e-4, 1.4e-3, -1.1e-4]
GEN2_RGB_4032 = [1748.2, 2019.4, 1494.7, -0.028, 0.031, 0.098, -0.193, 0.118, -0.024, -7.4e-4, 1.9e-4, 4.6e-4, 5.8e-4, -3.9e-4, 2.2e-4]
SLAM_640 = [241.9, 320.6, 238.2, -0.0262, 0.0991, -0.0679, 0.0101, 0.0021, -0.00053, 0.0019, -0.0018, -0.0013, 5.1e-05, 0.0025, -1.2e-05]
SLAM_512 = [244.6, 255.3, 257.9, -0.0238, 0.0877, -0.0566, 0.0059, 0.0032, -0.00081, 0.0011, -0.0009, -0.0007, 3.2e-05, 0.0012, -2.3e-05]
ET_KB3 = [556.1, 555.7, 319.6, 239.8, 0.413, -0.039, -0.056, -0.011]


def _quaternion(seed: int) -> list:
    """``[w, [x, y, z]]`` of a small rotation (our own values)."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(0.05, 0.6)
    return [float(np.cos(angle / 2)), [float(v) for v in np.sin(angle / 2) * axis]]


def camera(label: str, params: list, seed: int, *, kb3: bool = False, time_offset: float | None = None) -> dict:
    """One ``CameraCalibrations`` entry (no ``ConfigData``, as factory and MPS files)."""
    entry = {
        "Calibrated": True,
        "Label": label,
        "Projection": {
            "Description": "fx, fy, cx, cy, kb0, kb1, kb2, kb3" if kb3 else "see FisheyeRadTanThinPrism.h",
            "Name": "KannalaBrandtK3" if kb3 else "FisheyeRadTanThinPrism",
            "Params": list(params),
        },
        "SerialNumber": f"our-serial-{seed:04d}",
        "T_Device_Camera": {"Translation": [0.011 * (seed % 7) - 0.03, -0.004 * (seed % 5), 0.002 * (seed % 3)], "UnitQuaternion": _quaternion(seed)},
    }
    if time_offset is not None:
        entry["TimeOffsetSec_Device_Camera"] = time_offset
    return entry


def imu(label: str) -> dict:
    """One ``ImuCalibrations`` entry (identity rectification, our own biases)."""
    return {
        "Accelerometer": {
            "Bias": {"Name": "Constant", "Offset": [0.02, -0.01, 0.03]},
            "Model": {"Name": "UpperTriagonalLinear", "RectificationMatrix": np.eye(3).tolist()},
            "TimeOffsetSec_Device_Accel": 0.001,
        },
        "Calibrated": True,
        "Gyroscope": {
            "Bias": {"Name": "Constant", "Offset": [0.001, 0.002, -0.001]},
            "Model": {"Name": "Linear", "RectificationMatrix": np.eye(3).tolist()},
            "TimeOffsetSec_Device_Gyro": 0.002,
        },
        "Label": label,
        "SerialNumber": "",
        "T_Device_Imu": {"Translation": [0.0, 0.0, -0.006], "UnitQuaternion": _quaternion(99)},
    }


def cameras(generation: str) -> list[dict]:
    """The cameras of a device of ``generation`` ("gen1" / "gen2"), in the real files' order."""
    if generation == "gen1":
        return [
            camera("camera-slam-left", SLAM_640, 1),
            camera("camera-slam-right", SLAM_640, 2),
            camera("camera-et-left", ET_KB3, 3, kb3=True),
            camera("camera-et-right", ET_KB3, 4, kb3=True),
            camera("camera-rgb", GEN1_RGB_2880, 5),
        ]
    et = [v * 0.36 for v in ET_KB3[:4]] + ET_KB3[4:]
    return [
        camera("camera-et-left", et, 11, kb3=True),
        camera("camera-et-right", et, 12, kb3=True),
        camera("camera-rgb", GEN2_RGB_4032, 13),
        camera("slam-front-left", SLAM_512, 14),
        camera("slam-front-right", SLAM_512, 15),
        camera("slam-side-left", SLAM_512, 16),
        camera("slam-side-right", SLAM_512, 17),
    ]


def factory_calibration(generation: str) -> dict:
    """A device calibration JSON in the layout of a VRS file's factory calibration."""
    gen1 = generation == "gen1"
    return {
        "AlgorithmName": "OurFactoryStation",
        "AlgorithmVersion": "0.0 test",
        "BaroCalibrations": [],
        "CalibrationSource": "Factory",
        "CameraCalibrations": cameras(generation),
        "DeviceClassInfo": {"BuildVersion": "DVT-S", "DeviceClass": "Aria"} if gen1 else {"BuildVersion": "EVT_SS", "DeviceClass": "Oatmeal"},
        "FileFormat": {"Tags": [], "Timestamp": "2026-01-02T03:04:05Z", "UnixTime": 1767323045, "Version": 3},
        "ImuCalibrations": [],
        "MagCalibrations": [],
        "MicCalibrations": [],
        "OriginSpecification": {"ChildLabel": "camera-slam-left" if gen1 else "slam-front-left", "Type": "Custom"},
        "Serial": "OUR-DEVICE-0001",
    }


def online_calibration_line(generation: str, stamp_us: int, *, image_sizes: bool, scale: float = 1.0) -> dict:
    """One MPS online calibration line; ``image_sizes``: the trajectory 1.1.0 layout, whose
    RGB intrinsics are those of the 1408 (Gen1) / 2016 x 1512 (Gen2) stream."""
    if generation == "gen1":
        rgb = list(GEN1_RGB_2880)
        if image_sizes:  # the 1408 stream: 32 px cropped, then half
            rgb[:3] = [rgb[0] * 0.5, 0.5 * (rgb[1] - 32 + 0.5) - 0.5, 0.5 * (rgb[2] - 32 + 0.5) - 0.5]
        rgb[0] *= scale
        entries = [camera("camera-slam-left", SLAM_640, 21), camera("camera-slam-right", SLAM_640, 22)]
        entries.append(camera("camera-rgb", rgb, 23, time_offset=-0.0025 if image_sizes else None))
        sizes = [[640, 480], [640, 480], [1408, 1408]]
    else:
        rgb = list(GEN2_RGB_4032)
        if image_sizes:  # the 2016 x 1512 stream: half
            rgb[:3] = [rgb[0] * 0.5, 0.5 * (rgb[1] + 0.5) - 0.5, 0.5 * (rgb[2] + 0.5) - 0.5]
        rgb[0] *= scale
        entries = [camera(label, SLAM_512, 31 + i) for i, label in enumerate(("slam-front-left", "slam-front-right", "slam-side-left", "slam-side-right"))]
        entries.append(camera("camera-rgb", rgb, 35, time_offset=-0.0031 if image_sizes else None))
        sizes = [[512, 512]] * 4 + [[2016, 1512]]
    line = {"utc_timestamp_ns": -1 if image_sizes else 1767323045000000000 + stamp_us * 1000, "tracking_timestamp_us": int(stamp_us)}
    if image_sizes:
        line["ReadoutTimesSec"] = [[len(entries) - 1, 0.005]]
    line["ImuCalibrations"] = []
    if image_sizes:
        line["ImageSizes"] = sizes
    line["CameraCalibrations"] = entries
    return line
