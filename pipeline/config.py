"""Pipeline configuration: YAML presets in ``configs/``, validated at start-up.

``configs/default.yaml`` holds every setting with a comment giving its meaning and
unit; it is always loaded first. A user preset (``--config FILE``) and ``--set
section.key=value`` overrides are merged on top. The schema below gives each key's
type and allowed range (no defaults here: the YAML file is the one source of values).
Any unknown, missing or out-of-range key is refused with a message naming it.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from detection.settings import DetectionSettings
from fitting.body_model.settings import FitSettings
from fitting.quality import QualityThresholds
from fitting.refine import RefineSettings
from triangulation.rig_check import RigCheckSettings
from triangulation.schema import bounds
from triangulation.triangulate import TriangulationSettings

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"


class ConfigError(ValueError):
    """Invalid configuration; the message names the file and the key."""


@dataclass(frozen=True)
class DetectMMPoseConfig:
    det_config: str | None
    det_checkpoint: str | None
    pose_config: str | None
    pose_checkpoint: str | None
    device: str
    batch_size: int = field(metadata=bounds(1, 1024))
    min_box_score: float = field(metadata=bounds(0.0, 1.0))

    def __post_init__(self):
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"key 'detect.mmpose.device' must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")


@dataclass(frozen=True)
class DetectConfig(DetectionSettings):
    backend: Literal["mediapipe", "mmpose", "precomputed"]
    # precomputed
    precomputed_format: Literal["openpose", "egoexo4d"]
    openpose_layout: Literal["BODY_25", "BODY_25B", "COCO_17", "COCO_18", "COCO_WHOLEBODY_133"] | None
    precomputed_person: Literal["select", "first"]
    egoexo4d_body_annotation: str | None
    egoexo4d_hand_annotation: str | None
    egoexo4d_exo_2d_frame: Literal["undistorted", "raw"]
    egoexo4d_undistorted_balance: float = field(metadata=bounds(0.0, 1.0))
    read_workers: int = field(metadata=bounds(0))
    on_bad_file: Literal["fail", "mark_missing"]
    missing_camera: Literal["fail", "exclude"]
    # work split and video decoding
    executor: Literal["auto", "inprocess", "ray"]
    num_workers: int = field(metadata=bounds(0))
    cpus_per_model: int = field(metadata=bounds(1))
    ray_retries: int = field(metadata=bounds(0))
    ray_address: str | None
    frames_per_task: int = field(metadata=bounds(1))
    on_decode_error: Literal["fail", "mark_missing"]
    # subject selection
    seed_image_size: int = field(metadata=bounds(64))
    # body and hand models
    body_crop_margin: float = field(metadata=bounds(0.0, 2.0))
    body_crop_size: int = field(metadata=bounds(64, 2048))
    min_person_confidence: float = field(metadata=bounds(0.0, 1.0))
    hand_model_complexity: int = field(metadata=bounds(0, 1))
    hand_quality: bool
    min_hand_confidence: float = field(metadata=bounds(0.0, 1.0))
    hand_crop_size: int = field(metadata=bounds(64, 1024))
    # the mmpose backend's own settings (stages/detect/backend.py's registry names them)
    mmpose: DetectMMPoseConfig


@dataclass(frozen=True)
class TakeConfig:
    ego_pose_prefer: Literal["aria_mps", "camera_pose"]
    max_trajectory_gap_s: float = field(metadata=bounds(0.0, low_open=True))
    max_quaternion_norm_error: float = field(metadata=bounds(0.0, 0.5, low_open=True))
    aria_camera_label: str
    trajectory_csv: str
    online_calibration_jsonl: str
    device_calibration_json: str
    aria_vrs: str
    timesync_csv: str
    timesync_first_row: Literal["after_start_idx", "start_idx"]
    frame_timestamps_csv: str
    semidense_points_csv: str
    ego_video_orientation: Literal["auto", "calibration", "rotated_cw90"]
    max_video_edge_px: int = field(metadata=bounds(0, 64))
    allow_scaled_video: bool


@dataclass(frozen=True)
class ProjectEgoConfig:
    undistorted_width: int = field(metadata=bounds(16, 8192))
    undistorted_height: int = field(metadata=bounds(16, 8192))
    undistorted_focal_px: float = field(metadata=bounds(0.0, low_open=True))
    min_depth_m: float = field(metadata=bounds(0.0))
    exo_undistorted_balance: float = field(metadata=bounds(0.0, 1.0))


@dataclass(frozen=True)
class ExportConfig:
    trc: bool
    filled_joints: Literal["omit", "zero_views"]
    frames_without_ego_pose: Literal["omit", "keep"]
    release_split: Literal["train", "val", "test"] | None
    benchmark_files: bool
    benchmark_min_hand_joints: int = field(metadata=bounds(1, 21))
    benchmark_hand_bbox_padding_px: float = field(metadata=bounds(0.0))
    benchmark_hand_reprojection_px: float = field(metadata=bounds(0.0))
    body_evaluation_min_clip_len: int = field(metadata=bounds(1))
    exo_2d_frame: Literal["undistorted", "raw"]


@dataclass(frozen=True)
class CalibrateCheckConfig(RigCheckSettings):  # the library's settings, which joints it gets, what the stage does with its result
    enabled: bool
    mode: Literal["check", "correct"]
    use_hands: bool


@dataclass(frozen=True)
class RefineConfig(RefineSettings):  # the library's settings, and how the stage runs
    executor: Literal["auto", "inprocess", "ray"]
    ray_min_frames: int = field(metadata=bounds(0))


def frame_range_error(text: str) -> str | None:
    """Why ``text`` is not a frame range ``"start:stop"`` (frames, stop excluded, either may be
    empty, ``0 <= start < stop``), or None when it is one."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = (int(part) if part.strip() else None for part in parts)
    except ValueError:
        return f"must be 'start:stop' (frames, stop excluded, either may be empty), got {text!r}"
    if (start is not None and start < 0) or (start is not None and stop is not None and start >= stop):
        return f"must be 'start:stop' with 0 <= start < stop, got {text!r}"
    return None


