"""A synthetic camera wearer: 59 joints moving along a kinematic tree.

World frame: metres, z up, floor at z = 0. Body-local frames are x forward, y left,
z up. The person walks along a closed path around the scene centre, turns, bends or
squats, holds things in front of the body, reaches, gestures (a hand raised in front
of the chest, as when explaining or pointing), swings the arms, turns the head;
both hands change between grasp / point / pinch / open / relaxed poses with smooth
transitions. Every time series is a sum of sinusoids or a smooth (quintic) blend, so
the motion is smooth and the whole take is computed at once, vectorised over frames.

Rigidity follows :data:`fitting.skeleton.BONES`: every bone there keeps its length
over the take. This has two consequences for the model:

- the torso quadrilateral (shoulders, hips) is rigid except for a flexion about the
  line through the two hip joints (rotating about that line keeps every
  shoulder-to-hip distance), so twists and leans move the pelvis and chest together;
- nose, eyes and ears are fixed points of one rigid head.

The body wrist (9 / 10) and the hand wrist (17 / 38) are the same point.
Segment lengths are anthropometric fractions of the standing height (Winter,
*Biomechanics and Motor Control of Human Movement*, 2009) with a per-seed variation;
hand segments are typical adult phalanx lengths scaled with the hand length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fitting import skeleton

# --------------------------------------------------------------------------------------
# Batched rotations
# --------------------------------------------------------------------------------------


def rotation_about(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` about coordinate ``axis`` (0 x, 1 y, 2 z) by ``angle (...)`` radians."""
    angle = np.asarray(angle, dtype=np.float64)
    cos, sin = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    rotation = np.zeros(angle.shape + (3, 3))
    rotation[..., axis, axis] = 1.0
    rotation[..., i, i] = cos
    rotation[..., j, j] = cos
    rotation[..., i, j] = -sin
    rotation[..., j, i] = sin
    return rotation


def _rx(angle):
    return rotation_about(0, angle)


def _ry(angle):
    return rotation_about(1, angle)


def _rz(angle):
    return rotation_about(2, angle)


