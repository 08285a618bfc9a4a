"""OpenPose JSON keypoint files <-> 59-joint 2D arrays.

One file per camera and frame::

    {"version": 1.3, "people": [{"person_id": [-1],
      "pose_keypoints_2d": [x, y, c, ...], "face_keypoints_2d": [],
      "hand_left_keypoints_2d": [63 numbers], "hand_right_keypoints_2d": [63 numbers],
      "pose_keypoints_3d": [], "face_keypoints_3d": [], "hand_left_keypoints_3d": [],
      "hand_right_keypoints_3d": []}]}

Arrays follow the project's contract: float32 ``(..., 59, 3)`` = x, y (pixels),
confidence, joints in :data:`fitting.skeleton.JOINT_NAMES` order, NaN where missing.
In the files a missing keypoint is ``0, 0, 0`` (OpenPose convention); on reading, a
keypoint whose confidence is 0 (or not finite) is missing. An empty ``people`` list,
an empty person or a missing frame file is a frame with every joint missing. When a
file lists several people, :func:`read_openpose_folder` reads ``people[0]`` and
:func:`read_openpose_people_folder` reads them all, ``(frames, people, 59, 3)``, for
:mod:`detection.people` to choose the camera wearer.

Body layouts of ``pose_keypoints_2d`` (:data:`BODY_LAYOUTS`): ``COCO_17``,
``COCO_18`` (OpenPose's COCO model, with a neck), ``BODY_25``, ``BODY_25B`` and
``COCO_WHOLEBODY_133`` (whose points 91-111 / 112-132 are the left / right hand, used
when the hand arrays are empty). The layout is inferred from the number of points
except for 25, which is either BODY_25 or BODY_25B: pass ``layout``. The hand arrays
use the OpenPose hand order, which is ours.

File names: OpenPose's ``<prefix>_<frame:012d>_keypoints.json`` and Pose2Sim's
``<camera>.<frame:04d>.json``; the frame number is the last group of digits of the
name. Writing a folder is atomic (files go to a temporary sibling folder that then
replaces the destination).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from fitting import skeleton
from pipeline.atomic import atomic_write_text

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

OPENPOSE_VERSION = 1.3

# Index in each layout of the 17 COCO body joints (in COCO order).
BODY_LAYOUTS: dict[str, tuple[int, ...]] = {
    "COCO_17": tuple(range(17)),
    "BODY_25B": tuple(range(17)),
    "COCO_WHOLEBODY_133": tuple(range(17)),
    # nose, l/r eye, l/r ear, l/r shoulder, l/r elbow, l/r wrist, l/r hip, l/r knee, l/r ankle
    "BODY_25": (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11),
    "COCO_18": (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10),
}
LAYOUT_POINTS: dict[str, int] = {"COCO_17": 17, "COCO_18": 18, "BODY_25": 25, "BODY_25B": 25, "COCO_WHOLEBODY_133": 133}
_LAYOUT_ALIASES = {"COCO": "COCO_17", "WHOLEBODY": "COCO_WHOLEBODY_133", "COCO_WHOLEBODY": "COCO_WHOLEBODY_133"}
_INFERRED = {17: "COCO_17", 18: "COCO_18", 133: "COCO_WHOLEBODY_133"}
_WHOLEBODY_HANDS = {"hand_left_keypoints_2d": 91, "hand_right_keypoints_2d": 112}
_HAND_FIELDS = {"hand_left_keypoints_2d": skeleton.LEFT_HAND, "hand_right_keypoints_2d": skeleton.RIGHT_HAND}
_EMPTY_FIELDS = ("face_keypoints_2d",)
_EMPTY_3D_FIELDS = ("pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d", "hand_right_keypoints_3d")
_LAST_DIGITS = re.compile(r"(\d+)(?!.*\d)")


class OpenPoseFormatError(ValueError):
    """A malformed OpenPose file; the message names the file and the field."""


def normalize_layout(layout: str) -> str:
    """Canonical body layout name (case-insensitive, ``-`` or ``_``, aliases ``COCO``, ``WHOLEBODY``)."""
    name = layout.strip().upper().replace("-", "_")
    name = _LAYOUT_ALIASES.get(name, name)
    if name not in BODY_LAYOUTS:
        raise ValueError(f"unknown OpenPose body layout {layout!r}, expected one of {sorted(BODY_LAYOUTS)}")
    return name


def openpose_file_name(prefix: str, frame: int) -> str:
    """OpenPose's file name ``<prefix>_<frame:012d>_keypoints.json``."""
    return f"{prefix}_{frame:012d}_keypoints.json"


