"""Simulated 2D keypoint detector output for the exo views, with every corruption recorded.

Starting from the true projections of the 59 joints, per view, frame and joint:

1. ``out_of_image``: the true point is behind the camera (depth < ``min_depth_m``) or
   outside the image; it is never reported (NaN).
2. ``occluded``: the line of sight from the camera to the joint passes through one of
   the body's capsules (torso, head, limbs, palms; radii in metres) before reaching it.
   Occluded joints are noisier, less confident and often missed.
3. ``dropped``: the detector reports nothing for a joint inside the image: random
   misses, whole hands missed in bursts of frames, occluded joints missed.
4. ``swapped``: left/right confusion in bursts of frames, of the whole body or of one
   limb group (arms, legs, hands); a swapped joint is reported at its twin's true
   position (+ noise). Only pairs whose both joints are reported swap, so the missing
   pattern does not depend on swaps.
5. Pixel noise: isotropic Gaussian, ``noise_sigma_px`` grows with the joint's depth and
   is larger for hands and occluded joints.
6. ``outlier``: a gross error, the point displaced by 30-200 px in a random direction
   (kept inside the image by reflecting the displacement).
7. Confidence decreases with the actual pixel error (and for occluded and hand joints),
   except for a fraction of outliers reported with a high confidence.

Masks are ``(views, frames, 59)`` bool; ``dropped``, ``occluded``, ``outlier`` and
``swapped`` are only set where the joint is inside the image. Reported keypoints are
NaN exactly where ``dropped | out_of_image``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from fitting import skeleton
from triangulation.cameras import Camera, MovingCamera


@dataclass(frozen=True)
class DetectorConfig:
    """Detector error model; every number is a default a user may tune."""

    min_depth_m: float = 0.1  # points nearer than this along the optical axis are not visible, metres
    sigma_px: float = 1.0  # pixel noise std of a body joint at zero depth, pixels
    sigma_per_m_px: float = 0.6  # growth of the noise std per metre of depth, pixels per metre
    hand_sigma_factor: float = 1.8  # noise multiplier for hand joints
    occluded_sigma_factor: float = 2.5  # noise multiplier for occluded joints
    body_drop_probability: float = 0.02  # random miss of one body joint
    hand_drop_probability: float = 0.04  # random miss of one hand joint
    occluded_drop_probability: float = 0.3  # miss of an occluded joint
    hand_miss_start_probability: float = 0.01  # per view, hand and frame: a burst of whole-hand misses starts
    hand_miss_mean_frames: float = 6.0  # mean burst length, frames
    body_outlier_probability: float = 0.01  # gross error of one reported body joint
    hand_outlier_probability: float = 0.02  # gross error of one reported hand joint
    outlier_displacement_px: tuple[float, float] = (30.0, 200.0)  # gross error magnitude range, pixels
    confident_outlier_probability: float = 0.3  # share of outliers reported with a high confidence
    confident_outlier_confidence: tuple[float, float] = (0.5, 0.9)  # their confidence range
    body_swap_start_probability: float = 0.003  # per view and frame: a whole-body left/right swap burst starts
    limb_swap_start_probability: float = 0.004  # per view, frame and limb group: a limb swap burst starts
    swap_mean_frames: float = 4.0  # mean swap burst length, frames
    confidence_max: float = 0.95  # confidence of an error-free body joint
    confidence_error_scale_px: float = 25.0  # confidence falls by e for this pixel error
    occluded_confidence_factor: float = 0.6  # confidence multiplier for occluded joints
    hand_confidence_factor: float = 0.9  # confidence multiplier for hand joints
    confidence_jitter: float = 0.1  # relative uniform jitter of the confidence
    min_confidence: float = 0.05  # lowest reported confidence
    occlusion_margin_m: float = 0.03  # capsules nearer than this to the joint along the ray do not hide it, metres
    capsule_radius_scale: float = 1.0  # multiplier of the body capsule radii below


# Body capsules for occlusion: (joints averaged for end A, joints averaged for end B,
# radius in metres). A joint is never occluded by a capsule that it ends alone or that
# contains it.
_LEFT_PALM = (skeleton.LEFT_HAND.start, skeleton.LEFT_HAND.start + 9)  # wrist -> middle_1
_RIGHT_PALM = (skeleton.RIGHT_HAND.start, skeleton.RIGHT_HAND.start + 9)
BODY_CAPSULES: tuple[tuple[tuple[int, ...], tuple[int, ...], float], ...] = (
    ((5, 6), (11, 12), 0.12),  # torso centre
    ((5,), (11,), 0.09),  # torso sides
    ((6,), (12,), 0.09),
    ((3, 4), (3, 4), 0.07),  # head (sphere around the ear midpoint)
    ((5,), (7,), 0.045),  # upper arms
    ((6,), (8,), 0.045),
    ((7,), (9,), 0.035),  # forearms
    ((8,), (10,), 0.035),
    ((11,), (13,), 0.07),  # thighs
    ((12,), (14,), 0.07),
    ((13,), (15,), 0.05),  # shanks
    ((14,), (16,), 0.05),
    ((_LEFT_PALM[0],), (_LEFT_PALM[1],), 0.03),  # palms
    ((_RIGHT_PALM[0],), (_RIGHT_PALM[1],), 0.03),
)

# Left/right swap groups (joints whose twin they become when the group is swapped).
_HANDS = np.r_[skeleton.LEFT_HAND.start : skeleton.NUM_JOINTS]
SWAP_GROUPS: dict[str, np.ndarray] = {
    "arms": np.array([5, 6, 7, 8, 9, 10]),
    "legs": np.array([11, 12, 13, 14, 15, 16]),
    "hands": _HANDS,
}


@dataclass(frozen=True)
class Observations:
    """Simulated detections and their corruption masks.

    ``keypoints (views, frames, 59, 3)`` float32 = x, y (pixels), confidence; NaN where
    missing. Masks ``(views, frames, 59)`` bool; ``noise_sigma_px`` float32 the std of
    the Gaussian pixel noise applied (per coordinate).
    """

    keypoints: np.ndarray
    dropped: np.ndarray
    occluded: np.ndarray
    outlier: np.ndarray
    swapped: np.ndarray
    out_of_image: np.ndarray
    noise_sigma_px: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field by name (for ``.npz``)."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


# --------------------------------------------------------------------------------------
# True projections
# --------------------------------------------------------------------------------------


def _visibility(points_cam: np.ndarray, pixels: np.ndarray, image_size, min_depth: float, camera=None) -> np.ndarray:
    """In front by ``min_depth`` (metres), on the image (pixel areas: ``-0.5 <= x <= w - 0.5``)
    and, for a camera with a valid field of view, within its maximum ray angle and valid
    radius: ``(...)`` bool."""
    width, height = image_size
    with np.errstate(invalid="ignore"):
        visible = (
            (points_cam[..., 2] > min_depth)
            & (pixels[..., 0] >= -0.5)
            & (pixels[..., 0] <= width - 0.5)
            & (pixels[..., 1] >= -0.5)
            & (pixels[..., 1] <= height - 0.5)
        )
        fov = getattr(camera, "field_of_view", None)
        if fov is not None:
            off_axis = np.arctan2(np.hypot(points_cam[..., 0], points_cam[..., 1]), points_cam[..., 2])
            radius = np.hypot(pixels[..., 0] - camera.model.cx, pixels[..., 1] - camera.model.cy)
            if fov.max_angle_rad is not None:
                visible &= off_axis <= fov.max_angle_rad
            if fov.valid_radius_px is not None:
                visible &= radius <= fov.valid_radius_px
    return visible


def joints_per_view(joints: np.ndarray, cameras: list[Camera], view_joints: Mapping[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """The joints each camera's frames show: ``view_joints[camera.name]`` where given (a camera
    whose frames show other times), else ``joints (frames, J, 3)``; one array per camera."""
    view_joints = dict(view_joints or {})
    names = [camera.name for camera in cameras]
    unknown = sorted(set(view_joints) - set(names))
    if unknown:
        raise ValueError(f"view_joints: no camera {', '.join(unknown)} (cameras: {', '.join(names)})")
    for name, seen in view_joints.items():
        if np.shape(seen) != np.shape(joints):
            raise ValueError(f"view_joints['{name}']: shape {np.shape(seen)}, the joints have {np.shape(joints)}")
    return [np.asarray(view_joints.get(camera.name, joints), dtype=np.float64) for camera in cameras]


def project_views(
    joints: np.ndarray,
    cameras: list[Camera],
    min_depth_m: float = DetectorConfig.min_depth_m,
    view_joints: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True projections into static cameras.

    ``joints (frames, J, 3)`` metres -> ``pixels (views, frames, J, 2)`` float64,
    ``in_image (views, frames, J)`` bool, ``depth (views, frames, J)`` metres.
    ``view_joints``: per camera name, the joints ``(frames, J, 3)`` that camera sees
    instead (:func:`joints_per_view`).
    """
    seen = joints_per_view(joints, cameras, view_joints)
    points_cam = np.stack([camera.world_to_camera(points) for camera, points in zip(cameras, seen)])
    pixels = np.stack([camera.model.project(points) for camera, points in zip(cameras, points_cam)])
    in_image = np.stack([_visibility(points, pix, camera.image_size, min_depth_m) for camera, points, pix in zip(cameras, points_cam, pixels)])
    return pixels, in_image, points_cam[..., 2]


