"""The ``fit_body_model`` stage's files: the body models it reads and what it writes.

Read: Anny's model (its data in the ``anny`` wheel, built once into its cache) and the
user's SMPL-X / SMPL+H / SMPL files, found the way ``smplx.create`` does
(``<folder>/<type>/<TYPE>_<GENDER>.<ext>``, ``<folder>/<TYPE>_<GENDER>.<ext>``, or the
file itself). The SMPL-family files are licensed (https://smpl-x.is.tue.mpg.de,
https://mano.is.tue.mpg.de, https://smpl.is.tue.mpg.de: registration, non-commercial)
and never shipped. ``.npz`` files are read by ``smplx`` (SMPL-X, SMPL+H) or with
``allow_pickle=False`` (SMPL, whose ``smplx`` class reads only ``.pkl``); ``.pkl`` files
are unpickled by ``smplx``: use only files from the models' sites.

Written:

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

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

from fitting.skeleton import JOINT_NAMES
from pipeline.atomic import atomic_save_npz, atomic_write_bytes, atomic_write_text

MESH_FORMATS = ("glb", "ply")
SMPL_FAMILY = ("smplx", "smplh", "smpl")
_FILE_PREFIX = {"smplx": "SMPLX", "smplh": "SMPLH", "smpl": "SMPL"}
_WHERE = {
    "smplx": "SMPL-X from https://smpl-x.is.tue.mpg.de (SMPLX_NEUTRAL.npz, or SMPLX_MALE / SMPLX_FEMALE)",
    "smplh": "SMPL+H from https://mano.is.tue.mpg.de ('Extended SMPL+H model': SMPLH_NEUTRAL.npz, or SMPLH_MALE / SMPLH_FEMALE)",
    "smpl": "SMPL from https://smpl.is.tue.mpg.de (SMPL_NEUTRAL.pkl, or SMPL_MALE / SMPL_FEMALE, .pkl or converted to .npz)",
}


def model_file_names(model_type: str, gender: str) -> list[str]:
    """The file names ``smplx`` looks for, e.g. ``SMPLX_NEUTRAL.npz``, ``SMPLX_NEUTRAL.pkl``."""
    return [f"{_FILE_PREFIX[model_type]}_{gender.upper()}.{ext}" for ext in ("npz", "pkl")]


def find_model_file(model_path: str | None, model_type: str, gender: str) -> Path:
    """The model file of ``model_type`` and ``gender`` under ``model_path`` (a folder as
    ``smplx.create`` reads, or the file). Raises FileNotFoundError naming the files
    needed and where they come from."""
    if model_type not in SMPL_FAMILY:
        raise ValueError(f"unknown body model type {model_type!r} (one of {', '.join(SMPL_FAMILY)})")
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


def load_smpl_family(model_type: str, model_path: str | None, gender: str = "neutral", num_betas: int = 10):
    """An SMPL-family model file loaded with ``smplx`` (see :func:`find_model_file`) as a
    :class:`fitting.body_model.smpl_models.SmplFamilyModel` (imports torch)."""
    path = find_model_file(model_path, model_type, gender)
    try:
        import smplx
        import torch

        from fitting.body_model.smpl_models import SmplFamilyModel
    except ImportError as error:
        raise ImportError(f"fit_body_model.backend 'smplx' needs the bodymodel extra (torch, smplx): run `make setup-bodymodel` ({error})") from error
    ext = path.suffix.lstrip(".")
    options = dict(num_betas=num_betas, gender=gender, dtype=torch.float32)
    with contextlib.redirect_stdout(sys.stderr):  # smplx prints its warnings on stdout
        module = _smplx_module(smplx, model_type, path, ext, options)
    return SmplFamilyModel(module, model_type)


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


def load_anny(cache_dir: str | None = None):
    """Anny's default full-body model as a :class:`fitting.body_model.anny_model.AnnyBodyModel`
    (imports torch); ``cache_dir``: where its built data is cached (None: Anny's default,
    ``$ANNY_CACHE_DIR`` or ``~/.cache/anny``)."""
    try:
        import anny

        from fitting.body_model.anny_model import AnnyBodyModel
    except ImportError as error:
        raise ImportError(f"fit_body_model.backend 'anny' needs the bodymodel extra (torch, anny): run `make setup-bodymodel` ({error})") from error
    if cache_dir is not None:
        anny.paths.set_anny_cache_path(cache_dir)
    # Linear blend skinning in torch: no Warp kernels to compile (the fit skins its own points).
    return AnnyBodyModel(anny.Anny(skinning_method="lbs"))


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