_FRAME_RANGE = {"check": frame_range_error, "hint": "quote it: YAML reads an unquoted 10:20 as the number 620"}


@dataclass(frozen=True)
class QaConfig:
    flags: QualityThresholds  # the schema of the flags is the library's own
    overlay_videos: bool
    overlay_frames: str | None = field(metadata=_FRAME_RANGE)
    overlay_max_width: int = field(metadata=bounds(64, 8192))
    error_bad_px: float = field(metadata=bounds(0.0, low_open=True))
    report: bool
    report_thumbnails: int = field(metadata=bounds(0, 1000))
    report_max_columns: int = field(metadata=bounds(10, 100000))
    report_max_rows: int = field(metadata=bounds(1))
    recording: bool
    recording_max_points: int = field(metadata=bounds(0))
    recording_images: int = field(metadata=bounds(0, 100000))
    scene_max_inv_dist_std: float = field(metadata=bounds(0.0, low_open=True))
    scene_max_dist_std: float = field(metadata=bounds(0.0, low_open=True))

    def __post_init__(self):
        if not self.flags.reprojection_error_px < self.error_bad_px:
            raise ConfigError(
                f"key 'qa.flags.reprojection_error_px' ({self.flags.reprojection_error_px}) must be below 'qa.error_bad_px' ({self.error_bad_px}): "
                "the overlays' colour ramp runs from the one to the other"
            )


@dataclass(frozen=True)
class FitBodyModelAnnyConfig:
    cache_dir: str | None


@dataclass(frozen=True)
class FitBodyModelSmplxConfig:
    model_type: Literal["smplx", "smplh", "smpl"]
    model_path: str | None
    gender: Literal["neutral", "male", "female"]
    num_betas: int = field(metadata=bounds(1, 300))


@dataclass(frozen=True)
class FitBodyModelConfig(FitSettings):
    enabled: bool
    backend: Literal["anny", "smplx"]
    anny: FitBodyModelAnnyConfig
    smplx: FitBodyModelSmplxConfig
    mesh_format: Literal["none", "glb", "ply"]
    mesh_first_frame: int = field(metadata=bounds(0))
    mesh_last_frame: int | None = field(metadata=bounds(0))
    mesh_every: int = field(metadata=bounds(1))


@dataclass(frozen=True)
class BatchConfig:
    parallel_takes: int = field(metadata=bounds(1))
    ray_address: str | None
    ray_retries: int = field(metadata=bounds(0))
    blas_threads: int = field(metadata=bounds(0))


@dataclass(frozen=True)
class DemoConfig:
    frames: int = field(metadata=bounds(1))
    exo_cameras: int = field(metadata=bounds(2))
    seed: int = field(metadata=bounds(0))
    render: bool
    output: str


@dataclass(frozen=True)
class PipelineConfig:
    take: TakeConfig
    detect: DetectConfig
    triangulation: TriangulationSettings
    calibrate_check: CalibrateCheckConfig
    refine: RefineConfig
    fit_body_model: FitBodyModelConfig
    project_ego: ProjectEgoConfig
    export: ExportConfig
    qa: QaConfig
    batch: BatchConfig
    demo: DemoConfig

    def section(self, name: str) -> dict[str, Any]:
        """One section as a plain dict (what the pure libraries take as keyword arguments)."""
        return dataclasses.asdict(getattr(self, name))


