"""Keypoint sets of the detectors -> the project's 59 joints (COCO-17 body, left hand, right hand).

- BlazePose (MediaPipe Pose) has 33 landmarks; 17 of them are the COCO body joints.
- MediaPipe Hands and OpenPose hands have 21 points in the project's hand order
  (wrist, thumb 1-4, index 1-4, middle 1-4, ring 1-4, pinky 1-4).
- COCO-WholeBody (133 points): body 0-16 (COCO order), feet 17-22, face 23-90,
  left hand 91-111, right hand 112-132.
"""

from __future__ import annotations

import numpy as np

from fitting.skeleton import BODY, LEFT_HAND, NUM_JOINTS, RIGHT_HAND

# BlazePose landmark index of each COCO-17 joint (COCO order).
BLAZEPOSE_TO_COCO: tuple[int, ...] = (
    0,   # nose
    2,   # left_eye (BlazePose 1/3 are the inner/outer corners, 2 the centre)
    5,   # right_eye
    7,   # left_ear
    8,   # right_ear
    11, 12,  # shoulders
    13, 14,  # elbows
    15, 16,  # wrists
    23, 24,  # hips
    25, 26,  # knees
    27, 28,  # ankles
)  # fmt: skip
NUM_BLAZEPOSE = 33

WHOLEBODY_BODY = slice(0, 17)
WHOLEBODY_LEFT_HAND = slice(91, 112)
WHOLEBODY_RIGHT_HAND = slice(112, 133)
NUM_WHOLEBODY = 133


def empty_keypoints(*shape: int) -> np.ndarray:
    """float32 ``(*shape, 59, 3)`` filled with NaN (every joint missing)."""
    return np.full(tuple(shape) + (NUM_JOINTS, 3), np.nan, dtype=np.float32)


def blazepose_to_coco(landmarks: np.ndarray) -> np.ndarray:
    """``(..., 33, 3)`` BlazePose x, y, visibility -> ``(..., 17, 3)`` COCO body."""
    landmarks = np.asarray(landmarks)
    if landmarks.shape[-2:] != (NUM_BLAZEPOSE, 3):
        raise ValueError(f"BlazePose landmarks must have shape (..., {NUM_BLAZEPOSE}, 3), got {landmarks.shape}")
    return landmarks[..., list(BLAZEPOSE_TO_COCO), :]


def wholebody_to_joints(points: np.ndarray) -> np.ndarray:
    """``(..., 133, 3)`` COCO-WholeBody x, y, score -> ``(..., 59, 3)`` float32 (body, left hand, right hand)."""
    points = np.asarray(points)
    if points.shape[-2:] != (NUM_WHOLEBODY, 3):
        raise ValueError(f"COCO-WholeBody keypoints must have shape (..., {NUM_WHOLEBODY}, 3), got {points.shape}")
    result = np.empty(points.shape[:-2] + (NUM_JOINTS, 3), dtype=np.float32)
    result[..., BODY, :] = points[..., WHOLEBODY_BODY, :]
    result[..., LEFT_HAND, :] = points[..., WHOLEBODY_LEFT_HAND, :]
    result[..., RIGHT_HAND, :] = points[..., WHOLEBODY_RIGHT_HAND, :]
    return result
