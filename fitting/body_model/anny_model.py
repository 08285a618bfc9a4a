"""Anny (NAVER, Apache-2.0; MakeHuman assets, CC0) as a :class:`~.base.BodyModel`.

The model's data ships in the ``anny`` wheel: nothing is downloaded. Its first start
builds a cache of the model data (``~/.cache/anny``, or a configured folder); later
starts load it (the stage loads it: ``pipeline.formats.body_model.load_anny``).
Shape: Anny's six default phenotypes (gender, age, muscle, weight, height,
proportions, each in [0, 1]) as ``sigmoid(shape)``, so ``shape = 0`` is Anny's mean
body. Pose: a rotation per bone of the 104-bone ``anny`` rig (the root's is the global
rotation), in Anny's ``local-ref`` parameterization (rotation axes in world-aligned
axes at each bone's head; zero is Anny's rest A-pose).

Mapping of the 59 joints (:data:`ANNY_SOURCES`):

- body (COCO-17): Anny's own COCO keypoint regressor (``anny.KeypointsRegressor.coco``,
  weighted averages of 42-413 posed vertices each), the library's definition of the
  COCO joints;
- hands: the wrist and the finger joints are bone heads of the rig (joint centres:
  ``wrist``; thumb ``finger1-1`` (CMC), ``finger1-2`` (MCP), ``finger1-3`` (IP); index to
  pinky ``fingerN-1`` (MCP), ``fingerN-2`` (PIP), ``fingerN-3`` (DIP)); the finger tips
  are mesh vertices: per finger, the vertex skinned mostly to the distal bone that lies
  farthest along it (chosen from the model data when it loads).
"""

from __future__ import annotations

import numpy as np
import torch

from fitting.body_model.base import BodyModel, JointSource, hand_joint_table, sources_from_names
from fitting.body_model.rotations import axis_angle_to_matrix
from fitting.body_model.skinning import PointRig, rig_moments, skin_points
from fitting.skeleton import BODY_JOINT_NAMES

# Regressor weights below this are dropped (the rest renormalised): moves the COCO
# keypoints by < 0.1 mm and keeps ~4,600 of the mesh's 13,718 vertices in the rig.
_NEGLIGIBLE_WEIGHT = 1e-6
_FINGERS = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}  # Anny's fingerN


def _hand_table(side: str) -> dict[str, tuple[str, str]]:
    suffix = "L" if side == "left" else "R"
    names: dict[str, tuple[str, str]] = {"wrist": ("joint", f"wrist.{suffix}")}
    for finger, number in _FINGERS.items():
        for segment in (1, 2, 3):
            names[f"{finger}_{segment}"] = ("joint", f"finger{number}-{segment}.{suffix}")
        names[f"{finger}_4"] = ("vertex", f"tip of finger{number}-3.{suffix}")
    return hand_joint_table(side, names)


ANNY_SOURCES: tuple[JointSource, ...] = sources_from_names(
    {name: ("regressed", f"coco {name}") for name in BODY_JOINT_NAMES} | _hand_table("left") | _hand_table("right")
)


def _dense_weights(weights: torch.Tensor, indices: torch.Tensor, bones: int) -> torch.Tensor:
    dense = torch.zeros(weights.shape[0], bones, dtype=weights.dtype)
    return dense.scatter_add_(1, indices.long(), weights)


def _finger_tip_vertex(rest_vertices: torch.Tensor, heads: torch.Tensor, dominant: torch.Tensor, bone: int, parent: int) -> int:
    """The vertex skinned mostly to ``bone`` that lies farthest along it (parent head -> bone head)."""
    direction = heads[bone] - heads[parent]
    candidates = torch.nonzero(dominant == bone).flatten()
    reach = (rest_vertices[candidates] - heads[bone]) @ (direction / direction.norm())
    return int(candidates[torch.argmax(reach)])


