"""Take folders: what a take holds and where, for the two layouts the pipeline reads.

**Ego-Exo4D layout** (what the release and ``run_pipeline.py synth`` write)::

    take.json                       optional: take_name, take_uid, fps, num_frames (ours)
    camera_pose.json                exo cameras + per-frame ego (aria) poses
    trajectory/gopro_calibs.csv     exo cameras, fisheye (Kannala-Brandt) for the raw videos
    frame_aligned_videos/<cam>.mp4  one video per camera (exo and ego)
    keypoints2d/openpose/<cam>/     optional precomputed 2D keypoints (OpenPose JSON)

Exo cameras come from ``gopro_calibs.csv`` when present (its fisheye model describes
the raw frame-aligned videos) and otherwise from ``camera_pose.json``; the ego camera
always from ``camera_pose.json``.

**Rig folder** (anipose / Pose2Sim)::

    *.toml                          the calibration (one table per camera)
    videos/<cam>.mp4                or <cam>.mp4 / .avi / .mov beside the TOML
    <anything>/<cam>_json/          optional OpenPose JSON per camera (e.g. pose-associated/)

Camera names are matched between the calibration, videos and keypoint folders by
their letters and digits only (``cam_01`` = ``cam01``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.formats.calibration import read_camera_pose_json, read_gopro_calibs_csv, read_toml_calibration
from triangulation.cameras import Camera, MovingCamera

# Paths inside an Ego-Exo4D take folder.
TAKE_JSON = "take.json"
CAMERA_POSE_JSON = "camera_pose.json"
GOPRO_CALIBS_CSV = "trajectory/gopro_calibs.csv"
VIDEO_DIR = "frame_aligned_videos"
OPENPOSE_DIR = "keypoints2d/openpose"
GT_DIR = "gt"

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
DEFAULT_FPS = 30.0  # frames per second assumed when neither take.json nor a video says


class TakeError(ValueError):
    """A take folder that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Take:
    """One capture: calibrated cameras and where its videos and 2D keypoints are.

    ``videos`` and ``keypoints_2d`` map camera names to existing paths only;
    ``num_frames`` is None when nothing in the folder tells it.
    """

    name: str
    root: Path
    layout: str  # "egoexo" or "rig"
    exo_cameras: tuple[Camera, ...]
    ego_camera: MovingCamera | None
    fps: float
    num_frames: int | None
    videos: dict[str, Path] = field(default_factory=dict)
    keypoints_2d: dict[str, Path] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @property
    def exo_names(self) -> tuple[str, ...]:
        return tuple(camera.name for camera in self.exo_cameras)

    def exo_camera(self, name: str) -> Camera:
        for camera in self.exo_cameras:
            if camera.name == name:
                return camera
        raise KeyError(f"take '{self.name}': no exo camera named {name!r} (cameras: {', '.join(self.exo_names)})")


def camera_key(name: str) -> str:
    """Camera name reduced to lower-case letters and digits, for matching across files."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _match(names: tuple[str, ...], candidates: dict[str, Path]) -> dict[str, Path]:
    """Map camera names to candidate paths whose key equals the camera's key."""
    by_key = {camera_key(stem): path for stem, path in candidates.items()}
    return {name: by_key[camera_key(name)] for name in names if camera_key(name) in by_key}


def _videos_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.iterdir()) if path.suffix.lower() in VIDEO_SUFFIXES}


def _read_take_json(root: Path) -> dict:
    path = root / TAKE_JSON
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise TakeError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise TakeError(f"{path}: must hold a JSON object")
    return data


def _metadata_number(path: Path, data: dict, key: str, kind):
    if key not in data:
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (kind is int and value != int(value)):
        raise TakeError(f"{path}: field '{key}' must be a positive {'integer' if kind is int else 'number'}, got {value!r}")
    return kind(value)


