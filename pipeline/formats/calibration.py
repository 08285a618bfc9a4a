"""Calibration readers and writers: files <-> :class:`triangulation.cameras.Camera`.

Formats (all poses become world-to-camera ``R (3, 3)``, ``t (3,)`` in metres):

- anipose / Pose2Sim TOML rig: :func:`read_toml_calibration`, :func:`write_toml_calibration`.
- Ego-Exo4D ``trajectory/gopro_calibs.csv`` (camera-to-world poses, Kannala-Brandt
  intrinsics): :func:`read_gopro_calibs_csv`, :func:`write_gopro_calibs_csv`.
- Ego-Exo4D per-take camera_pose JSON (static exo cameras and the per-frame ego
  camera): :func:`read_camera_pose_json`, :func:`write_camera_pose_json`.
- COLMAP reconstruction folder (needs pycolmap): :func:`read_colmap_reconstruction`.
- :func:`read_calibration` picks the reader from the path.

Every error is a :class:`CalibrationError` whose message starts with the file path,
then names the camera and the field as written in that file, e.g.
``calib.toml: camera 'cam02': field 'translation' contains NaN or infinite values``.
Writes are atomic (:mod:`pipeline.atomic`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import reprlib
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import numpy as np

from pipeline.atomic import atomic_write_text
from triangulation.camera_models import (
    CAMERA_MODEL_NAMES,
    CameraModel,
    CameraModelError,
    FisheyeModel,
    PinholeModel,
    distortion_vector,
    make_camera_model,
)
from triangulation.cameras import (
    CalibrationError,
    Camera,
    FieldOfView,
    MovingCamera,
    make_camera,
    rodrigues_from_rotation,
    rotation_from_quaternion,
    rotation_from_rodrigues,
)

PathLike = str | os.PathLike

# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------

_FIELD_NAME = re.compile(r"field '(\w+)'")


@contextmanager
def _errors_in(path: Path, fields: Mapping[str, str] | None = None) -> Iterator[None]:
    """Re-raise calibration errors as ``CalibrationError('<path>: ...')``.

    ``fields`` renames the field names of :mod:`triangulation` (``R``, ``t``,
    ``distortion`` ...) to the names the file uses, so messages quote the file.
    """
    try:
        yield
    except (CalibrationError, CameraModelError) as error:
        message = str(error)
        if fields:
            message = _FIELD_NAME.sub(lambda match: f"field '{fields.get(match[1], match[1])}'", message)
        raise CalibrationError(f"{path}: {message}") from None


def _required(camera: str, entry: Mapping, key: str):
    """``entry[key]``, or an error naming the camera and the missing field."""
    if key not in entry:
        raise CalibrationError(f"camera '{camera}': missing field '{key}'")
    return entry[key]


def _numbers(camera: str, field: str, value, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape`` (any shape when None).

    Strings, booleans, nulls and ragged lists are refused, naming the field.
    """
    try:
        array = np.asarray(value)
    except ValueError:
        array = np.asarray(None)  # ragged nested lists
    if array.dtype.kind not in "iuf":
        raise CalibrationError(f"camera '{camera}': field '{field}' must contain only numbers, got {reprlib.repr(value)}")
    array = array.astype(np.float64)
    if shape is not None and array.shape != shape:
        raise CalibrationError(f"camera '{camera}': field '{field}' must have shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise CalibrationError(f"camera '{camera}': field '{field}' contains NaN or infinite values")
    return array


def _image_size(camera: str, field: str, value) -> tuple[int, int]:
    """``[width, height]`` in whole pixels."""
    size = _numbers(camera, field, value, (2,))
    if np.any(size != np.round(size)) or np.any(size <= 0):
        raise CalibrationError(f"camera '{camera}': field '{field}' must be positive whole pixels, got {size.tolist()}")
    return int(size[0]), int(size[1])


def _intrinsic_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """The 3x3 K of focal lengths and principal point (pixels)."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _model_or_error(camera: str, model: str, matrix: np.ndarray, distortion: np.ndarray) -> CameraModel:
    """:func:`make_camera_model` with errors naming the camera."""
    try:
        return make_camera_model(model, matrix, distortion)
    except CameraModelError as error:
        raise CalibrationError(f"camera '{camera}': {error}") from None


def _check_unique_names(names: Iterable[str], reserved: Iterable[str] = ()) -> None:
    """Refuse a camera name used twice, or one the format keeps for itself (``metadata``)."""
    seen: set[str] = set()
    reserved = set(reserved)
    for name in names:
        if name in seen:
            raise CalibrationError(f"camera '{name}': field 'name' is used by more than one camera")
        if name in reserved:
            raise CalibrationError(f"camera '{name}': field 'name' is reserved in this format")
        seen.add(name)


def _static_camera(camera, path_kind: str) -> Camera:
    """``camera`` if it is a static :class:`Camera`, else an error (a writer got a MovingCamera)."""
    if not isinstance(camera, Camera):
        raise CalibrationError(f"camera '{getattr(camera, 'name', camera)}': {path_kind} holds static cameras only")
    return camera


def _float_text(value: float) -> str:
    """Shortest text that reads back to the same float64."""
    return repr(float(value))


# --------------------------------------------------------------------------------------
# anipose / Pose2Sim TOML
# --------------------------------------------------------------------------------------

_TOML_FIELDS = {"R": "rotation", "t": "translation", "distortion": "distortions", "image_size": "size"}
_TOML_NON_CAMERA_TABLES = frozenset({"metadata", "capture_volume", "charuco", "checkerboard"})
_TOML_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _camera_from_toml(key: str, table: Mapping) -> Camera:
    """One camera table (``key`` is its TOML table name, used when ``name`` is absent)."""
    name = table.get("name", key)
    if not isinstance(name, str) or not name:
        raise CalibrationError(f"camera '{key}': field 'name' must be a non-empty string, got {name!r}")
    fisheye = table.get("fisheye", False)
    if not isinstance(fisheye, bool):
        raise CalibrationError(f"camera '{name}': field 'fisheye' must be true or false, got {fisheye!r}")
    rotation = _numbers(name, "rotation", _required(name, table, "rotation"), (3,))
    return make_camera(
        name,
        "fisheye" if fisheye else "pinhole",
        _numbers(name, "matrix", _required(name, table, "matrix"), (3, 3)),
        _numbers(name, "distortions", _required(name, table, "distortions")),
        rotation_from_rodrigues(rotation),
        _numbers(name, "translation", _required(name, table, "translation"), (3,)),
        _image_size(name, "size", _required(name, table, "size")),
    )


def read_toml_calibration(path: PathLike) -> list[Camera]:
    """Cameras of an anipose / Pose2Sim TOML rig, in file order.

    One table per camera: ``name``, ``size [w, h]`` (pixels), ``matrix`` (3x3 K),
    ``distortions`` (OpenCV ``k1 k2 p1 p2 [k3 ...]``, or fisheye ``k1..k4`` when
    ``fisheye = true``), ``rotation`` (Rodrigues, radians) and ``translation`` (metres),
    both world-to-camera. ``[metadata]`` and board tables are skipped.
    """
    path = Path(path)
    with _errors_in(path, _TOML_FIELDS):
        try:
            with path.open("rb") as stream:
                document = tomllib.load(stream)
        except tomllib.TOMLDecodeError as error:
            raise CalibrationError(f"not a valid TOML file: {error}") from None
        cameras = [_camera_from_toml(key, table) for key, table in document.items() if key not in _TOML_NON_CAMERA_TABLES and isinstance(table, dict)]
        if not cameras:
            raise CalibrationError("no camera table found")
        _check_unique_names(camera.name for camera in cameras)
        return cameras


def _toml_value(value) -> str:
    """TOML text of a number or (nested) array of numbers."""
    array = np.asarray(value)
    if array.ndim:
        return "[ " + ", ".join(_toml_value(item) for item in array) + "]"
    return str(int(array)) if array.dtype.kind in "iu" else _float_text(array)


def _toml_key(name: str) -> str:
    """A table name: bare when possible, else a quoted (JSON-escaped, TOML-valid) string."""
    return name if _TOML_BARE_KEY.fullmatch(name) else json.dumps(name)


def _trimmed_pinhole_distortion(distortion: np.ndarray) -> np.ndarray:
    """OpenCV ``k1 k2 p1 p2 [k3 [k4 k5 k6]]`` without the trailing zero groups."""
    for length in (4, 5):
        if not np.any(distortion[length:]):
            return distortion[:length]
    return distortion


def _toml_table(camera: Camera) -> list[str]:
    """The lines of one camera table (pinhole or fisheye, known image size)."""
    camera = _static_camera(camera, "an anipose TOML rig")
    if isinstance(camera.model, PinholeModel):
        distortion = _trimmed_pinhole_distortion(camera.model.distortion)
    elif isinstance(camera.model, FisheyeModel):
        distortion = camera.model.distortion
    else:
        raise CalibrationError(f"camera '{camera.name}': field 'model' is {camera.model.name}; an anipose TOML holds pinhole or fisheye only")
    if camera.image_size is None:
        raise CalibrationError(f"camera '{camera.name}': field 'image_size' is unknown; the TOML needs 'size'")
    values = {
        "size": np.asarray(camera.image_size, dtype=np.int64),
        "matrix": camera.model.matrix,
        "distortions": distortion,
        "rotation": rodrigues_from_rotation(camera.R),
        "translation": camera.t,
    }
    lines = [f"[{_toml_key(camera.name)}]", f"name = {json.dumps(camera.name)}"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    lines += [f"fisheye = {'true' if isinstance(camera.model, FisheyeModel) else 'false'}", ""]
    return lines


def write_toml_calibration(path: PathLike, cameras: Sequence[Camera]) -> Path:
    """Write static pinhole / fisheye cameras as an anipose / Pose2Sim TOML rig.

    Numbers are written with full float64 precision; a ``[metadata]`` table
    (``adjusted = false``, ``error = 0.0``) is added as anipose does.
    """
    path = Path(path)
    with _errors_in(path):
        _check_unique_names((camera.name for camera in cameras), reserved=_TOML_NON_CAMERA_TABLES)
        lines = [line for camera in cameras for line in _toml_table(camera)]
    lines += ["[metadata]", "adjusted = false", "error = 0.0", ""]
    return atomic_write_text(path, "\n".join(lines))


# --------------------------------------------------------------------------------------
# Ego-Exo4D trajectory/gopro_calibs.csv
# --------------------------------------------------------------------------------------

KANNALA_BRANDT_TYPE = "KANNALABRANDTK3"
_GOPRO_TRANSLATION = ("tx_world_cam", "ty_world_cam", "tz_world_cam")
_GOPRO_QUATERNION = ("qx_world_cam", "qy_world_cam", "qz_world_cam", "qw_world_cam")
_GOPRO_SIZE = ("image_width", "image_height")
_GOPRO_INTRINSICS = tuple(f"intrinsics_{index}" for index in range(8))
GOPRO_COLUMNS = (
    ("cam_uid", "graph_uid", *_GOPRO_TRANSLATION, *_GOPRO_QUATERNION, *_GOPRO_SIZE, "intrinsics_type")
    + _GOPRO_INTRINSICS
    + ("start_frame_idx", "end_frame_idx", "quality")
)
_GOPRO_REQUIRED = GOPRO_COLUMNS[:-3]  # the frame range and quality are not needed to build a camera
GOPRO_NOT_LOCALIZED = 0  # ``quality`` of a camera the capture's localisation failed for (its pose is invalid)
_GOPRO_FIELDS = {"distortion": "intrinsics_4..intrinsics_7"}
_QUATERNION_NORM_TOLERANCE = 1e-3


def _row_numbers(camera: str, row: Mapping[str, str], columns: Sequence[str]) -> np.ndarray:
    """Finite float64 values ``(len(columns),)`` of CSV cells, errors naming the column."""
    values = np.empty(len(columns))
    for index, column in enumerate(columns):
        text = row.get(column)
        try:
            values[index] = float(text)
        except (TypeError, ValueError):
            raise CalibrationError(f"camera '{camera}': field '{column}' is not a number: {text!r}") from None
        if not np.isfinite(values[index]):
            raise CalibrationError(f"camera '{camera}': field '{column}' is NaN or infinite: {text!r}")
    return values


def read_gopro_graph_uid(path: PathLike) -> str | None:
    """The world frame (``graph_uid``) of a ``gopro_calibs.csv``'s localized cameras; None
    when the column is absent or empty. Cameras in several worlds are refused."""
    path = Path(path)
    with _errors_in(path), path.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream, skipinitialspace=True)
        reader.fieldnames = [column.strip() for column in reader.fieldnames or ()]
        worlds: dict[str, list[str]] = {}
        for row in reader:
            uid = (row.get("graph_uid") or "").strip()
            if uid and not _not_localized(row):
                worlds.setdefault(uid, []).append((row.get("cam_uid") or "").strip())
        if len(worlds) > 1:
            listed = "; ".join(f"{uid!r}: {', '.join(cameras)}" for uid, cameras in worlds.items())
            raise CalibrationError(f"field 'graph_uid': the cameras are in several worlds ({listed})")
    return next(iter(worlds), None)


def _camera_from_gopro_row(row: Mapping[str, str], line: int) -> Camera:
    """One CSV row (``line``: its line number, for an empty ``cam_uid``) -> camera."""
    name = (row.get("cam_uid") or "").strip()
    if not name:
        raise CalibrationError(f"line {line}: field 'cam_uid' is empty")
    intrinsics_type = (row.get("intrinsics_type") or "").strip()
    if intrinsics_type != KANNALA_BRANDT_TYPE:
        raise CalibrationError(f"camera '{name}': field 'intrinsics_type' is {intrinsics_type!r}, only {KANNALA_BRANDT_TYPE!r} is supported")
    quaternion = _row_numbers(name, row, _GOPRO_QUATERNION)
    if abs(np.linalg.norm(quaternion) - 1.0) > _QUATERNION_NORM_TOLERANCE:
        raise CalibrationError(f"camera '{name}': field '{'/'.join(_GOPRO_QUATERNION)}' is not a unit quaternion (norm {np.linalg.norm(quaternion):.6g})")
    rotation_world_cam = rotation_from_quaternion(quaternion)
    translation_world_cam = _row_numbers(name, row, _GOPRO_TRANSLATION)
    intrinsics = _row_numbers(name, row, _GOPRO_INTRINSICS)
    return make_camera(
        name,
        "fisheye",
        _intrinsic_matrix(*intrinsics[:4]),
        intrinsics[4:],
        rotation_world_cam.T,
        -rotation_world_cam.T @ translation_world_cam,
        _image_size(name, "image_width/image_height", _row_numbers(name, row, _GOPRO_SIZE)),
    )


def _not_localized(row: Mapping[str, str]) -> bool:
    """The row's ``quality`` says the camera was not localized (absent or -1: unknown, kept)."""
    text = (row.get("quality") or "").strip()
    try:
        return int(float(text)) == GOPRO_NOT_LOCALIZED if text else False
    except ValueError:
        raise CalibrationError(f"camera '{row.get('cam_uid')}': field 'quality' is not a number: {text!r}") from None


def read_gopro_calibs_csv(path: PathLike, with_excluded: bool = False):
    """Static fisheye cameras of an Ego-Exo4D ``gopro_calibs.csv``, in row order.

    The file's pose is camera-to-world (``t_world_cam``, quaternion x y z w); it is
    inverted here. ``intrinsics_0..7`` = ``fx fy cx cy k1 k2 k3 k4`` (pixels,
    Kannala-Brandt). The camera name is ``cam_uid``; the frame range is ignored. Rows
    with ``quality`` 0 (not localized, as the Ego-Exo4D tutorials skip them) are left
    out; ``with_excluded`` also returns their names: ``(cameras, excluded)``.
    """
    path = Path(path)
    with _errors_in(path, _GOPRO_FIELDS):
        with path.open(newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream, skipinitialspace=True)
            header = [column.strip() for column in reader.fieldnames or ()]
            missing = [column for column in _GOPRO_REQUIRED if column not in header]
            if missing:
                raise CalibrationError(f"missing column(s) {', '.join(repr(c) for c in missing)}")
            reader.fieldnames = header
            rows = list(enumerate(reader, start=2))
        excluded = [(row.get("cam_uid") or "").strip() for _, row in rows if _not_localized(row)]
        cameras = [_camera_from_gopro_row(row, line) for line, row in rows if not _not_localized(row)]
        if not cameras:
            raise CalibrationError("no camera rows" + (f" (not localized: {', '.join(excluded)})" if excluded else ""))
        _check_unique_names(camera.name for camera in cameras)
        return (cameras, excluded) if with_excluded else cameras


def _gopro_row(camera: Camera, graph_uid: str, start_frame_idx: int | None, end_frame_idx: int | None) -> list[str]:
    """The CSV cells of one fisheye camera, in :data:`GOPRO_COLUMNS` order."""
    from scipy.spatial.transform import Rotation

    camera = _static_camera(camera, "gopro_calibs.csv")
    if not isinstance(camera.model, FisheyeModel):
        raise CalibrationError(
            f"camera '{camera.name}': field 'model' is {camera.model.name}; gopro_calibs.csv holds fisheye ({KANNALA_BRANDT_TYPE}) cameras only"
        )
    if camera.image_size is None:
        raise CalibrationError(f"camera '{camera.name}': field 'image_size' is unknown; gopro_calibs.csv needs it")
    model = camera.model
    quaternion = Rotation.from_matrix(camera.R.T).as_quat()  # x, y, z, w of world_from_cam
    numbers = [*camera.center, *quaternion]
    intrinsics = [model.fx, model.fy, model.cx, model.cy, *model.distortion]
    frame_range = (-1, -1) if start_frame_idx is None or end_frame_idx is None else (start_frame_idx, end_frame_idx)
    return (
        [camera.name, graph_uid]
        + [_float_text(value) for value in numbers]
        + [str(size) for size in camera.image_size]
        + [KANNALA_BRANDT_TYPE]
        + [_float_text(value) for value in intrinsics]
        + [str(int(index)) for index in frame_range]
        + ["1"]
    )


def write_gopro_calibs_csv(
    path: PathLike,
    cameras: Sequence[Camera],
    start_frame_idx: int | None = None,
    end_frame_idx: int | None = None,
    graph_uid: str = "0",
) -> Path:
    """Write static fisheye cameras as an Ego-Exo4D ``gopro_calibs.csv`` (projectaria-tools reads it).

    ``graph_uid``: the world frame (the Aria trajectory's); a frame range of None writes
    ``-1, -1`` (the pose holds for the whole video); ``quality`` is 1 (localized).
    """
    path = Path(path)
    with _errors_in(path):
        _check_unique_names(camera.name for camera in cameras)
        rows = [_gopro_row(camera, graph_uid, start_frame_idx, end_frame_idx) for camera in cameras]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(GOPRO_COLUMNS)
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


# --------------------------------------------------------------------------------------
# Ego-Exo4D camera_pose JSON
# --------------------------------------------------------------------------------------

_JSON_FIELDS = {
    "R": "camera_extrinsics",
    "t": "camera_extrinsics",
    "matrix": "camera_intrinsics",
    "distortion": "distortion_coeffs",
    "radial": "distortion_coeffs",
    "tangential": "distortion_coeffs",
    "thin_prism": "distortion_coeffs",
}


def _json_field_of_view(name: str, entry: Mapping) -> FieldOfView | None:
    """Our optional ``valid_radius_px`` / ``max_angle_rad`` keys (the fisheye's valid area)."""
    values = {}
    for key in ("valid_radius_px", "max_angle_rad"):
        value = entry.get(key)
        if value is not None:
            number = _numbers(name, key, value, ())
            if not number > 0:
                raise CalibrationError(f"camera '{name}': field '{key}' must be positive, got {value!r}")
            values[key] = float(number)
    return FieldOfView(values.get("valid_radius_px"), values.get("max_angle_rad")) if values else None


def _json_intrinsics(name: str, entry: Mapping) -> tuple[CameraModel, tuple[int, int] | None]:
    """Model and image size of one camera entry (our extension keys are optional)."""
    model = entry.get("camera_model", "pinhole")
    if model not in CAMERA_MODEL_NAMES:
        raise CalibrationError(f"camera '{name}': field 'camera_model' must be one of {CAMERA_MODEL_NAMES}, got {model!r}")
    matrix = _numbers(name, "camera_intrinsics", _required(name, entry, "camera_intrinsics"), (3, 3))
    distortion = _numbers(name, "distortion_coeffs", entry.get("distortion_coeffs", []))
    size = entry.get("image_size")
    image_size = None if size is None else _image_size(name, "image_size", size)
    return _model_or_error(name, model, matrix, distortion), image_size


def _frame_number(name: str, key: str) -> int:
    """A non-negative frame number from a ``camera_extrinsics`` key."""
    try:
        frame = int(key)
    except ValueError:
        frame = -1
    if frame < 0:
        raise CalibrationError(f"camera '{name}': field 'camera_extrinsics' has an invalid frame key {key!r}")
    return frame


def _moving_camera_from_json(name: str, entry: Mapping, extrinsics: Mapping) -> MovingCamera:
    """The ego camera: frames 0..max listed frame, NaN pose for unlisted (or null) frames."""
    listed = {_frame_number(name, key): value for key, value in extrinsics.items() if value is not None}
    if len(listed) != sum(value is not None for value in extrinsics.values()):
        raise CalibrationError(f"camera '{name}': field 'camera_extrinsics' lists a frame twice")
    if not listed:
        raise CalibrationError(f"camera '{name}': field 'camera_extrinsics' lists no frame")
    frames = np.fromiter(listed, dtype=np.int64, count=len(listed))
    poses = _numbers(name, "camera_extrinsics", list(listed.values()), (len(listed), 3, 4))
    rotation = np.full((frames.max() + 1, 3, 3), np.nan)
    translation = np.full((frames.max() + 1, 3), np.nan)
    rotation[frames] = poses[:, :, :3]
    translation[frames] = poses[:, :, 3]
    model, image_size = _json_intrinsics(name, entry)
    return MovingCamera(name, model, rotation, translation, image_size, _json_field_of_view(name, entry))


def _static_camera_from_json(name: str, entry: Mapping, extrinsics) -> Camera:
    """An exo camera: ``extrinsics`` is one 3x4 world-to-camera ``[R | t]``; with our
    ``raw_camera`` key (an export whose exo entries describe undistorted frames), the raw
    video's model from it."""
    pose = _numbers(name, "camera_extrinsics", extrinsics, (3, 4))
    raw = entry.get("raw_camera")
    if raw is not None and not isinstance(raw, Mapping):
        raise CalibrationError(f"camera '{name}': field 'raw_camera' must be an object, got {reprlib.repr(raw)}")
    model, image_size = _json_intrinsics(name, entry if raw is None else raw)
    return Camera(name, model, pose[:, :3], pose[:, 3], image_size, _json_field_of_view(name, entry))


def read_camera_pose_json(path: PathLike) -> tuple[list[Camera], MovingCamera | None, dict]:
    """Exo cameras (file order), the ego camera (or None) and the metadata of a camera_pose JSON.

    Each camera entry has ``camera_intrinsics`` (3x3 K) and ``camera_extrinsics``: a
    3x4 world-to-camera ``[R | t]`` (static), or ``{"<frame>": 3x4}`` for the ego
    camera. Optional ``camera_model``, ``distortion_coeffs``, ``image_size``,
    ``valid_radius_px`` and ``max_angle_rad`` (our extension); without them a camera is
    an undistorted pinhole of unknown image size (as the release's ego frame). An exo
    entry with our ``raw_camera`` key (the same keys, for the raw video; export writes it
    where the entry itself describes the undistorted frame of the 2D) is read from it.
    """
    path = Path(path)
    with _errors_in(path, _JSON_FIELDS):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CalibrationError(f"not a valid JSON file: {error}") from None
        if not isinstance(document, dict):
            raise CalibrationError("the top level must be an object of cameras")
        metadata = document.get("metadata", {})
        if not isinstance(metadata, dict):
            raise CalibrationError(f"field 'metadata' must be an object, got {reprlib.repr(metadata)}")
        exo, ego = [], []
        for name, entry in document.items():
            if name == "metadata":
                continue
            if not isinstance(entry, dict):
                raise CalibrationError(f"camera '{name}': must be an object with 'camera_intrinsics' and 'camera_extrinsics'")
            extrinsics = _required(name, entry, "camera_extrinsics")
            if isinstance(extrinsics, dict):
                ego.append(_moving_camera_from_json(name, entry, extrinsics))
            else:
                exo.append(_static_camera_from_json(name, entry, extrinsics))
        if len(ego) > 1:
            raise CalibrationError(f"more than one camera with per-frame extrinsics: {[c.name for c in ego]}")
        if not exo and not ego:
            raise CalibrationError("no camera entry")
        return exo, (ego[0] if ego else None), metadata


def _json_entry(camera: Camera | MovingCamera, extrinsics) -> dict:
    """One camera entry, with our extension keys."""
    entry = {
        "camera_intrinsics": camera.model.matrix.tolist(),
        "camera_extrinsics": extrinsics,
        "camera_model": camera.model.name,
        "distortion_coeffs": distortion_vector(camera.model).tolist(),
        "image_size": None if camera.image_size is None else list(camera.image_size),
    }
    fov = camera.field_of_view
    if fov is not None:
        entry.update(valid_radius_px=fov.valid_radius_px, max_angle_rad=fov.max_angle_rad)
    return entry


def _pose_matrices(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``[R | t]`` ``(..., 3, 4)`` from ``R (..., 3, 3)``, ``t (..., 3)``."""
    return np.concatenate([R, t[..., None]], axis=-1)


def camera_pose_document(
    exo_cameras: Sequence[Camera],
    ego: MovingCamera | None = None,
    metadata: Mapping | None = None,
) -> dict:
    """The camera_pose JSON document (with our extension keys always present); errors name
    the camera and field, never a file (the caller knows where it goes).

    The ego camera lists only its frames with a pose; it needs at least one.
    """
    cameras = [_static_camera(camera, "the exo camera list") for camera in exo_cameras]
    _check_unique_names([c.name for c in cameras] + ([ego.name] if ego else []), reserved=("metadata",))
    document: dict = {"metadata": dict(metadata or {})}
    for camera in cameras:
        pose = _pose_matrices(camera.R, camera.t).tolist()
        document[camera.name] = _json_entry(camera, pose)
    if ego is not None:
        frames = np.flatnonzero(ego.valid_frames)
        if frames.size == 0:
            raise CalibrationError(f"camera '{ego.name}': field 'R' has no frame with a pose")
        poses = _pose_matrices(ego.R[frames], ego.t[frames])
        extrinsics = {str(frame): pose.tolist() for frame, pose in zip(frames.tolist(), poses)}
        document[ego.name] = _json_entry(ego, extrinsics)
    return document


def write_camera_pose_json(
    path: PathLike,
    exo_cameras: Sequence[Camera],
    ego: MovingCamera | None = None,
    metadata: Mapping | None = None,
) -> Path:
    """Write :func:`camera_pose_document` to ``path`` (errors name the file)."""
    path = Path(path)
    with _errors_in(path):
        document = camera_pose_document(exo_cameras, ego, metadata)
    return atomic_write_text(path, json.dumps(document, allow_nan=False) + "\n")


# --------------------------------------------------------------------------------------
# COLMAP reconstruction (pycolmap)
# --------------------------------------------------------------------------------------

# COLMAP model -> (our model, indices of fx fy cx cy in params, indices of the distortion).
_COLMAP_MODELS: dict[str, tuple[str, tuple[int, ...], tuple[int, ...]]] = {
    "SIMPLE_PINHOLE": ("pinhole", (0, 0, 1, 2), ()),
    "PINHOLE": ("pinhole", (0, 1, 2, 3), ()),
    "SIMPLE_RADIAL": ("pinhole", (0, 0, 1, 2), (3,)),
    "RADIAL": ("pinhole", (0, 0, 1, 2), (3, 4)),
    "OPENCV": ("pinhole", (0, 1, 2, 3), (4, 5, 6, 7)),
    "FULL_OPENCV": ("pinhole", (0, 1, 2, 3), tuple(range(4, 12))),
    "OPENCV_FISHEYE": ("fisheye", (0, 1, 2, 3), (4, 5, 6, 7)),
    "RAD_TAN_THIN_PRISM_FISHEYE": ("fisheye624", (0, 1, 2, 3), tuple(range(4, 16))),
}
_COLMAP_FILES = tuple(tuple(f"{part}.{ext}" for part in ("cameras", "images", "points3D")) for ext in ("bin", "txt"))


def is_colmap_folder(path: PathLike) -> bool:
    """True when ``path`` is a folder holding a COLMAP sparse model (binary or text)."""
    path = Path(path)
    return path.is_dir() and any(all((path / name).is_file() for name in names) for names in _COLMAP_FILES)


def _import_pycolmap():
    """The pycolmap module, or an ImportError telling to install the ``colmap`` extra."""
    try:
        import pycolmap
    except ImportError as error:
        raise ImportError("reading a COLMAP reconstruction needs pycolmap: pip install 'egoexo-pose-gt[colmap]'") from error
    return pycolmap


COLMAP_PIXEL_OFFSET = 0.5  # COLMAP pixel coordinates minus OpenCV pixel coordinates, pixels


def _colmap_intrinsics(image_name: str, camera) -> tuple[str, np.ndarray, np.ndarray]:
    """Our model name, K and distortion vector of a pycolmap camera."""
    model_name = getattr(camera.model, "name", str(camera.model))
    if model_name not in _COLMAP_MODELS:
        raise CalibrationError(f"camera '{image_name}': field 'model' is COLMAP {model_name}, supported: {', '.join(_COLMAP_MODELS)}")
    model, intrinsic_indices, distortion_indices = _COLMAP_MODELS[model_name]
    params = _numbers(image_name, "params", camera.params)
    expected = 1 + max(intrinsic_indices + distortion_indices)
    if params.shape != (expected,):
        raise CalibrationError(f"camera '{image_name}': field 'params' of {model_name} must have {expected} values, got {params.size}")
    distortion = params[list(distortion_indices)]
    if model == "pinhole" and 0 < distortion.size < 4:
        distortion = np.concatenate([distortion, np.zeros(4 - distortion.size)])  # k1 [k2] -> k1 k2 p1 p2
    fx, fy, cx, cy = params[list(intrinsic_indices)]
    # COLMAP puts the centre of the top-left pixel at (0.5, 0.5), OpenCV (and every
    # detector and calibration format here) at (0, 0).
    return model, _intrinsic_matrix(fx, fy, cx - COLMAP_PIXEL_OFFSET, cy - COLMAP_PIXEL_OFFSET), distortion


def _colmap_camera(image, camera) -> Camera:
    """Our camera of one registered pycolmap image and its pycolmap camera."""
    name = str(PurePosixPath(image.name).with_suffix(""))
    pose = image.cam_from_world
    pose = pose() if callable(pose) else pose  # a method in pycolmap 4 (rigs and frames), a property before
    model, matrix, distortion = _colmap_intrinsics(name, camera)
    return make_camera(
        name,
        model,
        matrix,
        distortion,
        np.asarray(pose.rotation.matrix()),
        np.asarray(pose.translation).reshape(3),
        (int(camera.width), int(camera.height)),
    )


def read_colmap_reconstruction(path: PathLike) -> list[Camera]:
    """One static camera per registered image of a COLMAP sparse model folder.

    Cameras are named after the image name without its extension (sub-folders kept,
    e.g. ``cam01/0001``) and sorted by name. The principal point is moved from
    COLMAP's pixel convention (the centre of the top-left pixel is (0.5, 0.5)) to
    OpenCV's ((0, 0)), the one of detectors and of the other formats: projections are
    pycolmap's minus 0.5 px. Needs the ``colmap`` extra (pycolmap).
    """
    path = Path(path)
    with _errors_in(path):
        if not is_colmap_folder(path):
            raise CalibrationError("not a COLMAP model folder (needs cameras, images and points3D .bin or .txt files)")
        pycolmap = _import_pycolmap()
        try:
            reconstruction = pycolmap.Reconstruction(str(path))
        except Exception as error:  # pycolmap raises plain RuntimeError / ValueError
            raise CalibrationError(f"pycolmap cannot read the reconstruction: {error}") from None
        images = [reconstruction.images[image_id] for image_id in reconstruction.reg_image_ids()]
        cameras = [_colmap_camera(image, reconstruction.cameras[image.camera_id]) for image in images]
        cameras.sort(key=lambda camera: camera.name)
        if not cameras:
            raise CalibrationError("no registered image")
        _check_unique_names(camera.name for camera in cameras)
        return cameras


# --------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------


def read_calibration(path: PathLike) -> list[Camera]:
    """Static cameras from any supported calibration, chosen from the path.

    ``.toml`` (anipose / Pose2Sim), ``.csv`` (Ego-Exo4D gopro_calibs), ``.json``
    (camera_pose: the exo cameras only, use :func:`read_camera_pose_json` for the ego
    camera) or a COLMAP model folder.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such calibration file or folder")
    if path.is_dir():
        return read_colmap_reconstruction(path)
    readers = {
        ".toml": read_toml_calibration,
        ".csv": read_gopro_calibs_csv,
        ".json": lambda json_path: read_camera_pose_json(json_path)[0],
    }
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise CalibrationError(
            f"{path}: unknown calibration format {path.suffix!r} (expected .toml, gopro_calibs .csv, camera_pose .json or a COLMAP model folder)"
        )
    return reader(path)
