"""Choose the camera wearer among the people of precomputed 2D keypoint files.

A precomputed file (OpenPose JSON) may list several people (bystanders, or the same
people in another order from frame to frame). :func:`select_wearer` picks, per view
and frame, the row of ``people (views, frames, people, 59, 3)`` that is the camera
wearer, with the priors of the model backends' loop (:mod:`detection.track`), in
this order:

1. ``pose``: the previous frame's 3D body (triangulated from this selection's own
   choices), projected into the view; used while :func:`track.pose_prior_usable` (recent,
   and its head near the ego camera when there is one). The person chosen is the one
   whose confident body joints agree with it (at least half within
   ``prior_threshold_px``) with the lowest median pixel error; none agrees: no one.
2. ``ego``: the ego camera's centre: the box of a vertical cylinder below it
   (``ego_box_*``), projected (:func:`prior.box_from_head`); among the people with at
   least half of their confident body joints inside it, the one whose box overlaps it
   most (IoU). Cylinder out of the view: no one.
3. ``track``: the view's previous choice (2D continuity, at most ``prior_max_age``
   frames old), compared as in 1.
4. ``seed``: when no view has any of these priors, of the 3D bodies that pairs of
   views triangulate, the one seen in the most views, then nearest the point the
   cameras look at
   (:func:`seed_choices`); a view without a prior in a frame where others have one: its largest, most
   central person (:func:`prior.seed_index`).

Then the frame's multi-view check: the chosen bodies are triangulated
(:func:`track.triangulate_body`, RANSAC over views); in every view the chosen person
must agree with that 3D body, else the view's person that agrees best is chosen
instead, else no one (a bystander is rejected, the wearer is NaN there). With an ego
camera, a 3D body whose head is farther than ``ego_head_radius_m`` from it is a
bystander seen consistently in several views: the frame's choices are dropped. The
checked 3D body is the next frame's prior.

Frames where no view has more than one person (the usual case) skip the choosing: runs
of them get the multi-view check all at once (:func:`select_single_people`, source
``multi_view`` in the summary), the same check as above without the sequential loop.

Agreement ignores left/right: a person reported mirrored (seen from behind) is still
recognised, and kept as reported (triangulation and refine deal with swaps).

Pure: arrays, cameras and the ``detect`` settings in, arrays out; nothing reads files.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np

from detection import prior
from detection.settings import DetectionSettings
from detection.track import HEAD, ego_head, head_near_ego, pose_prior_usable, triangulate_body
from fitting.skeleton import BODY, NUM_BODY_JOINTS, NUM_JOINTS, left_right_swap_index
from triangulation.cameras import Camera

_BODY_SWAP = left_right_swap_index()[:NUM_BODY_JOINTS]


def person_boxes(bodies: np.ndarray, min_confidence: float) -> np.ndarray:
    """``(P, 4)`` boxes ``x0, y0, x1, y1`` (pixels) of the confident joints of ``bodies (P, J, 3)``.

    NaN rows for people with fewer than two confident joints.
    """
    confident = np.isfinite(bodies[..., 2]) & (bodies[..., 2] >= min_confidence)
    xy = np.where(confident[..., None], bodies[..., :2], np.nan)
    enough = confident.sum(axis=1) >= 2
    boxes = np.full((len(bodies), 4), np.nan)
    if np.any(enough):
        boxes[enough] = np.concatenate([np.nanmin(xy[enough], axis=1), np.nanmax(xy[enough], axis=1)], axis=1)
    return boxes


def agreement(reference: np.ndarray, bodies: np.ndarray, min_confidence: float, threshold_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How well each of ``bodies (P, 17, 3)`` matches ``reference (17, 2)`` pixels (NaN: unknown
    joint), or each body its own row of ``reference (P, 17, 2)``.

    Returns ``good (P,)`` (confident joints within ``threshold_px``), ``total (P,)``
    (confident joints with a known reference) and ``error (P,)`` (their median pixel
    distance, inf when ``total`` is 0), each for the better of the body as given and
    mirrored (left <-> right).
    """
    reference = np.asarray(reference, dtype=np.float64)
    bodies = np.asarray(bodies, dtype=np.float64)
    versions = np.stack([bodies, bodies[:, _BODY_SWAP]])  # (2, P, 17, 3)
    confident = np.isfinite(versions[..., 2]) & (versions[..., 2] >= min_confidence) & np.all(np.isfinite(reference), axis=-1)
    distance = np.where(confident, np.linalg.norm(versions[..., :2] - reference, axis=-1), np.nan)
    good = np.sum(confident & (distance <= threshold_px), axis=-1)
    total = confident.sum(axis=-1)
    error = np.where(total > 0, nanmedian_last(distance), np.inf)
    # The better version: more good joints, then the lower error.
    better = np.lexsort((error, -good), axis=0)[0]
    pick = np.arange(bodies.shape[0])
    return good[better, pick], total[better, pick], error[better, pick]


