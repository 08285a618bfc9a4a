"""Hands: where to crop for the hand model, and which detected hand belongs to which wrist.

The hand lies beyond the wrist along the forearm: the crop is a square centred at
``wrist + offset * (wrist - elbow)`` with side ``scale * |wrist - elbow|`` (at least
``min_side`` pixels). Without a confident elbow the forearm length is taken as a
fifth of the body box's longer side.

A hand model can see both hands in one crop (hands held together) and its
left/right label can be wrong; so a detected hand is given to the side whose body
wrist its own wrist point is nearest to, and only if it is nearer to that wrist than
to the other one and within ``max_distance`` forearm lengths. MediaPipe Hands labels
hands as if the image were mirrored (a selfie): on an ordinary camera image its
"Left" is the person's right hand (:func:`mediapipe_side`).
"""

from __future__ import annotations

import numpy as np

from stages.detect.crops import box_of_points

SIDES = ("left", "right")
WRIST = {"left": 9, "right": 10}
ELBOW = {"left": 7, "right": 8}


def forearms(body: np.ndarray, min_confidence: float) -> dict[str, tuple[np.ndarray, float] | None]:
    """Per side: (wrist pixel ``(2,)``, forearm length in pixels), or None without a confident wrist."""
    body = np.asarray(body, dtype=np.float64)
    good = np.isfinite(body[:, 2]) & (body[:, 2] >= min_confidence)
    box = box_of_points(body[good, :2]) if good.sum() >= 2 else None
    fallback = 0.2 * max(box[2] - box[0], box[3] - box[1]) if box is not None else np.nan
    result: dict[str, tuple[np.ndarray, float] | None] = {}
    for side in SIDES:
        wrist, elbow = WRIST[side], ELBOW[side]
        if not good[wrist]:
            result[side] = None
            continue
        length = np.linalg.norm(body[wrist, :2] - body[elbow, :2]) if good[elbow] else fallback
        result[side] = (body[wrist, :2].copy(), float(length))
    return result


def hand_box(body: np.ndarray, side: str, min_confidence: float, offset: float, scale: float, min_side: float):
    """Square box ``(4,)`` around one hand, or None without a confident wrist."""
    body = np.asarray(body, dtype=np.float64)
    arm = forearms(body, min_confidence)[side]
    if arm is None:
        return None
    wrist, length = arm
    elbow = body[ELBOW[side]]
    direction = np.zeros(2)
    if np.isfinite(elbow[2]) and elbow[2] >= min_confidence and length > 0:
        direction = (wrist - elbow[:2]) / length
    if not np.isfinite(length) or length <= 0:
        length = min_side / max(scale, 1e-9)
    centre = wrist + offset * length * direction
    half = 0.5 * max(scale * length, min_side)
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])


def assign_hand(candidates: np.ndarray, body: np.ndarray, side: str, min_confidence: float, max_distance: float):
    """Index of the candidate hand ``(N, 21, 3)`` that belongs to ``side``'s body wrist, or None."""
    candidates = np.asarray(candidates, dtype=np.float64)
    if len(candidates) == 0:
        return None
    arms = forearms(body, min_confidence)
    own = arms[side]
    if own is None:
        return None
    wrist, length = own
    hand_wrists = candidates[:, 0, :2]
    distance = np.linalg.norm(hand_wrists - wrist, axis=1)
    other = arms[SIDES[1 - SIDES.index(side)]]
    if other is not None:
        closer = distance <= np.linalg.norm(hand_wrists - other[0], axis=1)
    else:
        closer = np.ones(len(candidates), dtype=bool)
    limit = max_distance * length if np.isfinite(length) and length > 0 else np.inf
    allowed = closer & (distance <= limit) & np.isfinite(distance)
    if not np.any(allowed):
        return None
    return int(np.flatnonzero(allowed)[np.argmin(distance[allowed])])


def mediapipe_side(label: str) -> str:
    """The person's side of a MediaPipe Hands label on a non-mirrored image ("Left" -> "right")."""
    return {"Left": "right", "Right": "left"}[label]
