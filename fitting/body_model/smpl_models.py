"""SMPL-X, SMPL+H and SMPL through the ``smplx`` package, from the user's model files.

The model files are licensed and cannot ship: the user gives their folder, and
:func:`pipeline.formats.body_model.load_smpl_family` builds the ``smplx`` module from
it (no file is read here). :class:`SmplFamilyModel` uses the module's arrays
(template, shape and pose blend shapes, joint regressor, skinning weights, kinematic
tree) with its own forward kinematics on the few points the fit needs, and the
module's own forward pass for meshes.

Shape: ``betas`` (``num_betas``; SMPL-X's expression stays 0). Pose: axis-angle per
joint after the pelvis, in the model's joint order (SMPL-X: 21 body, jaw, 2 eyes, 15 per
hand; SMPL+H: 21 body, 15 per hand; SMPL: 23 body, the last two the hands).

Mapping of the 59 joints (:func:`smpl_family_sources`): COCO shoulders, elbows, wrists,
hips, knees and ankles are the model's regressed joints; nose, eyes and ears are the
vertices ``smplx`` itself uses for them (``smplx.vertex_ids``); hand wrists and finger
joints are regressed joints (thumb1-3: CMC, MCP, IP; index..pinky 1-3: MCP, PIP,
DIP) and finger tips are ``smplx``'s tip vertices. SMPL has no finger joints: only the
wrists and finger tips of its hands are fitted (its hands do not articulate).
"""

from __future__ import annotations

import numpy as np
import torch

from fitting.body_model.base import BodyModel, JointSource, hand_joint_table, sources_from_names
from fitting.body_model.rotations import axis_angle_to_matrix
from fitting.body_model.skinning import PointRig, rig_moments, skin_points

MODEL_TYPES = ("smplx", "smplh", "smpl")
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
_SIDES = {"left": "l", "right": "r"}


def _joint_names(model_type: str) -> list[str]:
    from smplx.joint_names import JOINT_NAMES

    if model_type == "smplx":
        return list(JOINT_NAMES[:55])
    if model_type == "smplh":
        return list(JOINT_NAMES[:22]) + list(JOINT_NAMES[25:55])
    return list(JOINT_NAMES[:22]) + ["left_hand", "right_hand"]


def smpl_family_sources(model_type: str) -> tuple[JointSource, ...]:
    """Where each of the 59 joints comes from on ``model_type`` (see the module's docstring)."""
    from smplx.vertex_ids import vertex_ids

    vertices = vertex_ids["smplx" if model_type == "smplx" else "smplh"]
    table: dict[str, tuple[str, str]] = {
        "nose": ("vertex", f"nose {vertices['nose']}"),
        "left_eye": ("vertex", f"leye {vertices['leye']}"),
        "right_eye": ("vertex", f"reye {vertices['reye']}"),
        "left_ear": ("vertex", f"lear {vertices['lear']}"),
        "right_ear": ("vertex", f"rear {vertices['rear']}"),
    }
    for name in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        for side in _SIDES:
            table[f"{side}_{name}"] = ("joint", f"{side}_{name}")
    for side, letter in _SIDES.items():
        hand = {"wrist": ("joint", f"{side}_wrist")}
        for finger in _FINGERS:
            if model_type != "smpl":
                for segment in (1, 2, 3):
                    hand[f"{finger}_{segment}"] = ("joint", f"{side}_{finger}{segment}")
            tip = f"{letter}{finger}"
            hand[f"{finger}_4"] = ("vertex", f"{tip} {vertices[tip]}")
        table |= hand_joint_table(side, hand)
    return sources_from_names(table)