def _apply(rotation: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``rotation (F, 3, 3) @ vector (3,)`` -> ``(F, 3)``."""
    return np.einsum("fij,j->fi", rotation, vector)


_MIRROR_Y = np.diag([1.0, -1.0, 1.0])  # left <-> right in a body- or hand-local frame

# --------------------------------------------------------------------------------------
# Configuration and body shape
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotionConfig:
    """What the synthetic person does; every number is a default a user may tune."""

    height_range_m: tuple[float, float] = (1.55, 1.90)  # standing height drawn uniformly, metres
    segment_variation: float = 0.03  # relative std of each segment around its height-scaled length
    path_semi_axes_m: tuple[float, float] = (0.5, 1.0)  # range of the walking path's ellipse semi-axes, metres
    walk_speed_m_s: float = 0.55  # walking speed at full walking intensity, metres per second
    walk_intensity_mean: float = 0.6  # mean walking intensity (0 standing, 1 full speed)
    walk_intensity_variation: float = 0.45  # peak smooth variation of the walking intensity
    bend_slowdown: float = 0.9  # share of the walking intensity lost while bending
    hold_slowdown: float = 0.6  # share of the walking intensity lost while holding something
    path_harmonic_m: float = 0.12  # largest second-harmonic deformation of the path, metres
    stride_frequency_hz: float = 0.9  # gait cycles (two steps) per second at full intensity
    hip_swing_deg: float = 25.0  # peak hip flexion / extension while walking at full intensity, degrees
    knee_swing_deg: float = 55.0  # peak knee flexion in the swing phase, degrees
    arm_swing_ratio: float = 0.8  # shoulder swing relative to the hip swing
    heading_sway_deg: float = 15.0  # peak yaw of the body relative to the walking direction, degrees
    head_yaw_deg: float = 40.0  # peak head yaw relative to the chest, degrees
    head_pitch_deg: float = 15.0  # peak head pitch variation around the mean, degrees (down positive)
    head_mean_pitch_deg: float = 12.0  # mean head pitch, degrees (down positive)
    bend_rate_hz: float = 1 / 9  # bending / squatting episodes per second
    bend_duration_s: tuple[float, float] = (1.5, 3.0)  # duration range of one bending episode, seconds
    stoop_trunk_flexion_deg: float = 70.0  # trunk flexion of a full stoop, degrees
    stoop_knee_deg: float = 15.0  # knee flexion of a full stoop, degrees
    squat_trunk_flexion_deg: float = 30.0  # trunk flexion of a full squat, degrees
    squat_pelvis_pitch_deg: float = 25.0  # forward pelvis tilt of a full squat, degrees
    squat_hip_deg: float = 100.0  # hip flexion of a full squat, degrees
    squat_knee_deg: float = 110.0  # knee flexion of a full squat, degrees
    hold_rate_hz: float = 1 / 5  # "hands in front" (manipulation) episodes per second
    hold_duration_s: tuple[float, float] = (1.5, 4.0)  # seconds
    look_at_hands_deg: float = 20.0  # extra head pitch while holding something, degrees
    reach_rate_hz: float = 1 / 8  # reaching episodes per second and arm
    reach_duration_s: tuple[float, float] = (1.0, 2.5)  # seconds
    reach_flexion_deg: tuple[float, float] = (50.0, 140.0)  # shoulder flexion range of a reach, degrees
    gesture_rate_hz: float = 1 / 6  # gesturing episodes per second and arm (hand raised in front of the chest)
    gesture_duration_s: tuple[float, float] = (1.0, 3.0)  # seconds
    episode_ramp_s: float = 0.9  # rise / fall time of every episode, seconds
    hand_pose_interval_s: tuple[float, float] = (0.7, 2.0)  # time between hand pose changes, seconds
    hand_transition_s: float = 0.45  # duration of a hand pose transition, seconds
    hand_pose_jitter_deg: float = 8.0  # random change of each finger angle per hand pose, degrees


@dataclass(frozen=True)
class HandShape:
    """Rigid geometry of one hand in the right-hand frame (x distal, y radial, z dorsal), metres.

    ``bases (5, 3)``: thumb CMC and the index..pinky MCP joints relative to the wrist;
    ``segments (5, 3)``: the three moving segments of each finger (thumb: metacarpal,
    proximal, distal; fingers: proximal, middle, distal phalanx, tip included);
    ``frames (5, 3, 3)``: each finger's rest frame (x along the finger, flexion about y
    toward the palm -z) in the hand frame.
    """

    bases: np.ndarray
    segments: np.ndarray
    frames: np.ndarray


@dataclass(frozen=True)
class BodyShape:
    """Constant segment geometry of one person, metres (body-local x forward, y left, z up)."""

    height: float
    hip_half_width: float  # pelvis centre to each hip joint
    thigh: float
    shank: float
    ankle_height: float  # ankle joint above the floor when the foot is flat
    spine: float  # pelvis centre to shoulder midpoint (along the chest z axis)
    shoulder_half_width: float
    upper_arm: float
    forearm: float
    neck: np.ndarray  # (3,) shoulder midpoint to head pivot, chest frame
    head_points: np.ndarray  # (5, 3) nose, left eye, right eye, left ear, right ear from the head pivot, head frame
    hand: HandShape


# Fractions of the standing height (Winter 2009, fig. 4.1).
_FRACTIONS = {
    "hip_half_width": 0.055,
    "thigh": 0.245,
    "shank": 0.246,
    "ankle_height": 0.039,
    "spine": 0.288,
    "shoulder_half_width": 0.110,
    "upper_arm": 0.186,
    "forearm": 0.146,
}
_REFERENCE_HEIGHT = 1.75  # metres; the head and hand tables below are for this height
_NECK = np.array([0.010, 0.0, 0.072]) * _REFERENCE_HEIGHT  # shoulder midpoint -> head pivot
_HEAD_POINTS = np.array(
    [
        [0.110, 0.000, 0.035],  # nose tip
        [0.085, 0.031, 0.070],  # left eye
        [0.085, -0.031, 0.070],  # right eye
        [0.000, 0.075, 0.040],  # left ear (tragus)
        [0.000, -0.075, 0.040],  # right ear
    ]
)
# Hand of a 1.75 m person (hand length 0.189 m), right-hand frame: thumb CMC, MCPs.
_HAND_BASES = np.array(
    [
        [0.022, 0.022, -0.012],
        [0.083, 0.024, 0.000],
        [0.086, 0.002, 0.000],
        [0.080, -0.017, -0.002],
        [0.072, -0.034, -0.006],
    ]
)
_HAND_SEGMENTS = np.array(
    [
        [0.046, 0.032, 0.030],  # thumb: metacarpal, proximal, distal (+ tip)
        [0.042, 0.025, 0.022],  # index: proximal, middle, distal (+ tip)
        [0.047, 0.029, 0.024],  # middle
        [0.044, 0.028, 0.023],  # ring
        [0.035, 0.020, 0.021],  # pinky
    ]
)
_FINGER_SPLAY_DEG = np.array([45.0, 7.0, 0.0, -7.0, -14.0])  # rest direction in the palm plane, toward radial
_FINGER_ROLL_DEG = np.array([-55.0, 0.0, 0.0, 0.0, 0.0])  # thumb flexion plane turned across the palm


def sample_body_shape(rng: np.random.Generator, config: MotionConfig = MotionConfig()) -> BodyShape:
    """Draw one person: height uniform in ``config.height_range_m``, segments scaled and varied."""
    height = rng.uniform(*config.height_range_m)

    def vary(size=None):
        return 1.0 + config.segment_variation * np.clip(rng.standard_normal(size), -2.5, 2.5)

    lengths = {name: fraction * height * vary() for name, fraction in _FRACTIONS.items()}
    scale = height / _REFERENCE_HEIGHT
    hand_scale = scale * vary()
    frames = _rz(np.radians(_FINGER_SPLAY_DEG)) @ _rx(np.radians(_FINGER_ROLL_DEG))
    hand = HandShape(
        bases=_HAND_BASES * hand_scale * vary((5, 1)),
        segments=_HAND_SEGMENTS * hand_scale * vary((5, 3)),
        frames=frames,
    )
    return BodyShape(
        height=height,
        neck=_NECK * scale * vary(),
        head_points=_HEAD_POINTS * scale * vary(),
        hand=hand,
        **lengths,
    )


# --------------------------------------------------------------------------------------
# Smooth time series
# --------------------------------------------------------------------------------------


def smootherstep(x: np.ndarray) -> np.ndarray:
    """Quintic ramp from 0 (x <= 0) to 1 (x >= 1) with zero first and second derivatives at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (6.0 * x - 15.0) + 10.0)


