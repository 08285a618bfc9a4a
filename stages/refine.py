"""Stage ``refine``: per-frame triangulation -> smooth tracks with constant bone lengths.

The file side of :func:`fitting.refine.refine` (pure; its docstring lists the steps):
reads ``detect/keypoints_2d.npz``, ``triangulate/joints_3d.npz`` and the take's exo
cameras, or their corrected versions when ``calibrate_check`` corrected the rig
(:func:`stages.rig.checked_rig`); config sections ``refine`` and ``batch`` (the cluster the fit's windows may run
on, :func:`pipeline.executor.choose`); writes ``joints_3d.npz`` (the triangulation's keys
plus ``bone_lengths``, ``outliers``, ``filled``).
"""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
from typing import TYPE_CHECKING

from fitting.refine import refine, summarize
from pipeline.config import BatchConfig
from pipeline.executor import choose
from pipeline.formats.arrays import load_arrays, save_joints_3d
from pipeline.ray_support import ray_map
from stages.base import StageContext, StageSpec
from stages.rig import checked_rig

if TYPE_CHECKING:
    from pipeline.config import RefineConfig

logger = logging.getLogger(__name__)


def choose_executor(settings: RefineConfig, frames: int, ray_address: str | None, start_ray: bool = False):
    """Where the fit's windows of a take of ``frames`` frames run under ``refine.executor``
    (:func:`pipeline.executor.choose`: one-CPU tasks; ``auto`` stays in-process without a
    fit or below ``ray_min_frames``); ``start_ray`` as there."""
    stay = None
    if not settings.fit.enabled:
        stay = "refine.fit.enabled is false"
    elif frames < settings.ray_min_frames:
        stay = f"{frames} frames, fewer than refine.ray_min_frames ({settings.ray_min_frames})"
    return choose(
        settings.executor, "refine.executor", pieces=frames, cpus_per_worker=1, address=ray_address,
        worker="window tasks", stay_inprocess=stay, context=f"{frames} frames, ", start_ray=start_ray,
    )  # fmt: skip


def run_stage(context: StageContext) -> tuple[dict[str, str], dict]:
    rig = checked_rig(context)  # the rig as the calibration check left it
    detections = load_arrays(rig.keypoints_2d, ("keypoints", "camera_names"))
    joints = load_arrays(rig.joints_3d, ("points", "inliers", "reprojection_error"))
    cameras = list(rig.take.exo_cameras)
    settings = context.settings("refine")
    address = context.settings("batch").ray_address
    choice = choose_executor(settings, joints["points"].shape[0], address, start_ray=True)
    executor, reason = choice.kind, choice.reason
    logger.info("refine: the fit's windows %s (%s)", "as Ray tasks" if executor == "ray" else "in-process", reason)
    map_windows = partial(ray_map, address=address) if executor == "ray" else None
    result = refine(cameras, detections["keypoints"], joints["points"], joints["inliers"], context.take.fps, settings, map_windows)
    save_joints_3d(
        context.work / "joints_3d.npz",
        result,
        detections["camera_names"],
        bone_lengths=result.bone_lengths,
        outliers=result.outliers,
        filled=result.filled,
    )
    summary = summarize(joints["points"], joints["reprojection_error"], joints["inliers"], result)
    summary["executor"], summary["executor_reason"] = executor, reason
    return {"joints_3d": "joints_3d.npz"}, summary


STAGE = StageSpec(
    name="refine",
    inputs=("detect", "triangulate"),
    optional_inputs=("calibrate_check",),
    config_sections=("refine", "batch"),  # batch: the cluster its windows may run on
    reads_take_files=False,
    writes=("joints_3d",),
    run=run_stage,
    # How it runs, never what it writes: the executor, and every batch key.
    execution_keys=("refine.executor", "refine.ray_min_frames") + tuple(f"batch.{key.name}" for key in dataclasses.fields(BatchConfig)),
)
