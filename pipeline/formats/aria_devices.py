"""Aria device generations: what a calibration means when it does not say everything.

An Aria camera calibration may omit its image size, valid radius and maximum ray angle
(MPS ``online_calibration.jsonl`` lines never carry ``ConfigData``; factory calibrations
often do not). projectaria-tools then applies per-generation defaults by label, and it
resamples a calibration to a recorded stream's size by a per-generation rule. Both
tables here are projectaria-tools 2.3.0's (``core/calibration/ConfigData.cpp``,
``loader/AriaCalibRescaleAndCrop.cpp``), restated with their meaning:

- the generation of a device calibration JSON is its ``DeviceClassInfo.DeviceClass``:
  a name starting with ``aria`` (any case) is Gen1, ``oatmeal`` (any case) Gen2 (a
  ``BuildVersion`` of ``SimulatedDevice`` is read as Gen1, as projectaria-tools patches it);
- an MPS online calibration line names no device class: projectaria-tools counts its
  cameras (4 or 5: Gen2, else Gen1). :func:`online_generation` decides by the labels,
  which differ between generations (``camera-slam-left`` / ``slam-front-left``), and
  uses the camera count only when the labels do not tell (only shared labels such as
  ``camera-rgb``).

Nothing here falls back to another generation: an unknown generation or label has no
defaults, and the callers refuse what they cannot read exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

GEN1 = "gen1"
GEN2 = "gen2"
GENERATION_NAMES = {GEN1: "Gen1", GEN2: "Gen2"}


@dataclass(frozen=True)
class CameraDefaults:
    """What projectaria-tools assumes for a camera without ``ConfigData``: ``image_size``
    (width, height) pixels, ``max_angle_rad`` (maximum ray angle from the optical axis,
    radians; projectaria-tools' ``MaxSolidAngle``), ``valid_radius_px`` (pixels; None: no
    valid-radius mask)."""

    image_size: tuple[int, int]
    max_angle_rad: float
    valid_radius_px: float | None


_GEN1_SLAM = CameraDefaults((640, 480), 1.4, 330.0)
_GEN1_ET = CameraDefaults((640, 480), 0.75, None)
_GEN2_SLAM = CameraDefaults((512, 512), 1.4, 300.0)
_GEN2_ET = CameraDefaults((400, 400), 0.75, None)

CAMERA_DEFAULTS: dict[str, dict[str, CameraDefaults]] = {
    GEN1: {
        "camera-rgb": CameraDefaults((2880, 2880), 1.0, 1415.0),
        "camera-slam-left": _GEN1_SLAM,
        "camera-slam-right": _GEN1_SLAM,
        "camera-et-left": _GEN1_ET,
        "camera-et-right": _GEN1_ET,
    },
    GEN2: {
        "camera-rgb": CameraDefaults((4032, 3024), 1.4, 2202.0),
        "slam-front-left": _GEN2_SLAM,
        "slam-front-right": _GEN2_SLAM,
        "slam-side-left": _GEN2_SLAM,
        "slam-side-right": _GEN2_SLAM,
        "camera-et-left": _GEN2_ET,
        "camera-et-right": _GEN2_ET,
    },
}

# The resampled streams projectaria-tools knows, per generation and label:
# (full size, stream size) -> (scale, (x, y) full-resolution pixels cropped from the left
# and top before scaling). A stream pixel centre is s (u - offset + 0.5) - 0.5.
# The eye-tracking cameras' rules (KannalaBrandtK3) are left out: the ego camera is FISHEYE624.
RESCALE_RULES: dict[tuple[str, str, tuple[int, int], tuple[int, int]], tuple[float, tuple[float, float]]] = {
    (GEN1, "camera-rgb", (2880, 2880), (1408, 1408)): (0.5, (32.0, 32.0)),
    (GEN1, "camera-rgb", (2880, 2880), (704, 704)): (0.25, (32.0, 32.0)),
    (GEN2, "camera-rgb", (4032, 3024), (2016, 1512)): (0.5, (0.0, 0.0)),
    (GEN2, "camera-rgb", (4032, 3024), (2560, 3024)): (1.0, (640.0, 0.0)),
    (GEN2, "camera-rgb", (4032, 3024), (2560, 1920)): (0.635, (0.0, 0.0)),
}

_ONLY_IN = {
    generation: set(labels) - set().union(*(set(other) for name, other in CAMERA_DEFAULTS.items() if name != generation))
    for generation, labels in CAMERA_DEFAULTS.items()
}


def generation_of_device_class(device_class: str, build_version: str | None = None) -> str | None:
    """The generation of ``DeviceClassInfo`` (``DeviceClass``, ``BuildVersion``); None if unknown."""
    if build_version == "SimulatedDevice":
        return GEN1
    if device_class[:4].lower() == "aria":
        return GEN1
    if device_class.lower() == "oatmeal":
        return GEN2
    return None


@dataclass(frozen=True)
class OnlineGeneration:
    """The generation of an online calibration line and how it was decided (``by``:
    ``"labels"`` or ``"camera count"``); ``mixed``: labels of both generations (refused)."""

    generation: str | None
    by: str
    mixed: tuple[str, ...] = ()


def online_generation(labels: list[str]) -> OnlineGeneration:
    """The generation of an MPS online calibration line with cameras ``labels``."""
    found = {generation: sorted(set(labels) & only) for generation, only in _ONLY_IN.items()}
    present = [generation for generation, hits in found.items() if hits]
    if len(present) > 1:
        return OnlineGeneration(None, "labels", tuple(label for generation in present for label in found[generation]))
    if present:
        return OnlineGeneration(present[0], "labels")
    return OnlineGeneration(GEN2 if len(labels) in (4, 5) else GEN1, "camera count")


def generation_labels(generation: str) -> list[str]:
    return sorted(CAMERA_DEFAULTS[generation])


def rescale_rule(generation: str | None, label: str, size: tuple[int, int], new_size: tuple[int, int]):
    """``(scale, (offset_x, offset_y))`` of projectaria-tools for this resampling, or None.

    With an unknown generation, a resampling that some generation has a rule for raises
    ``LookupError`` (the rules differ: reading it as a plain scale could be wrong)."""
    key = (label, tuple(size), tuple(new_size))
    if generation is not None:
        return RESCALE_RULES.get((generation, *key))
    candidates = [name for (name, *rest) in RESCALE_RULES if tuple(rest) == key]
    if candidates:
        raise LookupError(", ".join(GENERATION_NAMES[name] for name in candidates))
    return None
