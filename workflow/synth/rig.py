"""Synthetic camera rig: GoPro-like static exo cameras and an Aria-like head-mounted ego camera.

- Exo: OpenCV fisheye / Kannala-Brandt (``fisheye``, Ego-Exo4D ``KANNALABRANDTK3``),
  16:9, placed on a ring around the scene centre, looking at the person's area.
- Ego: ``fisheye624`` (Aria RGB model; a real Aria RGB calibration resampled to the
  synthetic image size, with its valid radius and 1 rad maximum angle) rigidly mounted
  on the head between the eyes, pitched down like the Aria glasses' RGB camera. The
  glasses' device frame (the left SLAM camera, as in Aria calibrations) sits at the
  real ``T_device_camera`` offset from it, so a device trajectory composed with that
  offset gives the camera, as for a real take.

All poses are world-to-camera (``x_cam = R x_world + t``), camera axes as OpenCV
(x right, y down, z forward). World: metres, z up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.formats.aria import AriaCameraCalibration
from triangulation.camera_models import Fisheye624Model, FisheyeModel
from triangulation.cameras import Camera, FieldOfView, MovingCamera, rotation_from_quaternion
from triangulation.poses import compose, invert
from workflow.synth.motion import Motion, rotation_about

EGO_CAMERA_NAME = "aria01"

# Camera axes (columns: x right, y down, z forward) in a body-style frame (x forward,
# y left, z up) for a camera looking along the frame's x axis.
_CAMERA_IN_FORWARD_FRAME = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class RigConfig:
    """Camera placement and intrinsics; every number is a default a user may tune."""

    num_exo: int = 4  # number of static exo cameras
    exo_image_size: tuple[int, int] = (960, 540)  # width, height in pixels (16:9)
    exo_hfov_deg: tuple[float, float] = (105.0, 118.0)  # horizontal field of view drawn per camera, degrees
    exo_distortion_range: tuple[tuple[float, float], ...] = (
        (0.02, 0.05),
        (-0.02, 0.0),
        (-0.002, 0.004),
        (-0.001, 0.001),
    )  # Kannala-Brandt k1..k4 drawn uniformly per camera (unitless)
    exo_principal_jitter: float = 0.01  # principal point offset from the image centre, fraction of the size
    exo_radius_m: tuple[float, float] = (1.9, 3.2)  # horizontal distance from the scene centre, metres
    exo_height_m: tuple[float, float] = (1.0, 2.0)  # camera height above the floor, metres
    exo_azimuth_jitter: float = 0.3  # azimuth jitter, fraction of the even spacing 2 pi / num_exo
    exo_target_height_m: tuple[float, float] = (0.8, 1.1)  # height of the look-at point, metres
    exo_target_jitter_m: float = 0.2  # horizontal look-at offset from the scene centre (std), metres
    exo_roll_deg: float = 2.0  # camera roll (std), degrees
    ego_image_size: tuple[int, int] = (512, 512)  # width, height in pixels (the Aria calibration is resampled to it)
    # An Aria RGB calibration (projectaria-tools' sample device): FISHEYE624 params
    # f, cx, cy, k0..k5, p0, p1, s0..s3 at 1408 x 1408 pixels, its valid radius (pixels)
    # and maximum ray angle (radians).
    aria_rgb_params: tuple[float, ...] = (
        609.0993, 714.4937, 705.4052, 0.4153491, -0.4666088, 0.0394108, 1.3049831, -1.7682749, 0.6525988,
        7.8e-05, 0.000602, -0.001115, 0.000617, -0.002339, 0.001661,
    )  # fmt: skip
    aria_rgb_size: tuple[int, int] = (1408, 1408)
    aria_rgb_valid_radius_px: float = 707.5
    aria_rgb_max_angle_rad: float = 1.0
    # T_device_camera of the RGB camera (translation, metres; quaternion w, x, y, z), as calibrated.
    aria_rgb_translation_m: tuple[float, float, float] = (-0.0044223, -0.0131878, -0.0038855)
    aria_rgb_quaternion_wxyz: tuple[float, float, float, float] = (0.9411611597255661, 0.3335689602188102, 0.0339853373462576, 0.042336946607313145)
    # Camera centre from the eye midpoint in the head frame (x forward, y left, z up), metres.
    ego_offset_m: tuple[float, float, float] = (0.02, 0.0, 0.012)
    ego_pitch_down_deg: float = 35.0  # camera axis below the head's forward direction, degrees


def look_at(center: np.ndarray, target: np.ndarray, roll: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``R (3, 3)``, ``t (3,)`` of a camera at ``center`` looking at ``target`` (metres).

    The image x axis is horizontal (world z up) before ``roll`` (radians, about the axis).
    """
    forward = np.asarray(target, dtype=np.float64) - center
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = rotation_about(2, roll) @ np.stack([right, down, forward])
    return R, -R @ center


