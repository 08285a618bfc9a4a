"""Take folders: what a take holds and where, for the two layouts the pipeline reads.

**Ego-Exo4D layout** (what the release and ``run_pipeline.py synth`` write)::

    take.json                       optional: take_name, take_uid, fps, num_frames, ego_camera,
                                    timesync_start_idx, timesync_end_idx
    trajectory/gopro_calibs.csv     exo cameras, fisheye (Kannala-Brandt) for the raw videos
    camera_pose.json                exo cameras + per-frame ego (aria) poses (an output of
                                    Ego-Exo4D's pipeline; optional for a new take)
    trajectory/closed_loop_trajectory.csv   raw Aria inputs of a new take (MPS): device poses,
    trajectory/online_calibration.jsonl     the RGB camera's calibration (or a device
                                            calibration JSON, or the Aria recording
    <aria>_noimagestreams.vrs               read with projectaria-tools), and frame timestamps:
    timesync.csv  or  aria_frame_timestamps.csv
    frame_aligned_videos/<cam>.mp4  one video per camera (exo, and ego as <aria>.mp4 or <aria>_214-1.mp4)
    keypoints2d/openpose/<cam>/     optional precomputed 2D keypoints (OpenPose JSON)

Exo cameras come from ``gopro_calibs.csv`` when present (its fisheye model describes
the raw frame-aligned videos; rows with ``quality`` 0, "not localized", are left out
and listed in ``metadata["excluded_cameras"]``) and otherwise from
``camera_pose.json``. The ego camera comes from the raw Aria inputs
(:func:`pipeline.formats.aria.ego_camera_from_aria`) or from ``camera_pose.json``; with
both, the ``take`` setting ``ego_pose_prefer`` chooses. Paths of the raw inputs are
settings (relative to the take folder, ``{capture_name}`` and ``{take_name}``
replaced, and ``{ego_name}`` in ``aria_vrs``), so the capture-level ``timesync.csv`` of
a release can be used in place; which timesync row is take frame ``i`` is the setting
``timesync_first_row``.

**Rig folder** (anipose / Pose2Sim)::

    <calibration>.toml              the calibration (one table per camera), beside the
                                    videos or in calibration/; recognised by its content
    Config.toml                     Pose2Sim's settings (project.frame_rate is used)
    videos/<cam>.mp4                or <cam>.mp4 / .avi / .mov beside the TOML
    <anything>/<cam>_json/          optional OpenPose JSON per camera (e.g. pose-associated/)

Camera names are matched between the calibration, videos and keypoint folders by
their letters and digits only (``cam_01`` = ``cam01``).
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.formats import aria
from pipeline.formats.aria_vrs import read_vrs_calibration
from pipeline.formats.calibration import read_camera_pose_json, read_gopro_calibs_csv, read_gopro_graph_uid, read_toml_calibration
from triangulation.cameras import Camera, MovingCamera
from triangulation.image_frames import FRAME_SAME, ImageFrameMatch, camera_in_video_frame, match_image_frame

if TYPE_CHECKING:
    from pipeline.config import TakeConfig

logger = logging.getLogger(__name__)

# Paths inside an Ego-Exo4D take folder.
TAKE_JSON = "take.json"
CAMERA_POSE_JSON = "camera_pose.json"
GOPRO_CALIBS_CSV = "trajectory/gopro_calibs.csv"
VIDEO_DIR = "frame_aligned_videos"
OPENPOSE_DIR = "keypoints2d/openpose"
GT_DIR = "gt"

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
DEFAULT_FPS = 30.0  # frames per second assumed when neither take.json nor a video says
DEFAULT_EGO_NAME = "aria01"  # the Aria glasses' camera id when no file names it
POSE2SIM_CONFIG = "Config.toml"


class TakeError(ValueError):
    """A take folder that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Take:
    """One capture: calibrated cameras and where its videos and 2D keypoints are.

    ``videos`` and ``keypoints_2d`` map camera names to existing paths only;
    ``num_frames`` is None when nothing in the folder tells it. ``ego_pose_source``:
    ``"aria_mps"`` (raw Aria inputs, details in ``ego_poses``), ``"camera_pose_json"`` or
    None (no ego camera). ``input_files``: the files the cameras were read from (their
    changes invalidate every stage). ``scene_points``: the take's semidense point cloud
    (MPS ``semidense_points.csv.gz``), when present. ``ego_video_orientation``: how the
    ego video's frames are stored, ``"calibration"`` or ``"rotated_cw90"`` (the sensor
    image turned 90 degrees clockwise, as the release's ``<ego>_214-1.mp4``).
    ``video_frames``: for each exo camera whose video's size differs from its
    calibration's, what was assumed (cropped or padded edges, a resize); its camera in
    ``exo_cameras`` is already the video frame's (:func:`cameras_in_video_frames`).
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
    ego_pose_source: str | None = None
    ego_poses: aria.EgoPoses | None = None
    input_files: tuple[Path, ...] = ()
    scene_points: Path | None = None
    ego_video_orientation: str = "calibration"
    video_frames: dict[str, ImageFrameMatch] = field(default_factory=dict)

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


def ego_video_orientation(video: Path | None, setting: str) -> str:
    """``take.ego_video_orientation`` resolved for the take's ego ``video``: ``auto`` is
    ``rotated_cw90`` for the release's ``<ego>_214-1`` video (portrait), else ``calibration``."""
    if setting != "auto":
        return setting
    return "rotated_cw90" if video is not None and video.stem.endswith(f"_{aria.RGB_STREAM_ID}") else "calibration"


