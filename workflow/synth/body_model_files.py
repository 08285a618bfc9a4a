"""Small body model files in the ``smplx`` file layout, built from a synthetic person.

The SMPL-family model files are licensed and cannot ship, so tests and benchmarks
write their own: ``SMPLX_NEUTRAL.npz``, ``SMPLH_NEUTRAL.npz`` or ``SMPL_NEUTRAL.npz``
with every array ``smplx`` reads (template, shape and pose blend shapes, joint
regressor, skinning weights, kinematic tree, faces, hand PCA, landmarks), at the real
models' vertex and joint counts (``smplx`` selects landmark vertices by fixed ids).

The skeleton is the synthetic person of ``seed`` (:func:`workflow.synth.motion.sample_body_shape`,
the same person a synthetic take of that seed shows) at rest: standing, arms down,
fingers straight, in the take's body frame (x forward, y left, z up). Every rotation
of the synthetic motion is about one of these joints, so the model can follow a
synthetic take exactly. The mesh is a cloud of small triangles along the bones; the
landmark vertices ``smplx`` uses (nose, eyes, ears, finger tips) sit at the synthetic
person's points. Shape: ``betas[0]`` scales the body about the pelvis by 10 % per
unit and the template is the person shrunk by ``1 / scale``, so the true
``betas[0]`` is ``(scale - 1) / 0.1``; the other betas are zero directions. The pose
blend shapes of the landmark vertices are small random offsets driven by the joint
each moves with (they exercise the code that applies them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fitting import skeleton
from workflow.synth import motion

# Kinematic trees of smplx's joint order (pelvis first).
_BODY_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
_HAND_OFFSETS = [0, 0, 1, 0, 3, 4, 0, 6, 7, 0, 9, 10, 0, 12, 13]  # index, middle, pinky, ring, thumb; 0 = wrist


def _hand_parents(wrist: int, first: int) -> list[int]:
    return [wrist if offset == 0 else first + offset - 1 for offset in _HAND_OFFSETS]


PARENTS = {
    "smplx": _BODY_PARENTS + [15, 15, 15] + _hand_parents(20, 25) + _hand_parents(21, 40),
    "smplh": _BODY_PARENTS + _hand_parents(20, 22) + _hand_parents(21, 37),
    "smpl": _BODY_PARENTS + [20, 21],
}
POSE_BASIS = {"smplx": 486, "smplh": 459, "smpl": 207}
NUM_VERTICES = {"smplx": 10475, "smplh": 6890, "smpl": 6890}
_HAND_ORDER = ("index", "middle", "pinky", "ring", "thumb")


def _rest_points(shape: motion.BodyShape) -> np.ndarray:
    """The synthetic person's 59 joints at rest (all angles zero), pelvis at the origin."""
    zero = np.zeros(1)
    arm = motion._ArmAngles(*(zero for _ in range(7)))
    fingers = (np.zeros((1, 5, 3)), np.zeros((1, 5)))
    angles = motion._BodyAngles(
        ground=np.zeros((1, 2)), yaw=zero, roll=zero, pelvis_pitch=zero, trunk_flexion=zero,
        hip_flexion={True: zero, False: zero}, hip_abduction={True: zero, False: zero}, knee={True: zero, False: zero},
        arms={True: arm, False: arm}, fingers={True: fingers, False: fingers}, head_yaw=zero, head_pitch=zero, head_roll=zero,
    )  # fmt: skip
    joints = motion._forward_kinematics(shape, angles)[0][0]
    return joints - joints[[11, 12]].mean(axis=0)


def _model_joints(model_type: str, points: np.ndarray, shape: motion.BodyShape) -> np.ndarray:
    """Rest positions of the model's joints (smplx order) from the 59 rest points."""
    pelvis = points[[11, 12]].mean(axis=0)
    shoulders = points[[5, 6]].mean(axis=0)
    head = shoulders + shape.neck
    foot = np.array([0.1, 0.0, -0.5 * shape.ankle_height])
    body = [
        pelvis, points[11], points[12], pelvis, points[13], points[14], pelvis + (shoulders - pelvis) / 3, points[15], points[16],
        pelvis + 2 * (shoulders - pelvis) / 3, points[15] + foot, points[16] + foot, shoulders, shoulders, shoulders, head,
        points[5], points[6], points[7], points[8], points[9], points[10],
    ]  # fmt: skip

    def hand(part: slice) -> list[np.ndarray]:
        local = {name: 1 + 4 * finger for finger, name in enumerate(("thumb", "index", "middle", "ring", "pinky"))}
        return [points[part.start + local[finger] + segment] for finger in _HAND_ORDER for segment in range(3)]

    if model_type == "smpl":
        extra = [points[skeleton.LEFT_HAND.start + 9], points[skeleton.RIGHT_HAND.start + 9]]  # middle MCPs
    elif model_type == "smplh":
        extra = hand(skeleton.LEFT_HAND) + hand(skeleton.RIGHT_HAND)
    else:
        extra = [head, points[1], points[2]] + hand(skeleton.LEFT_HAND) + hand(skeleton.RIGHT_HAND)
    return np.array(body + extra)


