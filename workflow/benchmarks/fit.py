"""Body model fit benchmark: frames per second of ``fit_body_model`` and its error.

Data: a synthetic take (GoPro-like fisheye exo cameras, a walking, bending person with
articulated hands, detector-like 2D observations), triangulated and refined with the
default settings: the fit's input, as the stage reads it. The fit runs with the
default ``fit_body_model`` settings on the chosen backend: ``anny`` (the default), or
``smplx`` on a SMPL-X file generated from the take's own person
(:mod:`workflow.synth.body_model_files`: the model can follow the take exactly, so its
error is the fit's own). Reported: seconds, frames per second, the model's load time,
and per part (body, left hand, right hand) the mean distance of the fitted joints to
the refined joints (what the fit minimises) and to the truth (mm).

There is no peer run in the same process: EasyMocap's and SMPLify-X's fits need the
licensed SMPL-family files and their own installs.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time

import numpy as np

from fitting import skeleton
from pipeline.config import load_config
from triangulation.triangulate import triangulate
from workflow.benchmarks.common import machine_info
from workflow.synth.rig import RigConfig
from workflow.synth.take_writer import SynthConfig, generate_take


def _part_errors(points: np.ndarray, reference: np.ndarray) -> dict:
    distance = np.linalg.norm(points - reference, axis=-1)
    return {
        part: (float(1000.0 * np.nanmean(distance[:, joints])) if np.isfinite(distance[:, joints]).any() else None) for part, joints in skeleton.PARTS.items()
    }


def run(frames: int = 150, views: int = 5, backend: str = "anny", seed: int = 11) -> dict:
    """Run the benchmark and return a JSON-ready dict."""
    from fitting.refine import refine
    from stages.fit_body_model import load_body_model

    config = load_config()
    synth = SynthConfig(seed=seed, num_frames=frames, rig=RigConfig(num_exo=views))
    take = generate_take(synth)
    raw = triangulate(take.exo_cameras, take.observations.keypoints, **dataclasses.asdict(config.triangulation))
    refined = refine(take.exo_cameras, take.observations.keypoints, raw.points, raw.inliers, synth.fps, config.refine)
    settings = dataclasses.replace(config.fit_body_model, backend=backend)
    with tempfile.TemporaryDirectory() as folder:
        if backend == "smplx":
            from workflow.synth.body_model_files import write_smpl_family_model

            write_smpl_family_model(folder, "smplx", seed=seed)
            settings = dataclasses.replace(settings, smplx=dataclasses.replace(settings.smplx, model_path=folder, model_type="smplx"))
        begin = time.perf_counter()
        model = load_body_model(settings)
        load_seconds = time.perf_counter() - begin
    from fitting.body_model.fit import fit_body_model, joint_weights

    weights = joint_weights(refined.confidence, refined.filled, refined.points, settings.filled_weight)
    fit = fit_body_model(model, refined.points, weights, synth.fps, settings)
    return {
        "benchmark": "fit",
        "machine": machine_info(),
        "data": {"synthetic_seed": seed, "frames": frames, "views": views, "fps": synth.fps},
        "backend": backend,
        "model": {"name": model.name, "vertices": model.num_vertices, "pose_joints": len(model.pose_names), "load_seconds": load_seconds},
        "seconds": fit.seconds,
        "frames_per_second": frames / fit.seconds,
        "error_to_refined_mm": _part_errors(fit.joints, refined.points),
        "error_to_truth_mm": _part_errors(fit.joints, take.motion.joints),
        "refined_error_to_truth_mm": _part_errors(refined.points, take.motion.joints),
        "settings": {name: getattr(settings, name) for name in ("shape_frames", "shape_iterations", "window_frames", "window_iterations")},
    }


def format_table(report: dict) -> str:
    """A readable summary of :func:`run`'s report."""
    data, model = report["data"], report["model"]
    lines = [
        f"fit ({report['backend']}: {model['name']}, {model['vertices']} vertices, {model['pose_joints']} joints; loaded in {model['load_seconds']:.1f} s) "
        f"on a synthetic take (seed {data['synthetic_seed']}), {data['frames']} frames x {data['views']} views",
        f"{report['seconds']:.1f} s, {report['frames_per_second']:.2f} frames/s (one torch thread)",
        f"{'mean distance, mm':28s}" + "".join(f" {part:>11s}" for part in skeleton.PARTS),
    ]
    for key, label in (("error_to_refined_mm", "fitted - refined"), ("error_to_truth_mm", "fitted - truth"), ("refined_error_to_truth_mm", "refined - truth")):
        lines.append(f"{label:28s}" + "".join(f" {value:11.1f}" if value is not None else f" {'-':>11s}" for value in report[key].values()))
    return "\n".join(lines)