def _ego_video(name: str, videos: dict[str, Path]) -> Path | None:
    """``<ego>.mp4`` or the release's ``<ego>_214-1.mp4`` (the RGB stream)."""
    for stem in (name, f"{name}_{aria.RGB_STREAM_ID}"):
        found = _match((stem,), videos)
        if found:
            return found[stem]
    return None


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


def checked_take_name(name, source: Path) -> str:
    """A take name usable as the folder ``OUT/<name>``: non-empty, no path separator, not
    ``.`` or ``..`` (a name must never lead outside the output folder)."""
    if not isinstance(name, str) or name in ("", ".", "..") or any(sep in name for sep in ("/", "\\", "\0")):
        raise TakeError(f"{source}: field 'take_name' must be a plain folder name, got {name!r}")
    return name


def _metadata_number(path: Path, data: dict, key: str, kind, minimum: float = 0.0, strict: bool = True):
    if key not in data:
        return None
    value = data[key]
    bad_kind = isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value))
    if bad_kind or value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise TakeError(f"{path}: field '{key}' must be {'an integer' if kind is int else 'a number'} {relation} {minimum:g}, got {value!r}")
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


def cameras_in_video_frames(cameras, videos: dict[str, Path], calibration: Path, settings: TakeConfig) -> tuple[tuple[Camera, ...], dict[str, ImageFrameMatch]]:
    """Each camera with a video, in the video's pixel frame, and what was assumed where
    the sizes differ (:func:`triangulation.image_frames.match_image_frame`, settings
    ``take.max_video_edge_px`` and ``take.allow_scaled_video``).

    Raises :class:`TakeError` naming the video, camera, calibration file and sizes when
    the video cannot be the calibrated camera's. A camera without a known size or whose
    video cannot be opened is left as it is (detection reports an unreadable video).
    """
    from pipeline.formats.video import VideoDecodeError, video_info

    adapted, frames = [], {}
    for camera in cameras:
        video = videos.get(camera.name)
        if video is None or camera.image_size is None:
            adapted.append(camera)
            continue
        try:
            info = video_info(video)
        except VideoDecodeError:
            adapted.append(camera)
            continue
        match = match_image_frame(camera.image_size, (info.width, info.height), settings.max_video_edge_px, settings.allow_scaled_video)
        if match is None:
            (cw, ch), edge = camera.image_size, settings.max_video_edge_px
            raise TakeError(
                f"{video}: camera '{camera.name}': the video is {info.width}x{info.height}, its calibration "
                f"({calibration}, field 'image_size') {cw}x{ch}: neither the same image cropped or padded at an edge "
                f"by at most {edge} px (take.max_video_edge_px) nor "
                f"{'an exact resize' if settings.allow_scaled_video else 'equal (take.allow_scaled_video is off)'}: "
                "a calibration of another camera or resolution"
            )
        if match.kind != FRAME_SAME:
            logger.warning("%s: camera '%s': %s", video, camera.name, match.describe())
            frames[camera.name] = match
            camera = camera_in_video_frame(camera, match)
        adapted.append(camera)
    return tuple(adapted), frames


