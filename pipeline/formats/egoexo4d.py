"""Ego-Exo4D ego-pose files, as the public ego-pose code (EGO4D/ego-exo4d-egopose) parses them.

- Annotation files, one per take and part (body, hand) (:func:`annotation_entries`
  written by :func:`write_json_items`; :func:`read_egoexo4d_annotation` reads their 2D)::

    {"<frame>": [{"metadata": {"take_uid", "take_name", "frame_number"},
                  "annotation3D": {"<joint>": {"x", "y", "z", "num_views_for_3d"}},
                  "annotation2D": {"<camera>": {"<joint>": {"x", "y", "placement": "auto"}}}}]}

  Frame keys are unpadded frame numbers in ascending order (the body loader takes the
  file order as time). Body joints are named with hyphens (``left-wrist``), hand
  joints with underscores (``right_thumb_1``). A joint not reconstructed is absent,
  never zero. World coordinates in metres; 2D in pixels: the exo views' raw frames and
  the ego camera's undistorted linear frame, under the ego camera's name (``aria01``).
- The released per-take camera_pose layout (:func:`release_ego_camera`, written with
  :func:`pipeline.formats.calibration.write_camera_pose_json`): ``metadata.take_name``;
  ``aria01`` with the undistorted frame's 3x3 intrinsics and one 3x4 world-to-camera
  extrinsic per frame; the exo cameras.
- Where the files go (:func:`annotation_file_names`): ours (``body_annotation.json``,
  ``hand_annotation.json``, ``camera_pose.json``) or the release layout the public code
  lists (``annotations/ego_pose/<split>/{body,hand}/automatic/<take_uid>.json``,
  ``annotations/ego_pose/<split>/camera_pose/<take_uid>.json``).
- The ego-pose benchmark's ground-truth layouts: body ``{take_uid: {"take_name", "body":
  {"<frame>": 17 x [x, y, z]}}}`` (world, metres, missing joints NaN) and hand
  ``{take_uid: {"<frame>": {"<side>_hand_3d": 21 x [x, y, z] (ego camera coordinates,
  metres) or [], "<side>_hand_2d", "<side>_hand_bbox", "<side>_hand_valid_3d",
  "metadata"}}}`` (:func:`body_benchmark_frames`, :func:`hand_benchmark_frames`).

Reading 2D: joint names as released (``-`` and spaces read as ``_``, case ignored);
camera names match by letters and digits (``cam_01`` = ``cam01``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitting.skeleton import (
    BODY,
    BODY_JOINT_NAMES,
    LEFT_HAND,
    LEFT_HAND_JOINT_NAMES,
    NUM_JOINTS,
    RELEASED_NAMES,
    RIGHT_HAND,
    RIGHT_HAND_JOINT_NAMES,
)
from pipeline.atomic import atomic_text_stream
from pipeline.formats.take_folder import camera_key
from triangulation.camera_models import PinholeModel
from triangulation.cameras import MovingCamera


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


PLACEMENT = "auto"  # our 2D are projections of the 3D labels, not clicks ("manual")


@dataclass(frozen=True)
class View2D:
    """The 2D of one camera: ``pixels (frames, 59, 2)`` and ``visible (frames, 59)`` bool."""

    camera: str
    pixels: np.ndarray
    visible: np.ndarray


def annotation_entries(
    joints: np.ndarray,
    points: np.ndarray,
    num_views: np.ndarray,
    exported: np.ndarray,
    views: list[View2D],
    take_name: str,
    take_uid: str,
) -> Iterator[tuple[str, list]]:
    """The annotation file's ``(frame key, [entry])`` pairs of the joints ``joints`` (indices
    into the 59), frame by frame (write them with :func:`write_json_items`).

    ``points (frames, 59, 3)`` metres, ``num_views (frames, 59)`` (written as
    ``num_views_for_3d``), ``exported (frames, 59)`` bool: the joints to write (the
    reconstructed ones, without gap-filled ones when they are left out). A 2D entry
    exists where the joint is exported and visible in that view. Frames with no
    exported joint of the part are absent.
    """
    names = [RELEASED_NAMES[j] for j in joints]
    present_mask = exported[:, joints] & np.isfinite(points[:, joints]).all(axis=-1)
    for frame in np.flatnonzero(present_mask.any(axis=1)).tolist():
        present = np.flatnonzero(present_mask[frame]).tolist()
        xyz, counts = points[frame, joints].tolist(), num_views[frame, joints].astype(int).tolist()
        annotation_3d = {
            names[k]: {"x": xyz[k][0], "y": xyz[k][1], "z": xyz[k][2], "num_views_for_3d": counts[k]} for k in present
        }
        annotation_2d = {}
        for view in views:
            shown = np.flatnonzero(view.visible[frame, joints] & present_mask[frame]).tolist()
            if shown:
                pixels = view.pixels[frame, joints].astype(np.float64).tolist()
                annotation_2d[view.camera] = {names[k]: {"x": pixels[k][0], "y": pixels[k][1], "placement": PLACEMENT} for k in shown}
        entry = {
            "metadata": {"take_uid": take_uid, "take_name": take_name, "frame_number": frame},
            "annotation3D": annotation_3d,
            "annotation2D": annotation_2d,
        }
        yield str(frame), [entry]


RELEASE_FILES = {
    "body": "annotations/ego_pose/{split}/body/automatic/{take_uid}.json",
    "hand": "annotations/ego_pose/{split}/hand/automatic/{take_uid}.json",
    "camera_pose": "annotations/ego_pose/{split}/camera_pose/{take_uid}.json",
}
FLAT_FILES = {"body": "body_annotation.json", "hand": "hand_annotation.json", "camera_pose": "camera_pose.json"}


def annotation_file_names(split: str | None, take_uid: str) -> dict[str, str]:
    """Relative paths of the body, hand and camera pose files: ours (``split`` None) or the
    release layout the public loaders list (``annotations/ego_pose/<split>/...``; the file
    name is the take uid, as they read it back with ``name.split(".")[0]``)."""
    if split is None:
        return dict(FLAT_FILES)
    if not take_uid or any(character in take_uid for character in "/\\.\0"):
        raise ValueError(f"take_uid {take_uid!r} cannot be a release file name (no '/', '\\' or '.' allowed)")
    return {part: path.format(split=split, take_uid=take_uid) for part, path in RELEASE_FILES.items()}


def write_json_items(path, items: Iterable[tuple[str, object]], envelope: tuple[str, str] = ("", ""), allow_nan: bool = False) -> int:
    """Write ``envelope[0] + {key: value, ...} + envelope[1]`` as compact JSON, one item at a
    time (a long take's file is never built in memory), atomically; returns the item count."""
    count = 0
    with atomic_text_stream(path) as stream:
        stream.write(envelope[0] + "{")
        for key, value in items:
            stream.write(("," if count else "") + json.dumps(key) + ":" + json.dumps(value, separators=(",", ":"), allow_nan=allow_nan))
            count += 1
        stream.write("}" + envelope[1] + "\n")
    return count


def benchmark_envelope(take_uid: str, take_name: str | None = None, key: str | None = None) -> tuple[str, str]:
    """The text around the frames of a benchmark file: ``{uid: {"take_name": .., key: <frames>}}``
    (body) or ``{uid: <frames>}`` (hand)."""
    if key is None:
        return "{" + json.dumps(take_uid) + ":", "}"
    return "{" + json.dumps(take_uid) + ':{"take_name":' + json.dumps(take_name) + "," + json.dumps(key) + ":", "}}"


def release_ego_camera(name: str, R: np.ndarray, t: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> MovingCamera:
    """The ego camera as the release describes it: the undistorted linear camera ``K``
    (``size`` pixels) with the ego camera's per-frame world-to-camera ``R``, ``t``."""
    model = PinholeModel(K[0, 0], K[1, 1], K[0, 2], K[1, 2], np.zeros(4))
    return MovingCamera(name, model, R, t, (int(size[0]), int(size[1])))


def body_benchmark_frames(points: np.ndarray, observed: np.ndarray) -> Iterator[tuple[str, list]]:
    """The body benchmark layout's frames ``{"<frame>": 17 x [x, y, z]}`` (inside
    :func:`benchmark_envelope` ``(uid, name, "body")``).

    ``points (frames, 59, 3)`` world metres; ``observed (frames, 59)``: joints that count
    as ground truth (reconstructed from views, not gap-filled); others are NaN. Frames
    without any such body joint are absent.
    """
    body = np.where(observed[:, BODY, None], points[:, BODY], np.nan)
    for frame in np.flatnonzero(np.isfinite(body).all(axis=-1).any(axis=1)).tolist():
        yield str(frame), body[frame].tolist()


# The public body evaluation's scenarios and the words it looks for in a take name (it
# asserts that one is there): bodypose/evaluation/evaluate.py's category_map.
BODY_EVALUATION_SCENARIOS = {
    "basketball": ("basketball",),
    "bike": ("bike",),
    "cooking": ("cooking",),
    "dance": ("dance",),
    "soccer": ("soccer",),
    "health": ("cpr", "covid"),
    "bouldering": ("bouldering",),
    "music": ("piano", "violin", "guitar", "music"),
}


def body_evaluation_scenario(take_name: str) -> str | None:
    """The scenario the public body evaluation gives a take (None: it would stop on an assert)."""
    name = take_name.lower()
    return next((scenario for scenario, words in BODY_EVALUATION_SCENARIOS.items() if any(word in name for word in words)), None)


HAND_SIDES = (("right", RIGHT_HAND), ("left", LEFT_HAND))  # the public hand code's order; the wrist first


def hand_benchmark_frames(
    points_camera: np.ndarray,
    pixels: np.ndarray,
    valid: np.ndarray,
    observed: np.ndarray,
    image_size: tuple[int, int],
    take_name: str,
    take_uid: str,
    min_valid_joints: int,
    bbox_padding_px: float,
) -> Iterator[tuple[str, dict]]:
    """The hand benchmark layout's frames (ego camera coordinates, inside
    :func:`benchmark_envelope` ``(uid)``), as the public data preparation writes them.

    ``points_camera (frames, 59, 3)`` metres in the ego camera frame; ``pixels (frames,
    59, 2)`` the undistorted ego 2D; ``valid (frames, 59)``: a joint counts as ground
    truth there (reconstructed from views and visible in the undistorted frame);
    ``observed (frames, 59)``: reconstructed from views (not gap-filled), visible or not.
    A hand with fewer than ``min_valid_joints`` valid joints, or whose wrist is not
    observed (the public preparation drops a hand without a wrist), is empty (``[]``);
    in a kept hand invalid joints are NaN except the wrist, and the box is the valid 2D
    grown by ``bbox_padding_px`` and clipped to the image. Frames without a kept hand
    are absent.
    """
    width, height = image_size
    enough = {side: (valid[:, joints].sum(axis=1) >= min_valid_joints) & observed[:, joints.start] for side, joints in HAND_SIDES}
    for frame in np.flatnonzero(np.logical_or(*enough.values())).tolist():
        entry = {}
        for side, joints in HAND_SIDES:
            ok = valid[frame, joints]
            xyz, uv = points_camera[frame, joints], pixels[frame, joints]
            if not enough[side][frame] or not np.isfinite(xyz[0]).all():
                entry.update({f"{side}_hand_3d": [], f"{side}_hand_2d": [], f"{side}_hand_bbox": [], f"{side}_hand_valid_3d": []})
                continue
            keep_3d = ok.copy()
            keep_3d[0] = True  # the wrist stays, as the public preparation restores it
            box = np.concatenate([uv[ok].min(axis=0) - bbox_padding_px, uv[ok].max(axis=0) + bbox_padding_px])
            box = np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1])
            entry.update(
                {
                    f"{side}_hand_3d": np.where(keep_3d[:, None], xyz, np.nan).tolist(),
                    f"{side}_hand_2d": np.where(ok[:, None], uv, np.nan).tolist(),
                    f"{side}_hand_bbox": box.tolist(),
                    f"{side}_hand_valid_3d": ok.tolist(),
                }
            )
        if any(entry[f"{side}_hand_3d"] for side, _ in HAND_SIDES):
            entry["metadata"] = {"take_uid": take_uid, "take_name": take_name, "frame_number": frame}
            yield str(frame), entry
