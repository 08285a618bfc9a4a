"""Raw Project Aria inputs of a new take: device trajectory, camera calibration, frame times.

Readers and writers, checked against projectaria-tools 2.3.0 in the tests:

- MPS ``closed_loop_trajectory.csv`` (:func:`read_closed_loop_trajectory`): one device
  pose ``T_world_device`` per ``tracking_timestamp_us`` (Aria device clock, about 1 kHz),
  columns matched by name (20 required, as projectaria-tools' reader; the ECEF
  columns of newer files ignored), quaternion columns x, y, z, w. An open-loop
  trajectory (odometry frame) is refused as such.
- MPS ``online_calibration.jsonl`` (:func:`read_online_calibrations`): one JSON object
  per line and time, ``CameraCalibrations`` with ``Label``, ``Projection`` (``Name``,
  ``Params``), ``T_Device_Camera`` (``Translation``, ``UnitQuaternion`` ``[w, [x, y,
  z]]``); image sizes from ``ImageSizes`` (parallel to the cameras) or ``ConfigData``,
  else the default of the label for the line's device generation (decided by its
  camera labels, else its camera count as projectaria-tools:
  :mod:`pipeline.formats.aria_devices`; Gen1 camera-rgb 2880 x 2880, valid radius
  1415 px, maximum angle 1 rad; Gen2 camera-rgb 4032 x 3024, 2202 px, 1.4 rad).
- A device calibration JSON as projectaria-tools writes it
  (:func:`read_device_calibration`): the same camera objects under
  ``CameraCalibrations``, the generation from ``DeviceClassInfo.DeviceClass``
  (``Aria``: Gen1, ``Oatmeal``: Gen2). What a file does not say and no generation
  default gives (an unknown device class or label without ``ConfigData``) is refused,
  naming the file and field; nothing falls back to another generation.
- The device calibration inside a VRS recording: :mod:`pipeline.formats.aria_vrs`
  (projectaria-tools, an optional extra), through the same reader.
- Frame timestamps (:func:`read_timesync_timestamps`): Ego-Exo4D's capture
  ``timesync.csv``, column ``<aria>_214-1_capture_timestamp_ns`` (the RGB stream, device
  clock), rows ``timesync_start_idx + 1 + i`` for take frame ``i`` (as the documentation
  and tutorials index it) or ``timesync_start_idx + i`` (as the released pose pipeline's
  code does), setting ``take.timesync_first_row``; ``end - start - 1`` frames; or a per-take CSV
  (:func:`read_frame_timestamps`: ``frame_number, capture_timestamp_ns``).

:func:`ego_camera_from_aria` turns these into the ego camera of every frame: the
device pose interpolated at the frame's timestamp (slerp and linear, never
extrapolated; a frame between samples farther apart than the allowed gap gets no
pose), composed with ``T_device_camera``. Errors name the file, line and field.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_write_text
from pipeline.formats.aria_devices import (
    CAMERA_DEFAULTS,
    GEN2,
    GENERATION_NAMES,
    generation_labels,
    generation_of_device_class,
    online_generation,
    rescale_rule,
)
from triangulation.camera_models import Fisheye624Model
from triangulation.cameras import FieldOfView, MovingCamera, rotation_from_quaternion
from triangulation.poses import POSE_OK, compose, interpolate_poses, invert, quaternion_from_rotation

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


class AriaFormatError(ValueError):
    """A raw Aria input that cannot be read; the message names the file, line and field."""


# --------------------------------------------------------------------------------------
# closed_loop_trajectory.csv
# --------------------------------------------------------------------------------------

TRAJECTORY_COLUMNS = (
    "graph_uid",
    "tracking_timestamp_us",
    "utc_timestamp_ns",
    "tx_world_device",
    "ty_world_device",
    "tz_world_device",
    "qx_world_device",
    "qy_world_device",
    "qz_world_device",
    "qw_world_device",
    "device_linear_velocity_x_device",
    "device_linear_velocity_y_device",
    "device_linear_velocity_z_device",
    "angular_velocity_x_device",
    "angular_velocity_y_device",
    "angular_velocity_z_device",
    "gravity_x_world",
    "gravity_y_world",
    "gravity_z_world",
    "quality_score",
)
_TRAJECTORY_NUMBERS = ("tracking_timestamp_us",) + TRAJECTORY_COLUMNS[3:10] + ("quality_score",)


@dataclass(frozen=True)
class Trajectory:
    """Device poses ``T_world_device`` over time.

    ``timestamps_us (N,)`` int64 device clock, strictly increasing; ``quaternions (N, 4)``
    x, y, z, w; ``translations (N, 3)`` metres; ``quality (N,)``; ``graph_uid``: the world frame.
    """

    timestamps_us: np.ndarray
    quaternions: np.ndarray
    translations: np.ndarray
    quality: np.ndarray
    graph_uid: str


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as stream:
        return [column.strip() for column in next(csv.reader(stream), [])]


def read_closed_loop_trajectory(path: PathLike, *, quaternion_tolerance: float) -> Trajectory:
    """An MPS ``closed_loop_trajectory.csv`` (any column order; extra columns ignored).

    ``quaternion_tolerance``: largest accepted ``|norm - 1|`` of a row's quaternion
    (setting ``take.max_quaternion_norm_error``); accepted ones are normalised.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Aria trajectory file not found")
    header = _header(path)
    missing = [column for column in TRAJECTORY_COLUMNS if column not in header]
    if missing and "tx_odometry_device" in header:
        raise AriaFormatError(
            f"{path}: an MPS open-loop trajectory (odometry frame, columns *_odometry_device: it drifts and is in no "
            "world of the exo cameras); the ego camera needs the closed-loop trajectory (setting take.trajectory_csv)"
        )
    if missing:
        raise AriaFormatError(f"{path}: missing column(s) {', '.join(missing)}")
    columns = [header.index(name) for name in _TRAJECTORY_NUMBERS]
    try:
        values = np.loadtxt(path, delimiter=",", skiprows=1, usecols=columns, dtype=np.float64, ndmin=2, encoding="utf-8")
    except ValueError as error:
        raise AriaFormatError(f"{path}: {error} (line numbers count from the header, column order {', '.join(_TRAJECTORY_NUMBERS)})") from None
    if values.shape[0] == 0:
        raise AriaFormatError(f"{path}: no pose")
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise AriaFormatError(f"{path}: line {row + 2}: field '{_TRAJECTORY_NUMBERS[column]}' is NaN or infinite")
    timestamps = values[:, 0]
    if np.any(timestamps != np.round(timestamps)):
        row = int(np.flatnonzero(timestamps != np.round(timestamps))[0])
        raise AriaFormatError(f"{path}: line {row + 2}: field 'tracking_timestamp_us' must be a whole number of microseconds")
    steps = np.diff(timestamps)
    if np.any(steps <= 0):
        row = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise AriaFormatError(
            f"{path}: line {row + 2}: field 'tracking_timestamp_us' does not increase ({int(timestamps[row - 1])} then {int(timestamps[row])})"
        )
    quaternions = values[:, 4:8]
    norms = np.linalg.norm(quaternions, axis=1)
    off = np.abs(norms - 1.0) > quaternion_tolerance
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise AriaFormatError(
            f"{path}: line {row + 2}: fields 'qx..qw_world_device' are not a unit quaternion (norm {norms[row]:.6g}, "
            f"setting take.max_quaternion_norm_error {quaternion_tolerance:g})"
        )
    graph_uid = _single_graph_uid(path, header.index("graph_uid"))
    return Trajectory(timestamps.astype(np.int64), quaternions / norms[:, None], values[:, 1:4], values[:, 8], graph_uid)