def _setting_path(root: Path, template: str, take_name: str) -> Path:
    """A path setting: ``{capture_name}`` / ``{take_name}`` replaced, relative to the take folder."""
    capture = re.sub(r"_\d+$", "", take_name)
    return root / template.replace("{capture_name}", capture).replace("{take_name}", take_name)


def _default_settings() -> TakeConfig:
    from pipeline.config import load_config

    return load_config().take


# --------------------------------------------------------------------------------------
# The ego camera from raw Aria inputs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AriaInputs:
    trajectory: Path
    calibration: Path | None
    timestamps: Path | None  # per-take frame timestamps CSV, or the timesync CSV
    timesync: bool


def _aria_inputs(root: Path, take_name: str, settings: TakeConfig) -> _AriaInputs | None:
    """The raw Aria input files present in the take (None without a trajectory)."""
    trajectory = _setting_path(root, settings.trajectory_csv, take_name)
    if not trajectory.is_file():
        return None
    calibration = next(
        (path for key in ("online_calibration_jsonl", "device_calibration_json") if (path := _setting_path(root, getattr(settings, key), take_name)).is_file()),
        None,
    )
    per_take = _setting_path(root, settings.frame_timestamps_csv, take_name)
    timesync = _setting_path(root, settings.timesync_csv, take_name)
    if per_take.is_file():
        return _AriaInputs(trajectory, calibration, per_take, False)
    return _AriaInputs(trajectory, calibration, timesync if timesync.is_file() else None, True)


def _ego_name(metadata: dict, inputs: _AriaInputs) -> str:
    if isinstance(metadata.get("ego_camera"), str) and metadata["ego_camera"]:
        return metadata["ego_camera"]
    if inputs.timestamps is not None and inputs.timesync:
        names = aria.timesync_aria_cameras(inputs.timestamps)
        if len(names) == 1:
            return names[0]
    return DEFAULT_EGO_NAME


def _aria_frame_timestamps(root: Path, metadata: dict, inputs: _AriaInputs, name: str, settings: TakeConfig) -> np.ndarray:
    if inputs.timestamps is None:
        raise TakeError(
            f"{root}: raw Aria inputs without frame timestamps: no per-take timestamps CSV and no timesync CSV "
            "(settings take.frame_timestamps_csv, take.timesync_csv)"
        )
    if not inputs.timesync:
        return aria.read_frame_timestamps(inputs.timestamps, _metadata_number(root / TAKE_JSON, metadata, "num_frames", int))
    take_json = root / TAKE_JSON
    indices = [_metadata_number(take_json, metadata, key, int, strict=False) for key in ("timesync_start_idx", "timesync_end_idx")]
    if None in indices:
        raise TakeError(f"{take_json}: fields 'timesync_start_idx' and 'timesync_end_idx' are needed to read {inputs.timestamps}")
    return aria.read_timesync_timestamps(inputs.timestamps, name, indices[0], indices[1], first_row=settings.timesync_first_row)