def nanmedian_last(values: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN (NaN where all are NaN); sorting puts NaN
    last, so the finite values' middle is read off directly (numpy's nanmedian goes
    through masked arrays for small axes, 50x slower here)."""
    ordered = np.sort(values, axis=-1)
    count = np.isfinite(ordered).sum(axis=-1)
    low = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    high = np.take_along_axis(ordered, np.maximum(count // 2, 0)[..., None], axis=-1)[..., 0]
    return np.where(count > 0, (low + high) / 2.0, np.nan)


def agrees(good: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``(P,)`` bool: at least two joints compared and at least half of them agree."""
    return (total >= 2) & (2 * good >= total)


def best_agreeing(good: np.ndarray, total: np.ndarray, error: np.ndarray) -> int | None:
    """Index of the agreeing person (:func:`agrees`) with the lowest median error, or None."""
    candidates = np.flatnonzero(agrees(good, total))
    return None if len(candidates) == 0 else int(candidates[np.argmin(error[candidates])])


def ego_choice(box: np.ndarray | None, bodies: np.ndarray, boxes: np.ndarray, min_confidence: float) -> int | None:
    """Person of ``bodies (P, 17, 3)`` / ``boxes (P, 4)`` in the ego cylinder's ``box (4,)``, or None.

    Candidates have at least half of their confident joints inside the box; the one
    whose box has the largest intersection over union with it is chosen.
    """
    if box is None:
        return None
    confident = np.isfinite(bodies[..., 2]) & (bodies[..., 2] >= min_confidence)
    x, y = bodies[..., 0], bodies[..., 1]
    inside = confident & (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
    candidates = (confident.sum(axis=1) >= 2) & (2 * inside.sum(axis=1) >= confident.sum(axis=1))
    if not np.any(candidates):
        return None
    low, high = np.maximum(boxes[:, :2], box[:2]), np.minimum(boxes[:, 2:], box[2:])
    overlap = np.prod(np.clip(high - low, 0.0, None), axis=1)
    union = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) + np.prod(box[2:] - box[:2]) - overlap
    iou = np.where(candidates, overlap / np.maximum(union, 1e-9), -np.inf)
    return int(np.argmax(iou))


def _projected(camera: Camera, joints_3d: np.ndarray) -> np.ndarray:
    """``(17, 2)`` pixels of ``joints_3d (17, 3)``, NaN for unknown joints and joints behind the camera."""
    pixels = camera.project(joints_3d)
    return np.where(camera.in_front(joints_3d)[:, None], pixels, np.nan)


def _image_sizes(cameras: list[Camera], people: np.ndarray) -> list[tuple[int, int]]:
    """Each camera's image size; without one, the extent of the view's keypoints."""
    sizes = []
    for v, camera in enumerate(cameras):
        if camera.image_size is not None:
            sizes.append(tuple(int(n) for n in camera.image_size))
            continue
        xy = people[v, ..., :2].reshape(-1, 2)
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        sizes.append((1, 1) if len(xy) == 0 else tuple(int(n) for n in np.ceil(np.maximum(xy.max(axis=0), 0.0)) + 1))
    return sizes


class _Frame:
    """One frame's people of every view and the choices made among them."""

    def __init__(self, people: np.ndarray, min_confidence: float) -> None:
        self.bodies = people[:, :, BODY]  # (views, P, 17, 3)
        self.boxes = np.stack([person_boxes(bodies, min_confidence) for bodies in self.bodies])  # (views, P, 4)
        self.present = np.all(np.isfinite(self.boxes), axis=-1)  # (views, P): someone to choose
        self.chosen = np.full(len(people), -1)

    def chosen_bodies(self) -> np.ndarray:
        """``(views, 17, 3)`` bodies of the chosen people, NaN where no one is chosen."""
        bodies = np.full((len(self.chosen), NUM_BODY_JOINTS, 3), np.nan)
        rows = np.flatnonzero(self.chosen >= 0)
        bodies[rows] = self.bodies[rows, self.chosen[rows]]
        return bodies