def _single_graph_uid(path: Path, column: int) -> str:
    """The one ``graph_uid`` (world frame) of every trajectory row; several are refused
    (the poses would be in different worlds)."""
    uids = np.char.strip(np.loadtxt(path, delimiter=",", skiprows=1, usecols=[column], dtype=str, ndmin=1, encoding="utf-8"))
    changes = np.flatnonzero(uids[1:] != uids[:-1]) + 1
    if changes.size:
        first_change = int(changes[0])
        raise AriaFormatError(
            f"{path}: field 'graph_uid' names several worlds: {str(uids[0])!r} (lines 2-{first_change + 1}), "
            f"{str(uids[first_change])!r} (from line {first_change + 2}), {len(np.unique(uids))} in all; "
            "the take's poses must be in one world (trim the trajectory to one graph)"
        )
    return str(uids[0])


def write_closed_loop_trajectory(
    path: PathLike,
    timestamps_us: np.ndarray,
    R_world_device: np.ndarray,
    t_world_device: np.ndarray,
    graph_uid: str = "0",
    frequency_hz: float | None = None,
) -> Path:
    """Write device poses ``(N, 3, 3)``, ``(N, 3)`` at ``timestamps_us (N,)`` in the MPS layout.

    Linear and angular velocities in the device frame are finite differences of the
    poses; gravity is ``(0, 0, -9.81)`` (a z-up world); quality 1; UTC unknown (-1).
    """
    timestamps = np.asarray(timestamps_us, dtype=np.int64)
    R = np.asarray(R_world_device, dtype=np.float64)
    t = np.asarray(t_world_device, dtype=np.float64)
    seconds = timestamps * 1e-6
    velocity_world = np.gradient(t, seconds, axis=0) if len(t) > 1 else np.zeros_like(t)
    velocity_device = np.einsum("nji,nj->ni", R, velocity_world)
    if len(R) > 1:
        dR = np.gradient(R, seconds, axis=0)  # R' = R [w]x  ->  [w]x = R^T R'
        skew = np.swapaxes(R, 1, 2) @ dR
        angular = np.stack([skew[:, 2, 1] - skew[:, 1, 2], skew[:, 0, 2] - skew[:, 2, 0], skew[:, 1, 0] - skew[:, 0, 1]], 1) / 2
    else:
        angular = np.zeros_like(t)
    quaternions = quaternion_from_rotation(R)
    rows = np.column_stack([t, quaternions, velocity_device, angular, np.tile([0.0, 0.0, -9.81], (len(t), 1)), np.ones(len(t))])
    lines = [",".join(TRAJECTORY_COLUMNS)]
    body = [f"{graph_uid},{stamp},-1," + ",".join(repr(float(v)) for v in row) for stamp, row in zip(timestamps.tolist(), rows)]
    return atomic_write_text(path, "\n".join(lines + body) + "\n")


