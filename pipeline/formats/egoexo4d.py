"""Ego-Exo4D ego-pose files, as the public ego-pose code (EGO4D/ego-exo4d-egopose) parses them.

- Annotation files, one per take and part (body, hand) (:func:`annotation_entries`
  written by :func:`write_json_items`; :func:`read_egoexo4d_annotation` reads their 2D)::

    {"<frame>": [{"metadata": {"take_uid", "take_name", "frame_number"},
                  "annotation3D": {"<joint>": {"x", "y", "z", "num_views_for_3d"}},
                  "annotation2D": {"<camera>": {"<joint>": {"x", "y", "placement": "auto"}}}}]}

  Frame keys are unpadded frame numbers in ascending order (the body loader takes the
  file order as time). Body joints are named with hyphens (``left-wrist``), hand
  joints with underscores (``right_thumb_1``). A joint not reconstructed is absent,
  never zero. World coordinates in metres; 2D in pixels: the exo views' undistorted
  frames (:func:`release_exo_undistorted_camera`, or their raw frames) and the ego
  camera's undistorted linear frame, under the ego camera's name (``aria01``).
- The released per-take camera_pose layout (:func:`release_ego_camera`, written with
  :func:`pipeline.formats.calibration.write_camera_pose_json`): ``metadata.take_name``;
  ``aria01`` with the undistorted frame's 3x3 intrinsics and one 3x4 world-to-camera
  extrinsic per frame; the exo cameras.
- Where the files go (:func:`annotation_file_names`): ours (``body_annotation.json``,
  ``hand_annotation.json``, ``camera_pose.json``) or the release layout the public code
  lists (``annotations/ego_pose/<split>/{body,hand}/automatic/<take_uid>.json``,
  ``annotations/ego_pose/<split>/camera_pose/<take_uid>.json``, the empty manual-label
  folders of :func:`release_listed_folders`); the hand preparation's Aria calibration
  (:func:`hand_preparation_calibration_document`, ``aria_calib_json/<take_name>.json``).
- The ego-pose benchmark's ground-truth layouts: body ``{take_uid: {"take_name", "body":
  {"<frame>": 17 x [x, y, z]}}}`` (world, metres, missing joints NaN) and hand
  ``{take_uid: {"<frame>": {"<side>_hand_3d": 21 x [x, y, z] (ego camera coordinates,
  metres) or [], "<side>_hand_2d", "<side>_hand_bbox", "<side>_hand_valid_3d",
  "metadata"}}}`` (:func:`body_benchmark_frames`, :func:`hand_benchmark_frames`, with the
  public hand preparation's validity rules of :mod:`fitting.release_rules`, where the
  frames the public body evaluation scores are too).

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

from fitting.release_rules import HAND_SIDES, HandBenchmarkInputs, hand_benchmark_validity
from fitting.skeleton import (
    BODY,
    BODY_JOINT_NAMES,
    LEFT_HAND_JOINT_NAMES,
    NUM_JOINTS,
    RELEASED_NAMES,
    RIGHT_HAND_JOINT_NAMES,
)
from pipeline.atomic import atomic_text_stream, atomic_write_text
from pipeline.formats.take_folder import camera_key
from triangulation.camera_models import Fisheye624Model, FisheyeModel, PinholeModel
from triangulation.cameras import CalibrationError, Camera, FieldOfView, MovingCamera
from triangulation.poses import quaternion_from_rotation


class AnnotationFormatError(ValueError):
    """A malformed Ego-Exo4D annotation file; the message names the file, frame and field."""


def _joint_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


BODY_INDEX = {name: index for index, name in enumerate(BODY_JOINT_NAMES)}
HAND_INDEX = {name: NUM_JOINTS - 42 + index for index, name in enumerate(LEFT_HAND_JOINT_NAMES + RIGHT_HAND_JOINT_NAMES)}


def read_egoexo4d_annotation(path: str | Path, camera_names: list[str], num_frames: int, part: str, out: np.ndarray | None = None) -> np.ndarray:
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
                        raise AnnotationFormatError(f"{path}: frame {frame}: field 'annotation2D.{camera}.{joint}' needs numbers x and y") from None
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
        annotation_3d = {names[k]: {"x": xyz[k][0], "y": xyz[k][1], "z": xyz[k][2], "num_views_for_3d": counts[k]} for k in present}
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
# Folders the public code lists whether or not it uses them: the body dataset
# (bodypose/data/dataset_egoexo.py) always lists <split>/body/annotation (the manual
# labels) and, with use_pseudo, <split>/body/automatic; the hand preparation in its
# default "manual" mode lists <split>/hand/annotation (and only that one for "test").
RELEASE_LISTED_FOLDERS = ("annotations/ego_pose/{split}/body/annotation", "annotations/ego_pose/{split}/hand/annotation")


def annotation_file_names(split: str | None, take_uid: str) -> dict[str, str]:
    """Relative paths of the body, hand and camera pose files: ours (``split`` None) or the
    release layout the public loaders list (``annotations/ego_pose/<split>/...``; the file
    name is the take uid, as they read it back with ``name.split(".")[0]``)."""
    if split is None:
        return dict(FLAT_FILES)
    if not take_uid or any(character in take_uid for character in "/\\.\0"):
        raise ValueError(f"take_uid {take_uid!r} cannot be a release file name (no '/', '\\' or '.' allowed)")
    return {part: path.format(split=split, take_uid=take_uid) for part, path in RELEASE_FILES.items()}


def release_listed_folders(split: str | None) -> list[str]:
    """The (empty) manual-label folders the public loaders list, in the release layout."""
    return [] if split is None else [folder.format(split=split) for folder in RELEASE_LISTED_FOLDERS]


def _file_name_part(what: str, value: str) -> str:
    if not value or any(character in value for character in "/\\\0") or value in (".", ".."):
        raise ValueError(f"{what} {value!r} cannot be a file name (no '/', '\\' or NUL allowed)")
    return value


def hand_preparation_calibration_name(take_name: str) -> str:
    """Where the hand preparation's Aria calibration goes, relative to its output folder."""
    return HAND_PREPARATION_CALIBRATION.format(take_name=_file_name_part("take name", take_name))