def _check_value(where: str, annotation, value, metadata) -> Any:
    """Type- and range-check one value; ``where`` names the file and key for messages."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):  # X | None
        if value is None:
            return None
        annotation = next(option for option in typing.get_args(annotation) if option is not type(None))
    if typing.get_origin(annotation) is Literal:
        if value not in typing.get_args(annotation):
            raise ConfigError(f"{where} must be one of {list(typing.get_args(annotation))}, got {value!r}")
        return value
    if annotation is bool or annotation is str:
        if not isinstance(value, annotation):
            hint = f" ({metadata['hint']})" if "hint" in metadata else ""
            raise ConfigError(f"{where} must be {'true or false' if annotation is bool else 'a string'}, got {value!r}{hint}")
        problem = metadata["check"](value) if "check" in metadata else None
        if problem:
            raise ConfigError(f"{where} {problem}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (annotation is int and not isinstance(value, int)):
        raise ConfigError(f"{where} must be {'an integer' if annotation is int else 'a number'}, got {value!r}")
    value = annotation(value)
    low, high, low_open = metadata.get("low"), metadata.get("high"), metadata.get("low_open")
    if value != value:
        raise ConfigError(f"{where} must be a number, got NaN")
    if low is not None and (value < low or (low_open and value == low)):
        raise ConfigError(f"{where} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{where} must be <= {high}, got {value!r}")
    return value


def _build(cls, values: Any, source: str, prefix: str = ""):
    """Instantiate the schema dataclass ``cls`` from nested dicts, validating every key."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: key {prefix.rstrip('.')!r} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in values:
        if name not in fields:
            raise ConfigError(f"{source}: unknown key {prefix + name!r} (known: {', '.join(sorted(fields))})")
    for name in fields:
        if name not in values:
            raise ConfigError(f"{source}: missing key {prefix + name!r}")
    built = {}
    for name, f in fields.items():
        if dataclasses.is_dataclass(hints[name]):
            built[name] = _build(hints[name], values[name], source, f"{prefix}{name}.")
        else:
            built[name] = _check_value(f"{source}: key {prefix + name!r}", hints[name], values[name], f.metadata)
    try:
        return cls(**built)
    except ConfigError as error:  # a check across keys (the schema's __post_init__)
        raise ConfigError(f"{source}: {error}") from None


def _merge(base: dict, update: dict, source: str, path: str = "") -> dict:
    merged = dict(base)
    for key, value in update.items():
        name = f"{path}{key}"
        if key not in base:
            raise ConfigError(f"{source}: unknown key {name!r}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: key {name!r} must be a mapping, got {value!r}")
            merged[key] = _merge(base[key], value, source, f"{name}.")
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"section.key=value"`` -> (``["section", "key"]``, YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


# Keys of settings stored by earlier versions (``OUT/<take>/run.json``) that moved or went
# away: `report` on an older output reads them under their new names (or drops them).
MOVED_KEYS = {
    "detect.mmdet_config": "detect.mmpose.det_config",
    "detect.mmdet_checkpoint": "detect.mmpose.det_checkpoint",
    "detect.mmpose_config": "detect.mmpose.pose_config",
    "detect.mmpose_checkpoint": "detect.mmpose.pose_checkpoint",
    "detect.device": "detect.mmpose.device",
    "detect.mmpose_batch_size": "detect.mmpose.batch_size",
    "detect.min_box_score": "detect.mmpose.min_box_score",
    "fit_body_model.anny_cache_dir": "fit_body_model.anny.cache_dir",
}
REMOVED_KEYS = {"qa.error_good_px": "the overlay colour ramp starts at qa.flags.reprojection_error_px"}


def migrate_stored_settings(stored: dict) -> dict:
    """``stored`` (nested settings of an earlier run) with :data:`MOVED_KEYS` under their new
    names and :data:`REMOVED_KEYS` left out; a copy, the original untouched."""
    migrated = {section: dict(values) if isinstance(values, dict) else values for section, values in stored.items()}
    for old, new in MOVED_KEYS.items():
        section, key = old.split(".", 1)
        values = migrated.get(section)
        if isinstance(values, dict) and key in values and not isinstance(values[key], dict):
            value = values.pop(key)
            target = migrated
            *parents, leaf = new.split(".")
            for parent in parents:
                target[parent] = dict(target.get(parent, {}))
                target = target[parent]
            target[leaf] = value
    for old in REMOVED_KEYS:
        section, key = old.split(".", 1)
        if isinstance(migrated.get(section), dict):
            migrated[section].pop(key, None)
    return migrated


def load_config(path: str | Path | None = None, overrides: typing.Iterable[str] = (), base: dict | None = None) -> PipelineConfig:
    """Defaults (or the stored settings ``base`` of an earlier run, e.g. ``OUT/<take>/run.json``),
    then the preset ``path`` (if any), then ``section.key=value`` overrides."""
    values = _read_yaml(DEFAULT_CONFIG) if base is None else _merge(_read_yaml(DEFAULT_CONFIG), migrate_stored_settings(base), "stored settings")
    if path is not None:
        values = _merge(values, _read_yaml(Path(path)), str(path))
    for text in overrides:
        keys, value = parse_override(text)
        update: Any = value
        for key in reversed(keys):
            update = {key: update}
        values = _merge(values, update, f"--set {text}")
    source = str(path) if path is not None else str(DEFAULT_CONFIG)
    if overrides:
        source += " with --set " + " ".join(overrides)
    return _build(PipelineConfig, values, source)