def frame_number(name: str) -> int:
    """Frame number of a keypoint file: the last group of digits of its name."""
    match = _LAST_DIGITS.search(os.path.basename(name))
    if match is None:
        raise OpenPoseFormatError(f"{name}: no frame number in the file name")
    return int(match.group(1))


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def _format_numbers(values: np.ndarray) -> str:
    """JSON list of float32 values with 9 significant digits (enough to read back exactly)."""
    return "[" + ", ".join(f"{value:.9g}" for value in np.asarray(values, dtype=np.float32).tolist()) + "]"


def _flat_keypoints(points: np.ndarray) -> np.ndarray:
    """``(K, 3)`` float32 with NaN -> flat ``(3K,)`` with missing keypoints as 0, 0, 0."""
    points = np.asarray(points, dtype=np.float32)
    missing = ~np.all(np.isfinite(points), axis=-1)
    return np.where(missing[:, None], np.float32(0), points).reshape(-1)


def _person_text(keypoints: np.ndarray) -> str:
    """JSON object of one person from ``keypoints (59, 3)``."""
    parts = ['"person_id": [-1]', f'"pose_keypoints_2d": {_format_numbers(_flat_keypoints(keypoints[skeleton.BODY]))}']
    parts += [f'"{name}": []' for name in _EMPTY_FIELDS]
    parts += [f'"{name}": {_format_numbers(_flat_keypoints(keypoints[part]))}' for name, part in _HAND_FIELDS.items()]
    parts += [f'"{name}": []' for name in _EMPTY_3D_FIELDS]
    return "{" + ", ".join(parts) + "}"


def openpose_text(keypoints: np.ndarray) -> str:
    """OpenPose JSON text of one frame from ``keypoints (59, 3)`` or ``(people, 59, 3)``.

    Each person is a COCO-17 body + two hands, written in the given order; a person
    whose every joint is missing is left out (so an empty frame has an empty ``people``
    list).
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    people = keypoints[None] if keypoints.ndim == 2 else keypoints
    if people.ndim != 3 or people.shape[1:] != (skeleton.NUM_JOINTS, 3):
        raise ValueError(f"keypoints must have shape ({skeleton.NUM_JOINTS}, 3) or (people, {skeleton.NUM_JOINTS}, 3), got {keypoints.shape}")
    present = np.any(np.all(np.isfinite(people), axis=-1), axis=-1)
    texts = [_person_text(person) for person in people[present]]  # one JSON object per person
    return f'{{"version": {OPENPOSE_VERSION}, "people": [{", ".join(texts)}]}}\n'


def write_openpose_frame(path: PathLike, keypoints: np.ndarray) -> Path:
    """Write one frame's ``keypoints (59, 3)`` (or ``(people, 59, 3)``) to ``path`` atomically."""
    return atomic_write_text(path, openpose_text(keypoints))


def write_openpose_folder(folder: PathLike, keypoints: np.ndarray, prefix: str) -> list[Path]:
    """Write every frame of ``keypoints (frames, 59, 3)`` as ``<prefix>_<frame:012d>_keypoints.json``.

    The files are written into a temporary sibling folder that then replaces
    ``folder`` (an existing folder is removed), so a reader never sees a half-written
    set. Returns the paths written, in frame order.
    """
    folder = Path(folder)
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (skeleton.NUM_JOINTS, 3):
        raise ValueError(f"keypoints must have shape (frames, {skeleton.NUM_JOINTS}, 3), got {keypoints.shape}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        names = [openpose_file_name(prefix, frame) for frame in range(keypoints.shape[0])]
        for name, frame_keypoints in zip(names, keypoints):  # one file per frame
            (staging / name).write_text(openpose_text(frame_keypoints), encoding="utf-8")
        _replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [folder / name for name in names]


def _replace_folder(source: Path, destination: Path) -> None:
    """Move ``source`` to ``destination``, removing what was there."""
    if destination.exists():
        retired = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".old"))
        os.replace(destination, retired / destination.name)
        os.replace(source, destination)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(source, destination)


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def _keypoint_array(path: Path, field: str, values, allowed: tuple[int, ...] | None) -> np.ndarray:
    """``(K, 3)`` float64 from a flat list; ``allowed``: accepted point counts (None: any).

    The list goes to numpy whole (fast); anything but numbers (strings, nulls, nested
    lists, booleans: refused by the caller's scan of the text) is refused, naming the field.
    """
    try:
        points = np.array(values) if type(values) is list and values else np.zeros(0)
    except ValueError:  # ragged nested lists
        points = None
    if type(values) is not list or points is None or points.ndim != 1 or points.dtype.kind not in "iuf":
        raise OpenPoseFormatError(f"{path}: field '{field}' must be a list of numbers")
    points = points.astype(np.float64)
    if len(values) % 3:
        raise OpenPoseFormatError(f"{path}: field '{field}' must hold x, y, confidence triples, got {len(values)} numbers")
    count = len(values) // 3
    if allowed is not None and count not in allowed:
        expected = " or ".join(str(3 * n) for n in allowed)
        raise OpenPoseFormatError(f"{path}: field '{field}' must hold {expected} numbers, got {len(values)}")
    points = points.reshape(count, 3)
    missing = ~np.all(np.isfinite(points), axis=1) | (points[:, 2] == 0)
    points[missing] = np.nan
    return points


