"""SMPL-X, SMPL+H and SMPL through the ``smplx`` package, from the user's model files.

The model files are licensed (https://smpl-x.is.tue.mpg.de, https://mano.is.tue.mpg.de,
https://smpl.is.tue.mpg.de: registration, non-commercial) and cannot ship: the user
gives their folder. :func:`load_smpl_family` finds the file the way ``smplx.create``
does (``<folder>/<type>/<TYPE>_<GENDER>.<ext>`` or ``<folder>/<TYPE>_<GENDER>.<ext>``, or
the file itself) and builds the ``smplx`` module from it; the fit then uses the
module's arrays (template, shape and pose blend shapes, joint regressor, skinning
weights, kinematic tree) with its own forward kinematics on the few points it needs,
and the module's own forward pass for meshes. ``.npz`` files are read by ``smplx``
(SMPL-X, SMPL+H) or with ``allow_pickle=False`` (SMPL); ``.pkl`` files are unpickled by
``smplx``: use only files from the model's site.

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

import contextlib
import sys
from pathlib import Path

import numpy as np
import torch

from fitting.body_model.base import BodyModel, JointSource, hand_joint_table, sources_from_names
from fitting.body_model.rotations import axis_angle_to_matrix
from fitting.body_model.skinning import PointRig, rig_moments, skin_points

MODEL_TYPES = ("smplx", "smplh", "smpl")
_FILE_PREFIX = {"smplx": "SMPLX", "smplh": "SMPLH", "smpl": "SMPL"}
_WHERE = {
    "smplx": "SMPL-X from https://smpl-x.is.tue.mpg.de (SMPLX_NEUTRAL.npz, or SMPLX_MALE / SMPLX_FEMALE)",
    "smplh": "SMPL+H from https://mano.is.tue.mpg.de ('Extended SMPL+H model': SMPLH_NEUTRAL.npz, or SMPLH_MALE / SMPLH_FEMALE)",
    "smpl": "SMPL from https://smpl.is.tue.mpg.de (SMPL_NEUTRAL.pkl, or SMPL_MALE / SMPL_FEMALE, .pkl or converted to .npz)",
}
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
_SIDES = {"left": "l", "right": "r"}


def model_file_names(model_type: str, gender: str) -> list[str]:
    """The file names ``smplx`` looks for, e.g. ``SMPLX_NEUTRAL.npz``, ``SMPLX_NEUTRAL.pkl``."""
    return [f"{_FILE_PREFIX[model_type]}_{gender.upper()}.{ext}" for ext in ("npz", "pkl")]


def find_model_file(model_path: str | None, model_type: str, gender: str) -> Path:
    """The model file of ``model_type`` and ``gender`` under ``model_path`` (a folder as
    ``smplx.create`` reads, or the file). Raises FileNotFoundError naming the files
    needed and where they come from."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown body model type {model_type!r} (one of {', '.join(MODEL_TYPES)})")
    names = model_file_names(model_type, gender)
    wanted = (
        f"{' or '.join(names)} ({_WHERE[model_type]}; licensed, so it is not shipped): put it in "
        f"MODELS/{model_type}/ and set fit_body_model.smplx.model_path: MODELS (or the file's path)"
    )
    if not model_path:
        raise FileNotFoundError(f"fit_body_model.backend is 'smplx' but no model file is configured: the {model_type} model needs {wanted}")
    path = Path(model_path).expanduser()
    if path.is_file():
        return path
    for folder in (path / model_type, path):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(f"{path}: no {model_type} model file: needs {wanted}")


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


def load_smpl_family(
    model_type: str, model_path: str | None, gender: str = "neutral", num_betas: int = 10, dtype: torch.dtype = torch.float32
) -> SmplFamilyModel:
    """Load an SMPL-family model file with ``smplx`` (see :func:`find_model_file`)."""
    path = find_model_file(model_path, model_type, gender)
    try:
        import smplx
    except ImportError as error:
        raise ImportError(f"fit_body_model.backend 'smplx' needs the bodymodel extra (torch, smplx): run `make setup-bodymodel` ({error})") from error
    ext = path.suffix.lstrip(".")
    options = dict(num_betas=num_betas, gender=gender, dtype=torch.float32)
    with contextlib.redirect_stdout(sys.stderr):  # smplx prints its warnings on stdout
        module = _smplx_module(smplx, model_type, path, ext, options)
    return SmplFamilyModel(module, model_type, dtype=dtype)


def _smplx_module(smplx, model_type: str, path: Path, ext: str, options: dict):
    if model_type == "smpl":
        data_struct = None
        if ext == "npz":
            with np.load(path, allow_pickle=False) as data:
                data_struct = smplx.utils.Struct(**{key: data[key] for key in data.files})
        return smplx.SMPL(str(path), data_struct=data_struct, **options)
    hands = dict(use_pca=False, flat_hand_mean=True)
    if model_type == "smplh":
        return smplx.SMPLH(str(path), ext=ext, **hands, **options)
    return smplx.SMPLX(str(path), ext=ext, use_face_contour=False, **hands, **options)