def _aria_calibration_file(root: Path, inputs: _AriaInputs, name: str, take_name: str, settings: TakeConfig) -> Path:
    """The calibration to read: the online calibration, else the device calibration JSON,
    else the device calibration inside the Aria recording (VRS, needs projectaria-tools)."""
    if inputs.calibration is not None:
        return inputs.calibration
    vrs = _setting_path(root, settings.aria_vrs.replace("{ego_name}", name), take_name)
    if vrs.is_file():
        return vrs
    raise TakeError(
        f"{root}: raw Aria inputs without a camera calibration (looked for {settings.online_calibration_jsonl}, "
        f"{settings.device_calibration_json} and {vrs.relative_to(root) if vrs.is_relative_to(root) else vrs}: settings "
        "take.online_calibration_jsonl, take.device_calibration_json, take.aria_vrs)"
    )


def _read_aria_ego(
    root: Path, metadata: dict, inputs: _AriaInputs, videos: dict[str, Path], settings: TakeConfig, take_name: str
) -> tuple[aria.EgoPoses, Path]:
    """The ego camera of every frame from the trajectory, calibration and frame timestamps,
    and the calibration file read."""
    from pipeline.formats.video import video_info

    name = _ego_name(metadata, inputs)
    calibration_file = _aria_calibration_file(root, inputs, name, take_name, settings)
    stamps = _aria_frame_timestamps(root, metadata, inputs, name, settings)
    tolerance = settings.max_quaternion_norm_error
    trajectory = aria.read_closed_loop_trajectory(inputs.trajectory, quaternion_tolerance=tolerance)
    label = settings.aria_camera_label
    if calibration_file.suffix == ".jsonl":
        times, calibrations = aria.read_online_calibrations(calibration_file, label, quaternion_tolerance=tolerance)
        middle = np.nanmedian(stamps) / 1000.0 if np.isfinite(stamps).any() else float(trajectory.timestamps_us[0])
        calibration = aria.nearest_calibration(times, calibrations, middle)
    elif calibration_file.suffix == ".vrs":
        calibration = read_vrs_calibration(calibration_file, label, quaternion_tolerance=tolerance)
    else:
        calibration = aria.read_device_calibration(calibration_file, label, quaternion_tolerance=tolerance)
    video = _ego_video(name, videos)
    if video is not None:
        info = video_info(video)
        calibration = calibration.rescaled((info.width, info.height))
    poses = aria.ego_camera_from_aria(name, trajectory, calibration, stamps, settings.max_trajectory_gap_s)
    if inputs.timesync:
        poses = replace(poses, timesync_first_row=settings.timesync_first_row)
    counts = aria.pose_status_counts(poses.status)
    missing = {key: value for key, value in counts.items() if key != "ok" and value}
    if missing:
        logger.warning("%s: ego camera '%s' has no pose for %d of %d frames: %s", root, name, sum(missing.values()), len(stamps), missing)
    return poses, calibration_file


def _check_one_world(gopro_csv: Path, trajectory_csv: Path, trajectory_graph_uid: str) -> None:
    """The exo cameras (``gopro_calibs.csv``'s ``graph_uid``, when it has one) and the Aria
    trajectory must be in the same world frame."""
    if not gopro_csv.is_file():
        return
    exo_graph_uid = read_gopro_graph_uid(gopro_csv)
    if exo_graph_uid is not None and exo_graph_uid != trajectory_graph_uid:
        raise TakeError(
            f"{gopro_csv} and {trajectory_csv}: the exo cameras are in world graph_uid {exo_graph_uid!r} and the Aria "
            f"trajectory in {trajectory_graph_uid!r}: ego and exo poses would be in different worlds"
        )


# --------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------