def smooth_noise(rng: np.random.Generator, times: np.ndarray, peak: float, frequency_hz: tuple[float, float], components: int = 3) -> np.ndarray:
    """Sum of ``components`` sinusoids ``(frames,)`` bounded by ``peak`` (same unit), frequencies in Hz."""
    frequencies = rng.uniform(*frequency_hz, size=components)
    phases = rng.uniform(0, 2 * np.pi, size=components)
    weights = rng.uniform(0.5, 1.0, size=components)
    weights *= peak / weights.sum()
    return (weights * np.sin(2 * np.pi * frequencies * times[:, None] + phases)).sum(axis=1)


def episodes(
    rng: np.random.Generator,
    times: np.ndarray,
    rate_hz: float,
    duration_s: tuple[float, float],
    ramp_s: float,
    values: tuple[float, float] = (1.0, 1.0),
    total: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Random plateau episodes: envelope ``(frames,)`` in [0, 1] and a per-episode value ``(frames,)``.

    Episode starts are uniform over the take (``total`` seconds, default the last time;
    Poisson count, ``rate_hz`` per second), each lasting ``duration_s`` (seconds) with
    smooth ``ramp_s`` rises and falls. The value (uniform in ``values``) is the
    envelope-weighted mean of the active episodes. The draws depend on ``total`` only,
    so any times (frames, trajectory samples) see the same episodes.
    """
    if total is None:
        total = float(times[-1]) if times.size else 0.0
    total = total + 1e-9 if total > 0 else 0.0
    count = rng.poisson(rate_hz * (total + duration_s[1])) if total > 0 else 0
    starts = rng.uniform(-duration_s[1], total, size=count)
    durations = rng.uniform(*duration_s, size=count)
    amplitudes = rng.uniform(*values, size=count)
    relative = times[None, :] - starts[:, None]  # (episodes, frames)
    plateau = smootherstep(relative / ramp_s) * smootherstep((durations[:, None] - relative) / ramp_s)
    envelope = plateau.max(axis=0, initial=0.0)
    weight = plateau.sum(axis=0)
    weighted = (plateau * amplitudes[:, None]).sum(axis=0)
    value = np.divide(weighted, weight, out=np.zeros_like(envelope), where=weight > 0)
    return envelope, value


# --------------------------------------------------------------------------------------
# Hands
# --------------------------------------------------------------------------------------

# Named hand poses: flexion (degrees) of each finger's three joints (thumb: CMC, MCP,
# IP; fingers: MCP, PIP, DIP) and abduction (degrees, toward radial) per finger.
HAND_POSE_NAMES = ("open", "relaxed", "grasp", "cylinder", "point", "pinch")
_HAND_POSE_FLEXION = np.array(
    [
        [[0, 5, 5], [5, 5, 3], [5, 5, 3], [5, 5, 3], [5, 5, 3]],
        [[15, 15, 10], [20, 30, 15], [25, 35, 20], [30, 40, 20], [35, 45, 25]],
        [[40, 40, 35], [85, 100, 60], [88, 100, 65], [90, 100, 65], [90, 95, 60]],
        [[35, 20, 15], [50, 55, 30], [55, 60, 30], [55, 60, 30], [55, 55, 30]],
        [[35, 35, 25], [5, 5, 3], [85, 100, 60], [90, 100, 65], [90, 95, 60]],
        [[40, 25, 20], [45, 45, 25], [30, 40, 20], [30, 40, 20], [35, 45, 25]],
    ],
    dtype=np.float64,
)
_HAND_POSE_ABDUCTION = np.array(
    [[15, 6, 0, -5, -10], [0, 2, 0, -2, -4], [-10, -3, 0, 3, 5], [5, 0, 0, 0, 0], [-5, 0, 0, 3, 5], [-5, 0, 0, -2, -4]],
    dtype=np.float64,
)
# Joint limits, degrees: flexion (5 fingers, 3 joints) low / high, abduction low / high.
_FLEXION_LIMITS = (
    np.array([[-10, -5, -10], [-15, 0, 0], [-15, 0, 0], [-15, 0, 0], [-15, 0, 0]], dtype=np.float64),
    np.array([[60, 60, 80], [95, 110, 80], [95, 110, 80], [95, 110, 80], [95, 110, 80]], dtype=np.float64),
)
_ABDUCTION_LIMITS = (-20.0, 25.0)


def hand_pose_sequence(rng: np.random.Generator, times: np.ndarray, config: MotionConfig, total: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Finger angles over time: flexion ``(frames, 5, 3)`` and abduction ``(frames, 5)``, radians.

    A keyframe every ``hand_pose_interval_s`` picks a named pose (jittered); the hand
    holds it, then blends to the next one during the last ``hand_transition_s``.
    Keyframes cover ``total`` seconds (default: the last time).
    """
    if total is None:
        total = float(times[-1]) if times.size else 0.0
    count = int(np.ceil(total / config.hand_pose_interval_s[0])) + 2
    keys = np.concatenate([[0.0], np.cumsum(rng.uniform(*config.hand_pose_interval_s, size=count - 1))])
    chosen = rng.integers(0, len(HAND_POSE_NAMES), size=count)
    jitter = config.hand_pose_jitter_deg
    flexion = _HAND_POSE_FLEXION[chosen] + rng.uniform(-jitter, jitter, size=(count, 5, 3))
    abduction = _HAND_POSE_ABDUCTION[chosen] + rng.uniform(-jitter / 2, jitter / 2, size=(count, 5))
    index = np.clip(np.searchsorted(keys, times, side="right") - 1, 0, count - 2)
    transition = min(config.hand_transition_s, config.hand_pose_interval_s[0])
    weight = smootherstep((times - (keys[index + 1] - transition)) / transition)
    flex = flexion[index] + weight[:, None, None] * (flexion[index + 1] - flexion[index])
    abd = abduction[index] + weight[:, None] * (abduction[index + 1] - abduction[index])
    flex = np.clip(flex, *_FLEXION_LIMITS)
    abd = np.clip(abd, *_ABDUCTION_LIMITS)
    return np.radians(flex), np.radians(abd)


def hand_points(hand: HandShape, flexion: np.ndarray, abduction: np.ndarray, left: bool) -> np.ndarray:
    """The 21 hand joints ``(frames, 21, 3)`` in the hand frame (metres, wrist at the origin).

    ``flexion (frames, 5, 3)``, ``abduction (frames, 5)`` radians. The left hand is the
    mirror image of the right one (its frame's y axis points ulnar).
    """
    bases, frames = hand.bases, hand.frames
    if left:
        bases = bases @ _MIRROR_Y
        frames = _MIRROR_Y @ frames @ _MIRROR_Y
    cumulative = np.cumsum(flexion, axis=-1)  # (F, 5, 3)
    spread = abduction[..., None]
    local = np.stack(
        [np.cos(spread) * np.cos(cumulative), np.sin(spread) * np.cos(cumulative), -np.sin(cumulative)], axis=-1
    )  # (F, 5, 3 segments, 3 xyz) in each finger's rest frame
    segments = np.einsum("kij,fksj->fksi", frames, local) * hand.segments[None, :, :, None]
    chain = bases[None, :, None, :] + np.cumsum(segments, axis=2)  # joints _2.._4
    fingers = np.concatenate([np.broadcast_to(bases[None, :, None, :], chain.shape[:1] + (5, 1, 3)), chain], axis=2)
    wrist = np.zeros((flexion.shape[0], 1, 3))
    return np.concatenate([wrist, fingers.reshape(-1, 20, 3)], axis=1)


# Hand axes (columns: x distal, y, z dorsal) in the forearm frame, for an arm hanging
# with the thumb forward and the palm toward the body.
_HAND_IN_FOREARM = {
    True: np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]]),  # left: y ulnar = backward
    False: np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]]),  # right: y radial = forward
}

