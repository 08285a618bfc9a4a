"""The ``fit_body_model`` stage's files.

- ``body_model.npz``: ``model ()`` its name, ``shape (S,)`` the fit's shape parameters,
  ``pose (F, J, 3)`` axis-angle rad of the joints ``pose_names (J,)``, ``rotation (F, 3)``
  axis-angle and ``translation (F, 3)`` m (world = R model + t); plus the model's own
  parameters prefixed ``native_`` (smplx: ``native_betas``, ``native_body_pose``,
  ``native_global_orient``, ``native_transl``, ...; Anny: ``native_phenotypes``,
  ``native_pose_parameters`` (F, bones, 4, 4), ``native_global_rotation``, ...);
- ``fitted_joints.npz``: ``points (F, 59, 3)`` m, the model's joints (NaN: joints the
  model lacks), ``errors (F, 59)`` m, their distance to the refined joints (NaN where
  either is missing), ``joint_names (59,)``;
- ``meshes/frame_NNNNNN.glb`` or ``.ply`` (trimesh; world coordinates, metres; one per
  frame) and ``meshes/index.json`` (``format``, ``frames``, ``files``, ``vertices``, ``faces``).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from fitting.skeleton import JOINT_NAMES
from pipeline.atomic import atomic_save_npz, atomic_write_bytes, atomic_write_text

MESH_FORMATS = ("glb", "ply")


def save_body_model_parameters(path: str | os.PathLike, model: str, pose_names, fit, native: dict[str, np.ndarray]) -> None:
    atomic_save_npz(
        path,
        model=np.array(model),
        shape=fit.shape,
        pose=fit.pose,
        pose_names=np.array(list(pose_names)),
        rotation=fit.rotation,
        translation=fit.translation,
        **{f"native_{name}": np.asarray(value) for name, value in native.items()},
    )


def save_fitted_joints(path: str | os.PathLike, points: np.ndarray, errors: np.ndarray) -> None:
    atomic_save_npz(path, points=points, errors=errors, joint_names=np.array(JOINT_NAMES))


def mesh_file_name(frame: int, file_format: str) -> str:
    return f"frame_{frame:06d}.{file_format}"


def write_mesh(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> None:
    """One mesh ``vertices (V, 3)``, ``faces (T, 3)`` as ``.glb`` or ``.ply`` (by the suffix), atomically."""
    import trimesh

    path = Path(path)
    file_format = path.suffix.lstrip(".")
    if file_format not in MESH_FORMATS:
        raise ValueError(f"{path}: mesh format must be one of {MESH_FORMATS}")
    mesh = trimesh.Trimesh(vertices=np.asarray(vertices, dtype=np.float32), faces=faces, process=False)
    buffer = io.BytesIO()
    mesh.export(buffer, file_type=file_format)
    atomic_write_bytes(path, buffer.getvalue())


def write_mesh_index(path: str | os.PathLike, file_format: str, frames: list[int], files: list[str], vertices: int, faces: int) -> None:
    index = {"format": file_format, "frames": frames, "files": files, "vertices": vertices, "faces": faces}
    atomic_write_text(path, json.dumps(index, indent=2) + "\n")