def project_moving(joints: np.ndarray, camera: MovingCamera, min_depth_m: float = DetectorConfig.min_depth_m) -> tuple[np.ndarray, np.ndarray]:
    """True projections into the moving (ego) camera: ``pixels (frames, J, 2)``, ``in_image (frames, J)``."""
    points_cam = camera.world_to_camera(joints)
    pixels = camera.model.project(points_cam)
    return pixels, _visibility(points_cam, pixels, camera.image_size, min_depth_m, camera)


# --------------------------------------------------------------------------------------
# Occlusion
# --------------------------------------------------------------------------------------


def _endpoint_weights(capsules) -> tuple[np.ndarray, np.ndarray]:
    """Averaging matrices ``(capsules, 59)`` for the two ends of every capsule."""
    weights = np.zeros((2, len(capsules), skeleton.NUM_JOINTS))
    for index, (end_a, end_b, _) in enumerate(capsules):
        weights[0, index, list(end_a)] = 1.0 / len(end_a)
        weights[1, index, list(end_b)] = 1.0 / len(end_b)
    return weights[0], weights[1]


def _segment_distance(p0, u, q0, v) -> np.ndarray:
    """Shortest distance between the segments ``p0 + s u`` and ``q0 + t v``, s and t in [0, 1].

    Inputs broadcast over ``(..., 3)``; returns ``(...)`` in the inputs' unit.
    """
    w0 = p0 - q0
    a = np.sum(u * u, axis=-1)
    b = np.sum(u * v, axis=-1)
    c = np.sum(v * v, axis=-1)
    d = np.sum(u * w0, axis=-1)
    e = np.sum(v * w0, axis=-1)
    denominator = a * c - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(denominator > 1e-12 * a * c, (b * e - c * d) / denominator, 0.0)
        s = np.clip(s, 0.0, 1.0)
        t = np.clip(np.where(c > 1e-12, (b * s + e) / c, 0.0), 0.0, 1.0)
        s = np.clip(np.where(a > 1e-12, (b * t - d) / a, 0.0), 0.0, 1.0)
    return np.linalg.norm(w0 + s[..., None] * u - t[..., None] * v, axis=-1)