# --------------------------------------------------------------------------------------
# Body angles over time
# --------------------------------------------------------------------------------------

# Arm postures: (mean, peak of the smooth variation) in degrees per angle. Flexion
# raises the arm forward, abduction sideways, internal rotation turns the forearm
# toward the body, pronation turns the palm down when the forearm is horizontal.
_ARM_ANGLES = ("flexion", "abduction", "internal_rotation", "elbow", "pronation", "wrist_flexion", "wrist_deviation")
_ARM_POSTURES: dict[str, dict[str, tuple[float, float]]] = {
    "hanging": {
        "flexion": (5.0, 10.0),
        "abduction": (10.0, 6.0),
        "internal_rotation": (5.0, 15.0),
        "elbow": (20.0, 12.0),
        "pronation": (0.0, 30.0),
        "wrist_flexion": (0.0, 20.0),
        "wrist_deviation": (0.0, 10.0),
    },
    "holding": {  # hands in front of the waist, manipulating something
        "flexion": (35.0, 12.0),
        "abduction": (15.0, 8.0),
        "internal_rotation": (35.0, 15.0),
        "elbow": (95.0, 20.0),
        "pronation": (55.0, 30.0),
        "wrist_flexion": (5.0, 25.0),
        "wrist_deviation": (0.0, 12.0),
    },
    "gesturing": {  # forearm raised in front of the chest, palm turned toward the side, wrist extended
        "flexion": (35.0, 15.0),
        "abduction": (22.0, 10.0),
        "internal_rotation": (15.0, 15.0),
        "elbow": (105.0, 20.0),
        "pronation": (-15.0, 30.0),
        "wrist_flexion": (-15.0, 20.0),
        "wrist_deviation": (0.0, 10.0),
    },
    "reaching": {  # the flexion comes from the reach episode
        "flexion": (0.0, 0.0),
        "abduction": (20.0, 10.0),
        "internal_rotation": (0.0, 10.0),
        "elbow": (12.0, 8.0),
        "pronation": (40.0, 25.0),
        "wrist_flexion": (-10.0, 15.0),
        "wrist_deviation": (0.0, 8.0),
    },
}
_ELBOW_LIMITS_DEG = (3.0, 145.0)
_POSTURE_FREQUENCY_HZ = (0.05, 0.4)  # frequency range of the postures' smooth variation