def write_json_document(path, document: dict, indent: int | None = None, allow_nan: bool = False) -> None:
    """One JSON document (``camera_pose.json``, the hand preparation's calibration file),
    atomically; NaN refused unless ``allow_nan``."""
    atomic_write_text(path, json.dumps(document, indent=indent, allow_nan=allow_nan) + "\n")


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


# The released exo 2D are on undistorted GoPro frames: the Ego-Exo4D EgoPose tutorial
# (facebookresearch/Ego4d notebooks/egoexo/Ego-Exo4D_EgoPose_Tutorial.ipynb, undistort_exocam)
# undistorts a KANNALABRANDTK3 GoPro frame with OpenCV's fisheye model into an image of the
# same size whose K is cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(K, D, size,
# I, balance=0.8) (K scaled from the 3840 x 2160 calibration to the frame first: the same
# as K of a calibration made at the frame's own size); the balance is project_ego's
# exo_undistorted_balance.


def release_exo_undistorted_camera(camera: Camera, balance: float) -> tuple[PinholeModel, tuple[int, int], str]:
    """The undistorted frame of an exo camera the release's 2D are in: a pinhole (no
    distortion), its image size (the camera's own) and the rule used.

    A fisheye (Kannala-Brandt, the GoPros) gets the tutorial's new K
    (``estimateNewCameraMatrixForUndistortRectify`` with ``balance``, fov scale 1); any
    other model keeps its own K with the distortion removed (already undistorted when it
    has none).
    """
    if camera.image_size is None:
        raise CalibrationError(f"camera '{camera.name}': field 'image_size' is unknown; the undistorted exo frame needs it")
    model = camera.model
    if isinstance(model, FisheyeModel):
        import cv2

        K = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
            model.matrix, model.distortion.reshape(4, 1), tuple(int(v) for v in camera.image_size), np.eye(3), balance=float(balance)
        )
        rule = f"fisheye: OpenCV new K, balance {balance:g}"
    else:
        K = model.matrix
        rule = "same K, distortion removed"
    return PinholeModel(K[0, 0], K[1, 1], K[0, 2], K[1, 2], np.zeros(4)), (int(camera.image_size[0]), int(camera.image_size[1])), rule


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


# The public hand preparation reads the Aria calibration of each take from
# <gt_output_dir>/aria_calib_json/<take_name>.json (handpose/data_preparation/main.py and
# dataloader.py): projectaria-tools' device_calibration_from_json(...).get_camera_calib(
# "camera-rgb"), with the RGB intrinsics at the 1408-pixel video's scale (its aria_calib
# step rescales the VRS factory calibration: f / 2, (c - 0.5 - 32) / 2); it uses that
# camera only to build its valid mask.
HAND_PREPARATION_CALIBRATION = "aria_calib_json/{take_name}.json"
HAND_PREPARATION_CAMERA_LABEL = "camera-rgb"
FISHEYE624_NAME = "FisheyeRadTanThinPrism"  # projectaria-tools' name of the FISHEYE624 model


