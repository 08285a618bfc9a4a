"""The 59-joint skeleton: COCO-17 body, then left hand 21, then right hand 21.

Joint order and names are the data contract of DESIGN.md; every array with a joint
axis uses :data:`JOINT_NAMES` order.
"""

from __future__ import annotations

import numpy as np

BODY_JOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

HAND_JOINT_SUFFIXES: tuple[str, ...] = ("wrist",) + tuple(
    f"{finger}_{segment}" for finger in ("thumb", "index", "middle", "ring", "pinky") for segment in range(1, 5)
)

# Names as released in the Ego-Exo4D hand annotation (one file per part, so the hand
# wrist is "left_wrist" there, like the body's).
LEFT_HAND_JOINT_NAMES = tuple(f"left_{suffix}" for suffix in HAND_JOINT_SUFFIXES)
RIGHT_HAND_JOINT_NAMES = tuple(f"right_{suffix}" for suffix in HAND_JOINT_SUFFIXES)

# Body joint names as the Ego-Exo4D body files spell them (and the public ego-pose code
# parses them): lower case with hyphens, "left-wrist".
RELEASED_BODY_NAMES: tuple[str, ...] = tuple(name.replace("_", "-") for name in BODY_JOINT_NAMES)

# Released name of each of the 59 joints (the two wrists occur twice: body "left-wrist"
# and hand "left_wrist"); hand joints keep underscores, "right_thumb_1".
RELEASED_NAMES: tuple[str, ...] = RELEASED_BODY_NAMES + LEFT_HAND_JOINT_NAMES + RIGHT_HAND_JOINT_NAMES

# Unique names of the 59 joints inside this project: the hand wrists are
# "left_hand_wrist" / "right_hand_wrist", everything else as released.
JOINT_NAMES: tuple[str, ...] = BODY_JOINT_NAMES + tuple(name.replace("_wrist", "_hand_wrist") for name in LEFT_HAND_JOINT_NAMES + RIGHT_HAND_JOINT_NAMES)

NUM_BODY_JOINTS = 17
NUM_HAND_JOINTS = 21
NUM_JOINTS = NUM_BODY_JOINTS + 2 * NUM_HAND_JOINTS  # 59

BODY = slice(0, NUM_BODY_JOINTS)
LEFT_HAND = slice(NUM_BODY_JOINTS, NUM_BODY_JOINTS + NUM_HAND_JOINTS)
RIGHT_HAND = slice(NUM_BODY_JOINTS + NUM_HAND_JOINTS, NUM_JOINTS)
PARTS: dict[str, slice] = {"body": BODY, "left_hand": LEFT_HAND, "right_hand": RIGHT_HAND}

# Body bones on COCO-17 indices: 19 pairs whose distance is constant for a person,
# the ones the bone-length fit constrains. 12 limb and torso segments, and 7 distances
# inside the head (nose, eyes and ears move as one rigid body). Ear-to-shoulder and
# nose-to-shoulder, drawn by COCO viewers, change when the head turns: they are in
# DRAW_EDGES only.
BODY_BONES: tuple[tuple[int, int], ...] = (
    (5, 7), (7, 9), (6, 8), (8, 10),          # arms
    (11, 13), (13, 15), (12, 14), (14, 16),   # legs
    (5, 6), (11, 12), (5, 11), (6, 12),       # torso
    (0, 1), (0, 2), (1, 2), (1, 3), (2, 4), (0, 3), (0, 4),  # head
)  # fmt: skip

# Hand bones on hand-local indices (0 = wrist): 5 fingers x 4 segments = 20 bones.
HAND_BONES_LOCAL: tuple[tuple[int, int], ...] = tuple(
    (0 if segment == 0 else 1 + 4 * finger + segment - 1, 1 + 4 * finger + segment) for finger in range(5) for segment in range(4)
)

LEFT_HAND_BONES = tuple((LEFT_HAND.start + a, LEFT_HAND.start + b) for a, b in HAND_BONES_LOCAL)
RIGHT_HAND_BONES = tuple((RIGHT_HAND.start + a, RIGHT_HAND.start + b) for a, b in HAND_BONES_LOCAL)

# All 59 bones on 59-joint indices: body 19, left hand 20, right hand 20.
BONES: tuple[tuple[int, int], ...] = BODY_BONES + LEFT_HAND_BONES + RIGHT_HAND_BONES

# Lines drawn in overlays: the bones plus the COCO head-to-shoulder links.
DRAW_EDGES: tuple[tuple[int, int], ...] = BONES + ((3, 5), (4, 6))

# The body wrist and the hand wrist are the same anatomical point seen by two models.
BODY_WRIST_OF_HAND = {"left_hand": 9, "right_hand": 10}


def bone_lengths(points: np.ndarray, bones=BONES) -> np.ndarray:
    """Bone lengths ``(..., bones)`` in the points' unit from joints ``(..., 59, 3)``."""
    index = np.asarray(bones)
    return np.linalg.norm(points[..., index[:, 1], :] - points[..., index[:, 0], :], axis=-1)


def left_right_swap_index() -> np.ndarray:
    """Permutation ``(59,)`` that exchanges every left joint with its right twin."""
    index = np.arange(NUM_JOINTS)
    by_name = {name: i for i, name in enumerate(JOINT_NAMES)}  # unique names
    for i, name in enumerate(JOINT_NAMES):
        if name.startswith("left_"):
            index[i] = by_name["right_" + name[5:]]
        elif name.startswith("right_"):
            index[i] = by_name["left_" + name[6:]]
    return index


assert len(JOINT_NAMES) == NUM_JOINTS and len(set(JOINT_NAMES)) == NUM_JOINTS
assert len(BODY_BONES) == 19 and len(HAND_BONES_LOCAL) == 20
