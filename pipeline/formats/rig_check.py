"""The calibration check's files: ``calibrate_check/rig_check.json`` and ``rig.npz``.

- ``rig_check.json``: the check's report (:func:`rig_check_document`): the rig's status
  and reasons, samples and frames used, the trusted cameras, the near-planarity of the
  samples, and per camera the estimated correction (degrees, mm, ms and frames) with its
  1-sigma uncertainty, the median reprojection error before and after (pixels), whether
  the correction was applied and why (the mode, its status, the reasons).
- ``rig.npz`` (only when a correction was applied): the rig the stages after the check
  use, ``camera_names (views,)``, ``R (views, 3, 3)`` and ``t (views, 3)`` world-to-camera
  (metres) as corrected, ``R_original`` / ``t_original`` as calibrated, ``focal_scale
  (views,)`` (1: unchanged), ``time_offset_frames (views,)`` the applied offsets (0: none;
  camera frame ``f`` shows the scene at reference time ``f + offset``) and ``applied
  (views,)`` bool.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.atomic import atomic_save_npz, atomic_write_text, load_npz
from triangulation.cameras import Camera
from triangulation.rig_check import corrected_camera


@dataclass(frozen=True)
class RigCorrections:
    """The applied corrections of ``rig.npz`` (arrays as in the module docstring)."""

    camera_names: tuple[str, ...]
    R: np.ndarray
    t: np.ndarray
    R_original: np.ndarray
    t_original: np.ndarray
    focal_scale: np.ndarray
    time_offset_frames: np.ndarray
    applied: np.ndarray

    def corrected(self, cameras: Sequence[Camera], source: str = "rig.npz") -> list[Camera]:
        """``cameras`` (the take's, in any order) with the corrections applied; a camera the
        file does not name, or names twice, is refused naming it and ``source``."""
        index = {name: view for view, name in enumerate(self.camera_names)}
        if len(index) != len(self.camera_names):
            raise ValueError(f"{source}: field 'camera_names' names a camera twice: {', '.join(self.camera_names)}")
        result = []
        for camera in cameras:
            if camera.name not in index:
                raise ValueError(f"{source}: camera '{camera.name}' of the take is not in field 'camera_names' ({', '.join(self.camera_names)})")
            view = index[camera.name]
            result.append(corrected_camera(camera, self.R[view], self.t[view], float(self.focal_scale[view])) if self.applied[view] else camera)
        return result


def save_rig_corrections(path: str | os.PathLike, corrections: RigCorrections) -> None:
    """``rig.npz`` (see the module docstring)."""
    atomic_save_npz(
        path,
        camera_names=np.array(list(corrections.camera_names)),
        R=np.asarray(corrections.R, dtype=np.float64),
        t=np.asarray(corrections.t, dtype=np.float64),
        R_original=np.asarray(corrections.R_original, dtype=np.float64),
        t_original=np.asarray(corrections.t_original, dtype=np.float64),
        focal_scale=np.asarray(corrections.focal_scale, dtype=np.float64),
        time_offset_frames=np.asarray(corrections.time_offset_frames, dtype=np.float64),
        applied=np.asarray(corrections.applied, dtype=bool),
    )


_FIELDS = {  # field: its shape after the views axis
    "camera_names": (),
    "R": (3, 3),
    "t": (3,),
    "R_original": (3, 3),
    "t_original": (3,),
    "focal_scale": (),
    "time_offset_frames": (),
    "applied": (),
}


def load_rig_corrections(path: str | os.PathLike) -> RigCorrections:
    """Read ``rig.npz``; a missing field or one of the wrong shape is refused naming the file and field."""
    arrays = load_npz(path)
    missing = [name for name in _FIELDS if name not in arrays]
    if missing:
        raise ValueError(f"{path}: missing field(s) {', '.join(missing)} (has: {', '.join(sorted(arrays))})")
    views = arrays["camera_names"].shape[:1]
    for name, tail in _FIELDS.items():
        if arrays[name].shape != views + tail:
            raise ValueError(f"{path}: field '{name}' has shape {arrays[name].shape}, expected {views + tail}")
    return RigCorrections(
        camera_names=tuple(str(name) for name in arrays["camera_names"]),
        **{name: arrays[name] for name in _FIELDS if name != "camera_names"},
    )


def _number(value: float, digits: int) -> float | None:
    """A JSON number rounded to ``digits`` decimals, or null when not finite."""
    return round(float(value), digits) if math.isfinite(float(value)) else None


def rig_check_document(check, fps: float, mode: str, applied: Sequence[str]) -> dict:
    """The report of :func:`triangulation.rig_check.check_rig`'s ``check`` (a ``RigCheck``)
    in ``mode`` ("check" or "correct") with the ``applied`` camera names; times in ms at
    ``fps`` frames per second, JSON-serialisable (null where not measured)."""
    cameras = {}
    would_apply = check.apply()
    ms = 1000.0 / fps
    for camera in check.cameras:
        cameras[camera.name] = {
            "status": camera.status,
            "applied": camera.name in applied,
            "would_apply": camera.name in would_apply,
            "rotation_deg": _number(camera.rotation_deg, 4),
            "rotation_sigma_deg": _number(camera.rotation_sigma_deg, 4),
            "translation_mm": _number(camera.translation_mm, 2),
            "translation_sigma_mm": _number(camera.translation_sigma_mm, 2),
            "time_offset_frames": _number(camera.time_offset_frames, 4),
            "time_offset_sigma_frames": _number(camera.time_offset_sigma_frames, 4),
            "time_offset_ms": _number(camera.time_offset_frames * ms, 2),
            "time_offset_sigma_ms": _number(camera.time_offset_sigma_frames * ms, 2),
            "whole_frame_offset": int(camera.whole_frame_offset),
            "time_offset_observable": bool(camera.time_offset_observable),
            "focal_scale": _number(camera.focal_scale, 6),
            "reprojection_px_before": _number(camera.reprojection_px_before, 3),
            "reprojection_px_after": _number(camera.reprojection_px_after, 3),
            "observations": int(camera.observations),
            "reasons": list(camera.reasons),
        }
    return {
        "mode": mode,
        "status": check.status,
        "reasons": list(check.reasons),
        "samples": int(check.samples),
        "frames": int(check.frames),
        "trusted": list(check.trusted),
        "planarity": _number(check.planarity, 4),
        "would_apply": list(would_apply),
        "applied": list(applied),
        "cameras": cameras,
    }


def write_rig_check(path: str | os.PathLike, document: dict) -> None:
    """``rig_check.json`` (one space indent)."""
    atomic_write_text(path, json.dumps(document, indent=1, allow_nan=False) + "\n")


def read_rig_check(path: str | os.PathLike) -> dict:
    """``rig_check.json`` as written (errors name the file)."""
    try:
        document = json.loads(open(path, encoding="utf-8").read())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read the calibration check's report: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("cameras"), dict):
        raise ValueError(f"{path}: field 'cameras' missing: not a calibration check report")
    return document


def add_rig_corrections(camera_pose: dict, corrections: RigCorrections, fps: float) -> dict:
    """Our ``calibrate_check`` key in the camera_pose document's entry of every corrected
    camera (its ``camera_extrinsics`` are the corrected ones): the calibration's original
    ``camera_extrinsics`` (3 x 4 world to camera, metres), the applied ``time_offset_ms`` /
    ``time_offset_frames`` (camera frame f shows reference time f + offset) and
    ``focal_scale``. ``camera_pose`` is changed in place and returned."""
    for view, name in enumerate(corrections.camera_names):
        if not corrections.applied[view] or name not in camera_pose:
            continue
        original = np.hstack([corrections.R_original[view], corrections.t_original[view][:, None]])
        offset = float(corrections.time_offset_frames[view])
        camera_pose[name]["calibrate_check"] = {
            "original_camera_extrinsics": original.tolist(),
            "time_offset_frames": offset,
            "time_offset_ms": offset * 1000.0 / fps,
            "focal_scale": float(corrections.focal_scale[view]),
        }
    return camera_pose