# --------------------------------------------------------------------------------------
# Camera calibration: online_calibration.jsonl and device calibration JSON
# --------------------------------------------------------------------------------------

FISHEYE624_PROJECTION = "FisheyeRadTanThinPrism"


@dataclass(frozen=True)
class AriaCameraCalibration:
    """One Aria camera: FISHEYE624 intrinsics and its pose in the device frame.

    ``R_device_camera (3, 3)``, ``t_device_camera (3,)`` (metres) map camera points to
    the device frame; ``image_size`` (width, height) pixels; ``field_of_view``: valid
    radius (pixels) and maximum ray angle (radians); ``source``: file and record read;
    ``generation``: the device generation (:data:`pipeline.formats.aria_devices.GEN1` /
    ``GEN2``) the file was read as, None when it does not say (its cameras then carry
    their own ``ConfigData``).
    """

    label: str
    model: Fisheye624Model
    image_size: tuple[int, int]
    R_device_camera: np.ndarray
    t_device_camera: np.ndarray
    field_of_view: FieldOfView
    time_offset_s: float
    source: str
    generation: str | None = None

    def rescaled(self, image_size: tuple[int, int]) -> AriaCameraCalibration:
        """The calibration for a resampled stream of ``image_size``.

        projectaria-tools' rule for the generation, label and sizes when it has one
        (:data:`pipeline.formats.aria_devices.RESCALE_RULES`: Gen1 RGB 2880 -> 1408 / 704
        crops 32 px per side then scales; Gen2 RGB 4032 x 3024 -> 2016 x 1512 scales,
        -> 2560 x 3024 crops 640 px on the left, -> 2560 x 1920 scales by 0.635):
        ``f' = s f``, ``c' = s (c - offset + 0.5) - 0.5``, valid radius ``s r``. Any other
        size of the same aspect ratio is a plain scale about the same pixel-centre
        convention (a further resampling of a stream: e.g. 1408 -> 512). A size that a
        rule of some generation covers, on a calibration whose generation is unknown, is
        refused (the rules differ).
        """
        if tuple(image_size) == tuple(self.image_size):
            return self
        old_w, old_h = self.image_size
        new_w, new_h = (int(v) for v in image_size)
        try:
            rule = rescale_rule(self.generation, self.label, (old_w, old_h), (new_w, new_h))
        except LookupError as generations:
            raise AriaFormatError(
                f"{self.source}: cannot rescale {old_w}x{old_h} to {new_w}x{new_h}: the file names no device generation "
                f"and projectaria-tools resamples this stream by a rule of {generations} (field 'DeviceClassInfo.DeviceClass')"
            ) from None
        if rule is None:
            scale, offset = new_w / old_w, (0.0, 0.0)
            if abs(scale - new_h / old_h) > 1e-9:
                raise AriaFormatError(f"{self.source}: camera '{self.label}': cannot rescale {old_w}x{old_h} to {new_w}x{new_h} (aspect ratio changes)")
        else:
            scale, offset = rule
        m = self.model
        model = Fisheye624Model(
            m.fx * scale,
            m.fy * scale,
            scale * (m.cx - offset[0] + 0.5) - 0.5,
            scale * (m.cy - offset[1] + 0.5) - 0.5,
            m.radial,
            m.tangential,
            m.thin_prism,
        )
        fov = self.field_of_view
        radius = None if fov.valid_radius_px is None else fov.valid_radius_px * scale
        return dataclasses.replace(
            self,
            model=model,
            image_size=(new_w, new_h),
            field_of_view=FieldOfView(radius, fov.max_angle_rad),
            source=f"{self.source} rescaled to {new_w}x{new_h}",
        )


def _field(where: str, entry: dict, key: str, parent: str = ""):
    """``entry[key]``; ``parent``: the dotted name of ``entry`` in the file, for messages."""
    if not isinstance(entry, dict):
        raise AriaFormatError(f"{where}: field '{parent.rstrip('.')}' must be an object, got {entry!r}")
    if key not in entry:
        raise AriaFormatError(f"{where}: missing field '{parent}{key}'")
    return entry[key]


def _vector(where: str, field: str, value, length: int) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise AriaFormatError(f"{where}: field '{field}' must be {length} numbers, got {value!r}") from None
    if array.size != length or not np.all(np.isfinite(array)):
        raise AriaFormatError(f"{where}: field '{field}' must be {length} finite numbers, got {value!r}")
    return array