def _read_egoexo(root: Path, settings: TakeConfig) -> Take:
    metadata = _read_take_json(root)
    pose_json, gopro_csv = root / CAMERA_POSE_JSON, root / GOPRO_CALIBS_CSV
    ego, json_exo, inputs_used = None, [], []
    take_name = checked_take_name(metadata.get("take_name", root.name), root / TAKE_JSON)
    raw = _aria_inputs(root, take_name, settings)
    use_raw = raw is not None and (settings.ego_pose_prefer == "aria_mps" or not pose_json.is_file())
    if pose_json.is_file():
        json_exo, json_ego, pose_metadata = read_camera_pose_json(pose_json)
        metadata = {**pose_metadata, **metadata}
        inputs_used.append(pose_json)
        if not use_raw:
            ego = json_ego
    excluded: list[str] = []
    if gopro_csv.is_file():
        exo, excluded = read_gopro_calibs_csv(gopro_csv, with_excluded=True)
        inputs_used.append(gopro_csv)
    else:
        exo = json_exo
    if excluded:
        logger.warning("%s: camera(s) %s not localized (quality 0): left out", gopro_csv, ", ".join(excluded))
        metadata = {**metadata, "excluded_cameras": excluded}
    if not exo:
        raise TakeError(f"{root}: no exo camera in {GOPRO_CALIBS_CSV} or {CAMERA_POSE_JSON}")
    all_videos = _videos_in(root / VIDEO_DIR)
    ego_poses = None
    if use_raw:
        ego_poses, calibration_file = _read_aria_ego(root, metadata, raw, all_videos, settings, take_name)
        ego = ego_poses.camera
        _check_one_world(gopro_csv, raw.trajectory, ego_poses.graph_uid)
        inputs_used += [path for path in (raw.trajectory, calibration_file, raw.timestamps) if path is not None]
    exo_names = tuple(camera.name for camera in exo)
    videos = _match(exo_names, all_videos)
    exo, video_frames = cameras_in_video_frames(exo, videos, gopro_csv if gopro_csv.is_file() else pose_json, settings)
    if ego is not None and (ego_video := _ego_video(ego.name, all_videos)) is not None:
        videos[ego.name] = ego_video
    openpose = root / OPENPOSE_DIR
    folders = {path.name: path for path in sorted(openpose.iterdir()) if path.is_dir()} if openpose.is_dir() else {}
    keypoints = _match(exo_names, folders)
    take_json = root / TAKE_JSON
    fps = _metadata_number(take_json, metadata, "fps", float)
    num_frames = _metadata_number(take_json, metadata, "num_frames", int)
    if ego_poses is not None:
        if num_frames is None:
            num_frames = len(ego_poses.timestamps_ns)
        elif num_frames != len(ego_poses.timestamps_ns):
            logger.warning(
                "%s: field 'num_frames' is %d but %s gives %d frame times: frames without one get no ego pose, "
                "frame times beyond the take are not used (check the take's length and the timesync indexing)",
                take_json, num_frames, raw.timestamps, len(ego_poses.timestamps_ns),
            )  # fmt: skip
    if fps is None or num_frames is None:
        file_fps, file_frames = _timing_from_files(list(exo_names), videos, keypoints)
        fps, num_frames = fps or file_fps, num_frames or file_frames
    return Take(
        name=take_name,
        root=root,
        layout="egoexo",
        exo_cameras=tuple(exo),
        ego_camera=ego,
        fps=fps or DEFAULT_FPS,
        num_frames=num_frames,
        videos=videos,
        keypoints_2d=keypoints,
        metadata=metadata,
        ego_pose_source=None if ego is None else ("aria_mps" if use_raw else "camera_pose_json"),
        ego_poses=ego_poses,
        input_files=tuple(inputs_used) + ((take_json,) if take_json.is_file() else ()),
        scene_points=scene if (scene := _setting_path(root, settings.semidense_points_csv, take_name)).is_file() else None,
        ego_video_orientation=ego_video_orientation(videos.get(ego.name) if ego is not None else None, settings.ego_video_orientation),
        video_frames=video_frames,
    )


