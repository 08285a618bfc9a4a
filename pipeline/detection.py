"""The ``detect`` stage's file side: videos in, 2D keypoints out, work split into tasks.

- :func:`detect_take`: every exo view and frame of a take -> float32 ``(views, frames,
  59, 3)`` and a summary. Backend ``precomputed`` reads files
  (:mod:`pipeline.precomputed`); the model backends (``mediapipe``, ``mmpose``) stream
  the exo videos with PyAV and run :func:`stages.detect.track.detect_frames`.
- Work is split into :class:`DetectTask` s of ``frames_per_task`` frames over all exo
  cameras (the cameras of a task are processed in lockstep so that each frame's 3D
  body guides the next frame's crops in every view). Tasks run in this process
  (``executor: inprocess``) or on Ray actors that each load the model once
  (``executor: ray``; ``ray_address`` joins an existing cluster).
- A missing video raises :class:`FileNotFoundError` naming the camera and the path. A
  video that cannot be decoded raises :class:`DetectVideoError` naming the file, the
  camera and the first frame not decoded; with ``on_decode_error: mark_missing`` that
  view's remaining frames of the task are left missing instead and listed in the
  summary's ``decode_errors`` (nothing is dropped silently).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitting.skeleton import BODY, LEFT_HAND, RIGHT_HAND
from pipeline.video import VideoDecodeError, iter_frames, video_info
from triangulation.cameras import Camera

logger = logging.getLogger(__name__)


class DetectVideoError(RuntimeError):
    """A video of the take could not be decoded; the message names the file, camera and frame."""


@dataclass(frozen=True)
class DetectTask:
    """Frames ``start <= f < stop`` of the given exo cameras (lockstep)."""

    cameras: tuple[Camera, ...]
    videos: tuple[Path, ...]
    start: int
    stop: int
    ego_centres: np.ndarray | None  # (stop - start, 3) world, NaN where unknown


def lockstep_frames(
    task: DetectTask, on_decode_error: str, errors: list[dict]
) -> Iterator[tuple[int, list[np.ndarray | None]]]:
    """Yield ``(frame, images)`` for every frame of the task, one decoded image per camera.

    A view whose video fails from frame ``k`` on yields None for frames ``>= k`` (and
    ``errors`` gets ``{camera, file, first_frame, frames_missing, reason}``) when
    ``on_decode_error`` is ``mark_missing``; otherwise :class:`DetectVideoError` is raised.
    """
    streams = [iter_frames(path, task.start, task.stop) for path in task.videos]
    alive = [True] * len(streams)

    def fail(v: int, frame: int, reason: str) -> None:
        camera, path = task.cameras[v].name, task.videos[v]
        message = f"{path}: camera '{camera}': cannot decode frame {frame}: {reason}"
        if on_decode_error != "mark_missing":
            raise DetectVideoError(message)
        logger.warning("%s; frames %d-%d of this view are marked missing", message, frame, task.stop - 1)
        errors.append(
            {
                "camera": camera,
                "file": str(path),
                "first_frame": int(frame),
                "frames_missing": int(task.stop - frame),
                "reason": reason,
            }
        )
        alive[v] = False
        streams[v].close()

    try:
        for frame in range(task.start, task.stop):
            images: list[np.ndarray | None] = []
            for v, stream in enumerate(streams):
                image = None
                if alive[v]:
                    try:
                        index, image = next(stream)
                        if index != frame:
                            fail(v, frame, f"the decoder gave frame {index} where frame {frame} was expected")
                            image = None
                    except StopIteration:
                        fail(v, frame, "the video ends before this frame")
                    except VideoDecodeError as error:
                        fail(v, error.frame_index, error.reason)
                images.append(image)
            yield frame, images
    finally:
        for stream in streams:
            stream.close()


def run_task(detector, task: DetectTask, settings: dict, progress=None) -> tuple[np.ndarray, dict]:
    """Detect one task with a loaded detector: keypoints ``(views, stop - start, 59, 3)`` and a summary."""
    from stages.detect.track import detect_frames

    errors: list[dict] = []
    frames = lockstep_frames(task, settings["on_decode_error"], errors)
    keypoints, summary = detect_frames(
        detector, list(task.cameras), frames, task.start, task.stop, settings, task.ego_centres, progress
    )
    summary["decode_errors"] = errors
    return keypoints, summary


# --------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------


class _Progress:
    """Logs frames done over the whole take every ``interval`` seconds."""

    def __init__(self, total_frames: int, views: int, interval: float = 10.0) -> None:
        self.total, self.views, self.interval = total_frames, views, interval
        self.done_before = 0
        self.started = self.last = time.perf_counter()

    def task_progress(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            self.log(self.done_before + done)

    def task_finished(self, frames: int) -> None:
        self.done_before += frames

    def log(self, done: int) -> None:
        elapsed = time.perf_counter() - self.started
        logger.info(
            "detect: %d/%d frames x %d views (%.1f images/s)",
            done,
            self.total,
            self.views,
            done * self.views / max(elapsed, 1e-9),
        )


def _run_inprocess(tasks: list[DetectTask], settings: dict, progress: _Progress) -> list[tuple[np.ndarray, dict]]:
    from stages.detect.backend import make_detector

    detector = make_detector(settings)
    try:
        results = []
        for task in tasks:
            results.append(run_task(detector, task, settings, progress.task_progress))
            progress.task_finished(task.stop - task.start)
            progress.log(progress.done_before)
        return results
    finally:
        detector.close()


class _DetectWorker:
    """Ray actor body: loads the detector once, then runs tasks."""

    def __init__(self, settings: dict) -> None:
        from stages.detect.backend import make_detector

        self.settings = settings
        self.detector = make_detector(settings)

    def run_indexed(self, index: int, task: DetectTask) -> tuple[int, tuple[np.ndarray, dict]]:
        return index, run_task(self.detector, task, self.settings)


def _run_ray(tasks: list[DetectTask], settings: dict, progress: _Progress) -> list[tuple[np.ndarray, dict]]:
    from pipeline.ray_support import ensure_ray

    ray = ensure_ray(settings["ray_address"], settings["num_workers"], "detect.executor 'ray'")
    from ray.util import ActorPool

    workers = min(int(settings["num_workers"]), len(tasks))
    actor = ray.remote(num_cpus=1)(_DetectWorker)
    pool = ActorPool([actor.remote(settings) for _ in range(workers)])
    results: dict[int, tuple[np.ndarray, dict]] = {}
    for index, result in pool.map_unordered(lambda worker, item: worker.run_indexed.remote(*item), list(enumerate(tasks))):
        results[index] = result
        progress.task_finished(tasks[index].stop - tasks[index].start)
        progress.log(progress.done_before)
    return [results[index] for index in range(len(tasks))]


# --------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------


def exo_videos(take) -> list[Path]:
    """The exo cameras' video paths, in camera order; raises naming a camera without one."""
    missing = [name for name in take.exo_names if name not in take.videos]
    if missing:
        raise FileNotFoundError(
            f"take '{take.name}' ({take.root}): no video for camera(s) {', '.join(missing)} "
            f"(looked for <camera>.mp4/.avi/.mov/.mkv in the take's video folder)"
        )
    return [take.videos[name] for name in take.exo_names]