def _number(where: str, field: str, value, positive: bool = False) -> float:
    """A finite JSON number (``positive``: > 0); never a string or a boolean."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or (positive and value <= 0):
        raise AriaFormatError(f"{where}: field '{field}' must be a {'positive' if positive else 'finite'} number, got {value!r}")
    return float(value)


def _pixels(where: str, field: str, value) -> int:
    """A positive whole number of pixels."""
    number = _number(where, field, value, positive=True)
    if number != int(number):
        raise AriaFormatError(f"{where}: field '{field}' must be a whole number of pixels, got {value!r}")
    return int(number)


def _image_size(where: str, field: str, value) -> tuple[int, int]:
    """``[width, height]`` in pixels."""
    if not isinstance(value, list) or len(value) != 2:
        raise AriaFormatError(f"{where}: field '{field}' must be [width, height], got {value!r}")
    return _pixels(where, field, value[0]), _pixels(where, field, value[1])


def _pose_from_json(where: str, entry: dict, quaternion_tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """``{"Translation": [3], "UnitQuaternion": [w, [x, y, z]]}`` -> R, t."""
    translation = _vector(where, "T_Device_Camera.Translation", _field(where, entry, "Translation", "T_Device_Camera."), 3)
    quaternion = _field(where, entry, "UnitQuaternion", "T_Device_Camera.")
    if not (isinstance(quaternion, list) and len(quaternion) == 2 and isinstance(quaternion[1], list)):
        raise AriaFormatError(f"{where}: field 'T_Device_Camera.UnitQuaternion' must be [w, [x, y, z]], got {quaternion!r}")
    w = _vector(where, "T_Device_Camera.UnitQuaternion", [quaternion[0]], 1)[0]
    xyz = _vector(where, "T_Device_Camera.UnitQuaternion", quaternion[1], 3)
    q = np.array([*xyz, w])
    norm = np.linalg.norm(q)
    if abs(norm - 1.0) > quaternion_tolerance:
        raise AriaFormatError(
            f"{where}: field 'T_Device_Camera.UnitQuaternion' is not a unit quaternion (norm {norm:.6g}, "
            f"setting take.max_quaternion_norm_error {quaternion_tolerance:g})"
        )
    return rotation_from_quaternion(q / norm), translation


@dataclass(frozen=True)
class _Generation:
    """The device generation a calibration record is read as (None: unknown) and ``basis``:
    how it was decided, or why it is unknown (for messages)."""

    generation: str | None
    basis: str


def _camera_from_json(
    where: str, entry: dict, image_size: tuple[int, int] | None, generation: _Generation, quaternion_tolerance: float
) -> AriaCameraCalibration:
    label = entry["Label"]  # a string (checked by _camera_entry)
    where = f"{where}: camera '{label}'"
    projection = _field(where, entry, "Projection")
    name = _field(where, projection, "Name", "Projection.")
    if name != FISHEYE624_PROJECTION:
        raise AriaFormatError(f"{where}: field 'Projection.Name' is {name!r}; the ego camera must be {FISHEYE624_PROJECTION!r} (FISHEYE624)")
    params = _vector(where, "Projection.Params", _field(where, projection, "Params", "Projection."), 15)
    R, t = _pose_from_json(where, _field(where, entry, "T_Device_Camera"), quaternion_tolerance)
    config = entry.get("ConfigData")
    if config is not None:  # the camera's own configuration: exact, whatever the generation
        size = tuple(_pixels(where, f"ConfigData.{key}", _field(where, config, key, "ConfigData.")) for key in ("ImageWidth", "ImageHeight"))
        max_angle = _number(where, "ConfigData.MaxSolidAngle", _field(where, config, "MaxSolidAngle", "ConfigData."), positive=True)
        radius = config.get("ValidRadius")
        radius = None if radius is None else _number(where, "ConfigData.ValidRadius", radius, positive=True)
    elif generation.generation is None:
        raise AriaFormatError(f"{where}: no 'ConfigData' and {generation.basis}: its image size, valid radius and maximum angle are unknown")
    else:
        gen = GENERATION_NAMES[generation.generation]
        defaults = CAMERA_DEFAULTS[generation.generation].get(label)
        if defaults is None:
            raise AriaFormatError(
                f"{where}: no 'ConfigData' and no {gen} camera of this label (read as {gen} {generation.basis}; "
                f"{gen} labels: {', '.join(generation_labels(generation.generation))}): its image size is unknown"
            )
        size, max_angle, radius = defaults.image_size, defaults.max_angle_rad, defaults.valid_radius_px
    if image_size is not None:
        size = image_size  # ImageSizes override the size, not the valid radius (as projectaria-tools)
    try:
        model = Fisheye624Model(params[0], params[0], params[1], params[2], params[3:9], params[9:11], params[11:15])
        fov = FieldOfView(radius, max_angle)
    except ValueError as error:
        raise AriaFormatError(f"{where}: {error}") from None
    offset = _number(where, "TimeOffsetSec_Device_Camera", entry.get("TimeOffsetSec_Device_Camera", 0.0))
    return AriaCameraCalibration(label, model, (int(size[0]), int(size[1])), R, t, fov, offset, where, generation.generation)


def _camera_labels(where: str, document: dict) -> list[str]:
    cameras = _field(where, document, "CameraCalibrations")
    if not isinstance(cameras, list):
        raise AriaFormatError(f"{where}: field 'CameraCalibrations' must be a list")
    labels = []
    for index, entry in enumerate(cameras):
        labels.append(_field(where, entry, "Label", f"CameraCalibrations[{index}]."))
        if not isinstance(labels[-1], str):
            raise AriaFormatError(f"{where}: field 'CameraCalibrations[{index}].Label' must be a string, got {labels[-1]!r}")
    return labels


def _camera_entry(
    where: str, document: dict, label: str, image_sizes_key: str | None, generation: _Generation, quaternion_tolerance: float
) -> AriaCameraCalibration:
    labels = _camera_labels(where, document)
    if label not in labels:
        raise AriaFormatError(f"{where}: no camera labelled {label!r} in 'CameraCalibrations' (labels: {labels})")
    index = labels.index(label)
    size = None
    sizes = document.get(image_sizes_key) if image_sizes_key else None
    if sizes is not None:
        if not isinstance(sizes, list):
            raise AriaFormatError(f"{where}: field '{image_sizes_key}' must be a list of [width, height], got {sizes!r}")
        if len(sizes) != len(labels):
            raise AriaFormatError(f"{where}: field '{image_sizes_key}' has {len(sizes)} sizes for {len(labels)} cameras")
        size = _image_size(where, f"{image_sizes_key}[{index}]", sizes[index])
    return _camera_from_json(where, document["CameraCalibrations"][index], size, generation, quaternion_tolerance)


def _online_line_generation(where: str, labels: list[str]) -> _Generation:
    """An online calibration line names no device class: its camera labels tell (Gen1
    ``camera-slam-*``, Gen2 ``slam-*``), else its camera count as projectaria-tools decides."""
    found = online_generation(labels)
    if found.mixed:
        raise AriaFormatError(f"{where}: field 'CameraCalibrations' mixes Gen1 and Gen2 camera labels ({', '.join(found.mixed)})")
    basis = "by its camera labels" if found.by == "labels" else f"by its camera count ({len(labels)}), as projectaria-tools decides"
    return _Generation(found.generation, basis)


def read_online_calibrations(path: PathLike, label: str, *, quaternion_tolerance: float) -> tuple[np.ndarray, list[AriaCameraCalibration]]:
    """Timestamps ``(N,)`` int64 (µs, device clock) and the calibration of ``label`` on each line.

    MPS lines since June 2023 (with ``ImageSizes`` since trajectory version 1.1.0: the
    size of each camera's recorded stream, which replaces the default size but not the
    default valid radius, as projectaria-tools reads it; ``ReadoutTimesSec`` is not
    used). The earlier layout, calibrations stored as strings, is refused.
    ``quaternion_tolerance``: largest accepted ``|norm - 1|`` of ``T_Device_Camera``'s
    quaternion (setting ``take.max_quaternion_norm_error``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Aria online calibration file not found")
    stamps, calibrations = [], []
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            where = f"{path}: line {number}"
            try:
                document = json.loads(line)
            except json.JSONDecodeError as error:
                raise AriaFormatError(f"{where}: not valid JSON: {error}") from None
            stamp = _field(where, document, "tracking_timestamp_us")
            if isinstance(stamp, str):
                raise AriaFormatError(
                    f"{where}: field 'tracking_timestamp_us' is a string: the MPS online calibration layout before June 2023 "
                    "(calibrations stored as strings) is not read; use a newer MPS output or a device calibration JSON"
                )
            if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not np.isfinite(stamp):
                raise AriaFormatError(f"{where}: field 'tracking_timestamp_us' must be a number, got {stamp!r}")
            stamps.append(int(stamp))
            generation = _online_line_generation(where, _camera_labels(where, document))
            calibrations.append(_camera_entry(where, document, label, "ImageSizes", generation, quaternion_tolerance))
    if not calibrations:
        raise AriaFormatError(f"{path}: no calibration line")
    return np.array(stamps, dtype=np.int64), calibrations


def _device_generation(where: str, document: dict) -> _Generation:
    """The generation a device calibration JSON names in ``DeviceClassInfo``."""
    info = document.get("DeviceClassInfo")
    if info is None:
        return _Generation(None, "no field 'DeviceClassInfo' names the device generation")
    device_class = _field(where, info, "DeviceClass", "DeviceClassInfo.")
    build = info.get("BuildVersion")
    if not isinstance(device_class, str):
        raise AriaFormatError(f"{where}: field 'DeviceClassInfo.DeviceClass' must be a string, got {device_class!r}")
    generation = generation_of_device_class(device_class, build if isinstance(build, str) else None)
    if generation is None:
        return _Generation(None, f"field 'DeviceClassInfo.DeviceClass' {device_class!r} is no Aria generation (Aria...: Gen1, Oatmeal: Gen2)")
    if build == "SimulatedDevice":
        return _Generation(generation, "by field 'DeviceClassInfo.BuildVersion' 'SimulatedDevice', as projectaria-tools reads it")
    return _Generation(generation, f"by field 'DeviceClassInfo.DeviceClass' {device_class!r}")


def device_calibration_from_document(where: str, document, label: str, *, quaternion_tolerance: float) -> AriaCameraCalibration:
    """The ``label`` camera of a parsed device calibration JSON; ``where`` names it in messages."""
    if not isinstance(document, dict):
        raise AriaFormatError(f"{where}: the top level must be an object")
    return _camera_entry(where, document, label, None, _device_generation(where, document), quaternion_tolerance)


def read_device_calibration(path: PathLike, label: str, *, quaternion_tolerance: float) -> AriaCameraCalibration:
    """The ``label`` camera of a device calibration JSON (projectaria-tools' layout; the
    generation from ``DeviceClassInfo``); ``quaternion_tolerance`` as :func:`read_online_calibrations`."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: Aria device calibration file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AriaFormatError(f"{path}: not valid JSON: {error}") from None
    return device_calibration_from_document(str(path), document, label, quaternion_tolerance=quaternion_tolerance)


def _camera_json(calibration: AriaCameraCalibration, with_config: bool) -> dict:
    m = calibration.model
    params = [m.fx, m.cx, m.cy, *m.radial, *m.tangential, *m.thin_prism]
    q = quaternion_from_rotation(calibration.R_device_camera)
    entry = {
        "Label": calibration.label,
        "SerialNumber": "synthetic",
        "Projection": {"Name": FISHEYE624_PROJECTION, "Params": [float(v) for v in params]},
        "T_Device_Camera": {
            "Translation": [float(v) for v in calibration.t_device_camera],
            "UnitQuaternion": [float(q[3]), [float(q[0]), float(q[1]), float(q[2])]],
        },
        "TimeOffsetSec_Device_Camera": calibration.time_offset_s,
    }
    if with_config:
        fov = calibration.field_of_view
        entry["ConfigData"] = {
            "ImageWidth": calibration.image_size[0],
            "ImageHeight": calibration.image_size[1],
            "MaxSolidAngle": fov.max_angle_rad if fov.max_angle_rad is not None else float(np.pi),
        }
        if fov.valid_radius_px is not None:
            entry["ConfigData"]["ValidRadius"] = fov.valid_radius_px
    return entry


def write_online_calibration(path: PathLike, timestamps_us: Sequence[int], calibrations: Sequence[AriaCameraCalibration]) -> Path:
    """One JSON line per timestamp, as MPS writes it (``ImageSizes`` parallel to the cameras)."""
    lines = []
    for stamp, calibration in zip(timestamps_us, calibrations):
        document = {
            "tracking_timestamp_us": int(stamp),
            "utc_timestamp_ns": -1,
            "ImageSizes": [list(calibration.image_size)],
            "CameraCalibrations": [_camera_json(calibration, with_config=True)],
            "ImuCalibrations": [],  # projectaria-tools 2.3.0 fails on a file of several lines without it
        }
        lines.append(json.dumps(document, separators=(",", ":")))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def write_device_calibration(path: PathLike, calibration: AriaCameraCalibration) -> Path:
    """A device calibration JSON that projectaria-tools' ``device_calibration_from_json`` loads
    (device class Oatmeal for a Gen2 calibration, else Aria: Gen1)."""
    gen2 = calibration.generation == GEN2
    document = {
        "DeviceClassInfo": {"DeviceClass": "Oatmeal", "BuildVersion": "EVT_SS"} if gen2 else {"DeviceClass": "Aria", "BuildVersion": "DVT-S"},
        "OriginSpecification": {"Type": "Custom", "ChildLabel": "slam-front-left" if gen2 else "camera-slam-left"},
        "CameraCalibrations": [_camera_json(calibration, with_config=True)],
        "ImuCalibrations": [],
    }
    return atomic_write_text(path, json.dumps(document, indent=1) + "\n")


def nearest_calibration(timestamps_us: np.ndarray, calibrations: list[AriaCameraCalibration], time_us: float) -> AriaCameraCalibration:
    """The online calibration recorded nearest to ``time_us`` (the take's middle frame)."""
    return calibrations[int(np.argmin(np.abs(timestamps_us.astype(np.float64) - time_us)))]


# --------------------------------------------------------------------------------------
# Frame timestamps: Ego-Exo4D timesync.csv or a per-take CSV
# --------------------------------------------------------------------------------------

RGB_STREAM_ID = "214-1"
TIMESYNC_SUFFIX = f"_{RGB_STREAM_ID}_capture_timestamp_ns"
FRAME_TIMESTAMP_COLUMNS = ("frame_number", "capture_timestamp_ns")


def timesync_aria_cameras(path: PathLike) -> list[str]:
    """Aria camera ids with an RGB timestamp column in a timesync.csv (``aria01`` ...)."""
    return [column[: -len(TIMESYNC_SUFFIX)] for column in _header(Path(path)) if column.endswith(TIMESYNC_SUFFIX)]


def _integer_ns(where: str, text: str) -> float:
    text = text.strip()
    if not text or text.lower() == "nan":
        return np.nan
    try:
        return float(int(float(text))) if "." in text or "e" in text.lower() else float(int(text))
    except ValueError:
        raise AriaFormatError(f"{where}: not a timestamp in nanoseconds: {text!r}") from None


TIMESYNC_FIRST_ROWS = {
    # take frame i is data row start_idx + 1 + i: Ego-Exo4D's documentation and tutorials
    # (notebooks/egoexo/tutorials/gaze_tutorial.ipynb: range(timesync_start_idx + 1, timesync_end_idx))
    "after_start_idx": 1,
    # take frame i is data row start_idx + i: the released pose pipeline's code
    # (ego4d/internal/human_pose/main.py: timesync.iloc[timesync_start_idx:timesync_end_idx - 1])
    "start_idx": 0,
}


def read_timesync_timestamps(path: PathLike, camera: str, start_idx: int, end_idx: int, *, first_row: str) -> np.ndarray:
    """Device timestamps (ns, float64; NaN where empty) of take frames ``0 .. end - start - 2``.

    ``first_row`` (setting ``take.timesync_first_row``): ``"after_start_idx"``, take frame
    ``i`` is data row ``start_idx + 1 + i`` (0-based, header excluded; Ego-Exo4D's
    documentation and tutorials), or ``"start_idx"``, row ``start_idx + i`` (the released
    pose pipeline's code). Either way ``end - start - 1`` frames.
    """
    path = Path(path)
    if first_row not in TIMESYNC_FIRST_ROWS:
        raise ValueError(f"first_row must be one of {sorted(TIMESYNC_FIRST_ROWS)}, got {first_row!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: timesync file not found")
    column = f"{camera}{TIMESYNC_SUFFIX}"
    expected = end_idx - start_idx - 1
    if expected < 1:
        raise AriaFormatError(f"{path}: timesync_start_idx {start_idx} and timesync_end_idx {end_idx} leave no frame")
    shift = TIMESYNC_FIRST_ROWS[first_row]
    first, last = start_idx + shift, start_idx + shift + expected - 1
    with path.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.reader(stream)
        header = [name.strip() for name in next(reader, [])]
        if column not in header:
            raise AriaFormatError(f"{path}: no column '{column}' (Aria RGB columns: {timesync_aria_cameras(path)})")
        index = header.index(column)
        stamps = []
        for row_number, row in enumerate(reader):
            if row_number < first:
                continue
            if row_number > last:
                break
            where = f"{path}: line {row_number + 2}: field '{column}'"
            stamps.append(_integer_ns(where, row[index] if index < len(row) else ""))
    if len(stamps) != expected:
        rows = "timesync_start_idx + 1 .. timesync_end_idx - 1" if shift else "timesync_start_idx .. timesync_end_idx - 2"
        raise AriaFormatError(f"{path}: rows {first}..{last} ({rows}, take.timesync_first_row {first_row}) run past its {first + len(stamps)} data rows")
    return np.array(stamps, dtype=np.float64)


def write_timesync(path: PathLike, camera: str, timestamps_ns: np.ndarray, exo_names: Sequence[str], fps: float) -> Path:
    """A capture ``timesync.csv``: per row the Aria RGB timestamp and frame number and each exo
    camera's frame number; empty cells for NaN timestamps."""
    columns = [f"{camera}{TIMESYNC_SUFFIX}", f"{camera}_{RGB_STREAM_ID}_frame_number"] + [f"{name}_frame_number" for name in exo_names]
    lines = [",".join(columns)]
    for row, stamp in enumerate(np.asarray(timestamps_ns, dtype=np.float64)):
        cells = ["" if not np.isfinite(stamp) else str(int(stamp)), str(row)] + [str(row)] * len(exo_names)
        lines.append(",".join(cells))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def read_frame_timestamps(path: PathLike, num_frames: int | None = None) -> np.ndarray:
    """Per-take ``frame_number, capture_timestamp_ns`` CSV -> ``(frames,)`` ns (NaN for frames not listed)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.reader(stream)
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in FRAME_TIMESTAMP_COLUMNS if name not in header]
        if missing:
            raise AriaFormatError(f"{path}: missing column(s) {', '.join(missing)}")
        frame_index, stamp_index = header.index("frame_number"), header.index("capture_timestamp_ns")
        listed: dict[int, float] = {}
        for line, row in enumerate(reader, 2):
            if not row:
                continue
            try:
                frame = int(row[frame_index])
            except (ValueError, IndexError):
                raise AriaFormatError(f"{path}: line {line}: field 'frame_number' is not a whole number") from None
            if frame < 0 or frame in listed:
                raise AriaFormatError(f"{path}: line {line}: field 'frame_number' {frame} is negative or listed twice")
            listed[frame] = _integer_ns(f"{path}: line {line}: field 'capture_timestamp_ns'", row[stamp_index] if stamp_index < len(row) else "")
    count = num_frames if num_frames is not None else (max(listed) + 1 if listed else 0)
    stamps = np.full(count, np.nan)
    for frame, stamp in listed.items():
        if frame < count:
            stamps[frame] = stamp
    return stamps


def write_frame_timestamps(path: PathLike, timestamps_ns: np.ndarray) -> Path:
    lines = [",".join(FRAME_TIMESTAMP_COLUMNS)]
    lines += [f"{frame},{'' if not np.isfinite(stamp) else int(stamp)}" for frame, stamp in enumerate(np.asarray(timestamps_ns, dtype=np.float64))]
    return atomic_write_text(path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------
# The ego camera of every frame
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EgoPoses:
    """How the ego camera's per-frame poses were made from raw Aria inputs.

    ``status (frames,)`` int8 :data:`triangulation.poses.POSE_*` per frame;
    ``gap_s (frames,)`` seconds between the two trajectory samples used (NaN: none);
    ``timestamps_ns (frames,)`` the frame times (device clock); ``calibration`` the
    camera calibration used (already rescaled to the video); ``graph_uid``: the world
    frame of the trajectory (the MPS graph); ``timesync_first_row``: the timesync row
    convention the frame times were read with (:data:`TIMESYNC_FIRST_ROWS`), None when
    they came from elsewhere (a per-take timestamps CSV).
    """

    camera: MovingCamera
    status: np.ndarray
    gap_s: np.ndarray
    timestamps_ns: np.ndarray
    calibration: AriaCameraCalibration
    graph_uid: str
    timesync_first_row: str | None = None


def ego_camera_from_aria(
    name: str,
    trajectory: Trajectory,
    calibration: AriaCameraCalibration,
    frame_timestamps_ns: np.ndarray,
    max_gap_s: float,
) -> EgoPoses:
    """The ego camera with one world-to-camera pose per frame.

    ``T_world_camera(frame) = T_world_device(t_frame) T_device_camera``, where
    ``T_world_device`` is interpolated between the trajectory's samples around the
    frame's timestamp (``frame_timestamps_ns``, device clock, used as the public
    Ego-Exo4D code uses it: the calibration's ``TimeOffsetSec_Device_Camera`` is not
    added). Frames outside
    the trajectory, in a gap longer than ``max_gap_s`` seconds or without a timestamp
    get no pose (NaN) and their status.
    """
    query_us = np.asarray(frame_timestamps_ns, dtype=np.float64) / 1000.0
    poses = interpolate_poses(trajectory.timestamps_us.astype(np.float64), trajectory.quaternions, trajectory.translations, query_us, max_gap_s * 1e6)
    R_world_camera, t_world_camera = compose(poses.R, poses.t, calibration.R_device_camera, calibration.t_device_camera)
    R, t = invert(R_world_camera, t_world_camera)
    camera = MovingCamera(name, calibration.model, R, t, calibration.image_size, calibration.field_of_view)
    return EgoPoses(camera, poses.status, poses.gap * 1e-6, np.asarray(frame_timestamps_ns, dtype=np.float64), calibration, trajectory.graph_uid)


def pose_status_counts(status: np.ndarray) -> dict[str, int]:
    """Frames per pose status name (``ok``, ``before_trajectory`` ...), for summaries."""
    from triangulation.poses import POSE_STATUS_NAMES

    return {POSE_STATUS_NAMES[code]: int(np.count_nonzero(status == code)) for code in POSE_STATUS_NAMES if np.any(status == code) or code == POSE_OK}


# --------------------------------------------------------------------------------------
# Scene points: MPS semidense_points.csv.gz
# --------------------------------------------------------------------------------------

SEMIDENSE_COLUMNS = ("uid", "graph_uid", "px_world", "py_world", "pz_world", "inv_dist_std", "dist_std")


def read_semidense_points(path: PathLike, max_inv_dist_std: float, max_dist_std: float) -> np.ndarray:
    """World points ``(N, 3)`` (metres) of an MPS ``semidense_points.csv.gz`` (or ``.csv``) whose
    uncertainty is within ``max_inv_dist_std`` (1/m) and ``max_dist_std`` (m)."""
    import gzip

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as stream:
            header = [name.strip() for name in next(csv.reader(stream), [])]
            missing = [name for name in SEMIDENSE_COLUMNS if name not in header]
            if missing:
                raise AriaFormatError(f"{path}: missing column(s) {', '.join(missing)}")
            columns = [header.index(name) for name in SEMIDENSE_COLUMNS[2:]]
            values = np.loadtxt(stream, delimiter=",", usecols=columns, dtype=np.float64, ndmin=2)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: semidense point file not found") from None
    except (ValueError, OSError, EOFError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)  # without the path again
        raise AriaFormatError(f"{path}: {reason}") from None
    keep = np.isfinite(values).all(axis=1) & (values[:, 3] <= max_inv_dist_std) & (values[:, 4] <= max_dist_std)
    return values[keep, :3]


def write_semidense_points(path: PathLike, points: np.ndarray, inv_dist_std: np.ndarray, dist_std: np.ndarray, graph_uid: str = "0") -> Path:
    """An MPS ``semidense_points.csv.gz`` (gzip by the ``.gz`` suffix), written atomically."""
    import gzip

    from pipeline.atomic import atomic_write_bytes

    lines = [",".join(SEMIDENSE_COLUMNS)]
    lines += [
        f"{uid},{graph_uid},{x!r},{y!r},{z!r},{a!r},{b!r}"
        for uid, ((x, y, z), a, b) in enumerate(
            zip(np.asarray(points, dtype=float).tolist(), np.asarray(inv_dist_std, dtype=float).tolist(), np.asarray(dist_std, dtype=float).tolist())
        )
    ]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    return atomic_write_bytes(path, gzip.compress(data, mtime=0) if str(path).endswith(".gz") else data)