class AnnyBodyModel(BodyModel):
    """Anny's full-body model (``anny.Anny()``, rig ``anny``, topology ``anny``)."""

    def __init__(self, model, dtype: torch.dtype = torch.float32):
        import anny

        self.model = model.to(dtype=dtype)
        self.dtype = dtype
        self.name = "anny"
        labels = list(model.bone_labels)
        self.bone_count = len(labels)
        self.pose_names = tuple(labels[1:])
        self.hand_pose = np.array([("finger" in label or "metacarpal" in label) for label in self.pose_names])
        self.wrist_pose = np.array([label.startswith("wrist.") for label in self.pose_names])
        self.phenotype_labels = tuple(model.phenotype_labels)
        self.shape_size = len(self.phenotype_labels)
        self.faces = np.asarray(model.faces, dtype=np.int64)
        self.num_vertices = int(model.template_vertices.shape[0])
        self.sources = ANNY_SOURCES

        keypoints = anny.KeypointsRegressor.coco(self.model, labels=list(BODY_JOINT_NAMES))
        coco = keypoints.regression_weights.detach()  # (17, V), dense with many negligible weights
        coco = torch.where(coco.abs() > _NEGLIGIBLE_WEIGHT, coco, 0.0)
        coco = coco / coco.sum(1, keepdim=True)
        with torch.no_grad():
            rest = self.model.get_rest_model(self._blend_coefficients(self.initial_shape()))
        dense = _dense_weights(self.model.vertex_bone_weights, self.model.vertex_bone_indices, self.bone_count)
        dominant = dense.argmax(1)

        # Rig vertices: the regressor's vertices, the finger tips, then bone heads (virtual).
        tips, heads = {}, {}
        for index, source in enumerate(self.sources):
            if source.kind == "vertex":
                bone = labels.index(source.name.removeprefix("tip of "))
                tips[index] = _finger_tip_vertex(rest["rest_vertices"][0], rest["rest_bone_heads"][0], dominant, bone, model.bone_parents[bone])
            elif source.kind == "joint":
                heads[index] = labels.index(source.name)
        used = torch.nonzero(coco.abs().sum(0) > 0).flatten()
        self.rig_vertices = torch.unique(torch.cat([used, torch.tensor(list(tips.values()), dtype=torch.long)]))
        self.rig_bones = torch.tensor(list(heads.values()), dtype=torch.long)
        column = {int(v): i for i, v in enumerate(self.rig_vertices)}
        count = len(self.rig_vertices) + len(self.rig_bones)
        regressor = torch.zeros(len(self.sources), count, dtype=dtype)
        regressor[: coco.shape[0], : len(self.rig_vertices)] = coco[:, self.rig_vertices].to(dtype)
        for index, vertex in tips.items():
            regressor[index, column[vertex]] = 1.0
        for position, index in enumerate(heads):
            regressor[index, len(self.rig_vertices) + position] = 1.0
        skin = torch.cat([dense[self.rig_vertices], torch.eye(self.bone_count, dtype=dense.dtype)[self.rig_bones]])
        self.rig = PointRig(regressor=regressor, skin_weights=skin.to(dtype))
        self.tip_vertices = {self.sources[index].name: vertex for index, vertex in tips.items()}

    def phenotypes(self, shape: torch.Tensor) -> torch.Tensor:
        """Anny's phenotype values in [0, 1], ``(S,)``, of the fit's ``shape``."""
        return torch.sigmoid(shape)

    def _blend_coefficients(self, shape: torch.Tensor) -> torch.Tensor:
        empty = torch.zeros(1, 0, dtype=self.dtype)
        return self.model._get_phenotype_blendshape_coefficients(self.phenotypes(shape)[None], empty, empty)

    def _deltas(self, pose: torch.Tensor) -> torch.Tensor:
        """Anny's pose parameters ``(F, bones, 4, 4)``: the root's identity, the others' rotations."""
        frames = pose.shape[0]
        rotations = torch.cat([torch.eye(3, dtype=self.dtype).expand(frames, 1, 3, 3), axis_angle_to_matrix(pose)], dim=1)
        deltas = torch.zeros(frames, self.bone_count, 4, 4, dtype=self.dtype)
        deltas[..., :3, :3] = rotations
        deltas[..., 3, 3] = 1.0
        return deltas

    def shape_state(self, shape: torch.Tensor):
        rest = self.model.get_rest_model(self._blend_coefficients(shape))
        rig_rest = torch.cat([rest["rest_vertices"][0, self.rig_vertices], rest["rest_bone_heads"][0, self.rig_bones]])
        return rest["rest_bone_poses"], rig_moments(self.rig, rig_rest)

    def posed_points(self, state, pose: torch.Tensor) -> torch.Tensor:
        rest_bone_poses, moments = state
        transforms, _ = self.model.get_bone_transforms(self._deltas(pose), rest_bone_poses)
        return skin_points(moments, transforms)

    def vertices(self, shape: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        return self.model(pose_parameters=self._deltas(pose), phenotype_kwargs=self.phenotypes(shape)[None])["vertices"]

    def native_parameters(self, shape, pose, rotation, translation) -> dict[str, np.ndarray]:
        from scipy.spatial.transform import Rotation

        with torch.no_grad():
            deltas = self._deltas(torch.as_tensor(pose, dtype=self.dtype)).numpy()
            phenotypes = self.phenotypes(torch.as_tensor(shape, dtype=self.dtype)).numpy()
        return {
            "phenotype_labels": np.array(self.phenotype_labels),
            "phenotypes": phenotypes,
            "bone_labels": np.array(("root",) + self.pose_names),
            "pose_parameters": deltas,
            "global_rotation": Rotation.from_rotvec(rotation).as_matrix(),
            "global_translation": np.asarray(translation),
        }