def _timing_from_files(exo_names, videos: dict[str, Path], keypoints: dict[str, Path]) -> tuple[float | None, int | None]:
    """Frame rate and length from the exo videos (shortest wins), else from the keypoint files."""
    from pipeline.formats.openpose import openpose_files
    from pipeline.formats.video import video_info

    infos = [video_info(videos[name]) for name in exo_names if name in videos]
    if infos:
        return float(infos[0].fps), min(info.num_frames for info in infos)
    counts = [max(openpose_files(folder), default=-1) + 1 for folder in keypoints.values()]
    return None, (max(counts) if counts and max(counts) > 0 else None)


def _read_egoexo(root: Path) -> Take:
    metadata = _read_take_json(root)
    pose_json, gopro_csv = root / CAMERA_POSE_JSON, root / GOPRO_CALIBS_CSV
    ego, json_exo = None, []
    if pose_json.is_file():
        json_exo, ego, pose_metadata = read_camera_pose_json(pose_json)
        metadata = {**pose_metadata, **metadata}
    exo = read_gopro_calibs_csv(gopro_csv) if gopro_csv.is_file() else json_exo
    if not exo:
        raise TakeError(f"{root}: no exo camera in {GOPRO_CALIBS_CSV} or {CAMERA_POSE_JSON}")
    names = tuple(camera.name for camera in exo) + ((ego.name,) if ego is not None else ())
    videos = _match(names, _videos_in(root / VIDEO_DIR))
    openpose = root / OPENPOSE_DIR
    folders = {path.name: path for path in sorted(openpose.iterdir()) if path.is_dir()} if openpose.is_dir() else {}
    keypoints = _match(tuple(camera.name for camera in exo), folders)
    take_json = root / TAKE_JSON
    fps = _metadata_number(take_json, metadata, "fps", float)
    num_frames = _metadata_number(take_json, metadata, "num_frames", int)
    if fps is None or num_frames is None:
        file_fps, file_frames = _timing_from_files([camera.name for camera in exo], videos, keypoints)
        fps, num_frames = fps or file_fps, num_frames or file_frames
    return Take(
        name=str(metadata.get("take_name", root.name)),
        root=root,
        layout="egoexo",
        exo_cameras=tuple(exo),
        ego_camera=ego,
        fps=fps or DEFAULT_FPS,
        num_frames=num_frames,
        videos=videos,
        keypoints_2d=keypoints,
        metadata=metadata,
    )


def _read_rig(root: Path, toml_path: Path) -> Take:
    cameras = tuple(read_toml_calibration(toml_path))
    names = tuple(camera.name for camera in cameras)
    videos = {**_videos_in(root), **_videos_in(root / "videos")}
    json_folders = {
        path.name[: -len("_json")]: path for path in sorted(root.rglob("*_json")) if path.is_dir()
    }
    videos, keypoints = _match(names, videos), _match(names, json_folders)
    fps, num_frames = _timing_from_files(names, videos, keypoints)
    return Take(
        name=root.name,
        root=root,
        layout="rig",
        exo_cameras=cameras,
        ego_camera=None,
        fps=fps or DEFAULT_FPS,
        num_frames=num_frames,
        videos=videos,
        keypoints_2d=keypoints,
        metadata={"calibration": str(toml_path)},
    )


def read_take(path: str | Path) -> Take:
    """Read a take folder in the Ego-Exo4D layout or as an anipose/Pose2Sim rig folder."""
    root = Path(path)
    if not root.is_dir():
        raise TakeError(f"{root}: take folder not found")
    if (root / CAMERA_POSE_JSON).is_file() or (root / GOPRO_CALIBS_CSV).is_file():
        return _read_egoexo(root)
    tomls = sorted(root.glob("*.toml"))
    if len(tomls) == 1:
        return _read_rig(root, tomls[0])
    if len(tomls) > 1:
        raise TakeError(f"{root}: several calibration files, expected one: {', '.join(p.name for p in tomls)}")
    raise TakeError(
        f"{root}: not a take folder: no {CAMERA_POSE_JSON}, {GOPRO_CALIBS_CSV} or calibration .toml"
    )