def hand_preparation_calibration_document(
    model: Fisheye624Model, image_size: tuple[int, int], field_of_view: FieldOfView | None, R_device_camera: np.ndarray, t_device_camera: np.ndarray
) -> dict:
    """The device calibration JSON the public hand preparation reads: one ``camera-rgb``
    entry in the layout of a VRS ``calib_json`` (``Projection``, ``T_Device_Camera`` as
    translation and ``[w, [x, y, z]]``), with ``ConfigData`` stating the image size, valid
    radius and maximum angle so that projectaria-tools reads exactly this camera (the
    calibration the ego 2D were projected with, at the ego video's size)."""
    q = quaternion_from_rotation(R_device_camera)
    config = {"ImageWidth": int(image_size[0]), "ImageHeight": int(image_size[1])}
    if field_of_view is not None and field_of_view.max_angle_rad is not None:
        config["MaxSolidAngle"] = float(field_of_view.max_angle_rad)
    if field_of_view is not None and field_of_view.valid_radius_px is not None:
        config["ValidRadius"] = float(field_of_view.valid_radius_px)
    params = [model.fx, model.cx, model.cy, *model.radial, *model.tangential, *model.thin_prism]
    camera = {
        "Label": HAND_PREPARATION_CAMERA_LABEL,
        "SerialNumber": "egoexo-pose-gt",  # projectaria-tools requires a string here
        "Projection": {"Name": FISHEYE624_NAME, "Description": "fisheye624 (egoexo-pose-gt export)", "Params": [float(v) for v in params]},
        "T_Device_Camera": {"Translation": [float(v) for v in t_device_camera], "UnitQuaternion": [float(q[3]), [float(q[0]), float(q[1]), float(q[2])]]},
        "ConfigData": config,
    }
    return {
        "DeviceClassInfo": {"DeviceClass": "Aria", "BuildVersion": "DVT-S"},
        "OriginSpecification": {"Type": "Custom", "ChildLabel": "camera-slam-left"},  # what projectaria-tools requires
        "CameraCalibrations": [camera],
        "ImuCalibrations": [],
    }


def hand_benchmark_frames(
    inputs: HandBenchmarkInputs,
    image_size: tuple[int, int],
    take_name: str,
    take_uid: str,
    min_valid_joints: int,
    bbox_padding_px: float,
    reprojection_px: float,
) -> Iterator[tuple[str, dict]]:
    """The hand benchmark layout's frames (ego camera coordinates, inside
    :func:`benchmark_envelope` ``(uid)``), as the public data preparation writes them
    from our annotation and camera pose files (:func:`hand_benchmark_validity`).

    A hand with fewer than ``min_valid_joints`` valid joints, or whose wrist is not
    observed (a gap-filled wrist is not ground truth; the public preparation drops a hand
    without a wrist), is empty (``[]``); in a kept hand the 3D of invalid joints is NaN
    except the wrist, the 2D is the written 2D that lies in the mask (NaN elsewhere), and
    the box is the valid joints' re-projection grown by ``bbox_padding_px`` and clipped to
    the image. Frames without a kept hand are absent.
    """
    width, height = image_size
    valid = hand_benchmark_validity(inputs, reprojection_px)
    wrist_ok = {side: inputs.observed[:, joints.start] & np.isfinite(inputs.points_camera[:, joints.start]).all(axis=-1) for side, joints in HAND_SIDES}
    enough = {side: (valid[:, joints].sum(axis=1) >= min_valid_joints) & wrist_ok[side] for side, joints in HAND_SIDES}
    for frame in np.flatnonzero(np.logical_or(*enough.values())).tolist():
        entry = {}
        for side, joints in HAND_SIDES:
            if not enough[side][frame]:
                entry.update({f"{side}_hand_3d": [], f"{side}_hand_2d": [], f"{side}_hand_bbox": [], f"{side}_hand_valid_3d": []})
                continue
            ok = valid[frame, joints]
            keep_3d = ok.copy()
            keep_3d[0] = True  # the wrist stays, as the public preparation restores it
            uv = inputs.projected[frame, joints][ok]
            box = np.concatenate([uv.min(axis=0) - bbox_padding_px, uv.max(axis=0) + bbox_padding_px])
            box = np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1])
            shown = inputs.pixels_ok[frame, joints]
            entry.update(
                {
                    f"{side}_hand_3d": np.where(keep_3d[:, None], inputs.points_camera[frame, joints], np.nan).tolist(),
                    f"{side}_hand_2d": np.where(shown[:, None], inputs.pixels[frame, joints], np.nan).tolist(),
                    f"{side}_hand_bbox": box.tolist(),
                    f"{side}_hand_valid_3d": ok.tolist(),
                }
            )
        entry["metadata"] = {"take_uid": take_uid, "take_name": take_name, "frame_number": frame}
        yield str(frame), entry