def _body_layout(path: Path, field: str, count: int, layout: str | None) -> str:
    if layout is not None:
        if count != LAYOUT_POINTS[layout]:
            raise OpenPoseFormatError(f"{path}: field '{field}' has {count} keypoints, layout {layout} has {LAYOUT_POINTS[layout]}")
        return layout
    if count == 25:
        raise OpenPoseFormatError(f"{path}: field '{field}' has 25 keypoints: BODY_25 or BODY_25B, pass the layout")
    if count not in _INFERRED:
        raise OpenPoseFormatError(f"{path}: field '{field}' has {count} keypoints, expected one of {sorted(set(LAYOUT_POINTS.values()))}")
    return _INFERRED[count]


def _people(document, path: Path) -> list:
    """The ``people`` list of a parsed document (checked)."""
    if not isinstance(document, dict):
        raise OpenPoseFormatError(f"{path}: the top level must be an object with a 'people' list")
    people = document.get("people")
    if not isinstance(people, list):
        raise OpenPoseFormatError(f"{path}: field 'people' must be a list, got {type(people).__name__}")
    return people


def _parse_person(person, index: int, path: Path, layout: str | None, out: np.ndarray) -> None:
    """Fill ``out (59, 3)`` (NaN on entry) from ``people[index]`` of the file ``path``."""
    name = f"people[{index}]"
    if not isinstance(person, dict):
        raise OpenPoseFormatError(f"{path}: field '{name}' must be an object")
    field = f"{name}.pose_keypoints_2d"
    body = _keypoint_array(path, field, person.get("pose_keypoints_2d", []), None)
    body_layout = None
    if len(body):
        body_layout = _body_layout(path, field, len(body), layout)
        out[skeleton.BODY] = body[list(BODY_LAYOUTS[body_layout])]
    for field, part in _HAND_FIELDS.items():
        hand = _keypoint_array(path, f"{name}.{field}", person.get(field, []), (0, skeleton.NUM_HAND_JOINTS))
        if len(hand):
            out[part] = hand
        elif body_layout == "COCO_WHOLEBODY_133":
            start = _WHOLEBODY_HANDS[field]
            out[part] = body[start : start + skeleton.NUM_HAND_JOINTS]


def parse_openpose(document, path: PathLike = "<document>", layout: str | None = None) -> np.ndarray:
    """``(59, 3)`` float32 (NaN = missing) from a parsed OpenPose JSON document (``people[0]``)."""
    path = Path(path)
    layout = None if layout is None else normalize_layout(layout)
    result = np.full((skeleton.NUM_JOINTS, 3), np.nan, dtype=np.float32)
    people = _people(document, path)
    if people:
        _parse_person(people[0], 0, path, layout, result)
    return result


def parse_openpose_people(document, path: PathLike = "<document>", layout: str | None = None) -> np.ndarray:
    """``(people, 59, 3)`` float32 (NaN = missing) of every person of a parsed document, in file order.

    An empty ``people`` list gives ``(0, 59, 3)``; an empty person is a row of NaN.
    """
    path = Path(path)
    layout = None if layout is None else normalize_layout(layout)
    people = _people(document, path)
    result = np.full((len(people), skeleton.NUM_JOINTS, 3), np.nan, dtype=np.float32)
    for index, person in enumerate(people):  # a few people per file
        _parse_person(person, index, path, layout, result[index])
    return result


_BOOLEAN = re.compile(r"\btrue\b|\bfalse\b")