def _is_calibration_toml(path: Path) -> bool:
    """A TOML whose tables describe cameras (``matrix`` and ``rotation``), not Pose2Sim's Config.toml."""
    try:
        with path.open("rb") as stream:
            document = tomllib.load(stream)
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
        return False
    return any(isinstance(table, dict) and "matrix" in table and "rotation" in table for table in document.values())


def _pose2sim_frame_rate(root: Path) -> float | None:
    """``project.frame_rate`` of a Pose2Sim ``Config.toml`` beside the take (None: absent or 'auto')."""
    path = root / POSE2SIM_CONFIG
    if not path.is_file():
        return None
    try:
        with path.open("rb") as stream:
            rate = tomllib.load(stream).get("project", {}).get("frame_rate")
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as error:
        raise TakeError(f"{path}: not a valid TOML file: {error}") from None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        return None
    if not rate > 0:
        raise TakeError(f"{path}: field 'project.frame_rate' must be positive or 'auto', got {rate!r}")
    return float(rate)


def find_rig_calibration(root: Path) -> Path | None:
    """The calibration TOML of a rig folder: beside the videos, else in ``calibration/``.

    Pose2Sim trial folders also hold ``Config.toml`` (settings); the calibration is
    recognised by its content. Several calibrations in one place are refused.
    """
    for folder in (root, root / "calibration"):
        candidates = [path for path in sorted(folder.glob("*.toml")) if _is_calibration_toml(path)]
        if len(candidates) > 1:
            raise TakeError(f"{folder}: several calibration files, expected one: {', '.join(p.name for p in candidates)}")
        if candidates:
            return candidates[0]
    return None


def _read_rig(root: Path, toml_path: Path, settings: TakeConfig) -> Take:
    cameras = tuple(read_toml_calibration(toml_path))
    names = tuple(camera.name for camera in cameras)
    videos = {**_videos_in(root), **_videos_in(root / "videos")}
    json_folders = {path.name[: -len("_json")]: path for path in sorted(root.rglob("*_json")) if path.is_dir()}
    videos, keypoints = _match(names, videos), _match(names, json_folders)
    cameras, video_frames = cameras_in_video_frames(cameras, videos, toml_path, settings)
    fps, num_frames = _timing_from_files(names, videos, keypoints)
    config_fps = _pose2sim_frame_rate(root)
    config = root / POSE2SIM_CONFIG
    return Take(
        name=checked_take_name(root.resolve().name, root),
        root=root,
        layout="rig",
        exo_cameras=cameras,
        ego_camera=None,
        fps=config_fps or fps or DEFAULT_FPS,
        num_frames=num_frames,
        videos=videos,
        keypoints_2d=keypoints,
        metadata={"calibration": str(toml_path)},
        input_files=(toml_path,) + ((config,) if config.is_file() else ()),
        video_frames=video_frames,
    )


def take_name(path: str | Path) -> str:
    """The name a take's outputs go under (``take.json``'s ``take_name``, else the folder's), read cheaply."""
    root = Path(path)
    if not root.is_dir():
        raise TakeError(f"{root}: take folder not found")
    return checked_take_name(_read_take_json(root).get("take_name", root.resolve().name), root / TAKE_JSON)


def read_take(path: str | Path, settings: TakeConfig | None = None) -> Take:
    """Read a take folder in the Ego-Exo4D layout or as an anipose/Pose2Sim rig folder.

    ``settings``: the ``take`` settings (None: the defaults of configs/default.yaml).
    """
    root = Path(path)
    if not root.is_dir():
        raise TakeError(f"{root}: take folder not found")
    settings = settings if settings is not None else _default_settings()
    if (root / CAMERA_POSE_JSON).is_file() or (root / GOPRO_CALIBS_CSV).is_file():
        return _read_egoexo(root, settings)
    calibration = find_rig_calibration(root)
    if calibration is not None:
        return _read_rig(root, calibration, settings)
    raise TakeError(f"{root}: not a take folder: no {CAMERA_POSE_JSON}, {GOPRO_CALIBS_CSV} or calibration .toml (beside the videos or in calibration/)")
