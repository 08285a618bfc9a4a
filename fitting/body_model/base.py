"""What a body model backend gives the fit, and how the 59 joints map onto it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from fitting import skeleton


@dataclass(frozen=True)
class JointSource:
    """Where one of the 59 joints comes from on a model.

    ``kind``: ``"joint"`` (a joint of the model's skeleton, regressed from its rest
    mesh or a bone head: a joint centre), ``"vertex"`` (one mesh vertex, a surface
    landmark), ``"regressed"`` (a weighted average of mesh vertices after skinning, a
    keypoint regressor) or ``"none"`` (the model has no such point: not fitted, NaN in
    the outputs); ``name``: the model's name for it (joint, vertex id, keypoint).
    """

    kind: str
    name: str

    def describe(self) -> str:
        return "-" if self.kind == "none" else f"{self.kind} {self.name}"


class BodyModel(ABC):
    """A parametric body model as the fit sees it (torch, model frame, metres).

    The fit's parameters: ``shape (S,)`` shared by the take (unconstrained: each model
    maps it to its own shape parameters) and, per frame, ``pose (F, J, 3)``, axis-angle
    rotations of the articulated joints named in :attr:`pose_names` (the root excluded:
    the fit adds the global rotation and translation, world = R model + t).
    """

    name: str
    pose_names: tuple[str, ...]
    hand_pose: np.ndarray  # (J,) bool: finger joints (their own prior and fit step)
    wrist_pose: np.ndarray  # (J,) bool: the wrists (refitted with the fingers)
    sources: tuple[JointSource, ...]  # (59,) in fitting.skeleton.JOINT_NAMES order
    shape_size: int
    num_vertices: int
    faces: np.ndarray  # (T, 3) int64 triangles
    dtype: torch.dtype

    @property
    def mapped(self) -> np.ndarray:
        """``(59,)`` bool: joints the model has."""
        return np.array([source.kind != "none" for source in self.sources])

    def mapping_table(self) -> dict[str, str]:
        """Each of the 59 joints (our names) -> where it comes from on this model."""
        return {name: source.describe() for name, source in zip(skeleton.JOINT_NAMES, self.sources)}

    def initial_shape(self) -> torch.Tensor:
        return torch.zeros(self.shape_size, dtype=self.dtype)

    def shape_penalty(self, shape: torch.Tensor) -> torch.Tensor:
        """Squared distance of ``shape`` from the model's mean body, in prior standard deviations."""
        return (shape * shape).sum()

    @abstractmethod
    def shape_state(self, shape: torch.Tensor):
        """What :meth:`posed_points` needs of a shape (rest skeleton, rig moments); computed
        once per shape, differentiable when ``shape`` requires a gradient."""

    @abstractmethod
    def posed_points(self, state, pose: torch.Tensor) -> torch.Tensor:
        """The 59 joints ``(F, 59, 3)`` in the model frame for a :meth:`shape_state`
        (zeros where :attr:`mapped` is false)."""

    def points(self, shape: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """The 59 joints ``(F, 59, 3)`` of ``shape`` in ``pose``, model frame."""
        return self.posed_points(self.shape_state(shape), pose)

    @abstractmethod
    def vertices(self, shape: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """The mesh ``(F, V, 3)`` in the model frame."""

    @abstractmethod
    def native_parameters(self, shape: np.ndarray, pose: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> dict[str, np.ndarray]:
        """The fit in the model's own parameter names (e.g. smplx's ``betas``,
        ``body_pose``, ``global_orient``, ``transl``), so a user can feed it back to the
        model's library; ``rotation``, ``translation (F, 3)``: world = R(rotation) model + translation."""


def sources_from_names(table: dict[str, tuple[str, str]]) -> tuple[JointSource, ...]:
    """:class:`JointSource` per joint, in our order, from ``{our joint name: (kind, model name)}`` (absent: none)."""
    return tuple(JointSource(*table[name]) if name in table else JointSource("none", "") for name in skeleton.JOINT_NAMES)


def hand_joint_table(side: str, names: dict[str, str]) -> dict[str, str]:
    """``{our hand joint name: model name}`` for one hand from ``{suffix: model name}``
    (suffixes as :data:`fitting.skeleton.HAND_JOINT_SUFFIXES`; the wrist is ``<side>_hand_wrist``)."""
    return {(f"{side}_hand_wrist" if suffix == "wrist" else f"{side}_{suffix}"): value for suffix, value in names.items()}