def ego_centres(take, settings: dict, num_frames: int) -> np.ndarray | None:
    """``(num_frames, 3)`` ego camera centres (metres, world; NaN where unknown), or None
    when the take has no ego camera or ``ego_prior`` is off."""
    if take.ego_camera is None or not settings["ego_prior"]:
        return None
    centres = take.ego_camera.centers
    ego = np.full((num_frames, 3), np.nan)
    ego[: min(num_frames, len(centres))] = centres[:num_frames]
    return ego


def plan_tasks(take, settings: dict, num_frames: int, frame_range: tuple[int, int] | None = None) -> list[DetectTask]:
    """Tasks of ``frames_per_task`` frames over all exo cameras for frames ``frame_range`` (default: all)."""
    videos = exo_videos(take)
    for name, path in zip(take.exo_names, videos):
        try:
            info = video_info(path)
        except VideoDecodeError as error:
            raise DetectVideoError(f"{path}: camera '{name}': cannot read the video: {error.reason}") from error
        if info.num_frames < num_frames:
            logger.warning(
                "%s: camera '%s' has %d frames, the take %d: the missing frames will be reported",
                path,
                name,
                info.num_frames,
                num_frames,
            )
    first, last = frame_range if frame_range is not None else (0, num_frames)
    ego = ego_centres(take, settings, num_frames)
    step = int(settings["frames_per_task"])
    return [
        DetectTask(
            cameras=tuple(take.exo_cameras),
            videos=tuple(videos),
            start=start,
            stop=min(start + step, last),
            ego_centres=None if ego is None else ego[start : min(start + step, last)],
        )
        for start in range(first, last, step)
    ]


