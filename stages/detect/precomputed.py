"""The ``precomputed`` detect backend: 2D keypoints read from files instead of a model.

- ``precomputed_format: openpose``: one OpenPose JSON folder per exo camera (see
  :mod:`pipeline.formats.openpose`: BODY_25, BODY_25B, COCO-17/18, COCO-WholeBody-133 bodies,
  ``hand_left/right_keypoints_2d``). Values are taken as written; a keypoint with
  confidence 0, an empty ``people`` list and a frame without a file are NaN. Of a
  file's people, ``precomputed_person: select`` takes the camera wearer
  (:mod:`detection.people`: 3D prior, ego camera, 2D continuity, multi-view check),
  ``first`` takes ``people[0]``.
- ``precomputed_format: egoexo4d``: Ego-Exo4D annotation JSON files (the body and/or
  hand file, ``egoexo4d_body_annotation`` / ``egoexo4d_hand_annotation``, paths relative
  to the take folder or absolute): ``{"<frame>": [{"annotation2D": {"<camera>":
  {"<joint>": {"x", "y", ...}}}}]}``. Joint names are the released ones (``nose``,
  ``left_wrist``, ``left_thumb_1`` ... ``right_pinky_4``; ``-`` and spaces read as
  ``_``, case ignored). Annotations carry no score: a joint present gets confidence 1;
  an absent joint, camera or frame is NaN. In the hand file ``left_wrist`` is the hand's
  wrist. Camera names match by letters and digits (``cam_01`` = ``cam01``). The exo 2D
  of the release (and of our export) are in the undistorted GoPro frame
  (``egoexo4d_exo_2d_frame: undistorted``): they are mapped back to the raw video's
  pixels through each camera's own model
  (:func:`triangulation.visibility.rectified_to_raw`); ``raw`` takes them as written.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detection.prior import ego_centres
from fitting.skeleton import BODY, NUM_JOINTS
from pipeline.formats.egoexo4d import read_egoexo4d_annotation, release_exo_undistorted_camera
from pipeline.formats.openpose import openpose_files, read_openpose_folder, read_openpose_people_folder
from stages.detect.backend import ModelResources
from triangulation.visibility import rectified_to_raw

if TYPE_CHECKING:
    from pipeline.config import DetectConfig

logger = logging.getLogger(__name__)


def resources(settings: DetectConfig) -> ModelResources:
    """Reading files: one CPU (what a batch's take task asks of Ray)."""
    return ModelResources(1)


def read_precomputed(take, settings: DetectConfig) -> tuple[np.ndarray, dict]:
    """Keypoints ``(views, frames, 59, 3)`` float32 of the take's exo cameras from files, and a summary."""
    names = list(take.exo_names)
    selection = None
    if settings.precomputed_format == "egoexo4d":
        files = {part: getattr(settings, f"egoexo4d_{part}_annotation") for part in ("body", "hand") if getattr(settings, f"egoexo4d_{part}_annotation")}
        if not files:
            raise ValueError("detect.precomputed_format 'egoexo4d' needs detect.egoexo4d_body_annotation and/or detect.egoexo4d_hand_annotation")
        if not take.num_frames:
            raise ValueError(f"take '{take.name}' ({take.root}): its number of frames is unknown")
        keypoints = np.full((len(names), take.num_frames, NUM_JOINTS, 3), np.nan, dtype=np.float32)
        for part, relative in files.items():
            read_egoexo4d_annotation(take.root / relative, names, take.num_frames, part, keypoints)
        if settings.egoexo4d_exo_2d_frame == "undistorted":
            for v, camera in enumerate(take.exo_cameras):
                target, _, _ = release_exo_undistorted_camera(camera, settings.egoexo4d_undistorted_balance)
                keypoints[v, ..., :2] = rectified_to_raw(camera, target, keypoints[v, ..., :2])
    else:
        keypoints, selection, files = read_openpose_take(take, settings)
    frames = min(keypoints.shape[1], take.num_frames or keypoints.shape[1])
    keypoints = keypoints[:, :frames]
    detected = np.isfinite(keypoints[..., 0])
    summary = {
        "backend": "precomputed",
        "format": settings.precomputed_format,
        "frames": int(frames),
        "views": len(names),
        "body_detected": float(detected[:, :, BODY].mean()),
        "hands_detected": float(detected[:, :, 17:].mean()),
    }
    if selection is not None:
        summary["person_selection"] = selection
    if settings.precomputed_format == "openpose":
        summary.update(files)
    else:
        summary["exo_2d_frame"] = settings.egoexo4d_exo_2d_frame
    return keypoints, summary


def read_workers(setting: int, folders: int) -> int:
    """Processes reading 2D files: the setting, or (0) the CPUs this process may use (1 inside
    a batch's Ray task: the takes are the parallelism); at most one per folder."""
    from pipeline.ray_support import in_ray_task, local_cpus

    available = 1 if in_ray_task() else local_cpus()
    return max(1, min(folders, setting or available))


def _read_folder(path: Path, num_frames: int | None, layout: str | None, people: bool, tolerant: bool) -> tuple[np.ndarray, list[dict], int]:
    """One camera's folder: keypoints (``people``: every person, else ``people[0]``), the
    unreadable files (``tolerant``: recorded and left missing, else raised) and its frame count."""
    errors: list[dict] | None = [] if tolerant else None
    reader = read_openpose_people_folder if people else read_openpose_folder
    keypoints = reader(path, num_frames, layout=layout, errors=errors)
    return keypoints, errors or [], max(openpose_files(path), default=-1) + 1


def _read_folders(paths: list, num_frames: int | None, layout: str | None, people: bool, settings: DetectConfig) -> list[tuple]:
    """:func:`_read_folder` of every camera, in parallel processes (one folder per task:
    parsing JSON is CPU work that threads would serialise)."""
    workers = read_workers(settings.read_workers, len(paths))
    read = partial(_read_folder, num_frames=num_frames, layout=layout, people=people, tolerant=settings.on_bad_file == "mark_missing")
    if workers == 1:
        return [read(path) for path in paths]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(read, paths))


