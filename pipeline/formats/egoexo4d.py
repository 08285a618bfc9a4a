"""Ego-Exo4D annotation files: the 2D annotation reader (precomputed detections).

``{"<frame>": [{"annotation2D": {"<camera>": {"<joint>": {"x", "y", ...}}}, ...}]}``.
Joint names are the released ones (``nose``, ``left-wrist``, ``left_thumb_1`` ...
``right_pinky_4``; ``-`` and spaces read as ``_``, case ignored); camera names match by
letters and digits (``cam_01`` = ``cam01``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from fitting.skeleton import BODY_JOINT_NAMES, LEFT_HAND_JOINT_NAMES, NUM_JOINTS, RELEASED_NAMES, RIGHT_HAND_JOINT_NAMES
from pipeline.formats.take_folder import camera_key


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


def annotation_document(
    joints: np.ndarray,
    points: np.ndarray,
    num_views: np.ndarray,
    camera_names: list[str],
    pixels: np.ndarray,
    visible: np.ndarray,
    take_name: str,
    take_uid: str,
) -> dict:
    """The Ego-Exo4D annotation of the joints ``joints`` (indices into the 59) for every frame.

    ``points (frames, 59, 3)`` metres, ``num_views (frames, 59)``, ``pixels (views, frames, 59, 2)``,
    ``visible (views, frames, 59)``. Frames where no joint of the part was reconstructed are absent.
    """
    names = [RELEASED_NAMES[j] for j in joints]
    reconstructed = np.isfinite(points[:, joints]).all(axis=-1)  # (frames, joints)
    document = {}
    for frame in np.flatnonzero(reconstructed.any(axis=1)):
        present = np.flatnonzero(reconstructed[frame])
        annotation_3d = {
            names[k]: {
                "x": float(points[frame, joints[k], 0]),
                "y": float(points[frame, joints[k], 1]),
                "z": float(points[frame, joints[k], 2]),
                "num_views_for_3d": int(num_views[frame, joints[k]]),
            }
            for k in present
        }
        annotation_2d = {}
        for v, camera in enumerate(camera_names):
            shown = present[visible[v, frame, joints[present]]]
            if shown.size:
                annotation_2d[camera] = {
                    names[k]: {
                        "x": float(pixels[v, frame, joints[k], 0]),
                        "y": float(pixels[v, frame, joints[k], 1]),
                        "placement": "auto",
                    }
                    for k in shown
                }
        document[str(int(frame))] = [
            {
                "metadata": {"take_uid": take_uid, "take_name": take_name, "frame_number": int(frame)},
                "annotation3D": annotation_3d,
                "annotation2D": annotation_2d,
            }
        ]
    return document
