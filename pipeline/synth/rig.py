"""Synthetic camera rig: GoPro-like static exo cameras and an Aria-like head-mounted ego camera.

- Exo: OpenCV fisheye / Kannala-Brandt (``fisheye``, Ego-Exo4D ``KANNALABRANDTK3``),
  16:9, placed on a ring around the scene centre, looking at the person's area.
- Ego: ``fisheye624`` (Aria RGB model) rigidly mounted on the head between the eyes,
  pitched down like the Aria glasses' RGB camera, one pose per frame.

All poses are world-to-camera (``x_cam = R x_world + t``), camera axes as OpenCV
(x right, y down, z forward). World: metres, z up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.synth.motion import Motion, rotation_about
from triangulation.camera_models import Fisheye624Model, FisheyeModel
from triangulation.cameras import Camera, MovingCamera

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
    ego_image_size: tuple[int, int] = (512, 512)  # width, height in pixels
    ego_hfov_deg: float = 120.0  # horizontal field of view, degrees (sets f for the fisheye polynomial)
    ego_radial: tuple[float, ...] = (0.02, -0.006, 0.001, 0.0, 0.0, 0.0)  # fisheye624 k0..k5 (unitless)
    ego_tangential: tuple[float, float] = (2e-4, -1e-4)  # fisheye624 p0 p1 (unitless)
    ego_thin_prism: tuple[float, float, float, float] = (1e-4, -5e-5, 5e-5, 1e-4)  # fisheye624 s0..s3 (unitless)
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


def make_exo_cameras(rng: np.random.Generator, center: np.ndarray, config: RigConfig = RigConfig()) -> list[Camera]:
    """``config.num_exo`` fisheye cameras named ``cam01..`` around ``center`` (world xy, metres)."""
    width, height = config.exo_image_size
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
        cameras.append(Camera(f"cam{index + 1:02d}", model, R, t, (width, height)))
    return cameras


def make_ego_camera(motion: Motion, config: RigConfig = RigConfig(), name: str = EGO_CAMERA_NAME) -> MovingCamera:
    """The head-mounted ``fisheye624`` camera with one pose per frame of ``motion``."""
    width, height = config.ego_image_size
    radial = np.asarray(config.ego_radial, dtype=np.float64)
    focal = _focal_for_fov(width / 2, config.ego_hfov_deg, radial)
    model = Fisheye624Model(focal, focal, width / 2, height / 2, radial, config.ego_tangential, config.ego_thin_prism)
    camera_in_head = rotation_about(1, np.radians(config.ego_pitch_down_deg)) @ _CAMERA_IN_FORWARD_FRAME
    camera_to_world = motion.head_rotation @ camera_in_head  # (F, 3, 3)
    centers = motion.head_position + np.einsum("fij,j->fi", motion.head_rotation, np.asarray(config.ego_offset_m))
    R = np.swapaxes(camera_to_world, 1, 2)
    t = -np.einsum("fij,fj->fi", R, centers)
    return MovingCamera(name, model, R, t, (width, height))
