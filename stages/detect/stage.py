"""Stage ``detect``: every exo view and frame of a take -> the wearer's 2D keypoints.

Reads the take's exo videos (model backends ``mediapipe`` / ``mmpose``, in tasks:
:mod:`stages.detect.tasks`) or its precomputed 2D files (``precomputed``:
:mod:`stages.detect.precomputed`); config section ``detect``; writes
``keypoints_2d.npz`` (:func:`pipeline.formats.arrays.save_keypoints_2d`: float32
``(views, frames, 59, 3)`` x, y, confidence, NaN = missing) and a summary with
detection rates per view and part, ROI sources and decode errors.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detection.hand_quality import check_hands
from fitting.skeleton import BODY, LEFT_HAND, RIGHT_HAND
from pipeline.formats.arrays import save_keypoints_2d
from pipeline.formats.video import video_info
from stages.base import StageContext, StageSpec
from stages.detect.backend import BACKENDS, backend_entry
from stages.detect.tasks import plan_tasks, run_tasks

if TYPE_CHECKING:
    from pipeline.config import DetectConfig

logger = logging.getLogger(__name__)


def summarize(keypoints: np.ndarray, camera_names: list[str], task_summaries: list[dict], settings: DetectConfig) -> dict:
    """Counts a person can check: detection rates per view and part, ROI sources, decode errors."""
    found = {
        part: np.isfinite(keypoints[:, :, joints, 0]).any(axis=2) for part, joints in (("body", BODY), ("left_hand", LEFT_HAND), ("right_hand", RIGHT_HAND))
    }
    per_view = {}
    for v, name in enumerate(camera_names):
        sources: dict[str, int] = {}
        hand_search: dict[str, int] = {}
        redetected = mirrored = 0
        for summary in task_summaries:
            view = summary.get("views", {}).get(name, {})
            for source, count in view.get("roi_sources", {}).items():
                sources[source] = sources.get(source, 0) + count
            for key, count in view.get("hand_search", {}).items():
                hand_search[key] = hand_search.get(key, 0) + count
            redetected += view.get("redetected", 0)
            mirrored += view.get("mirrored", 0)
        per_view[name] = {
            "body_found": float(found["body"][v].mean()),
            "left_hand_found": float(found["left_hand"][v].mean()),
            "right_hand_found": float(found["right_hand"][v].mean()),
            "roi_sources": sources,
            "hand_search": dict(sorted(hand_search.items())),
            "redetected": redetected,
            "mirrored": mirrored,
        }
    return {
        "backend": settings.backend,
        "frames": int(keypoints.shape[1]),
        "views": len(camera_names),
        "body_detected": float(np.isfinite(keypoints[:, :, BODY, 0]).mean()),
        "hands_detected": float(np.isfinite(keypoints[:, :, 17:, 0]).mean()),
        "per_view": per_view,
        "decode_errors": [error for summary in task_summaries for error in summary.get("decode_errors", [])],
    }


def detect_take(take, settings: DetectConfig, frame_range: tuple[int, int] | None = None, chunks: Path | None = None, report=None) -> tuple[np.ndarray, dict]:
    """2D keypoints ``(views, frames, 59, 3)`` float32 of every exo view, and a summary.

    ``frame_range`` (start, stop): only those frames (the array still covers them only).
    ``chunks``: a folder where finished tasks are kept across killed runs (resume);
    ``report(frames)``: progress of the model backends.
    With ``hand_quality``, hands that the other views or the take's bone lengths
    contradict are dropped per view (:mod:`detection.hand_quality`).
    """
    keypoints, summary = _detect(take, settings, frame_range, chunks, report)
    if settings.hand_quality and len(take.exo_cameras) >= 2:
        keypoints, summary["hand_quality"] = check_hands(list(take.exo_cameras), keypoints, settings)
        keypoints = keypoints.astype(np.float32)
        summary["hands_detected"] = float(np.isfinite(keypoints[:, :, 17:, 0]).mean())
    return keypoints, summary


def _detect(take, settings: DetectConfig, frame_range, chunks, report) -> tuple[np.ndarray, dict]:
    entry = backend_entry(settings)
    if entry.kind == "files":
        return entry.load()(take, settings)
    if not take.num_frames:
        raise ValueError(f"take '{take.name}' ({take.root}): its number of frames is unknown")
    tasks = plan_tasks(take, settings, take.num_frames, frame_range)
    total = sum(task.stop - task.start for task in tasks)
    logger.info("detect: backend %s, %d camera(s), %d frames in %d task(s)", settings.backend, len(take.exo_names), total, len(tasks))
    results, how = run_tasks(tasks, settings, len(take.exo_names), chunks, report)
    keypoints = np.concatenate([keypoints for keypoints, _ in results], axis=1).astype(np.float32)
    summary = summarize(keypoints, list(take.exo_names), [s for _, s in results], settings)
    summary.update(how)
    summary["frame_counts"] = {name: video_info(take.videos[name]).num_frames for name in take.exo_names}
    logger.info(
        "detect: body found in %.1f %% of frames x views, hand joints %.1f %%; %d decode error(s)",
        100 * np.isfinite(keypoints[:, :, BODY, 0]).any(axis=2).mean(),
        100 * summary["hands_detected"],
        len(summary["decode_errors"]),
    )
    return keypoints, summary


def missing_inputs(take, settings: DetectConfig) -> dict[str, str]:
    """Exo cameras without the input the backend reads, with the reason (camera -> reason)."""
    if backend_entry(settings).kind == "model":
        return {name: "no video" for name in take.exo_names if name not in take.videos}
    if settings.precomputed_format == "openpose":
        return {name: "no 2D keypoint folder" for name in take.exo_names if name not in take.keypoints_2d}
    return {}


def detect_available(take, settings: DetectConfig, chunks: Path | None = None, report=None) -> tuple[np.ndarray, dict]:
    """:func:`detect_take` on the cameras that have their input; the others (``missing_camera:
    exclude``, while two cameras remain) stay in the array as missing views, listed in the
    summary's ``excluded_cameras``; ``fail`` (or fewer than two left) raises naming them."""
    missing = missing_inputs(take, settings)
    if missing and (settings.missing_camera == "fail" or len(take.exo_names) - len(missing) < 2):
        details = ", ".join(f"{name} ({reason})" for name, reason in missing.items())
        raise FileNotFoundError(f"take '{take.name}' ({take.root}): camera(s) without input: {details}")
    if not missing:
        keypoints, summary = detect_take(take, settings, chunks=chunks, report=report)
    else:
        logger.warning("take '%s': camera(s) excluded from detection: %s", take.name, missing)
        kept = tuple(camera for camera in take.exo_cameras if camera.name not in missing)
        partial_keypoints, summary = detect_take(dataclasses.replace(take, exo_cameras=kept), settings, chunks=chunks, report=report)
        keypoints = np.full((len(take.exo_names),) + partial_keypoints.shape[1:], np.nan, dtype=np.float32)
        keypoints[[take.exo_names.index(camera.name) for camera in kept]] = partial_keypoints
    summary["excluded_cameras"] = missing
    # What the take reader assumed where a video's size is not its calibration's.
    summary["video_frames"] = {name: match.as_dict() for name, match in take.video_frames.items()}
    unseen = [name for v, name in enumerate(take.exo_names) if name not in missing and not np.isfinite(keypoints[v, :, BODY, 0]).any()]
    if unseen:
        logger.warning("take '%s': camera(s) %s never see the person", take.name, ", ".join(unseen))
    summary["views_without_person"] = unseen
    return keypoints, summary


def run_stage(context: StageContext) -> tuple[dict[str, str], dict]:
    take = context.take
    keypoints, summary = detect_available(take, context.settings("detect"), context.cache, context.progress)
    save_keypoints_2d(context.work / "keypoints_2d.npz", keypoints, take.exo_names)
    return {"keypoints_2d": "keypoints_2d.npz"}, summary


STAGE = StageSpec(
    name="detect",
    inputs=(),
    config_sections=("detect",),
    reads_take_files=True,
    writes=("keypoints_2d",),
    run=run_stage,
    execution_keys=tuple(f"detect.{key}" for key in ("executor", "num_workers", "cpus_per_model", "ray_retries", "ray_address", "read_workers")),
    # The backends are imported by name when used: their modules are the stage's code too.
    runtime_modules=tuple(sorted({path.split(":")[0] for entry in BACKENDS.values() for path in (entry.code, entry.resources)})),
)