def _first_choice(v, frame, reference_3d, head, track, size, camera, settings, up) -> tuple[int | None, str]:
    """(person index or None, source) for view ``v`` from the first prior available."""
    min_confidence, threshold = settings.min_keypoint_confidence, settings.prior_threshold_px
    bodies = frame.bodies[v]
    if reference_3d is not None:
        reference = _projected(camera, reference_3d)
        if np.all(np.isfinite(reference), axis=1).sum() >= 2:
            return best_agreeing(*agreement(reference, bodies, min_confidence, threshold)), "pose"
    if head is not None:
        box = prior.ego_box(camera, head, size, up, settings)
        return ego_choice(box, bodies, frame.boxes[v], min_confidence), "ego" if box is not None else "out_of_view"
    if track is not None:
        return best_agreeing(*agreement(track[:, :2], bodies, min_confidence, threshold)), "track"
    return prior.seed_index(frame.boxes[v], size), "seed"


def _members(cameras, frame: _Frame, joints_3d: np.ndarray, settings: DetectionSettings) -> np.ndarray:
    """``(views,)`` the person of each view that agrees with ``joints_3d (17, 3)`` best, -1 for none."""
    members = np.full(len(cameras), -1)
    for v in np.flatnonzero(frame.present.any(axis=1)):  # a few views
        good, total, error = agreement(_projected(cameras[v], joints_3d), frame.bodies[v], settings.min_keypoint_confidence, settings.prior_threshold_px)
        best = best_agreeing(good, total, error)
        members[v] = -1 if best is None else best
    return members


def rig_centre(cameras: list[Camera]) -> np.ndarray | None:
    """``(3,)`` the point (metres, world) nearest to every camera's optical axis in the
    least-squares sense, where the rig looks; None with fewer than two cameras or parallel axes."""
    if len(cameras) < 2:
        return None
    centres = np.stack([camera.center for camera in cameras])  # (V, 3)
    axes = np.stack([camera.R[2] for camera in cameras])  # optical axes in the world, (V, 3)
    across = np.eye(3) - axes[:, :, None] * axes[:, None, :]  # projectors orthogonal to each axis, (V, 3, 3)
    matrix = across.sum(axis=0)
    if np.linalg.cond(matrix) > 1e8:
        return None
    return np.linalg.solve(matrix, np.einsum("vij,vj->i", across, centres))


def seed_choices(cameras: list[Camera], frame: _Frame, sizes: list[tuple[int, int]], settings: DetectionSettings, centre: np.ndarray | None) -> np.ndarray:
    """``(views,)`` chosen person per view (-1: none) without any prior: a multi-view seed.

    Every pair of people seen in two views is triangulated into a 3D body hypothesis
    and joined by the person of each other view that agrees with it. The hypothesis
    seen in the most views (two or more) wins, then the one nearest the point the
    rig looks at (``centre (3,)``, :func:`rig_centre`; the mean of its joints): the 3D
    form of "the most central person". The size of a person in one view says mostly how near
    that camera they stand, so here it does not count. Without such a hypothesis (or
    without ``centre``), each view takes its largest, most central person
    (:func:`prior.seed_index`).
    """
    views = np.flatnonzero(frame.present.any(axis=1))
    best, best_key = np.full(len(cameras), -1), (2, -np.inf)
    for v in views:
        best[v] = prior.seed_index(frame.boxes[v], sizes[v])
    if centre is None:
        return best
    for a, b in itertools.combinations(views, 2):  # a few views
        pairs = np.array(list(itertools.product(np.flatnonzero(frame.present[a]), np.flatnonzero(frame.present[b]))))
        bodies = np.stack([frame.bodies[a, pairs[:, 0]], frame.bodies[b, pairs[:, 1]]])  # (2, hypotheses, 17, 3)
        points, _ = triangulate_body([cameras[a], cameras[b]], bodies, settings)
        for joints_3d in points[np.isfinite(points[..., 0]).sum(axis=1) >= settings.prior_min_joints]:
            members = _members(cameras, frame, joints_3d, settings)
            key = (int(np.count_nonzero(members >= 0)), -float(np.linalg.norm(np.nanmean(joints_3d, axis=0) - centre)))
            if key > best_key:
                best, best_key = members, key
    return best