@dataclass(frozen=True)
class _ArmAngles:
    """One arm's angles, radians, ``(frames,)`` each (names as in :data:`_ARM_ANGLES`)."""

    flexion: np.ndarray
    abduction: np.ndarray
    internal_rotation: np.ndarray
    elbow: np.ndarray
    pronation: np.ndarray
    wrist_flexion: np.ndarray
    wrist_deviation: np.ndarray


def _arm_angles(rng: np.random.Generator, times: np.ndarray, config: MotionConfig, swing_deg: np.ndarray, hold: np.ndarray, total: float) -> _ArmAngles:
    """One arm: hanging with the gait's swing ``swing_deg (frames,)``, blended into holding
    (envelope ``hold``), then into its own gesturing and reaching episodes."""
    postures = {
        name: {angle: mean + smooth_noise(rng, times, peak, _POSTURE_FREQUENCY_HZ) for angle, (mean, peak) in table.items()}
        for name, table in _ARM_POSTURES.items()
    }
    postures["hanging"]["flexion"] = postures["hanging"]["flexion"] + swing_deg
    postures["hanging"]["elbow"] = postures["hanging"]["elbow"] + 0.4 * np.abs(swing_deg)
    reach, reach_flexion = episodes(rng, times, config.reach_rate_hz, config.reach_duration_s, config.episode_ramp_s, config.reach_flexion_deg, total)
    postures["reaching"]["flexion"] = postures["reaching"]["flexion"] + reach_flexion
    gesture, _ = episodes(rng, times, config.gesture_rate_hz, config.gesture_duration_s, config.episode_ramp_s, total=total)
    angles = {}
    for angle in _ARM_ANGLES:
        value = postures["hanging"][angle] + hold * (postures["holding"][angle] - postures["hanging"][angle])
        value = value + gesture * (postures["gesturing"][angle] - value)
        angles[angle] = np.radians(value + reach * (postures["reaching"][angle] - value))
    angles["elbow"] = np.clip(angles["elbow"], *np.radians(_ELBOW_LIMITS_DEG))
    return _ArmAngles(**angles)


@dataclass(frozen=True)
class _BodyAngles:
    """Everything the forward kinematics needs, radians, ``(frames,)`` per angle.

    Per side (key ``True`` = left): hip flexion / abduction, knee flexion, the arm, the
    fingers (flexion ``(frames, 5, 3)``, abduction ``(frames, 5)``).
    """

    ground: np.ndarray  # (frames, 2) pelvis position on the floor plane, metres
    yaw: np.ndarray
    roll: np.ndarray
    pelvis_pitch: np.ndarray
    trunk_flexion: np.ndarray
    hip_flexion: dict[bool, np.ndarray]
    hip_abduction: dict[bool, np.ndarray]
    knee: dict[bool, np.ndarray]
    arms: dict[bool, _ArmAngles]
    fingers: dict[bool, tuple[np.ndarray, np.ndarray]]
    head_yaw: np.ndarray
    head_pitch: np.ndarray
    head_roll: np.ndarray


INTEGRATION_HZ = 240.0  # rate of the grid on which walking speed and gait frequency are integrated