def summarize(keypoints: np.ndarray, camera_names: list[str], task_summaries: list[dict], settings: dict) -> dict:
    """Counts a person can check: detection rates per view and part, ROI sources, decode errors."""
    found = {
        part: np.isfinite(keypoints[:, :, joints, 0]).any(axis=2)
        for part, joints in (("body", BODY), ("left_hand", LEFT_HAND), ("right_hand", RIGHT_HAND))
    }
    per_view = {}
    for v, name in enumerate(camera_names):
        sources: dict[str, int] = {}
        redetected = mirrored = 0
        for summary in task_summaries:
            view = summary.get("views", {}).get(name, {})
            for source, count in view.get("roi_sources", {}).items():
                sources[source] = sources.get(source, 0) + count
            redetected += view.get("redetected", 0)
            mirrored += view.get("mirrored", 0)
        per_view[name] = {
            "body_found": float(found["body"][v].mean()),
            "left_hand_found": float(found["left_hand"][v].mean()),
            "right_hand_found": float(found["right_hand"][v].mean()),
            "roi_sources": sources,
            "redetected": redetected,
            "mirrored": mirrored,
        }
    return {
        "backend": settings["backend"],
        "executor": settings["executor"],
        "frames": int(keypoints.shape[1]),
        "views": len(camera_names),
        "body_detected": float(np.isfinite(keypoints[:, :, BODY, 0]).mean()),
        "hands_detected": float(np.isfinite(keypoints[:, :, 17:, 0]).mean()),
        "per_view": per_view,
        "decode_errors": [error for summary in task_summaries for error in summary.get("decode_errors", [])],
        "seconds": round(sum(summary.get("seconds", 0.0) for summary in task_summaries), 3),
    }


def detect_take(take, settings: dict, frame_range: tuple[int, int] | None = None) -> tuple[np.ndarray, dict]:
    """2D keypoints ``(views, frames, 59, 3)`` float32 of every exo view, and a summary.

    ``frame_range`` (start, stop): only those frames (the array still covers them only).
    """
    if settings["backend"] == "precomputed":
        from pipeline.precomputed import read_precomputed

        return read_precomputed(take, settings)
    if not take.num_frames:
        raise ValueError(f"take '{take.name}' ({take.root}): its number of frames is unknown")
    tasks = plan_tasks(take, settings, take.num_frames, frame_range)
    total = sum(task.stop - task.start for task in tasks)
    logger.info(
        "detect: backend %s, %d camera(s), %d frames in %d task(s), executor %s",
        settings["backend"],
        len(take.exo_names),
        total,
        len(tasks),
        settings["executor"],
    )
    progress = _Progress(total, len(take.exo_names))
    if settings["executor"] == "ray":
        results = _run_ray(tasks, settings, progress)
    else:
        results = _run_inprocess(tasks, settings, progress)
    keypoints = np.concatenate([keypoints for keypoints, _ in results], axis=1).astype(np.float32)
    summary = summarize(keypoints, list(take.exo_names), [s for _, s in results], settings)
    logger.info(
        "detect: body found in %.1f %% of frames x views, hand joints %.1f %%; %d decode error(s)",
        100 * np.isfinite(keypoints[:, :, BODY, 0]).any(axis=2).mean(),
        100 * summary["hands_detected"],
        len(summary["decode_errors"]),
    )
    return keypoints, summary