def _load_json(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise OpenPoseFormatError(f"{path}: not valid JSON: {error}") from None
    if ("true" in text or "false" in text) and _BOOLEAN.search(text):
        raise OpenPoseFormatError(f"{path}: holds a boolean where OpenPose writes numbers")
    return document


def read_openpose_file(path: PathLike, layout: str | None = None) -> np.ndarray:
    """``(59, 3)`` float32 keypoints of one OpenPose JSON file (``people[0]``; NaN = missing)."""
    path = Path(path)
    return parse_openpose(_load_json(path), path, layout)


def read_openpose_people(path: PathLike, layout: str | None = None) -> np.ndarray:
    """``(people, 59, 3)`` float32 keypoints of every person of one OpenPose JSON file (NaN = missing)."""
    path = Path(path)
    return parse_openpose_people(_load_json(path), path, layout)


def openpose_files(folder: PathLike) -> dict[int, Path]:
    """The ``*.json`` files of a folder by frame number (last digits of the name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    with os.scandir(folder) as entries:  # names, not Path objects: tens of thousands of files
        names = sorted(entry.name for entry in entries if entry.name.endswith(".json") and entry.is_file())
    files: dict[int, Path] = {}
    for name in names:  # one file per frame
        frame = frame_number(name)
        if frame in files:
            raise OpenPoseFormatError(f"{folder / name}: frame {frame} is also given by {files[frame].name}")
        files[frame] = folder / name
    return files


def _frame_files(folder: PathLike, num_frames: int | None) -> tuple[int, dict[int, Path]]:
    """(number of frames, the files of frames below it by frame number); see :func:`read_openpose_folder`."""
    files = openpose_files(folder)
    if num_frames is None:
        num_frames = max(files, default=-1) + 1
    ignored = [frame for frame in files if frame >= num_frames]
    if ignored:
        logger.debug("%s: %d file(s) beyond frame %d ignored", folder, len(ignored), num_frames - 1)
    return num_frames, {frame: path for frame, path in files.items() if frame < num_frames}


def _read_files(files: dict[int, Path], read, errors: list[dict] | None) -> dict[int, np.ndarray]:
    """``read(path)`` of every file by frame; with ``errors`` a file that cannot be read is
    left out and recorded (``{file, frame, reason}``), else its error is raised."""
    result = {}
    for frame, path in files.items():  # one file per frame
        try:
            result[frame] = read(path)
        except (OpenPoseFormatError, OSError) as error:
            if errors is None:
                raise
            errors.append({"file": str(path), "frame": int(frame), "reason": str(error).replace(f"{path}: ", "")})
    return result


def read_openpose_folder(folder: PathLike, num_frames: int | None = None, layout: str | None = None, errors: list[dict] | None = None) -> np.ndarray:
    """``(frames, 59, 3)`` float32 keypoints (``people[0]`` of each file) of a folder of per-frame OpenPose files.

    ``num_frames`` None: up to the largest frame number found; frames without a file
    are missing (NaN); files beyond ``num_frames`` are ignored. ``layout``: the body
    layout (needed for 25-point bodies). ``errors``: a list to record unreadable files
    in (their frames stay missing); None raises on the first one.
    """
    num_frames, files = _frame_files(folder, num_frames)
    result = np.full((num_frames, skeleton.NUM_JOINTS, 3), np.nan, dtype=np.float32)
    for frame, keypoints in _read_files(files, lambda path: read_openpose_file(path, layout), errors).items():
        result[frame] = keypoints
    return result


def read_openpose_people_folder(folder: PathLike, num_frames: int | None = None, layout: str | None = None, errors: list[dict] | None = None) -> np.ndarray:
    """``(frames, people, 59, 3)`` float32 keypoints of every person of every file of a folder.

    ``people`` is the largest number of people in one file (at least 1); a frame's
    people are in file order, the rows after them (and frames without a file) are NaN.
    ``num_frames``, ``layout`` and ``errors`` as in :func:`read_openpose_folder`.
    """
    num_frames, files = _frame_files(folder, num_frames)
    per_frame = _read_files(files, lambda path: read_openpose_people(path, layout), errors)
    width = max((len(people) for people in per_frame.values()), default=0)
    result = np.full((num_frames, max(width, 1), skeleton.NUM_JOINTS, 3), np.nan, dtype=np.float32)
    for frame, people in per_frame.items():
        result[frame, : len(people)] = people
    return result
