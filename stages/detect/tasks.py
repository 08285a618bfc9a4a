"""The ``detect`` stage's work on videos: tasks of frames over all exo cameras, executors.

- :class:`DetectTask`: frames ``start <= f < stop`` of every exo camera, processed in
  lockstep so that each frame's 3D body guides the next frame's crops in every view.
  :func:`plan_tasks` cuts a take into tasks of ``frames_per_task`` frames.
- :func:`run_tasks`: the tasks in this process (``executor: inprocess``) or on Ray
  actors that each load the model once (``executor: ray``; ``ray_address`` joins an
  existing cluster), with progress logged over the whole take.
- A missing video raises :class:`FileNotFoundError` naming the camera and the path. A
  video that cannot be decoded raises :class:`DetectVideoError` naming the file, the
  camera and the first frame not decoded; with ``on_decode_error: mark_missing`` that
  view's remaining frames of the task are left missing instead and listed in the
  summary's ``decode_errors`` (nothing is dropped silently).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detection.prior import ego_centres
from pipeline.formats.arrays import load_detect_chunk, save_detect_chunk
from pipeline.formats.video import LockstepDecodeError, VideoDecodeError, iter_frames_lockstep, video_info
from triangulation.cameras import Camera

if TYPE_CHECKING:
    from pipeline.config import DetectConfig

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


def lockstep_frames(task: DetectTask, on_decode_error: str, errors: list[dict]) -> Iterator[tuple[int, list[np.ndarray | None]]]:
    """Yield ``(frame, images)`` for every frame of the task, one decoded image per camera.

    A view whose video fails from frame ``k`` on yields None for frames ``>= k`` (and
    ``errors`` gets ``{camera, file, first_frame, frames_missing, reason}``) when
    ``on_decode_error`` is ``mark_missing``; otherwise :class:`DetectVideoError` is raised.
    """
    try:
        yield from iter_frames_lockstep(
            list(task.videos), [camera.name for camera in task.cameras], task.start, task.stop, on_decode_error != "mark_missing", errors
        )
    except LockstepDecodeError as error:
        raise DetectVideoError(str(error)) from error


def run_task(detector, task: DetectTask, settings: DetectConfig, progress=None) -> tuple[np.ndarray, dict]:
    """Detect one task with a loaded detector: keypoints ``(views, stop - start, 59, 3)`` and a summary."""
    from detection.track import detect_frames

    errors: list[dict] = []
    frames = lockstep_frames(task, settings.on_decode_error, errors)
    keypoints, summary = detect_frames(detector, list(task.cameras), frames, task.start, task.stop, settings, task.ego_centres, progress)
    summary["decode_errors"] = errors
    return keypoints, summary


# --------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------


class _Progress:
    """Logs frames done over the whole take every ``interval`` seconds."""

    def __init__(self, total_frames: int, views: int, report=None, interval: float = 10.0) -> None:
        self.total, self.views, self.interval, self.report = total_frames, views, interval, report
        self.done_before = 0
        self.started = self.last = time.perf_counter()

    def task_progress(self, done: int) -> None:
        if self.report is not None:
            self.report(self.done_before + done)
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            self.log(self.done_before + done)

    def task_finished(self, frames: int) -> None:
        self.done_before += frames
        if self.report is not None:
            self.report(self.done_before)

    def log(self, done: int) -> None:
        elapsed = time.perf_counter() - self.started
        logger.info(
            "detect: %d/%d frames x %d views (%.1f images/s)",
            done,
            self.total,
            self.views,
            done * self.views / max(elapsed, 1e-9),
        )


def _run_inprocess(tasks: list[DetectTask], settings: DetectConfig, progress: _Progress, done) -> None:
    from stages.detect.backend import make_detector

    detector = make_detector(settings)
    try:
        for index, task in enumerate(tasks):
            done(index, run_task(detector, task, settings, progress.task_progress))
            progress.task_finished(task.stop - task.start)
            progress.log(progress.done_before)
    finally:
        detector.close()


class _DetectWorker:
    """Ray actor body: loads the detector once, then runs tasks."""

    def __init__(self, settings: DetectConfig) -> None:
        from stages.detect.backend import make_detector

        self.settings = settings
        self.detector = make_detector(settings)

    def run_indexed(self, index: int, task: DetectTask) -> tuple[int, tuple[np.ndarray, dict]]:
        return index, run_task(self.detector, task, self.settings)


def choose_executor(settings: DetectConfig, tasks: int, start_ray: bool = False):
    """Where ``tasks`` tasks run under ``detect.executor`` (:func:`pipeline.executor.choose`:
    one actor per model instance of the backend's resource needs: CPUs, or a GPU);
    ``start_ray``: with ``auto``, fall back to in-process when Ray does not start."""
    from pipeline.executor import choose
    from stages.detect.backend import backend_entry

    needs = backend_entry(settings).model_resources(settings)
    return choose(
        settings.executor, "detect.executor", pieces=tasks, cpus_per_worker=needs.cpus,
        address=settings.ray_address, worker="model instances", num_workers=int(settings.num_workers),
        gpu=needs.gpus > 0, start_ray=start_ray,
    )  # fmt: skip


def actors_that_fit(cpus: int, gpus: int, needs) -> tuple[int, int]:
    """(CPUs each actor asks for, actors the cluster holds at once) for model instances of
    ``needs`` (:class:`stages.detect.backend.ModelResources`) on ``cpus`` CPUs and ``gpus``
    GPUs. An actor asking for more CPUs than there are would never start; actors beyond
    the GPUs would wait forever for one (an actor pool hands them tasks all the same), so
    a GPU model gets one actor per GPU it needs, and none without a GPU: that is refused."""
    per_model = min(needs.cpus, cpus)
    fit = max(1, cpus // per_model)
    if needs.gpus:
        if gpus < needs.gpus:
            raise RuntimeError(f"detect: the model needs {needs.gpus} GPU(s) per instance (detect.mmpose.device), Ray's cluster has {gpus}")
        fit = min(fit, gpus // needs.gpus)
    return per_model, fit


def _run_ray(tasks: list[DetectTask], settings: DetectConfig, progress: _Progress, workers: int, done) -> int:
    """The tasks on ``workers`` Ray actors (each loads the model once); every finished task
    goes to ``done(index, result)`` as it arrives. A lost worker's task is retried and its
    actor restarted elsewhere (``ray_retries``). Returns the actors used (at most what
    the cluster's CPUs hold)."""
    from pipeline.ray_support import cluster_cpus, ensure_ray

    ray = ensure_ray(settings.ray_address, None, "detect.executor 'ray'")
    from ray.util import ActorPool

    from stages.detect.backend import backend_entry

    needs = backend_entry(settings).model_resources(settings)
    cpus = cluster_cpus(ray)
    per_model, fit = actors_that_fit(cpus, int(ray.cluster_resources().get("GPU", 0)), needs)
    if workers > fit:
        logger.warning("detect: %d actor(s) asked, Ray's cluster holds %d of %s each: using %d", workers, fit, needs, fit)
    retries = int(settings.ray_retries)
    actor = ray.remote(num_cpus=per_model, num_gpus=needs.gpus, max_restarts=retries, max_task_retries=retries)(_DetectWorker)
    actors = max(1, min(workers, fit, len(tasks)))
    pool = ActorPool([actor.remote(settings) for _ in range(actors)])
    indexed = list(enumerate(tasks))
    for index, result in pool.map_unordered(lambda worker, item: worker.run_indexed.remote(*item), indexed):
        done(index, result)
        progress.task_finished(tasks[index].stop - tasks[index].start)
        progress.log(progress.done_before)
    return actors


def exo_videos(take) -> list[Path]:
    """The exo cameras' video paths, in camera order; raises naming a camera without one."""
    missing = [name for name in take.exo_names if name not in take.videos]
    if missing:
        raise FileNotFoundError(
            f"take '{take.name}' ({take.root}): no video for camera(s) {', '.join(missing)} (looked for <camera>.mp4/.avi/.mov/.mkv in the take's video folder)"
        )
    return [take.videos[name] for name in take.exo_names]


def plan_tasks(take, settings: DetectConfig, num_frames: int, frame_range: tuple[int, int] | None = None) -> list[DetectTask]:
    """Tasks of ``frames_per_task`` frames over all exo cameras for frames ``frame_range`` (default: all)."""
    videos = exo_videos(take)
    for camera, path in zip(take.exo_cameras, videos):
        name = camera.name
        try:
            info = video_info(path)
        except VideoDecodeError as error:
            raise DetectVideoError(f"{path}: camera '{name}': cannot read the video: {error.reason}") from error
        if camera.image_size is not None and tuple(camera.image_size) != (info.width, info.height):
            # read_take puts every camera in its video's frame (or refuses the take): a
            # camera that is not is a Take built some other way.
            raise DetectVideoError(
                f"{path}: camera '{name}': the video is {info.width}x{info.height}, the camera "
                f"{camera.image_size[0]}x{camera.image_size[1]} (not put in its video's frame by read_take)"
            )
        if info.num_frames < num_frames:
            logger.warning(
                "%s: camera '%s' has %d frames, the take %d: the missing frames will be reported",
                path,
                name,
                info.num_frames,
                num_frames,
            )
    first, last = frame_range if frame_range is not None else (0, num_frames)
    ego = ego_centres(take.ego_camera, num_frames) if settings.ego_prior else None
    step = int(settings.frames_per_task)
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


def run_tasks(
    tasks: list[DetectTask], settings: DetectConfig, views: int, chunks: Path | None = None, report=None
) -> tuple[list[tuple[np.ndarray, dict]], dict]:
    """Run every task with the chosen executor; results in the order of ``tasks``, and how.

    ``chunks``: a folder kept across killed runs; every finished task is saved there
    atomically (``chunk_<start>_<stop>.npz``) and a task whose chunk is already there is
    not run again. ``report(frames)``: called with the frames done so far.
    """
    results: dict[int, tuple[np.ndarray, dict]] = {}
    if chunks is not None:
        for index, task in enumerate(tasks):
            stored = load_chunk(chunks, task)
            if stored is not None:
                results[index] = stored
    todo = [index for index in range(len(tasks)) if index not in results]
    choice = choose_executor(settings, len(todo), start_ray=True)
    executor, workers, reason = choice.kind, choice.workers, choice.reason
    resumed = len(tasks) - len(todo)
    logger.info(
        "detect: %d task(s) to run%s; executor %s%s (%s)",
        len(todo),
        f", {resumed} finished before (chunks kept from an interrupted run)" if resumed else "",
        executor,
        f" with {workers} actor(s)" if executor == "ray" else "",
        reason,
    )
    progress = _Progress(sum(tasks[i].stop - tasks[i].start for i in todo), views, report)

    def done(position: int, result: tuple[np.ndarray, dict]) -> None:
        index = todo[position]
        results[index] = result
        if chunks is not None:
            save_chunk(chunks, tasks[index], result)

    pending = [tasks[index] for index in todo]
    if pending and executor == "ray":
        workers = _run_ray(pending, settings, progress, workers, done)
    elif pending:
        _run_inprocess(pending, settings, progress, done)
    how = {"executor": executor, "workers": workers, "executor_reason": reason, "tasks": len(tasks), "tasks_resumed": resumed}
    return [results[index] for index in range(len(tasks))], how


def _chunk_path(chunks: Path, task: DetectTask) -> Path:
    return chunks / f"chunk_{task.start:08d}_{task.stop:08d}.npz"


def save_chunk(chunks: Path, task: DetectTask, result: tuple[np.ndarray, dict]) -> None:
    """One finished task, atomically: its keypoints and its summary (JSON text)."""
    keypoints, summary = result
    save_detect_chunk(_chunk_path(chunks, task), keypoints, summary)


def load_chunk(chunks: Path, task: DetectTask) -> tuple[np.ndarray, dict] | None:
    """A task finished by an earlier, interrupted run (None when there is none or it is unreadable)."""
    path = _chunk_path(chunks, task)
    if not path.is_file():
        return None
    try:
        return load_detect_chunk(path)
    except (ValueError, KeyError, json.JSONDecodeError):
        logger.warning("%s: unreadable chunk of an interrupted run; detecting its frames again", path)
        return None