def _landmarks(model_type: str) -> dict[int, tuple[int, str]]:
    """smplx's landmark vertex id -> (our joint index, the model joint it moves with)."""
    from smplx.vertex_ids import vertex_ids

    ids = vertex_ids["smplx" if model_type == "smplx" else "smplh"]
    table = {"nose": (0, "head"), "leye": (1, "head"), "reye": (2, "head"), "lear": (3, "head"), "rear": (4, "head")}
    for side, part in (("l", skeleton.LEFT_HAND), ("r", skeleton.RIGHT_HAND)):
        hand_side = "left" if side == "l" else "right"
        for finger, name in enumerate(("thumb", "index", "middle", "ring", "pinky")):
            distal = f"{hand_side}_{name}3" if model_type != "smpl" else f"{hand_side}_wrist"
            table[f"{side}{name}"] = (part.start + 4 + 4 * finger, distal)
    return {ids[key]: value for key, value in table.items()}


def write_smpl_family_model(folder: str | Path, model_type: str, seed: int, scale: float = 1.05, num_betas: int = 10) -> Path:
    """Write ``folder/<model_type>/<TYPE>_NEUTRAL.npz`` for the synthetic person of ``seed``; returns its path."""
    from smplx.joint_names import JOINT_NAMES

    rng = np.random.default_rng([seed, 1])  # the motion's stream: the same person as the take
    shape = motion.sample_body_shape(rng)
    points = _rest_points(shape)
    joints = _model_joints(model_type, points, shape)
    parents = PARENTS[model_type]
    names = {"smplx": JOINT_NAMES[:55], "smplh": JOINT_NAMES[:22] + JOINT_NAMES[25:55], "smpl": JOINT_NAMES[:22] + ["left_hand", "right_hand"]}[model_type]
    count, vertices_total = len(parents), NUM_VERTICES[model_type]

    # Vertices: along each bone (parent joint -> joint) a cloud around the segment, skinned to the parent.
    generator = np.random.default_rng(seed)
    bones = np.arange(1, count)
    owner = bones[np.arange(vertices_total) % bones.size]
    along = generator.uniform(0.0, 1.0, vertices_total)[:, None]
    parent_of = np.array(parents)[owner]
    vertices = joints[parent_of] + along * (joints[owner] - joints[parent_of]) + generator.normal(0.0, 0.01, (vertices_total, 3))
    skin_joint = parent_of.copy()
    joint_vertices = np.arange(vertices_total - count, vertices_total)  # one vertex at each joint, for the regressor
    vertices[joint_vertices] = joints
    skin_joint[joint_vertices] = np.arange(count)
    landmarks = _landmarks(model_type)
    for vertex, (point, joint_name) in landmarks.items():
        vertices[vertex] = points[point]
        skin_joint[vertex] = names.index(joint_name)
    weights = np.zeros((vertices_total, count))
    weights[np.arange(vertices_total), skin_joint] = 1.0
    regressor = np.zeros((count, vertices_total))
    regressor[np.arange(count), joint_vertices] = 1.0

    pelvis = joints[0]
    template = pelvis + (vertices - pelvis) / scale
    shapedirs = np.zeros((vertices_total, 3, num_betas + (10 if model_type == "smplx" else 0)))
    shapedirs[:, :, 0] = 0.1 * (template - pelvis)
    posedirs = np.zeros((vertices_total, 3, POSE_BASIS[model_type]))
    for vertex in landmarks:  # pose blend shapes of the joint a landmark moves with (as real models have)
        feature = 9 * (skin_joint[vertex] - 1)  # smplx's pose feature: 9 per joint after the pelvis
        posedirs[vertex, :, feature : feature + 9] = generator.normal(0.0, 2e-3, (3, 9))
    faces = np.arange(3 * ((vertices_total + 2) // 3)) % vertices_total
    arrays = {
        "v_template": template,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": np.array([[2**32 - 1] + parents[1:], list(range(count))], dtype=np.int64),
        "f": faces.reshape(-1, 3).astype(np.uint32),
    }
    if model_type != "smpl":
        for side in "lr":
            arrays[f"hands_components{side}"] = np.eye(45)
            arrays[f"hands_mean{side}"] = np.zeros(45)
    if model_type == "smplx":
        arrays["lmk_faces_idx"] = np.zeros(51, dtype=np.int64)
        arrays["lmk_bary_coords"] = np.tile([1.0, 0.0, 0.0], (51, 1))
    path = Path(folder) / model_type / f"{model_type.upper()}_NEUTRAL.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path