def _focal_for_fov(half_width_px: float, hfov_deg: float, radial: np.ndarray) -> float:
    """Focal length (pixels) that puts the ray at ``hfov_deg / 2`` on the image's side edge."""
    theta = np.radians(hfov_deg) / 2
    theta_d = theta * (1.0 + sum(k * theta ** (2 * (i + 1)) for i, k in enumerate(radial)))
    return half_width_px / theta_d


def exo_camera_names(config: RigConfig = RigConfig()) -> list[str]:
    """Names of the exo cameras of a rig, in order: ``cam01``, ``cam02``, ..."""
    return [f"cam{index + 1:02d}" for index in range(config.num_exo)]


def make_exo_cameras(rng: np.random.Generator, center: np.ndarray, config: RigConfig = RigConfig()) -> list[Camera]:
    """``config.num_exo`` fisheye cameras named as :func:`exo_camera_names` around ``center`` (world xy, metres)."""
    width, height = config.exo_image_size
    names = exo_camera_names(config)
    spacing = 2 * np.pi / config.num_exo
    start = rng.uniform(0, 2 * np.pi)
    cameras = []
    for index in range(config.num_exo):
        azimuth = start + spacing * (index + rng.uniform(-config.exo_azimuth_jitter, config.exo_azimuth_jitter))
        radius = rng.uniform(*config.exo_radius_m)
        ground = center[:2] + radius * np.array([np.cos(azimuth), np.sin(azimuth)])
        position = np.array([*ground, rng.uniform(*config.exo_height_m)])
        aim = center[:2] + rng.normal(0.0, config.exo_target_jitter_m, 2)
        target = np.array([*aim, rng.uniform(*config.exo_target_height_m)])
        R, t = look_at(position, target, np.radians(rng.normal(0.0, config.exo_roll_deg)))
        distortion = np.array([rng.uniform(*bounds) for bounds in config.exo_distortion_range])
        focal = _focal_for_fov(width / 2, rng.uniform(*config.exo_hfov_deg), distortion)
        cx, cy = (np.array([width, height]) * (0.5 + rng.uniform(-1, 1, 2) * config.exo_principal_jitter)).tolist()
        model = FisheyeModel(focal, focal * (1.0 + rng.uniform(-2e-3, 2e-3)), cx, cy, distortion)
        cameras.append(Camera(names[index], model, R, t, (width, height)))
    return cameras


def ego_calibration(config: RigConfig = RigConfig()) -> AriaCameraCalibration:
    """The synthetic glasses' RGB calibration at ``config.ego_image_size``."""
    params = np.asarray(config.aria_rgb_params, dtype=np.float64)
    model = Fisheye624Model(params[0], params[0], params[1], params[2], params[3:9], params[9:11], params[11:15])
    w, x, y, z = config.aria_rgb_quaternion_wxyz
    calibration = AriaCameraCalibration(
        label="camera-rgb",
        model=model,
        image_size=tuple(config.aria_rgb_size),
        R_device_camera=rotation_from_quaternion(np.array([x, y, z, w])),
        t_device_camera=np.asarray(config.aria_rgb_translation_m, dtype=np.float64),
        field_of_view=FieldOfView(config.aria_rgb_valid_radius_px, config.aria_rgb_max_angle_rad),
        time_offset_s=0.0,
        source="synthetic Aria RGB calibration",
    )
    return calibration.rescaled(tuple(config.ego_image_size))


def head_camera(config: RigConfig = RigConfig()) -> tuple[np.ndarray, np.ndarray]:
    """``T_head_camera``: the RGB camera in the head frame (x forward, y left, z up; origin the eye midpoint)."""
    R = rotation_about(1, np.radians(config.ego_pitch_down_deg)) @ _CAMERA_IN_FORWARD_FRAME
    return R, np.asarray(config.ego_offset_m, dtype=np.float64)


def head_device(config: RigConfig = RigConfig()) -> tuple[np.ndarray, np.ndarray]:
    """``T_head_device = T_head_camera T_device_camera^-1``: the glasses' device frame in the head frame."""
    calibration = ego_calibration(config)
    R_dc, t_dc = invert(calibration.R_device_camera, calibration.t_device_camera)
    return compose(*head_camera(config), R_dc, t_dc)


def world_poses(head_rotation: np.ndarray, head_position: np.ndarray, R_head_x: np.ndarray, t_head_x: np.ndarray):
    """``T_world_x = T_world_head T_head_x`` for every sample: ``(N, 3, 3)``, ``(N, 3)``."""
    return compose(head_rotation, head_position, R_head_x, t_head_x)


def make_ego_camera(motion: Motion, config: RigConfig = RigConfig(), name: str = EGO_CAMERA_NAME) -> MovingCamera:
    """The head-mounted ``fisheye624`` camera with one pose per frame of ``motion`` (the truth)."""
    calibration = ego_calibration(config)
    R_world_camera, t_world_camera = world_poses(motion.head_rotation, motion.head_position, *head_camera(config))
    R, t = invert(R_world_camera, t_world_camera)
    return MovingCamera(name, calibration.model, R, t, calibration.image_size, calibration.field_of_view)