def _check_views(cameras, frame: _Frame, settings: DetectionSettings, counts: dict) -> np.ndarray | None:
    """The frame's 3D body ``(17, 3)`` after every view's choice was checked against it, or None.

    A view whose chosen person disagrees gets the person that agrees best (the same
    person may be kept when too few of its joints can be compared), or no one.
    """
    points, _ = triangulate_body(cameras, frame.chosen_bodies(), settings)
    if np.isfinite(points[:, 0]).sum() < settings.prior_min_joints:
        return None
    changed = False
    for v, camera in enumerate(cameras):  # a few views
        if not frame.present[v].any():
            continue
        good, total, error = agreement(_projected(camera, points), frame.bodies[v], settings.min_keypoint_confidence, settings.prior_threshold_px)
        current = frame.chosen[v]
        if current >= 0 and (total[current] < 2 or agrees(good, total)[current]):
            continue  # agrees, or too little in common to judge
        best = best_agreeing(good, total, error)
        best = -1 if best is None else best
        if best != current:
            counts["reselected" if best >= 0 else "rejected"][v] += 1
            frame.chosen[v] = best
            changed = True
    if changed:
        points, _ = triangulate_body(cameras, frame.chosen_bodies(), settings)
        if np.isfinite(points[:, 0]).sum() < settings.prior_min_joints:
            return None
    return points


def _present(people: np.ndarray, min_confidence: float) -> np.ndarray:
    """``(views, frames, P)`` bool: the person has at least two confident body joints."""
    body = people[..., BODY, 2]
    return (np.isfinite(body) & (body >= min_confidence)).sum(axis=-1) >= 2


def _single_person_frames(people: np.ndarray, min_confidence: float) -> np.ndarray:
    """``(frames,)`` bool: no view has more than one person in the frame."""
    return _present(people, min_confidence).sum(axis=2).max(axis=0) <= 1


def _projected_frames(camera: Camera, points: np.ndarray) -> np.ndarray:
    """``(N, 17, 2)`` pixels of ``points (N, 17, 3)``, NaN behind the camera or unknown."""
    return np.where(camera.in_front(points)[..., None], camera.project(points), np.nan)


def _head_far_from_ego(points: np.ndarray, heads: np.ndarray, settings: DetectionSettings) -> np.ndarray:
    """``(N,)`` bool: the 3D body's head (mean of its known head joints) is farther than
    ``ego_head_radius_m`` from the ego camera centre ``heads (N, 3)`` (False where unknown)."""
    head_joints = points[:, HEAD]
    known = np.isfinite(head_joints).all(axis=-1)
    count = known.sum(axis=1)
    mean = np.where(known[..., None], head_joints, 0.0).sum(axis=1) / np.maximum(count, 1)[:, None]
    with np.errstate(invalid="ignore"):
        far = np.linalg.norm(mean - heads, axis=-1) > settings.ego_head_radius_m
    return far & (count > 0) & np.isfinite(heads).all(axis=-1)


def _first_discontinuity(cameras, bodies, chosen, points, start_prior, settings) -> int | None:
    """Index of the first frame of a run whose chosen person in some view disagrees with the
    last 3D body before it (at most ``prior_max_age`` frames old; ``start_prior`` before the
    run): there the sequential choice (which would reject that person) must decide."""
    frames = points.shape[0]
    index = np.arange(frames)
    valid = np.isfinite(points).any(axis=(1, 2))
    last = np.maximum.accumulate(np.where(valid, index, -1))  # last valid frame at or before each frame
    previous = np.concatenate([[-1], last[:-1]])
    reference = np.full_like(points, np.nan)
    usable = (previous >= 0) & (index - previous <= settings.prior_max_age + 1)
    reference[usable] = points[previous[usable]]
    if start_prior is not None:
        reference[~usable & (previous < 0)] = start_prior
    known = np.isfinite(reference).all(axis=-1).sum(axis=1) >= 2
    disagree = np.zeros(frames, dtype=bool)
    for v, camera in enumerate(cameras):  # a few views
        good, total, _ = agreement(_projected_frames(camera, reference), bodies[v], settings.min_keypoint_confidence, settings.prior_threshold_px)
        disagree |= chosen[v] & known & (total >= 2) & ~agrees(good, total)
    return int(np.argmax(disagree)) if disagree.any() else None


