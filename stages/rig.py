"""The rig and 2D keypoints the stages after ``calibrate_check`` use (a helper, not a stage).

When the calibration check applied corrections (``calibrate_check.mode: correct``), its
folder holds the corrected rig (``rig.npz``), the 2D keypoints re-timed for cameras
whose time offset was corrected (``keypoints_2d.npz``) and the triangulation on that rig
(``joints_3d.npz``); otherwise (check mode, nothing applied, the stage off) the take's
rig, detect's keypoints and triangulate's joints are used. Stages that read the rig list
``calibrate_check`` in their ``optional_inputs`` and call :func:`checked_rig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from pipeline.formats.rig_check import RigCorrections, load_rig_corrections
from pipeline.formats.take_folder import Take
from stages.base import StageContext

CHECK_STAGE = "calibrate_check"


@dataclass(frozen=True)
class CheckedRig:
    """``take``: the take with its exo cameras as corrected (the take itself when nothing
    was); ``keypoints_2d`` / ``joints_3d``: the files to read; ``corrections``: what was
    applied (None: nothing; its ``R_original`` / ``t_original`` are the calibrated rig)."""

    take: Take
    keypoints_2d: Path
    joints_3d: Path
    corrections: RigCorrections | None


def checked_rig(context: StageContext) -> CheckedRig:
    """The rig, keypoints and triangulation of ``context`` after the calibration check."""
    take = context.take
    keypoints = context.inputs["detect"].path("keypoints_2d") if "detect" in context.inputs else None
    joints = context.inputs["triangulate"].path("joints_3d") if "triangulate" in context.inputs else None
    record = context.inputs.get(CHECK_STAGE)
    files = record.manifest.get("files", {}) if record is not None else {}
    if "corrections" not in files:
        return CheckedRig(take, keypoints, joints, None)
    corrections = load_rig_corrections(record.path("corrections"))
    cameras = corrections.corrected(take.exo_cameras, str(record.path("corrections")))
    corrected = dataclasses.replace(take, exo_cameras=tuple(cameras))
    keypoints = record.path("keypoints_2d") if "keypoints_2d" in files else keypoints
    return CheckedRig(corrected, keypoints, record.path("joints_3d"), corrections)
