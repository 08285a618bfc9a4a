"""The detect stage's loop: follow the camera wearer through a range of frames in every view.

Frames of all views come in lockstep, one frame index at a time. For each view the
region of interest (ROI) given to the detector comes from the best prior available:

1. ``pose``: the previous frame's 3D body (triangulated from this loop's own
   detections in all views), projected into the view and padded; with an ego camera
   it is used only while its head is within ``ego_head_radius_m`` of the ego camera;
2. ``ego``: the ego (head-worn) camera's centre at this frame: a vertical cylinder
   below it (``ego_box_*``), projected;
3. ``track``: the view's own previous 2D body box, padded (for at most
   ``prior_max_age`` frames);
4. ``seed``: the largest, most central person box the detector finds in the image
   (whole image when it finds none).

After each frame the body joints of all views are triangulated (RANSAC over views,
``prior_threshold_px``). A view whose body disagrees with that 3D body (fewer than half
of its confident joints are inliers) is first tried mirrored (left <-> right: BlazePose
often mirrors a body seen from behind), then detected again with the ROI of the new 3D
body (a bystander picked by a seed); the version that agrees best is kept. Then, with
a detector that has a separate hand model, both hands are searched in every view
(:mod:`detection.hand_search`) with this frame's 3D body.

Inputs are in memory (frames, cameras, ego centres, settings); nothing here reads
files.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

from detection import prior
from detection.hand_search import HandTracker
from detection.interface import Detector, detect_views, hand_model
from detection.keypoint_maps import empty_keypoints
from detection.settings import DetectionSettings
from fitting.skeleton import BODY, LEFT_HAND, NUM_BODY_JOINTS, RIGHT_HAND, left_right_swap_index
from triangulation.cameras import Camera
from triangulation.triangulate import triangulate

logger = logging.getLogger(__name__)

HEAD = slice(0, 5)  # nose, eyes, ears
SOURCES = ("pose", "ego", "track", "seed")
_SWAP = left_right_swap_index()


def _image_size(camera: Camera, image: np.ndarray) -> tuple[int, int]:
    return int(image.shape[1]), int(image.shape[0])


class _ViewState:
    def __init__(self) -> None:
        self.box: np.ndarray | None = None  # last 2D body box
        self.age = 0  # frames since the box was seen


def _confident(body: np.ndarray, min_confidence: float) -> np.ndarray:
    return np.isfinite(body[:, 2]) & (body[:, 2] >= min_confidence)


def _agreement(camera: Camera, body: np.ndarray, joints_3d: np.ndarray, min_confidence: float, threshold: float):
    """(inlier joints, confident joints) of a 2D body against 3D joints (both COCO-17)."""
    confident = _confident(body, min_confidence) & np.all(np.isfinite(joints_3d), axis=1)
    if not confident.any():
        return 0, 0
    error = np.linalg.norm(camera.project(joints_3d[confident]) - body[confident, :2], axis=1)
    return int((error <= threshold).sum()), int(confident.sum())


def ego_head(ego_centres: np.ndarray | None, row: int, settings: DetectionSettings) -> np.ndarray | None:
    """The ego camera centre ``(3,)`` (m, world) of row ``row`` of ``ego_centres (frames, 3)``, or None.

    None without ego centres, with ``ego_prior`` off or where the centre is unknown (NaN).
    """
    if ego_centres is None or not settings.ego_prior or not np.all(np.isfinite(ego_centres[row])):
        return None
    return ego_centres[row]


def head_near_ego(joints_3d: np.ndarray, head: np.ndarray, settings: DetectionSettings) -> bool | None:
    """Whether the 3D body's head ``(17, 3)`` (mean of its known head joints) is within
    ``ego_head_radius_m`` of the ego camera centre ``head (3,)``; None when no head joint is known."""
    head_joints = joints_3d[HEAD][np.all(np.isfinite(joints_3d[HEAD]), axis=1)]
    if len(head_joints) == 0:
        return None
    return bool(np.linalg.norm(head_joints.mean(axis=0) - head) <= settings.ego_head_radius_m)


def pose_prior_usable(pose_3d: np.ndarray | None, pose_age: int, head: np.ndarray | None, settings: DetectionSettings) -> bool:
    """The previous 3D body ``(17, 3)`` is a usable prior: recent enough (``prior_max_age``)
    and, with an ego camera centre ``head``, its head is near it (``ego_head_radius_m``)."""
    if pose_3d is None or pose_age > settings.prior_max_age:
        return False
    return head is None or bool(head_near_ego(pose_3d, head, settings))


def detect_frames(
    detector: Detector,
    cameras: list[Camera],
    frames: Iterable[tuple[int, list[np.ndarray | None]]],
    start: int,
    stop: int,
    settings: DetectionSettings,
    ego_centres: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, dict]:
    """Detect the camera wearer in frames ``start <= f < stop`` of every view.

    ``frames`` yields ``(frame_index, images)``, one uint8 RGB image per camera (None
    where that view's frame is unavailable), in increasing frame order.
    ``ego_centres``: ``(stop - start, 3)`` ego camera centres in the world frame (NaN
    where unknown), or None. ``settings``: the ``detect`` config section.

    Returns float32 ``(views, stop - start, 59, 3)`` keypoints (NaN = missing) and a
    summary with counts: frames seen, bodies and hands found, ROI sources, re-detections.
    """
    views, count = len(cameras), stop - start
    keypoints = empty_keypoints(views, count)
    up = np.asarray(prior.UP_AXES[settings.world_up], dtype=np.float64)
    min_confidence = settings.min_keypoint_confidence
    states = [_ViewState() for _ in cameras]
    sources: list[Counter] = [Counter() for _ in cameras]
    frames_seen = np.zeros(views, dtype=np.int64)
    redetected = np.zeros(views, dtype=np.int64)
    swapped = np.zeros(views, dtype=np.int64)
    pose_3d: np.ndarray | None = None  # previous frame's 3D body (17, 3)
    pose_age = 0
    model = hand_model(detector)
    hand_tracker = HandTracker(model, cameras, settings) if model is not None else None
    done = 0
    started = time.perf_counter()
    for frame, images in frames:
        if not start <= frame < stop:
            raise ValueError(f"frame {frame} outside the requested range [{start}, {stop})")
        row = frame - start
        head = ego_head(ego_centres, row, settings)
        use_pose = pose_prior_usable(pose_3d, pose_age, head, settings)
        boxes: list[np.ndarray | None] = [None] * views
        for v, (camera, image) in enumerate(zip(cameras, images)):
            if image is None:
                continue
            frames_seen[v] += 1
            size = _image_size(camera, image)
            box, source = None, None
            if use_pose:
                box, source = prior.box_from_pose(camera, pose_3d, size, settings.pose_box_margin), "pose"
            if box is None and head is not None:
                box, source = prior.ego_box(camera, head, size, up, settings), "ego"
                if box is None:  # the wearer is not in this view
                    sources[v]["out_of_view"] += 1
                    continue
            state = states[v]
            if box is None and state.box is not None and state.age <= settings.prior_max_age:
                box, source = prior.grow(state.box, settings.pose_box_margin, size), "track"
            if box is None:
                box = prior.seed_box(detector.person_boxes(image), size)
                box, source = (box if box is not None else np.array([0.0, 0.0, size[0] - 1.0, size[1] - 1.0])), "seed"
            sources[v][source] += 1
            boxes[v] = box
        # Every view's body in one call: a batching backend (mmpose) runs them as one batch.
        chosen = [v for v in range(views) if boxes[v] is not None]
        for v, found in zip(chosen, detect_views(detector, [images[v] for v in chosen], [boxes[v] for v in chosen])):
            keypoints[v, row] = found
        pose_3d, pose_age = _update_prior(detector, cameras, images, keypoints[:, row], settings, pose_3d, pose_age, redetected, swapped)
        if hand_tracker is not None:
            hand_tracker.find(images, keypoints[:, row], pose_3d if pose_age == 0 else None)
        for v, state in enumerate(states):
            body_box = (
                prior.box_from_keypoints(keypoints[v, row, BODY], _image_size(cameras[v], images[v]), 0.0, min_confidence) if images[v] is not None else None
            )
            if body_box is not None:
                state.box, state.age = body_box, 0
            else:
                state.age += 1
        done += 1
        if progress is not None:
            progress(done)
    found_body = np.isfinite(keypoints[:, :, BODY, 0]).any(axis=2)
    found_left = np.isfinite(keypoints[:, :, LEFT_HAND, 0]).any(axis=2)
    found_right = np.isfinite(keypoints[:, :, RIGHT_HAND, 0]).any(axis=2)
    summary = {
        "frames": int(count),
        "frames_done": int(done),
        "seconds": round(time.perf_counter() - started, 3),
        "views": {
            camera.name: {
                "frames_seen": int(frames_seen[v]),
                "body_found": int(found_body[v].sum()),
                "left_hand_found": int(found_left[v].sum()),
                "right_hand_found": int(found_right[v].sum()),
                "roi_sources": dict(sorted(sources[v].items())),
                "redetected": int(redetected[v]),
                "mirrored": int(swapped[v]),
                "hand_search": dict(sorted(hand_tracker.counts[v].items())) if hand_tracker is not None else {},
            }
            for v, camera in enumerate(cameras)
        },
    }
    return keypoints, summary


def triangulate_body(cameras: list[Camera], bodies: np.ndarray, settings: DetectionSettings):
    """(3D body (17, 3) m, inlier mask (views, 17)) from the 2D bodies ``(views, 17, 3)`` px of one frame
    (RANSAC over views with ``prior_threshold_px``; NaN rows: joints seen in fewer than two views).

    Bodies ``(views, N, 17, 3)`` (N hypotheses) give ``(N, 17, 3)`` and ``(views, N, 17)``.
    """
    single = bodies.ndim == 3
    result = triangulate(
        cameras,
        (bodies[:, None] if single else bodies).astype(np.float64),
        min_confidence=settings.min_keypoint_confidence,
        min_views=2,
        ransac=True,
        threshold_px=settings.prior_threshold_px,
        refine_iterations=0,
        min_ray_angle_deg=0.0,
    )
    return (result.points[0], result.inliers[:, 0]) if single else (result.points, result.inliers)


def mirror(keypoints: np.ndarray) -> np.ndarray:
    """``(59, 3)`` keypoints with every left joint exchanged with its right twin (confidences kept)."""
    return keypoints[_SWAP].copy()


def _update_prior(detector, cameras, images, frame_keypoints, settings, pose_3d, pose_age, redetected, swapped):
    """Triangulate this frame's bodies (re-detecting views that disagree); returns the new prior and its age."""
    if len(cameras) < 2:
        return pose_3d, pose_age + 1
    min_confidence = settings.min_keypoint_confidence
    points, inliers = triangulate_body(cameras, frame_keypoints[:, BODY], settings)
    if np.isfinite(points[:, 0]).sum() < settings.prior_min_joints:
        return pose_3d, pose_age + 1
    changed = False
    for v, camera in enumerate(cameras):
        if images[v] is None:
            continue
        good, total = _agreement(camera, frame_keypoints[v, BODY], points, min_confidence, settings.prior_threshold_px)
        if total and good * 2 >= total:
            continue
        # A body seen from behind is often reported mirrored (left <-> right).
        mirrored = mirror(frame_keypoints[v])
        good_mirrored, _ = _agreement(camera, mirrored[BODY], points, min_confidence, settings.prior_threshold_px)
        if good_mirrored * 2 >= total and good_mirrored > good:
            frame_keypoints[v] = mirrored
            swapped[v] += 1
            changed = True
            continue
        if settings.redetect_inconsistent:
            size = _image_size(camera, images[v])
            box = prior.box_from_pose(camera, points, size, settings.pose_box_margin)
            if box is None:
                continue
            again = detector.detect(images[v], box)
            redetected[v] += 1
            good_again, _ = _agreement(camera, again[BODY], points, min_confidence, settings.prior_threshold_px)
            if good_again > good:
                frame_keypoints[v] = again
                changed = True
    if changed:
        points, _ = triangulate_body(cameras, frame_keypoints[:, BODY], settings)
        if np.isfinite(points[:, 0]).sum() < settings.prior_min_joints:
            return pose_3d, pose_age + 1
    assert points.shape == (NUM_BODY_JOINTS, 3)
    return points, 0
