"""Stage ``fit_body_model`` (optional, ``fit_body_model.enabled``): a parametric body
model fitted to the refined joints (:func:`fitting.body_model.fit.fit_body_model`).

Backends (``fit_body_model.backend``): ``anny`` (Anny, its data in the wheel, offline)
and ``smplx`` (SMPL-X / SMPL+H / SMPL from the user's model files, the ``smplx``
section); the registry is :data:`BODY_MODELS`. torch and the backend are imported only when the stage runs: with the stage
off nothing imports torch.

Reads ``refine/joints_3d.npz`` (points, confidence, filled) and the take's fps; writes
``body_model.npz`` (parameters), ``fitted_joints.npz`` (the model's 59 joints and their
distance to the refined ones) and, with ``mesh_format`` glb / ply, one mesh per frame
of the requested range in ``meshes/`` with ``meshes/index.json``
(:mod:`pipeline.formats.body_model`). The summary holds the fit's error per part and
per joint (mm), its speed and the fitted shape, for QA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fitting import skeleton
from pipeline.formats.arrays import load_arrays
from pipeline.formats.body_model import (
    load_anny,
    load_smpl_family,
    mesh_file_name,
    save_body_model_parameters,
    save_fitted_joints,
    write_mesh,
    write_mesh_index,
)
from stages.base import StageContext, StageSpec

if TYPE_CHECKING:
    from pipeline.config import FitBodyModelConfig

MESH_CHUNK_FRAMES = 16  # meshes are posed this many frames at a time (bounds memory)


# The body models by ``fit_body_model.backend``: each reads its own settings sub-section
# (``fit_body_model.<name>``). Adding one is its loader in pipeline/formats/body_model.py
# (its model class in fitting/body_model/), one line here, and its settings in
# configs/default.yaml and pipeline/config.py.
BODY_MODELS = {
    "anny": lambda options: load_anny(options.cache_dir),
    "smplx": lambda options: load_smpl_family(options.model_type, options.model_path, options.gender, options.num_betas),
}


def load_body_model(settings: FitBodyModelConfig):
    """The configured model (imports torch and the backend)."""
    name = settings.backend
    return BODY_MODELS[name](getattr(settings, name))


def _mean_mm(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return round(float(1000.0 * values.mean()), 2) if values.size else None


def summarize(fit, model, frames: int) -> dict:
    """What QA and a person read: errors (mm) per part and per joint, speed, shape."""
    errors = fit.errors
    return {
        "model": model.name,
        "frames": frames,
        "seconds": round(fit.seconds, 2),
        "frames_per_second": round(frames / max(fit.seconds, 1e-9), 2),
        "mean_error_mm": {part: _mean_mm(errors[:, joints]) for part, joints in skeleton.PARTS.items()},
        "median_error_mm": {
            part: (round(float(1000.0 * np.nanmedian(errors[:, joints])), 2) if np.isfinite(errors[:, joints]).any() else None)
            for part, joints in skeleton.PARTS.items()
        },
        "joint_mean_error_mm": {name: _mean_mm(errors[:, index]) for index, name in enumerate(skeleton.JOINT_NAMES)},
        "joints_without_model_point": [name for name, mapped in zip(skeleton.JOINT_NAMES, model.mapped) if not mapped],
        "shape": [round(float(value), 4) for value in fit.shape],
    }


def write_meshes(context: StageContext, model, fit, settings: FitBodyModelConfig) -> tuple[str, int]:
    """Meshes of the requested frames into ``meshes/``; returns the index file's name and the count."""
    import torch
    from scipy.spatial.transform import Rotation

    count = fit.pose.shape[0]
    last = count - 1 if settings.mesh_last_frame is None else min(settings.mesh_last_frame, count - 1)
    frames = list(range(settings.mesh_first_frame, last + 1, settings.mesh_every))
    file_format = settings.mesh_format
    shape = torch.as_tensor(fit.shape, dtype=model.dtype)
    files = []
    for begin in range(0, len(frames), MESH_CHUNK_FRAMES):
        chunk = np.array(frames[begin : begin + MESH_CHUNK_FRAMES])
        with torch.no_grad():
            vertices = model.vertices(shape, torch.as_tensor(fit.pose[chunk], dtype=model.dtype)).double().numpy()
        world = np.einsum("fij,fvj->fvi", Rotation.from_rotvec(fit.rotation[chunk]).as_matrix(), vertices) + fit.translation[chunk, None]
        for frame, mesh in zip(chunk, world):  # one file per frame
            name = f"meshes/{mesh_file_name(int(frame), file_format)}"
            write_mesh(context.work / name, mesh, model.faces)
            files.append(name)
    write_mesh_index(context.work / "meshes" / "index.json", file_format, frames, files, model.num_vertices, len(model.faces))
    return "meshes/index.json", len(files)


def run_stage(context: StageContext) -> tuple[dict[str, str], dict]:
    settings = context.settings("fit_body_model")
    model = load_body_model(settings)  # a missing model file fails here, before any work
    from fitting.body_model.fit import fit_body_model, joint_weights

    refined = load_arrays(context.inputs["refine"].path("joints_3d"), ("points", "confidence", "filled"))
    points = refined["points"]
    weights = joint_weights(refined["confidence"], refined["filled"], points, settings.filled_weight)
    fit = fit_body_model(model, points, weights, context.take.fps, settings)  # the section is a FitSettings
    save_body_model_parameters(
        context.work / "body_model.npz", model.name, model.pose_names, fit, model.native_parameters(fit.shape, fit.pose, fit.rotation, fit.translation)
    )
    save_fitted_joints(context.work / "fitted_joints.npz", fit.joints, fit.errors)
    files = {"parameters": "body_model.npz", "fitted_joints": "fitted_joints.npz"}
    summary = summarize(fit, model, points.shape[0])
    if settings.mesh_format != "none":
        files["meshes"], summary["meshes"] = write_meshes(context, model, fit, settings)
    return files, summary


STAGE = StageSpec(
    name="fit_body_model",
    inputs=("refine",),
    config_sections=("fit_body_model",),
    reads_take_files=False,
    writes=("parameters", "fitted_joints", "meshes?"),
    run=run_stage,
    enabled_by="fit_body_model",
)
