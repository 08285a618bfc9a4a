"""The ``precomputed`` detect backend: 2D keypoints read from files instead of a model.

- ``precomputed_format: openpose``: one OpenPose JSON folder per exo camera (see
  :mod:`pipeline.openpose`: BODY_25, BODY_25B, COCO-17/18, COCO-WholeBody-133 bodies,
  ``hand_left/right_keypoints_2d``). Values are taken as written; a keypoint with
  confidence 0, an empty ``people`` list and a frame without a file are NaN. Of a
  file's people, ``precomputed_person: select`` takes the camera wearer
  (:mod:`stages.detect.people`: 3D prior, ego camera, 2D continuity, multi-view check),
  ``first`` takes ``people[0]``.
- ``precomputed_format: egoexo4d``: Ego-Exo4D annotation JSON files (the body and/or
  hand file, ``egoexo4d_body_annotation`` / ``egoexo4d_hand_annotation``, paths relative
  to the take folder or absolute): ``{"<frame>": [{"annotation2D": {"<camera>":
  {"<joint>": {"x", "y", ...}}}}]}``. Joint names are the released ones (``nose``,
  ``left_wrist``, ``left_thumb_1`` ... ``right_pinky_4``; ``-`` and spaces read as
  ``_``, case ignored). Annotations carry no score: a joint present gets confidence 1;
  an absent joint, camera or frame is NaN. In the hand file ``left_wrist`` is the hand's
  wrist. Camera names match by letters and digits (``cam_01`` = ``cam01``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from fitting.skeleton import BODY, BODY_JOINT_NAMES, LEFT_HAND_JOINT_NAMES, NUM_JOINTS, RIGHT_HAND_JOINT_NAMES
from pipeline.take import camera_key


class AnnotationFormatError(ValueError):
    """A malformed Ego-Exo4D annotation file; the message names the file, frame and field."""


def _joint_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


BODY_INDEX = {name: index for index, name in enumerate(BODY_JOINT_NAMES)}
HAND_INDEX = {
    name: NUM_JOINTS - 42 + index for index, name in enumerate(LEFT_HAND_JOINT_NAMES + RIGHT_HAND_JOINT_NAMES)
}


def read_egoexo4d_annotation(
    path: str | Path, camera_names: list[str], num_frames: int, part: str, out: np.ndarray | None = None
) -> np.ndarray:
    """Fill ``(views, frames, 59, 3)`` float32 from one annotation file of ``part`` ("body" or "hand")."""
    path = Path(path)
    index = BODY_INDEX if part == "body" else HAND_INDEX
    if out is None:
        out = np.full((len(camera_names), num_frames, NUM_JOINTS, 3), np.nan, dtype=np.float32)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: Ego-Exo4D {part} annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AnnotationFormatError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise AnnotationFormatError(f"{path}: the top level must be an object keyed by frame number")
    views = {camera_key(name): v for v, name in enumerate(camera_names)}
    for frame_key, entries in document.items():
        try:
            frame = int(frame_key)
        except ValueError:
            raise AnnotationFormatError(f"{path}: key {frame_key!r} is not a frame number") from None
        if not 0 <= frame < num_frames:
            continue
        if not isinstance(entries, list):
            raise AnnotationFormatError(f"{path}: frame {frame}: must be a list of annotations")
        for entry in entries[:1]:  # one person per take: the camera wearer
            cameras = entry.get("annotation2D", {}) if isinstance(entry, dict) else None
            if not isinstance(cameras, dict):
                raise AnnotationFormatError(f"{path}: frame {frame}: field 'annotation2D' must be an object")
            for camera, joints in cameras.items():
                v = views.get(camera_key(camera))
                if v is None:
                    continue
                if not isinstance(joints, dict):
                    raise AnnotationFormatError(f"{path}: frame {frame}: field 'annotation2D.{camera}' must be an object")
                for joint, value in joints.items():
                    j = index.get(_joint_key(joint))
                    if j is None:
                        continue
                    try:
                        x, y = float(value["x"]), float(value["y"])
                    except (TypeError, KeyError, ValueError):
                        raise AnnotationFormatError(
                            f"{path}: frame {frame}: field 'annotation2D.{camera}.{joint}' needs numbers x and y"
                        ) from None
                    out[v, frame, j] = (x, y, 1.0)
    return out


def read_precomputed(take, settings: dict) -> tuple[np.ndarray, dict]:
    """Keypoints ``(views, frames, 59, 3)`` float32 of the take's exo cameras from files, and a summary."""
    names = list(take.exo_names)
    selection = None
    if settings["precomputed_format"] == "egoexo4d":
        files = {
            part: settings[f"egoexo4d_{part}_annotation"]
            for part in ("body", "hand")
            if settings[f"egoexo4d_{part}_annotation"]
        }
        if not files:
            raise ValueError(
                "detect.precomputed_format 'egoexo4d' needs detect.egoexo4d_body_annotation and/or "
                "detect.egoexo4d_hand_annotation"
            )
        if not take.num_frames:
            raise ValueError(f"take '{take.name}' ({take.root}): its number of frames is unknown")
        keypoints = np.full((len(names), take.num_frames, NUM_JOINTS, 3), np.nan, dtype=np.float32)
        for part, relative in files.items():
            read_egoexo4d_annotation(take.root / relative, names, take.num_frames, part, keypoints)
    else:
        missing = [name for name in names if name not in take.keypoints_2d]
        if missing:
            raise FileNotFoundError(
                f"take '{take.name}' ({take.root}): no precomputed 2D keypoint folder for camera(s) {', '.join(missing)}"
            )
        keypoints, selection = read_openpose_take(take, settings)
    frames = min(keypoints.shape[1], take.num_frames or keypoints.shape[1])
    keypoints = keypoints[:, :frames]
    detected = np.isfinite(keypoints[..., 0])
    summary = {
        "backend": "precomputed",
        "format": settings["precomputed_format"],
        "frames": int(frames),
        "views": len(names),
        "body_detected": float(detected[:, :, BODY].mean()),
        "hands_detected": float(detected[:, :, 17:].mean()),
    }
    if selection is not None:
        summary["person_selection"] = selection
    return keypoints, summary


def read_openpose_take(take, settings: dict) -> tuple[np.ndarray, dict | None]:
    """Keypoints ``(views, frames, 59, 3)`` float32 of the take's exo OpenPose folders, and the selection summary.

    ``precomputed_person: first``: ``people[0]`` of every file (summary None);
    ``select``: the camera wearer chosen among every file's people
    (:func:`stages.detect.people.select_wearer`, with the take's cameras and ego camera).
    """
    from pipeline.openpose import read_openpose_folder, read_openpose_people_folder

    names, layout = list(take.exo_names), settings["openpose_layout"]
    if settings["precomputed_person"] == "first":
        folders = [read_openpose_folder(take.keypoints_2d[name], take.num_frames, layout=layout) for name in names]
        return np.stack(folders).astype(np.float32), None
    from pipeline.detection import ego_centres
    from stages.detect.people import select_wearer

    folders = [read_openpose_people_folder(take.keypoints_2d[name], take.num_frames, layout=layout) for name in names]
    frames, width = max(len(people) for people in folders), max(people.shape[1] for people in folders)
    people = np.full((len(names), frames, width) + folders[0].shape[2:], np.nan, dtype=np.float32)
    for v, folder in enumerate(folders):
        people[v, : folder.shape[0], : folder.shape[1]] = folder
    return select_wearer(list(take.exo_cameras), people, settings, ego_centres(take, settings, frames))
