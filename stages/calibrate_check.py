"""Stage ``calibrate_check``: the exo rig checked (and, asked, corrected) against the person's joints.

The file side of :func:`triangulation.rig_check.check_rig` (pure; its docstring gives the
method): reads ``detect/keypoints_2d.npz``, ``triangulate/joints_3d.npz`` and the take's
exo cameras; config sections ``calibrate_check`` and ``triangulation`` (the
re-triangulation on a corrected rig); writes ``rig_check.json`` (always: per camera the
estimated correction, its uncertainty, the reprojection error before/after, whether it
was or would be applied, :mod:`pipeline.formats.rig_check`) and, only when ``mode:
correct`` applied a correction, ``rig.npz`` (the corrected rig, original kept),
``keypoints_2d.npz`` (re-timed, when a time offset was applied) and ``joints_3d.npz``
(the triangulation on the corrected rig). The stages after it read those through
:func:`stages.rig.checked_rig`. Optional (``calibrate_check.enabled``).
"""

from __future__ import annotations

import logging

import numpy as np

from fitting.skeleton import BODY
from pipeline.formats.arrays import load_arrays, save_joints_3d, save_keypoints_2d
from pipeline.formats.rig_check import RigCorrections, rig_check_document, save_rig_corrections, write_rig_check
from stages.base import StageContext, StageSpec
from stages.triangulate import triangulate_take
from triangulation.rig_check import RigCheck, check_rig, retime_keypoints

logger = logging.getLogger(__name__)


def checked_joints(settings) -> slice:
    """The joints the check sees: the body's, and the hands' with ``use_hands``."""
    return slice(None) if settings.use_hands else BODY


def _time_correction(check) -> float:
    return float(check.time_offset_frames) if check.time_offset_applies else 0.0


def corrections_of(check: RigCheck, cameras, applied: tuple[str, ...]) -> RigCorrections:
    """The rig of ``check`` with the ``applied`` cameras' corrections, and their time offsets
    where those are significant and well determined (``time_offset_applies``)."""
    checks = {camera.name: camera for camera in check.cameras}
    use = np.array([camera.name in applied for camera in cameras])
    return RigCorrections(
        camera_names=tuple(camera.name for camera in cameras),
        R=np.stack([checks[camera.name].R if on else camera.R for camera, on in zip(cameras, use)]),
        t=np.stack([checks[camera.name].t if on else camera.t for camera, on in zip(cameras, use)]),
        R_original=np.stack([camera.R for camera in cameras]),
        t_original=np.stack([camera.t for camera in cameras]),
        focal_scale=np.array([checks[camera.name].focal_scale if on else 1.0 for camera, on in zip(cameras, use)]),
        time_offset_frames=np.array([_time_correction(checks[camera.name]) if on else 0.0 for camera, on in zip(cameras, use)]),
        applied=use,
    )


def _log(take_name: str, document: dict) -> None:
    logger.info(
        "%s: calibrate_check (%s): %s, %d samples over %d frames, trusted %s",
        take_name, document["mode"], document["status"], document["samples"], document["frames"], ", ".join(document["trusted"]) or "none",
    )  # fmt: skip
    for name, camera in document["cameras"].items():
        logger.info(
            "%s: calibrate_check: %s %s: %s deg, %s mm, %s ms; reprojection %s -> %s px%s%s",
            take_name, name, camera["status"], camera["rotation_deg"], camera["translation_mm"], camera["time_offset_ms"],
            camera["reprojection_px_before"], camera["reprojection_px_after"],
            " (applied)" if camera["applied"] else " (would apply)" if camera["would_apply"] else "",
            f"; {'; '.join(camera['reasons'])}" if camera["reasons"] else "",
        )  # fmt: skip
    for reason in document["reasons"]:
        logger.warning("%s: calibrate_check: %s", take_name, reason)


def run_stage(context: StageContext) -> tuple[dict[str, str], dict]:
    settings = context.settings("calibrate_check")
    detections = load_arrays(context.inputs["detect"].path("keypoints_2d"), ("keypoints", "camera_names"))
    joints = load_arrays(context.inputs["triangulate"].path("joints_3d"), ("points",))
    cameras = list(context.take.exo_cameras)
    keypoints = detections["keypoints"]
    used = checked_joints(settings)
    check = check_rig(cameras, keypoints[:, :, used], joints["points"][:, used], context.take.fps, settings)
    applied = check.apply() if settings.mode == "correct" else ()
    document = rig_check_document(check, context.take.fps, settings.mode, applied)
    write_rig_check(context.work / "rig_check.json", document)
    _log(context.take.name, document)
    files = {"report": "rig_check.json"}
    summary = {key: document[key] for key in ("mode", "status", "samples", "frames", "trusted", "would_apply", "applied", "reasons")}
    summary["cameras"] = {
        name: {key: camera[key] for key in ("status", "rotation_deg", "translation_mm", "time_offset_ms", "reprojection_px_before", "reprojection_px_after")}
        for name, camera in document["cameras"].items()
    }
    if not applied:
        return files, summary
    corrections = corrections_of(check, cameras, applied)
    save_rig_corrections(context.work / "rig.npz", corrections)
    files["corrections"] = "rig.npz"
    shifted = np.flatnonzero(corrections.time_offset_frames != 0.0)
    if shifted.size:
        keypoints = keypoints.copy()
        for view in shifted:  # one pass per corrected camera (a handful)
            keypoints[view] = retime_keypoints(keypoints[view], float(corrections.time_offset_frames[view]))
        save_keypoints_2d(context.work / "keypoints_2d.npz", keypoints, detections["camera_names"])
        files["keypoints_2d"] = "keypoints_2d.npz"
    result, summary["triangulation"] = triangulate_take(corrections.corrected(cameras), keypoints, context.settings("triangulation"))
    save_joints_3d(context.work / "joints_3d.npz", result, detections["camera_names"])
    files["joints_3d"] = "joints_3d.npz"
    return files, summary


STAGE = StageSpec(
    name="calibrate_check",
    inputs=("detect", "triangulate"),
    config_sections=("calibrate_check", "triangulation"),
    reads_take_files=False,
    writes=("report", "corrections?", "keypoints_2d?", "joints_3d?"),
    run=run_stage,
    enabled_by="calibrate_check",
)
