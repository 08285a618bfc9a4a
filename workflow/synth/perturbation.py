"""A rig that is wrong on purpose: one exo camera's written extrinsics off, one camera's frames late or early.

The synthetic take is observed through the true rig; what :class:`RigPerturbation`
changes is what the take *says* about it, so a calibration check has a known answer:

- ``camera``: its calibration as written (``gopro_calibs.csv``, ``camera_pose.json``) is
  the true camera rotated by ``rotation_deg`` about a random axis through its centre and
  its centre moved ``translation_m`` in a random direction (both unit vectors in the
  world frame, drawn from the stream ``[seed, 7]``).
- ``time_shift_camera``: its frame ``f`` shows the scene at reference time
  ``(f + time_shift_frames) / fps`` seconds (the other cameras' and the ego camera's
  frame ``f`` show ``f / fps``): "camera c's frame f shows the scene at reference time
  f + s_c frames", with ``s_c = time_shift_frames``.

All poses are world-to-camera (``x_cam = R x_world + t``, metres).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from triangulation.cameras import Camera, rotation_from_rodrigues

PERTURBATION_STREAM = 7  # rng stream [seed, 7]: the perturbation's axis and direction
TIME_CONVENTION = (
    "camera c's frame f shows the scene at reference time (f + s_c) / fps seconds, s_c = time_shift_frames for time_shift_camera, 0 for every other camera"
)
POSE_CONVENTION = (
    "world-to-camera x_cam = R x_world + t (metres); written = true camera rotated by rotation_deg about axis "
    "(world frame, through its centre) and its centre moved by translation_m along direction (world frame): "
    "R_written = R_true Q(axis, rotation_deg)^T, centre_written = centre_true + translation_m direction"
)


@dataclass(frozen=True)
class RigPerturbation:
    """What is wrong with the take's rig (nothing by default).

    ``camera``: the exo camera whose written extrinsics are wrong (None: none);
    ``rotation_deg`` degrees and ``translation_m`` metres: how wrong. ``time_shift_camera``:
    the exo camera whose frames show other times (None: none); ``time_shift_frames``
    frames (any sign, sub-frame allowed): its frame f shows the scene at (f + shift) / fps.
    """

    camera: str | None = None
    rotation_deg: float = 1.0  # degrees, about a random axis through the camera centre
    translation_m: float = 0.03  # metres, in a random direction
    time_shift_camera: str | None = None
    time_shift_frames: float = 1.5  # frames; positive: the camera's frames show later times

    def __post_init__(self) -> None:
        for name in ("camera", "time_shift_camera"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a camera name or None, got {value!r}")
        for name in ("rotation_deg", "translation_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        if not math.isfinite(self.time_shift_frames):
            raise ValueError(f"time_shift_frames must be finite, got {self.time_shift_frames!r}")

    @property
    def active(self) -> bool:
        """A camera is perturbed or shifted (otherwise the take is the unperturbed one)."""
        return self.camera is not None or self.time_shift_camera is not None

    def check_cameras(self, names: list[str]) -> None:
        """ValueError naming an unknown camera and the rig's ``names``."""
        for field in ("camera", "time_shift_camera"):
            value = getattr(self, field)
            if value is not None and value not in names:
                raise ValueError(f"perturbation {field}: no exo camera {value!r} in the rig (cameras: {', '.join(names)})")

    def draw(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The unit ``axis (3,)`` and ``direction (3,)`` (world frame) of seed ``seed``."""
        rng = np.random.default_rng([seed, PERTURBATION_STREAM])
        axis, direction = rng.standard_normal((2, 3))
        return axis / np.linalg.norm(axis), direction / np.linalg.norm(direction)

    def written_camera(self, camera: Camera, seed: int) -> Camera:
        """``camera`` as its calibration is written (unchanged unless it is ``self.camera``)."""
        if camera.name != self.camera:
            return camera
        axis, direction = self.draw(seed)
        rotation = rotation_from_rodrigues(np.radians(self.rotation_deg) * axis)  # Q: rotates the camera in the world
        R = camera.R @ rotation.T
        center = camera.center + self.translation_m * direction
        return dataclasses.replace(camera, R=R, t=-R @ center)

    def time_shift(self, camera_name: str) -> float:
        """Frames by which ``camera_name``'s frames are shifted (0 for all but ``time_shift_camera``)."""
        return float(self.time_shift_frames) if camera_name == self.time_shift_camera else 0.0

    def truth_document(self, true_cameras: list[Camera], written_cameras: list[Camera], seed: int, fps: float) -> dict:
        """Content of ``gt/rig_perturbation.json`` (keys present, null where not perturbed)."""
        document: dict = {"camera": self.camera, "rotation_deg": None, "translation_m": None, "axis": None, "direction": None, "true": None, "written": None}
        if self.camera is not None:
            axis, direction = self.draw(seed)
            index = [camera.name for camera in true_cameras].index(self.camera)

            def pose(camera: Camera) -> dict:
                return {"R": camera.R.tolist(), "t": camera.t.tolist(), "center": camera.center.tolist()}

            document.update(
                rotation_deg=float(self.rotation_deg),
                translation_m=float(self.translation_m),
                axis=axis.tolist(),
                direction=direction.tolist(),
                true=pose(true_cameras[index]),
                written=pose(written_cameras[index]),
            )
        shifted = self.time_shift_camera is not None
        document.update(
            time_shift_camera=self.time_shift_camera,
            time_shift_frames=float(self.time_shift_frames) if shifted else None,
            time_shift_ms=1000.0 * float(self.time_shift_frames) / fps if shifted else None,
            fps=float(fps),
            pose_convention=POSE_CONVENTION,
            time_convention=TIME_CONVENTION,
        )
        return document