def _integration_grid(times: np.ndarray, total: float) -> np.ndarray:
    """A regular grid (``INTEGRATION_HZ``) covering ``times`` and ``[0, total]``, with 0 on it."""
    step = 1.0 / INTEGRATION_HZ
    low = np.floor(min(float(times.min()), 0.0) / step) - 2
    high = np.ceil(max(float(times.max()), total) / step) + 2
    return np.arange(low, high + 1) * step


def _integral_at(times: np.ndarray, grid: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """``integral_0^t rate`` at ``times`` from ``rate`` sampled on ``grid`` (trapezoids, cubic in between).

    A function of time alone: the same for any ``times``, so frames and trajectory
    samples are points of one continuous motion.
    """
    from scipy.interpolate import CubicSpline

    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(grid))])
    spline = CubicSpline(grid, cumulative)
    return spline(times) - spline(0.0)


def _walking_path(rng: np.random.Generator, times: np.ndarray, grid: np.ndarray, speed_grid: np.ndarray, config: MotionConfig) -> tuple[np.ndarray, np.ndarray]:
    """Pelvis floor position ``(frames, 2)`` (metres) and walking direction ``(frames,)`` (radians).

    The path is an ellipse (random semi-axes, orientation, direction) with a small
    second harmonic, walked at the speed ``speed_grid`` (metres per second on ``grid``).
    """
    semi_axes = rng.uniform(*config.path_semi_axes_m, size=2)
    harmonic = rng.uniform(-config.path_harmonic_m, config.path_harmonic_m, size=2)
    direction = rng.choice([-1.0, 1.0])
    radius = semi_axes.mean()
    u = direction * (_integral_at(times, grid, speed_grid) / radius + rng.uniform(0, 2 * np.pi))
    position = np.stack(
        [
            semi_axes[0] * np.cos(u) + harmonic[0] * np.cos(2 * u),
            semi_axes[1] * np.sin(u) + harmonic[1] * np.sin(2 * u),
        ],
        axis=-1,
    )
    tangent = direction * np.stack(
        [
            -semi_axes[0] * np.sin(u) - 2 * harmonic[0] * np.sin(2 * u),
            semi_axes[1] * np.cos(u) + 2 * harmonic[1] * np.cos(2 * u),
        ],
        axis=-1,
    )
    rotation = _rz(rng.uniform(0, 2 * np.pi))[:2, :2]
    position, tangent = position @ rotation.T, tangent @ rotation.T
    return position, np.unwrap(np.arctan2(tangent[:, 1], tangent[:, 0]))


def _body_angles(rng: np.random.Generator, times: np.ndarray, config: MotionConfig, total: float) -> _BodyAngles:
    """Draw the activities and turn them into joint angles at ``times (samples,)`` seconds.

    ``total``: the take's length in seconds (episodes and hand poses cover it). The
    angles are functions of time: any ``times`` (frames, trajectory samples, both) see
    the same motion.
    """
    grid = _integration_grid(times, total)
    both = np.concatenate([times, grid])
    count = times.size

    # Activities: envelopes in [0, 1]; ``squat`` mixes a stoop (0) and a squat (1).
    bend, squat = episodes(rng, both, config.bend_rate_hz, config.bend_duration_s, config.episode_ramp_s, (0.0, 1.0), total)
    hold, _ = episodes(rng, both, config.hold_rate_hz, config.hold_duration_s, config.episode_ramp_s, total=total)
    walking = np.clip(config.walk_intensity_mean + smooth_noise(rng, both, config.walk_intensity_variation, (0.03, 0.12)), 0.1, 1.0)
    walking *= (1.0 - config.bend_slowdown * bend) * (1.0 - config.hold_slowdown * hold)  # 0..1, 1 = full speed
    ground, heading = _walking_path(rng, times, grid, config.walk_speed_m_s * walking[count:], config)
    bend, squat, hold, walking_grid, walking = bend[:count], squat[:count], hold[:count], walking[count:], walking[:count]

    # Gait: phase advances with the walking intensity, which also scales the amplitudes.
    cycles = _integral_at(times, grid, config.stride_frequency_hz * np.sqrt(walking_grid))
    phase = 2 * np.pi * cycles + rng.uniform(0, 2 * np.pi)
    hip_swing = config.hip_swing_deg * walking * np.sin(phase)  # left leg; the right one is opposite
    knee_swing = {left: config.knee_swing_deg * walking * ((1 + np.cos(phase + 0.3 + (0 if left else np.pi))) / 2) ** 3 for left in (True, False)}
    stoop, crouch = bend * (1 - squat), bend * squat

    def noise(peak, frequency=(0.1, 0.4)):
        return smooth_noise(rng, times, peak, frequency)

    trunk_flexion = noise(5.0) + config.stoop_trunk_flexion_deg * stoop + config.squat_trunk_flexion_deg * crouch
    pelvis_pitch = 3.0 + noise(3.0) + config.squat_pelvis_pitch_deg * crouch
    head_pitch = (
        config.head_mean_pitch_deg
        + noise(config.head_pitch_deg, (0.05, 0.4))
        + config.look_at_hands_deg * hold
        - 0.45 * (trunk_flexion + pelvis_pitch)  # keeps looking ahead while bending
    )
    deg = np.radians
    return _BodyAngles(
        ground=ground,
        yaw=heading + deg(noise(config.heading_sway_deg, (0.05, 0.3)) + 4.0 * walking * np.sin(phase)),
        roll=deg(noise(3.0, (0.1, 0.5)) + 2.0 * walking * np.sin(2 * phase)),
        pelvis_pitch=deg(pelvis_pitch),
        trunk_flexion=deg(trunk_flexion),
        hip_flexion={left: deg((1 if left else -1) * hip_swing + config.squat_hip_deg * crouch) for left in (True, False)},
        hip_abduction={left: deg(4.0 + noise(3.0) + 10.0 * crouch) for left in (True, False)},
        knee={left: deg(3.0 + knee_swing[left] + config.squat_knee_deg * crouch + config.stoop_knee_deg * stoop) for left in (True, False)},
        arms={left: _arm_angles(rng, times, config, (-1 if left else 1) * config.arm_swing_ratio * hip_swing, hold, total) for left in (True, False)},
        fingers={left: hand_pose_sequence(rng, times, config, total) for left in (True, False)},
        head_yaw=deg(smooth_noise(rng, times, config.head_yaw_deg, (0.04, 0.35), components=4)),
        head_pitch=deg(head_pitch),
        head_roll=deg(noise(6.0, (0.05, 0.4))),
    )


