"""Generate a synthetic take and write it in the Ego-Exo4D layout with its ground truth.

Take folder written by :func:`write_take` (``take_dir`` is the take)::

    take.json                       take_name, take_uid, fps, num_frames, cameras, seed, generator,
                                    ego_camera, timesync_start_idx, timesync_end_idx
    trajectory/gopro_calibs.csv     exo cameras (Kannala-Brandt)
    trajectory/closed_loop_trajectory.csv   the glasses' device poses at 1 kHz (MPS layout), sampled
                                    off the frame times, from a quarter second before the take to
                                    a quarter second after
    trajectory/online_calibration.jsonl     the RGB camera's FISHEYE624 calibration and T_device_camera
    trajectory/device_calibration.json      the same as a projectaria-tools device calibration
    trajectory/semidense_points.csv.gz      MPS-style points on the room's floor and walls
    timesync.csv                    capture-style timestamps: take frame i is row timesync_start_idx + 1 + i
    camera_pose.json                only with ``camera_pose_json``: exo cameras + per-frame ego poses
                                    (the processed form a released take has)
    keypoints2d/openpose/<cam>/<cam>_<frame:012d>_keypoints.json   simulated detections
    gt/joints_3d.npz                joints_3d (F, 59, 3) float64 m, bone_lengths (59,) m
                                    in BONES order, fps (), joint_names (59,), bones (59, 2)
    gt/joints_2d.npz                camera_names (V,), pixels (V, F, 59, 2) float64,
                                    in_image (V, F, 59) bool, image_size (V, 2) int
    gt/ego_2d.npz                   camera_name (), pixels (F, 59, 2) float64 (raw fisheye),
                                    in_image (F, 59) bool, image_size (2,) int,
                                    undistorted_pixels (F, 59, 2) in the released 512 x 512,
                                    f = 150 px linear frame, undistorted_in_image (F, 59) bool
    gt/ego_camera.npz               camera_name (), R (F, 3, 3), t (F, 3) world-to-camera,
                                    timestamps_ns (F,) device clock
    gt/observations.npz             camera_names (V,), keypoints (V, F, 59, 3) float32,
                                    dropped, occluded, outlier, swapped, out_of_image
                                    (V, F, 59) bool, noise_sigma_px (V, F, 59) float32
    gt/rig_perturbation.json        only with a perturbation (:mod:`workflow.synth.perturbation`):
                                    the camera whose written calibration is wrong, rotation_deg,
                                    translation_m, axis, direction, its true and written R, t,
                                    centre; the time-shifted camera, time_shift_frames,
                                    time_shift_ms; the conventions
    frame_aligned_videos/<cam>.mp4  only when rendered (:mod:`workflow.synth.render`)
    gt/visibility.npz               only when rendered: camera_names (V,), visible (V, F, 59) bool
                                    (the joint's own body part is the surface at its pixel),
                                    hand_visible (V, F, 2) bool (left, right: at least
                                    hand_visible_share of the hand's joints visible)

Everything is a function of the :class:`SynthConfig` (seed included): the same
configuration gives byte-identical files (no timestamps are written).

With a :class:`~workflow.synth.perturbation.RigPerturbation`, everything observed
(detections, videos, ``gt/joints_2d.npz``, ``gt/visibility.npz``) comes from the true
rig, the time-shifted camera seeing the motion at its shifted times; only the written
calibration of the perturbed camera (``gopro_calibs.csv``, ``camera_pose.json``) is
wrong. Without one, the files are those of a take made before perturbations existed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fitting import skeleton
from pipeline.atomic import atomic_save_npz, atomic_write_text
from pipeline.formats.aria import (
    AriaCameraCalibration,
    write_closed_loop_trajectory,
    write_device_calibration,
    write_online_calibration,
    write_semidense_points,
    write_timesync,
)
from pipeline.formats.calibration import write_camera_pose_json, write_gopro_calibs_csv
from pipeline.formats.openpose import write_openpose_folder
from pipeline.formats.take_folder import CAMERA_POSE_JSON, GOPRO_CALIBS_CSV, OPENPOSE_DIR, TAKE_JSON, VIDEO_DIR
from triangulation.cameras import Camera, MovingCamera
from workflow.synth.motion import Motion, MotionConfig, joints_at, simulate_motion
from workflow.synth.observations import (
    DetectorConfig,
    Observations,
    project_moving,
    project_views,
    simulate_observations,
)
from workflow.synth.perturbation import RigPerturbation
from workflow.synth.rig import (
    EGO_CAMERA_NAME,
    RigConfig,
    ego_calibration,
    exo_camera_names,
    head_device,
    make_ego_camera,
    make_exo_cameras,
    world_poses,
)

logger = logging.getLogger(__name__)

GENERATOR = "workflow.synth"
GENERATOR_VERSION = "3"  # bump when the same configuration would produce different data
_UID_NAMESPACE = uuid.UUID("5b0f7a52-3f0e-4f53-9d3c-6a3f1f0e5a11")  # fixed: take_uid = uuid5(namespace, config)

# Ground-truth paths inside a take folder (the others are the reader's, pipeline/take.py).
JOINTS_3D_NPZ = "gt/joints_3d.npz"
JOINTS_2D_NPZ = "gt/joints_2d.npz"
EGO_2D_NPZ = "gt/ego_2d.npz"
EGO_CAMERA_NPZ = "gt/ego_camera.npz"
# Raw Aria inputs (paths of the take reader's default settings).
TRAJECTORY_CSV = "trajectory/closed_loop_trajectory.csv"
ONLINE_CALIBRATION_JSONL = "trajectory/online_calibration.jsonl"
DEVICE_CALIBRATION_JSON = "trajectory/device_calibration.json"
TIMESYNC_CSV = "timesync.csv"
SEMIDENSE_POINTS_CSV = "trajectory/semidense_points.csv.gz"
SCENE_POINT_COUNT = 20000  # semidense points written on the room's floor and walls
DEVICE_CLOCK_START_US = 3_600_000_000  # device clock (µs) at frame 0: the glasses have run for an hour
TRAJECTORY_PHASE_US = 370  # trajectory samples fall this far after whole milliseconds (off the frame times)
TIMESYNC_ROWS_BEFORE = 5  # capture rows before the take's first frame (other takes of the capture)
TIMESYNC_ROWS_AFTER = 3
# The undistorted ego frame of the Ego-Exo4D labels (projectaria-tools get_linear_camera_calibration(512, 512, 150)).
RELEASE_UNDISTORTED_SIZE = (512, 512)
RELEASE_UNDISTORTED_FOCAL_PX = 150.0
OBSERVATIONS_NPZ = "gt/observations.npz"
VISIBILITY_NPZ = "gt/visibility.npz"
RIG_PERTURBATION_JSON = "gt/rig_perturbation.json"


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a synthetic take."""

    seed: int = 0  # non-negative; drives every random choice
    num_frames: int = 300  # frames
    fps: float = 30.0  # frames per second
    trajectory_hz: float = 1000.0  # device trajectory samples per second (MPS closed loop: 1 kHz)
    trajectory_margin_s: float = 0.25  # the trajectory starts this long before frame 0 and ends after the last frame
    camera_pose_json: bool = False  # also write camera_pose.json (a released take's processed poses)
    motion: MotionConfig = field(default_factory=MotionConfig)
    rig: RigConfig = field(default_factory=RigConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    perturbation: RigPerturbation = field(default_factory=RigPerturbation)  # default: the rig is as written

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.rig.num_exo < 1:
            raise ValueError(f"rig.num_exo must be >= 1, got {self.rig.num_exo}")
        if not self.trajectory_hz > 0 or self.trajectory_margin_s < 0:
            raise ValueError(f"trajectory_hz must be > 0 and trajectory_margin_s >= 0, got {self.trajectory_hz}, {self.trajectory_margin_s}")
        self.perturbation.check_cameras(exo_camera_names(self.rig))

    @property
    def take_name(self) -> str:
        return f"synth_seed{self.seed}"

    def document(self) -> dict:
        """The configuration as plain data; without ``perturbation`` when there is none
        (so an unperturbed take keeps the uid and ``take.json`` it had before perturbations)."""
        document = dataclasses.asdict(self)
        if not self.perturbation.active:
            del document["perturbation"]
        return document

    @property
    def take_uid(self) -> str:
        """Deterministic UUID of the configuration."""
        text = json.dumps([GENERATOR_VERSION, self.document()], sort_keys=True)
        return str(uuid.uuid5(_UID_NAMESPACE, text))


@dataclass(frozen=True)
class SynthTake:
    """A generated take in memory.

    ``pixels (V, F, 59, 2)`` / ``in_image (V, F, 59)``: true projections into the exo
    views (of what each view's frames show); ``ego_pixels (F, 59, 2)`` / ``ego_in_image
    (F, 59)``: into the ego view. ``exo_cameras`` is the true rig, ``written_exo_cameras``
    the calibration written (the same cameras unless ``config.perturbation`` moves one);
    ``view_joints``: per exo camera name, the joints ``(F, 59, 3)`` its frames show where
    they are not ``motion.joints`` (the time-shifted camera).
    """

    config: SynthConfig
    motion: Motion
    exo_cameras: list[Camera]
    ego: MovingCamera
    pixels: np.ndarray
    in_image: np.ndarray
    ego_pixels: np.ndarray
    ego_in_image: np.ndarray
    observations: Observations
    ego_calibration: AriaCameraCalibration
    trajectory_us: np.ndarray  # (N,) int64 device clock
    R_world_device: np.ndarray  # (N, 3, 3)
    t_world_device: np.ndarray  # (N, 3) metres
    frame_timestamps_ns: np.ndarray  # (F,) int64 device clock
    written_exo_cameras: list[Camera]
    view_joints: dict[str, np.ndarray]

    def undistorted_ego(self) -> tuple[np.ndarray, np.ndarray]:
        """True ego 2D in the released linear frame: ``pixels (F, 59, 2)``, ``in_image (F, 59)``
        (in front, inside the 512 x 512 image and inside the fisheye's valid area)."""
        width, height = RELEASE_UNDISTORTED_SIZE
        focal = RELEASE_UNDISTORTED_FOCAL_PX
        points = self.ego.world_to_camera(self.motion.joints)
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = focal * points[..., :2] / points[..., 2:3] + ((width - 1) / 2, (height - 1) / 2)
        front = points[..., 2] > self.config.detector.min_depth_m
        inside = (pixels[..., 0] >= -0.5) & (pixels[..., 0] <= width - 0.5) & (pixels[..., 1] >= -0.5) & (pixels[..., 1] <= height - 0.5)
        angle = np.arctan2(np.linalg.norm(points[..., :2], axis=-1), points[..., 2])
        radius = np.hypot(self.ego_pixels[..., 0] - self.ego.model.cx, self.ego_pixels[..., 1] - self.ego.model.cy)
        fov = self.ego.field_of_view
        valid = (angle <= fov.max_angle_rad) & (radius <= fov.valid_radius_px) & self.ego_in_image
        pixels[~front] = np.nan
        return pixels, front & inside & valid


def _device_clock(config: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Frame timestamps (ns) and trajectory sample timestamps (µs), device clock."""
    frame_ns = DEVICE_CLOCK_START_US * 1000 + np.round(np.arange(config.num_frames) / config.fps * 1e9).astype(np.int64)
    step_us = max(int(round(1e6 / config.trajectory_hz)), 1)
    margin_us = int(round(config.trajectory_margin_s * 1e6))
    duration_us = int(round((config.num_frames - 1) / config.fps * 1e6))
    first = DEVICE_CLOCK_START_US - margin_us + TRAJECTORY_PHASE_US
    trajectory_us = np.arange(first, DEVICE_CLOCK_START_US + duration_us + margin_us + 1, step_us, dtype=np.int64)
    return frame_ns, trajectory_us


def generate_take(config: SynthConfig = SynthConfig()) -> SynthTake:
    """Simulate motion, cameras, the device trajectory, true projections and detections (no files)."""
    frame_ns, trajectory_us = _device_clock(config)
    sample_times = (trajectory_us - DEVICE_CLOCK_START_US) * 1e-6
    motion = simulate_motion(config.num_frames, config.fps, config.seed, config.motion, sample_times)
    center = motion.joints[:, 11:13, :2].mean(axis=(0, 1))  # mean hip midpoint: the scene centre
    exo = make_exo_cameras(np.random.default_rng([config.seed, 2]), center, config.rig)  # stream 2: rig
    ego = make_ego_camera(motion, config.rig, EGO_CAMERA_NAME)
    R_world_device, t_world_device = world_poses(motion.head_samples.rotation, motion.head_samples.position, *head_device(config.rig))
    perturbation = config.perturbation
    view_joints = {}
    if perturbation.time_shift_camera is not None:  # its frame f shows the scene at (f + shift) / fps
        times = (np.arange(config.num_frames) + perturbation.time_shift_frames) / config.fps
        view_joints[perturbation.time_shift_camera] = joints_at(times, config.num_frames, config.fps, config.seed, config.motion)
    pixels, in_image, _ = project_views(motion.joints, exo, config.detector.min_depth_m, view_joints)
    ego_pixels, ego_in_image = project_moving(motion.joints, ego, config.detector.min_depth_m)
    observations = simulate_observations(motion.joints, exo, config.seed, config.detector, view_joints)
    written = [perturbation.written_camera(camera, config.seed) for camera in exo]
    return SynthTake(
        config, motion, exo, ego, pixels, in_image, ego_pixels, ego_in_image, observations,
        ego_calibration(config.rig), trajectory_us, R_world_device, t_world_device, frame_ns, written, view_joints,
    )  # fmt: skip


def take_document(take: SynthTake) -> dict:
    """Content of ``take.json``."""
    config = take.config
    return {
        "take_name": config.take_name,
        "take_uid": config.take_uid,
        "fps": config.fps,
        "num_frames": config.num_frames,
        "exo_cameras": [camera.name for camera in take.exo_cameras],
        "ego_camera": take.ego.name,
        "timesync_start_idx": TIMESYNC_ROWS_BEFORE - 1,
        "timesync_end_idx": TIMESYNC_ROWS_BEFORE + config.num_frames,
        "seed": config.seed,
        "synthetic": True,
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "generator_config": config.document(),
    }


GRAPH_UID = "synthetic-world"  # the world frame shared by the trajectory and the exo cameras
ONLINE_CALIBRATION_PERIOD_S = 1.0  # one online calibration line per this many seconds of trajectory


def _write_aria_inputs(take: SynthTake, take_dir: Path) -> None:
    """The raw Aria inputs of a new take: trajectory, calibrations, timesync."""
    config = take.config
    write_closed_loop_trajectory(take_dir / TRAJECTORY_CSV, take.trajectory_us, take.R_world_device, take.t_world_device, GRAPH_UID)
    first, last = int(take.trajectory_us[0]), int(take.trajectory_us[-1])
    stamps = np.arange(first, last + 1, int(ONLINE_CALIBRATION_PERIOD_S * 1e6))
    write_online_calibration(take_dir / ONLINE_CALIBRATION_JSONL, stamps, [take.ego_calibration] * len(stamps))
    write_device_calibration(take_dir / DEVICE_CALIBRATION_JSON, take.ego_calibration)
    period_ns = 1e9 / config.fps
    rows_before = np.arange(-TIMESYNC_ROWS_BEFORE, 0) * period_ns + take.frame_timestamps_ns[0]
    rows_after = np.arange(1, TIMESYNC_ROWS_AFTER + 1) * period_ns + take.frame_timestamps_ns[-1]
    rows = np.concatenate([np.round(rows_before), take.frame_timestamps_ns, np.round(rows_after)])
    write_timesync(take_dir / TIMESYNC_CSV, take.ego.name, rows, [camera.name for camera in take.exo_cameras], config.fps)
    from workflow.synth.render import scene_points

    points = scene_points(take.motion.joints, take.exo_cameras, config.seed, SCENE_POINT_COUNT)
    rng = np.random.default_rng([config.seed, 5])  # stream 5: scene point noise
    distance_std = rng.uniform(0.001, 0.008, len(points))
    write_semidense_points(
        take_dir / SEMIDENSE_POINTS_CSV, points + rng.normal(0.0, distance_std[:, None] / 2, points.shape), distance_std / 4.0, distance_std, GRAPH_UID
    )


def _corruption_summary(observations: Observations) -> dict[str, float]:
    """Percentages: out of image (of all), dropped / occluded (of in-image), outliers / swaps (of reported)."""
    in_image = ~observations.out_of_image
    reported = in_image & ~observations.dropped

    def percent(mask, among):
        return 100.0 * float(np.count_nonzero(mask & among)) / max(int(np.count_nonzero(among)), 1)

    return {
        "out_of_image": percent(observations.out_of_image, np.ones_like(in_image)),
        "dropped": percent(observations.dropped, in_image),
        "occluded": percent(observations.occluded, in_image),
        "outlier": percent(observations.outlier, reported),
        "swapped": percent(observations.swapped, reported),
    }


def write_take(take: SynthTake, take_dir: str | Path) -> dict:
    """Write every file of the take (no videos) under ``take_dir``; returns a summary dict."""
    take_dir = Path(take_dir)
    config = take.config
    names = np.array([camera.name for camera in take.exo_cameras])
    sizes = np.array([camera.image_size for camera in take.exo_cameras], dtype=np.int64)

    atomic_write_text(take_dir / TAKE_JSON, json.dumps(take_document(take), indent=2) + "\n")
    write_gopro_calibs_csv(take_dir / GOPRO_CALIBS_CSV, take.written_exo_cameras, graph_uid=GRAPH_UID)
    _write_aria_inputs(take, take_dir)
    if config.camera_pose_json:
        write_camera_pose_json(
            take_dir / CAMERA_POSE_JSON,
            take.written_exo_cameras,
            take.ego,
            {"take_name": config.take_name, "take_uid": config.take_uid, "synthetic": True},
        )
    elif (take_dir / CAMERA_POSE_JSON).exists():
        (take_dir / CAMERA_POSE_JSON).unlink()  # left by an earlier run with camera_pose_json: it would win
    undistorted, undistorted_in_image = take.undistorted_ego()
    for view, camera in enumerate(take.exo_cameras):  # one folder per camera
        write_openpose_folder(take_dir / OPENPOSE_DIR / camera.name, take.observations.keypoints[view], camera.name)
    atomic_save_npz(
        take_dir / JOINTS_3D_NPZ,
        joints_3d=take.motion.joints,
        bone_lengths=take.motion.bone_lengths,
        fps=np.float64(config.fps),
        joint_names=np.array(skeleton.JOINT_NAMES),
        bones=np.array(skeleton.BONES, dtype=np.int64),
    )
    atomic_save_npz(take_dir / JOINTS_2D_NPZ, camera_names=names, pixels=take.pixels, in_image=take.in_image, image_size=sizes)
    atomic_save_npz(
        take_dir / EGO_2D_NPZ,
        camera_name=np.array(take.ego.name),
        pixels=take.ego_pixels,
        in_image=take.ego_in_image,
        image_size=np.array(take.ego.image_size, dtype=np.int64),
        undistorted_pixels=undistorted,
        undistorted_in_image=undistorted_in_image,
    )
    atomic_save_npz(
        take_dir / EGO_CAMERA_NPZ,
        camera_name=np.array(take.ego.name),
        R=take.ego.R,
        t=take.ego.t,
        timestamps_ns=take.frame_timestamps_ns,
    )
    atomic_save_npz(take_dir / OBSERVATIONS_NPZ, camera_names=names, **take.observations.arrays())
    perturbation = config.perturbation
    if perturbation.active:
        truth = perturbation.truth_document(take.exo_cameras, take.written_exo_cameras, config.seed, config.fps)
        atomic_write_text(take_dir / RIG_PERTURBATION_JSON, json.dumps(truth, indent=2) + "\n")
    elif (take_dir / RIG_PERTURBATION_JSON).exists():
        (take_dir / RIG_PERTURBATION_JSON).unlink()  # the truth of an earlier perturbed run
    return {
        "take_dir": str(take_dir),
        "frames": config.num_frames,
        "exo_cameras": len(take.exo_cameras),
        "keypoint_files": config.num_frames * len(take.exo_cameras),
        "percent": _corruption_summary(take.observations),
    }


def _remove_stale_videos(take_dir: Path, camera_names: list[str]) -> None:
    """Delete videos of these cameras left by an earlier rendered run (they would not match)."""
    for name in camera_names:
        video = take_dir / VIDEO_DIR / f"{name}.mp4"
        if video.exists():
            logger.info("removing stale video %s (this take is not rendered)", video)
            video.unlink()


def _warn_about_other_cameras(take_dir: Path, camera_names: list[str]) -> None:
    """Warn about keypoint folders and videos of cameras that this take does not have."""
    known = set(camera_names)
    others = [path for path in sorted((take_dir / OPENPOSE_DIR).glob("*")) if path.name not in known]
    others += [path for path in sorted((take_dir / VIDEO_DIR).glob("*.mp4")) if path.stem not in known]
    if others:
        logger.warning(
            "%s: not part of this take (cameras %s), left from an earlier run: %s",
            take_dir,
            ", ".join(camera_names),
            ", ".join(str(path.relative_to(take_dir)) for path in others),
        )


def synthesize_take(take_dir: str | Path, config: SynthConfig = SynthConfig(), render: bool = True) -> SynthTake:
    """Generate, write and (``render``) render one take into ``take_dir``; logs what was written."""
    take_dir = Path(take_dir)
    take = generate_take(config)
    summary = write_take(take, take_dir)
    percent = summary["percent"]
    logger.info(
        "%s: %d frames, %d exo cameras + %s, %d OpenPose files; detections: %.1f%% out of image, "
        "%.1f%% dropped, %.1f%% occluded (of in-image joints), %.1f%% outliers, %.1f%% swapped (of reported)",
        take_dir,
        summary["frames"],
        summary["exo_cameras"],
        take.ego.name,
        summary["keypoint_files"],
        percent["out_of_image"],
        percent["dropped"],
        percent["occluded"],
        percent["outlier"],
        percent["swapped"],
    )
    perturbation = config.perturbation
    if perturbation.camera is not None:
        logger.info(
            "%s: %s's written calibration is off by %g degrees and %g m (truth in %s)",
            take_dir, perturbation.camera, perturbation.rotation_deg, perturbation.translation_m, RIG_PERTURBATION_JSON,
        )  # fmt: skip
    if perturbation.time_shift_camera is not None:
        logger.info(
            "%s: %s's frame f shows the scene at frame f %+g (%+.1f ms; truth in %s)",
            take_dir, perturbation.time_shift_camera, perturbation.time_shift_frames,
            1000.0 * perturbation.time_shift_frames / config.fps, RIG_PERTURBATION_JSON,
        )  # fmt: skip
    cameras = [camera.name for camera in take.exo_cameras] + [take.ego.name]
    if render:
        from workflow.synth.render import HAND_VISIBLE_SHARE, render_take_videos

        visible = render_take_videos(take_dir, take.motion.joints, take.exo_cameras, take.ego, config.fps, config.seed, view_joints=take.view_joints)
        hand_visible = np.stack([visible[..., part].mean(axis=-1) >= HAND_VISIBLE_SHARE for part in (skeleton.LEFT_HAND, skeleton.RIGHT_HAND)], axis=-1)
        atomic_save_npz(
            take_dir / VISIBILITY_NPZ,
            camera_names=np.array([camera.name for camera in take.exo_cameras]),
            visible=visible,
            hand_visible=hand_visible,
            hand_visible_share=np.float64(HAND_VISIBLE_SHARE),
        )
        logger.info("%s: videos written to %s/ for %s", take_dir, VIDEO_DIR, ", ".join(cameras))
    else:
        _remove_stale_videos(take_dir, cameras)
        if (take_dir / VISIBILITY_NPZ).exists():
            (take_dir / VISIBILITY_NPZ).unlink()  # the truth of an earlier rendered run
    _warn_about_other_cameras(take_dir, cameras)
    return take