def _capsules(joints: np.ndarray, radii: np.ndarray):
    """The body capsules of ``joints (F, 59, 3)``: start ``(F, 1, C, 3)``, axis ``(F, 1, C, 3)``
    (metres) and ``ignored (F, 59, C)`` (capsules that contain the joint or that it ends alone)."""
    start_weights, end_weights = _endpoint_weights(BODY_CAPSULES)
    q0 = np.einsum("cj,fjk->fck", start_weights, joints)[:, None]
    axis = np.einsum("cj,fjk->fck", end_weights, joints)[:, None] - q0
    contained = _segment_distance(joints[:, :, None], np.zeros(3), q0, axis) < radii
    own = ((start_weights == 1.0) | (end_weights == 1.0)).T  # (59, C)
    return q0, axis, contained | own


def occlusion(
    joints: np.ndarray,
    cameras: list[Camera],
    config: DetectorConfig = DetectorConfig(),
    view_joints: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """``(views, frames, 59)`` bool: a body capsule lies on the line of sight in front of the joint.

    ``joints (frames, 59, 3)`` metres; ``view_joints``: per camera name, the joints that
    camera sees instead (:func:`joints_per_view`). Loops over cameras; vectorised over
    frames, joints and capsules.
    """
    radii = np.array([radius for _, _, radius in BODY_CAPSULES]) * config.capsule_radius_scale
    joints = np.asarray(joints, dtype=np.float64)
    shared = _capsules(joints, radii)
    result = []
    for camera, seen in zip(cameras, joints_per_view(joints, cameras, view_joints)):  # loop over cameras
        q0, axis, ignored = shared if seen is joints else _capsules(seen, radii)
        center = camera.center
        sight = seen - center
        distance = np.linalg.norm(sight, axis=-1, keepdims=True)
        ray = sight * np.clip(1.0 - config.occlusion_margin_m / distance, 0.0, None)  # (F, J, 3)
        hit = _segment_distance(center, ray[:, :, None], q0, axis) < radii
        result.append(np.any(hit & ~ignored, axis=-1))
    return np.stack(result)


# --------------------------------------------------------------------------------------
# Detector simulation
# --------------------------------------------------------------------------------------


def bursts(rng: np.random.Generator, shape: tuple[int, ...], start_probability: float, mean_frames: float) -> np.ndarray:
    """Boolean ``shape`` (last axis = frames): bursts starting with ``start_probability`` per frame,
    geometric lengths with mean ``mean_frames``."""
    frames = np.arange(shape[-1])
    starts = rng.random(shape) < start_probability
    lengths = rng.geometric(1.0 / max(mean_frames, 1.0), size=shape)
    ends = np.where(starts, frames + lengths, 0)
    return np.maximum.accumulate(ends, axis=-1) > frames


def _swap_flags(rng: np.random.Generator, views: int, frames: int, config: DetectorConfig) -> np.ndarray:
    """``(views, frames, 59)`` bool: the joint's left/right group is swapped in that view and frame."""
    whole = bursts(rng, (views, frames), config.body_swap_start_probability, config.swap_mean_frames)
    flags = np.zeros((views, frames, skeleton.NUM_JOINTS), dtype=bool)
    flags[:] = whole[..., None]
    for group in SWAP_GROUPS.values():  # loop over three limb groups
        limb = bursts(rng, (views, frames), config.limb_swap_start_probability, config.swap_mean_frames)
        flags[..., group] |= limb[..., None]
    return flags


def simulate_detections(
    pixels: np.ndarray,
    in_image: np.ndarray,
    depth: np.ndarray,
    occluded: np.ndarray,
    image_sizes: list[tuple[int, int]],
    rng: np.random.Generator,
    config: DetectorConfig = DetectorConfig(),
) -> Observations:
    """Corrupt true projections into detector output.

    ``pixels (V, F, 59, 2)`` true pixels, ``in_image``/``occluded (V, F, 59)`` bool,
    ``depth (V, F, 59)`` metres, ``image_sizes`` (width, height) per view.
    """
    views, frames, joints = in_image.shape
    is_hand = np.arange(joints) >= skeleton.NUM_BODY_JOINTS
    occluded = occluded & in_image

    sigma = (config.sigma_px + config.sigma_per_m_px * np.clip(depth, 0.0, None)) * np.where(is_hand, config.hand_sigma_factor, 1.0)
    sigma = sigma * np.where(occluded, config.occluded_sigma_factor, 1.0)

    # Misses.
    drop_probability = np.where(is_hand, config.hand_drop_probability, config.body_drop_probability)
    dropped = rng.random(in_image.shape) < drop_probability
    dropped |= occluded & (rng.random(in_image.shape) < config.occluded_drop_probability)
    for hand in (skeleton.LEFT_HAND, skeleton.RIGHT_HAND):
        missed = bursts(rng, (views, frames), config.hand_miss_start_probability, config.hand_miss_mean_frames)
        dropped[..., hand] |= missed[..., None]
    dropped &= in_image
    reported = in_image & ~dropped

    # Left/right swaps between reported twins.
    twin = skeleton.left_right_swap_index()
    swapped = _swap_flags(rng, views, frames, config) & reported & reported[..., twin] & (twin != np.arange(joints))
    source = np.where(swapped[..., None], pixels[..., twin, :], pixels)

    # Noise and gross outliers.
    observed = source + rng.standard_normal(source.shape) * sigma[..., None]
    outlier_probability = np.where(is_hand, config.hand_outlier_probability, config.body_outlier_probability)
    outlier = reported & (rng.random(in_image.shape) < outlier_probability)
    sizes = np.asarray(image_sizes, dtype=np.float64)[:, None, None, :]  # (V, 1, 1, 2)
    largest = np.minimum(config.outlier_displacement_px[1], sizes.min() / 2 - 1)
    magnitude = rng.uniform(config.outlier_displacement_px[0], largest, size=in_image.shape)
    angle = rng.uniform(0.0, 2 * np.pi, size=in_image.shape)
    displacement = magnitude[..., None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    leaves = (observed + displacement < 0) | (observed + displacement > sizes - 1)
    displacement = np.where(leaves, -displacement, displacement)  # reflect, per axis, into the image
    observed = np.where(outlier[..., None], observed + displacement, observed)
    observed = np.clip(observed, 0.0, sizes - 1)

    # Confidence from the actual error.
    error = np.linalg.norm(observed - source, axis=-1)
    confidence = config.confidence_max * np.exp(-error / config.confidence_error_scale_px)
    confidence *= np.where(occluded, config.occluded_confidence_factor, 1.0)
    confidence *= np.where(is_hand, config.hand_confidence_factor, 1.0)
    confidence *= 1.0 + config.confidence_jitter * rng.uniform(-1.0, 1.0, size=confidence.shape)
    confident = outlier & (rng.random(in_image.shape) < config.confident_outlier_probability)
    high = rng.uniform(*config.confident_outlier_confidence, size=confidence.shape)
    confidence = np.where(confident, high, confidence)
    confidence = np.clip(confidence, config.min_confidence, 1.0)

    keypoints = np.concatenate([observed, confidence[..., None]], axis=-1).astype(np.float32)
    keypoints[~reported] = np.nan
    return Observations(
        keypoints=keypoints,
        dropped=dropped,
        occluded=occluded,
        outlier=outlier,
        swapped=swapped,
        out_of_image=~in_image,
        noise_sigma_px=sigma.astype(np.float32),
    )


def simulate_observations(
    joints: np.ndarray,
    cameras: list[Camera],
    seed: int,
    config: DetectorConfig = DetectorConfig(),
    view_joints: Mapping[str, np.ndarray] | None = None,
) -> Observations:
    """Detector output for every camera from true joints ``(frames, 59, 3)`` (metres); deterministic per ``seed``.

    ``view_joints``: per camera name, the joints ``(frames, 59, 3)`` that camera sees
    instead (a camera whose frames show other times). The random draws do not depend on
    it: the other cameras' detections are the same with or without it.
    """
    rng = np.random.default_rng([seed, 3])  # stream 3: detector
    pixels, in_image, depth = project_views(joints, cameras, config.min_depth_m, view_joints)
    occluded = occlusion(joints, cameras, config, view_joints)
    sizes = [camera.image_size for camera in cameras]
    return simulate_detections(pixels, in_image, depth, occluded, sizes, rng, config)
