"""Forearms of a 2D body and the square around a hand for palm detection.

The hand lies beyond the wrist along the forearm: the crop is a square centred at
``wrist + offset * (wrist - elbow)`` with side ``scale * |wrist - elbow|`` (at least
``min_side`` pixels). Without a confident elbow the forearm length is taken as a
fifth of the body box's longer side.

A hand's side is never read from a model's left/right label (MediaPipe's assume a
mirrored image and are often wrong on small hands): it is the side of the body wrist
the hand was searched at (:mod:`detection.hand_search`).
"""

from __future__ import annotations

import numpy as np

from detection.crops import box_of_points

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