class SmplFamilyModel(BodyModel):
    """An ``smplx`` SMPL / SMPL+H / SMPL-X module as a :class:`~.base.BodyModel`."""

    def __init__(self, module, model_type: str, dtype: torch.dtype = torch.float32):
        self.module = module.to(dtype=dtype)
        self.model_type = model_type
        self.name = model_type
        self.dtype = dtype
        names = _joint_names(model_type)
        self.parents = [int(p) for p in module.parents]
        if len(self.parents) != len(names):
            raise ValueError(f"{model_type} model has {len(self.parents)} joints, expected {len(names)}")
        self.pose_names = tuple(names[1:])
        self.hand_pose = np.array([any(f in name for f in _FINGERS) for name in self.pose_names])
        self.wrist_pose = np.array([name.endswith("_wrist") for name in self.pose_names])
        self.shape_size = int(module.num_betas)
        self.faces = np.asarray(module.faces, dtype=np.int64)
        self.num_vertices = int(module.v_template.shape[0])
        self.sources = smpl_family_sources(model_type)

        joint_index = {name: i for i, name in enumerate(names)}
        landmarks = {}
        for index, source in enumerate(self.sources):
            if source.kind == "vertex":
                landmarks[index] = int(source.name.split()[1])
        self.landmarks = torch.tensor(sorted(set(landmarks.values())), dtype=torch.long)
        column = {int(v): len(names) + i for i, v in enumerate(self.landmarks)}
        regressor = torch.zeros(len(self.sources), len(names) + len(self.landmarks), dtype=dtype)
        for index, source in enumerate(self.sources):
            if source.kind == "joint":
                regressor[index, joint_index[source.name]] = 1.0
            elif source.kind == "vertex":
                regressor[index, column[landmarks[index]]] = 1.0
        weights = torch.cat([torch.eye(len(names), dtype=dtype), module.lbs_weights[self.landmarks].to(dtype)])
        self.rig = PointRig(regressor=regressor, skin_weights=weights)
        pose_basis = module.posedirs.shape[0]
        self.landmark_posedirs = module.posedirs.reshape(pose_basis, -1, 3)[:, self.landmarks].to(dtype)  # (D, L, 3)

    def _shaped(self, shape: torch.Tensor) -> torch.Tensor:
        return self.module.v_template + torch.einsum("vcb,b->vc", self.module.shapedirs, shape)

    def shape_state(self, shape: torch.Tensor):
        shaped = self._shaped(shape)
        joints = self.module.J_regressor @ shaped  # (J, 3) rest joints
        return joints, shaped[self.landmarks]

    def _transforms(self, joints: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
        """Rest-to-posed transforms ``(F, J, 4, 4)`` of the joints (root unrotated: the fit adds the global rotation)."""
        frames = rotations.shape[0]
        world_rotation = [torch.eye(3, dtype=self.dtype).expand(frames, 3, 3)]
        world_position = [joints[0].expand(frames, 3)]
        for joint in range(1, len(self.parents)):  # the kinematic tree, parents first
            parent = self.parents[joint]
            world_rotation.append(world_rotation[parent] @ rotations[:, joint - 1])
            world_position.append(world_position[parent] + world_rotation[parent] @ (joints[joint] - joints[parent]))
        rotation = torch.stack(world_rotation, dim=1)
        position = torch.stack(world_position, dim=1)
        translation = position - torch.einsum("fjab,jb->fja", rotation, joints)
        return torch.cat([rotation, translation[..., None]], dim=-1)

    def posed_points(self, state, pose: torch.Tensor) -> torch.Tensor:
        joints, landmarks = state
        rotations = axis_angle_to_matrix(pose)
        eye = torch.eye(3, dtype=self.dtype)
        feature = (rotations - eye).reshape(pose.shape[0], -1)  # smplx's pose feature (joints after the root)
        corrected = landmarks + torch.einsum("fd,dlc->flc", feature, self.landmark_posedirs)
        rest = torch.cat([joints.expand(pose.shape[0], -1, -1), corrected], dim=1)
        return skin_points(rig_moments(self.rig, rest), self._transforms(joints, rotations))

    def _forward_arguments(self, shape: torch.Tensor, pose: torch.Tensor) -> dict:
        frames = pose.shape[0]
        flat = pose.reshape(frames, -1, 3)
        zeros3 = torch.zeros(frames, 3, dtype=self.dtype)
        arguments = {"betas": shape[None].expand(frames, -1), "global_orient": zeros3, "transl": zeros3}
        if self.model_type == "smpl":
            arguments["body_pose"] = flat.reshape(frames, -1)
            return arguments
        arguments["body_pose"] = flat[:, :21].reshape(frames, -1)
        hands = flat[:, -30:]
        arguments["left_hand_pose"] = hands[:, :15].reshape(frames, -1)
        arguments["right_hand_pose"] = hands[:, 15:].reshape(frames, -1)
        if self.model_type == "smplx":
            arguments["jaw_pose"], arguments["leye_pose"], arguments["reye_pose"] = flat[:, 21], flat[:, 22], flat[:, 23]
            arguments["expression"] = torch.zeros(frames, self.module.num_expression_coeffs, dtype=self.dtype)
        return arguments

    def vertices(self, shape: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        return self.module(**self._forward_arguments(shape, pose), return_verts=True).vertices

    def model_joints(self, shape: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """The module's own joints ``(F, J, 3)`` (a reference for tests)."""
        return self.module(**self._forward_arguments(shape, pose)).joints[:, : len(self.parents)]

    def native_parameters(self, shape, pose, rotation, translation) -> dict[str, np.ndarray]:
        """smplx's parameters: with them ``module(betas=..., global_orient=..., transl=..., ...)``
        gives the fitted mesh in world coordinates (smplx rotates about the pelvis joint)."""
        with torch.no_grad():
            tensors = self._forward_arguments(torch.as_tensor(shape, dtype=self.dtype), torch.as_tensor(pose, dtype=self.dtype))
            pelvis = self.shape_state(torch.as_tensor(shape, dtype=self.dtype))[0][0].double().numpy()
        from scipy.spatial.transform import Rotation

        matrices = Rotation.from_rotvec(rotation).as_matrix()
        parameters = {name: value.double().numpy() for name, value in tensors.items() if name not in ("global_orient", "transl")}
        parameters["betas"] = np.asarray(shape, dtype=np.float64)
        parameters["global_orient"] = np.asarray(rotation, dtype=np.float64)
        parameters["transl"] = np.asarray(translation) + matrices @ pelvis - pelvis
        return parameters