def select_single_people(
    cameras: list[Camera], bodies: np.ndarray, settings: DetectionSettings, heads: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The multi-view check of :func:`select_wearer` for frames with at most one person per
    view, all frames at once: ``bodies (views, N, 17, 3)`` (NaN: no one in the view),
    ``heads (N, 3)`` ego camera centres or None.

    Returns ``chosen (views, N)`` bool (the view's person is kept), ``points (N, 17, 3)``
    the checked 3D bodies (NaN rows where too few joints) and ``dropped (N,)`` (a body
    seen consistently whose head is not at the ego camera: no one is chosen).
    """
    min_confidence, threshold = settings.min_keypoint_confidence, settings.prior_threshold_px
    present = np.isfinite(person_boxes(bodies.reshape(-1, NUM_BODY_JOINTS, 3), min_confidence)).all(axis=-1).reshape(bodies.shape[:2])
    chosen = present.copy()
    points, _ = triangulate_body(cameras, bodies, settings)
    enough = np.isfinite(points[..., 0]).sum(axis=1) >= settings.prior_min_joints
    if len(cameras) >= 2:
        for v, camera in enumerate(cameras):  # a few views
            good, total, _ = agreement(_projected_frames(camera, points), bodies[v], min_confidence, threshold)
            chosen[v] &= ~enough | (total < 2) | agrees(good, total)  # agrees, or too little in common to judge
        changed = enough & (chosen != present).any(axis=0)
        if changed.any():
            kept = np.where(chosen[:, changed, None, None], bodies[:, changed], np.nan)
            points[changed] = triangulate_body(cameras, kept, settings)[0]
    enough = np.isfinite(points[..., 0]).sum(axis=1) >= settings.prior_min_joints
    points[~enough] = np.nan
    dropped = np.zeros(len(points), dtype=bool)
    if heads is not None and settings.ego_prior:
        dropped = enough & _head_far_from_ego(points, heads, settings)
        chosen[:, dropped] = False
        points[dropped] = np.nan
    return chosen, points, dropped


def select_wearer(cameras: list[Camera], people: np.ndarray, settings: DetectionSettings, ego_centres: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """The camera wearer's keypoints among the people of every view and frame.

    ``people``: float32 ``(views, frames, P, 59, 3)`` x, y (pixels), confidence, NaN =
    missing (rows beyond a file's people are NaN). ``ego_centres``: ``(frames, 3)`` ego
    camera centres (metres, world; NaN where unknown) or None. ``settings``: the
    ``detect`` config section.

    Returns float32 ``(views, frames, 59, 3)``: the chosen person's rows, unchanged, NaN
    where no one is chosen; and a summary with per-view counts (frames with people, with
    several people, the prior used, re-selected and rejected choices) and the frames
    dropped because their 3D body's head was not at the ego camera.
    """
    people = np.asarray(people)
    if people.ndim != 5 or people.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"people must have shape (views, frames, people, {NUM_JOINTS}, 3), got {people.shape}")
    views, num_frames = people.shape[:2]
    if len(cameras) != views:
        raise ValueError(f"{len(cameras)} cameras for {views} views of people")
    if ego_centres is not None and len(ego_centres) < num_frames:
        raise ValueError(f"ego_centres has {len(ego_centres)} frames, the people {num_frames}")
    up = np.asarray(prior.UP_AXES[settings.world_up], dtype=np.float64)
    sizes = _image_sizes(cameras, people)
    centre = rig_centre(cameras)
    result = np.full((views, num_frames, NUM_JOINTS, 3), np.nan, dtype=np.float32)
    sources = [Counter() for _ in cameras]
    counts = {name: np.zeros(views, dtype=np.int64) for name in ("with_people", "several_people", "reselected", "rejected")}
    tracks: list[np.ndarray | None] = [None] * views  # each view's last chosen body (17, 3)
    track_age = np.zeros(views, dtype=np.int64)
    pose_3d, pose_age, dropped = None, 0, 0
    single = _single_person_frames(people, settings.min_keypoint_confidence)
    f = 0
    while f < num_frames:
        if single[f]:  # a run of frames with at most one person per view: all at once
            stop = f + int(np.argmin(single[f:])) if not single[f:].all() else num_frames
            index = np.argmax(_present(people[:, f:stop], settings.min_keypoint_confidence), axis=2)  # (views, run)
            run = np.arange(f, stop)
            rows = np.take_along_axis(people[:, f:stop], index[:, :, None, None, None], axis=2)[:, :, 0]  # (views, run, 59, 3)
            heads = None if ego_centres is None else ego_centres[f:stop]
            chosen, points, run_dropped = select_single_people(cameras, rows[:, :, BODY].astype(np.float64), settings, heads)
            start_prior = pose_3d if pose_3d is not None and pose_age < settings.prior_max_age else None
            broken = _first_discontinuity(cameras, rows[:, :, BODY].astype(np.float64), chosen, points, start_prior, settings)
            if broken is not None:  # a frame whose people disagree with the previous 3D body: choose there
                single[f + broken] = False
                stop = f + broken
                if stop == f:
                    continue
                run, rows, chosen, points, run_dropped = run[:broken], rows[:, :broken], chosen[:, :broken], points[:broken], run_dropped[:broken]
            result[:, f:stop] = np.where(chosen[..., None, None], rows, np.nan)
            dropped += int(run_dropped.sum())
            present = np.isfinite(rows[..., BODY, 0]).any(axis=2)
            counts["with_people"] += present.sum(axis=1)
            for v in range(views):
                sources[v]["multi_view"] += int(present[v].sum())
            counts["rejected"] += (present & ~chosen & ~run_dropped[None]).sum(axis=1)
            valid = np.flatnonzero(np.isfinite(points).any(axis=(1, 2)))
            if valid.size:
                pose_3d, pose_age = points[valid[-1]], stop - 1 - int(valid[-1])
            else:
                pose_age += stop - f
            for v in range(views):
                seen = np.flatnonzero(chosen[v])
                if seen.size:
                    tracks[v], track_age[v] = rows[v, seen[-1], BODY].astype(np.float64), stop - 1 - int(seen[-1])
                else:
                    track_age[v] += stop - f
            f = stop
            continue
        frame = _Frame(people[:, f], settings.min_keypoint_confidence)
        head = ego_head(ego_centres, f, settings)
        reference_3d = pose_3d if pose_prior_usable(pose_3d, pose_age, head, settings) else None
        counts["with_people"] += frame.present.any(axis=1)
        counts["several_people"] += frame.present.sum(axis=1) > 1
        seen = np.flatnonzero(frame.present.any(axis=1))
        tracked = [tracks[v] if track_age[v] <= settings.prior_max_age else None for v in range(views)]
        if reference_3d is None and head is None and all(tracked[v] is None for v in seen):
            frame.chosen[:] = seed_choices(cameras, frame, sizes, settings, centre)
            for v in seen:
                sources[v]["seed"] += 1
        else:
            for v in seen:
                index, source = _first_choice(v, frame, reference_3d, head, tracked[v], sizes[v], cameras[v], settings, up)
                sources[v][source] += 1
                frame.chosen[v] = -1 if index is None else index
        points = _check_views(cameras, frame, settings, counts) if views >= 2 else None
        if points is not None and head is not None and head_near_ego(points, head, settings) is False:
            frame.chosen[:] = -1  # a consistent bystander, not the wearer
            dropped += 1
            points = None
        pose_3d, pose_age = (points, 0) if points is not None else (pose_3d, pose_age + 1)
        rows = np.flatnonzero(frame.chosen >= 0)
        result[rows, f] = people[rows, f, frame.chosen[rows]]
        track_age += 1
        for v in rows:
            tracks[v], track_age[v] = frame.bodies[v, frame.chosen[v]], 0
        f += 1
    summary = {
        "views": {
            camera.name: {
                "frames_with_people": int(counts["with_people"][v]),
                "frames_with_several_people": int(counts["several_people"][v]),
                "chosen": int(np.isfinite(result[v, :, :, 0]).any(axis=1).sum()),
                "sources": dict(sorted(sources[v].items())),
                "reselected": int(counts["reselected"][v]),
                "rejected": int(counts["rejected"][v]),
            }
            for v, camera in enumerate(cameras)
        },
        "frames_dropped_head_not_at_ego": int(dropped),
    }
    return result, summary