# --------------------------------------------------------------------------------------
# Forward kinematics
# --------------------------------------------------------------------------------------

# Joint indices per side (key True = left): shoulder, elbow, wrist, hip, knee, ankle, hand.
_SIDE_JOINTS = {
    True: (5, 7, 9, 11, 13, 15, skeleton.LEFT_HAND),
    False: (6, 8, 10, 12, 14, 16, skeleton.RIGHT_HAND),
}


def _forward_kinematics(shape: BodyShape, angles: _BodyAngles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joints ``(frames, 59, 3)``, head-to-world rotations ``(frames, 3, 3)`` and eye
    midpoints ``(frames, 3)``, metres, with the lower ankle at ``shape.ankle_height``."""
    frames = angles.yaw.shape[0]
    joints = np.empty((frames, skeleton.NUM_JOINTS, 3))
    pelvis = np.concatenate([angles.ground, np.zeros((frames, 1))], axis=1)
    pelvis_rotation = _rz(angles.yaw) @ _rx(angles.roll) @ _ry(angles.pelvis_pitch)
    # The chest turns about the line through the hip joints (keeps the torso bones rigid).
    chest_rotation = pelvis_rotation @ _ry(angles.trunk_flexion)
    shoulder_mid = pelvis + _apply(chest_rotation, np.array([0.0, 0.0, shape.spine]))
    for left, (shoulder, elbow, wrist, hip, knee, ankle, hand) in _SIDE_JOINTS.items():  # two sides
        side = 1.0 if left else -1.0
        arm = angles.arms[left]
        across = np.array([0.0, side * shape.shoulder_half_width, 0.0])
        joints[:, shoulder] = shoulder_mid + _apply(chest_rotation, across)
        upper = chest_rotation @ _ry(-arm.flexion) @ _rx(side * arm.abduction) @ _rz(-side * arm.internal_rotation)
        joints[:, elbow] = joints[:, shoulder] + _apply(upper, np.array([0.0, 0.0, -shape.upper_arm]))
        fore = upper @ _ry(-arm.elbow) @ _rz(-side * arm.pronation)
        joints[:, wrist] = joints[:, elbow] + _apply(fore, np.array([0.0, 0.0, -shape.forearm]))
        palm = fore @ _HAND_IN_FOREARM[left] @ _ry(arm.wrist_flexion) @ _rz(-side * arm.wrist_deviation)
        local = hand_points(shape.hand, *angles.fingers[left], left=left)
        joints[:, hand] = joints[:, wrist, None] + np.einsum("fij,fkj->fki", palm, local)

        joints[:, hip] = pelvis + _apply(pelvis_rotation, np.array([0.0, side * shape.hip_half_width, 0.0]))
        thigh = pelvis_rotation @ _ry(-angles.hip_flexion[left]) @ _rx(side * angles.hip_abduction[left])
        joints[:, knee] = joints[:, hip] + _apply(thigh, np.array([0.0, 0.0, -shape.thigh]))
        shank = thigh @ _ry(angles.knee[left])
        joints[:, ankle] = joints[:, knee] + _apply(shank, np.array([0.0, 0.0, -shape.shank]))

    head_rotation = chest_rotation @ _rz(angles.head_yaw) @ _ry(angles.head_pitch) @ _rx(angles.head_roll)
    head_pivot = shoulder_mid + _apply(chest_rotation, shape.neck)
    joints[:, 0:5] = head_pivot[:, None] + np.einsum("fij,kj->fki", head_rotation, shape.head_points)
    eyes = head_pivot + _apply(head_rotation, shape.head_points[1:3].mean(axis=0))

    # Stand on the floor: the lower ankle at its flat-foot height.
    lift = shape.ankle_height - np.minimum(joints[:, 15, 2], joints[:, 16, 2])
    joints[..., 2] += lift[:, None]
    eyes[:, 2] += lift
    return joints, head_rotation, eyes


# --------------------------------------------------------------------------------------
# The take
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadSamples:
    """The head at arbitrary times (e.g. a 1 kHz device trajectory): ``times (N,)`` seconds,
    ``rotation (N, 3, 3)`` head-to-world, ``position (N, 3)`` eye midpoint, metres."""

    times: np.ndarray
    rotation: np.ndarray
    position: np.ndarray


@dataclass(frozen=True)
class Motion:
    """Ground truth of one synthetic take.

    ``joints (frames, 59, 3)`` float64 metres, world z up; ``bone_lengths (59,)`` metres
    in :data:`fitting.skeleton.BONES` order; ``head_rotation (frames, 3, 3)`` head-to-world
    (head x forward, y left, z up); ``head_position (frames, 3)`` the eye midpoint, metres;
    ``fps`` frames per second; ``shape`` the person's segment geometry; ``head_samples``
    the head at extra times, when asked for. Frame ``f`` is at ``f / fps`` seconds.
    """

    joints: np.ndarray
    bone_lengths: np.ndarray
    head_rotation: np.ndarray
    head_position: np.ndarray
    fps: float
    shape: BodyShape
    head_samples: HeadSamples | None = None

    @property
    def num_frames(self) -> int:
        return self.joints.shape[0]


_CHUNK_SAMPLES = 50_000  # times evaluated at once (bounds memory for long trajectories)


def _motion_at(seed: int, times: np.ndarray, total: float, config: MotionConfig):
    """Shape, joints, head rotations and eye midpoints at ``times``, in chunks (a function of time)."""
    joints, rotations, eyes = [], [], []
    shape = None
    for start in range(0, max(times.size, 1), _CHUNK_SAMPLES):
        rng = np.random.default_rng([seed, 1])  # stream 1: motion (the rig and detector have their own)
        shape = sample_body_shape(rng, config)
        angles = _body_angles(rng, times[start : start + _CHUNK_SAMPLES], config, total)
        chunk = _forward_kinematics(shape, angles)
        joints.append(chunk[0])
        rotations.append(chunk[1])
        eyes.append(chunk[2])
    return shape, np.concatenate(joints), np.concatenate(rotations), np.concatenate(eyes)


def take_duration(num_frames: int, fps: float) -> float:
    """Seconds from the first frame to the last of a take (episodes and hand poses cover them)."""
    return (num_frames - 1) / fps


def joints_at(times: np.ndarray, num_frames: int, fps: float, seed: int, config: MotionConfig = MotionConfig()) -> np.ndarray:
    """The joints ``(len(times), 59, 3)`` (metres) of the take :func:`simulate_motion` makes
    with these arguments, at any ``times (N,)`` seconds (frame ``f`` is at ``f / fps``;
    times before 0 or after the last frame continue the same motion)."""
    times = np.asarray(times, dtype=np.float64)
    return _motion_at(seed, times, take_duration(num_frames, fps), config)[1]


def simulate_motion(num_frames: int, fps: float, seed: int, config: MotionConfig = MotionConfig(), sample_times: np.ndarray | None = None) -> Motion:
    """Simulate one person for ``num_frames`` frames at ``fps`` (deterministic per ``seed``).

    ``sample_times`` (seconds, any, e.g. a 1 kHz trajectory around the take): the head
    pose there too, from the same continuous motion as the frames.
    """
    if num_frames < 1 or not fps > 0:
        raise ValueError(f"need num_frames >= 1 and fps > 0, got {num_frames}, {fps}")
    frame_times = np.arange(num_frames) / fps
    total = take_duration(num_frames, fps)
    shape, joints, head_rotation, eyes = _motion_at(seed, frame_times, total, config)
    samples = None
    if sample_times is not None:
        sample_times = np.asarray(sample_times, dtype=np.float64)
        head_only = []
        for start in range(0, sample_times.size, _CHUNK_SAMPLES):
            _, _, rotation, position = _motion_at(seed, sample_times[start : start + _CHUNK_SAMPLES], total, config)
            head_only.append((rotation, position))
        samples = HeadSamples(sample_times, np.concatenate([r for r, _ in head_only]), np.concatenate([p for _, p in head_only]))
    return Motion(joints, skeleton.bone_lengths(joints[0]), head_rotation, eyes, float(fps), shape, samples)