def read_openpose_take(take, settings: DetectConfig) -> tuple[np.ndarray, dict | None, dict]:
    """Keypoints ``(views, frames, 59, 3)`` float32 of the take's exo OpenPose folders, the
    selection summary and what the files told (unreadable files, frames per camera).

    ``precomputed_person: first``: ``people[0]`` of every file (selection summary None);
    ``select``: the camera wearer chosen among every file's people
    (:func:`detection.people.select_wearer`, with the take's cameras and ego camera).
    """
    names, layout = list(take.exo_names), settings.openpose_layout
    first = settings.precomputed_person == "first"
    read = _read_folders([take.keypoints_2d[name] for name in names], take.num_frames, layout, not first, settings)
    unreadable = [{"camera": name, **error} for name, (_, errors, _) in zip(names, read) for error in errors]
    for error in unreadable:
        logger.warning("%s: camera '%s', frame %d: %s; the frame is marked missing", error["file"], error["camera"], error["frame"], error["reason"])
    files = {"unreadable_files": unreadable, "frame_counts": {name: count for name, (_, _, count) in zip(names, read)}}
    folders = [keypoints for keypoints, _, _ in read]
    if first:
        return np.stack(folders).astype(np.float32), None, files
    from detection.people import select_wearer

    frames, width = max(len(people) for people in folders), max(people.shape[1] for people in folders)
    people = np.full((len(names), frames, width) + folders[0].shape[2:], np.nan, dtype=np.float32)
    for v, folder in enumerate(folders):
        people[v, : folder.shape[0], : folder.shape[1]] = folder
    keypoints, selection = select_wearer(list(take.exo_cameras), people, settings, ego_centres(take.ego_camera, frames) if settings.ego_prior else None)
    return keypoints, selection, files
