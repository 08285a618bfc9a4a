"""Calibration-check benchmark: our per-camera adjustment beside aniposelib's ``bundle_adjust_iter``, same observations.

Data: synthetic takes (GoPro-like fisheye exo cameras, a walking, bending person,
detector-like 2D observations with noise, misses, outliers and swaps) whose written
calibration is wrong on purpose (:mod:`workflow.synth.perturbation`): one camera
rotated 1 degree and moved 3 cm, one camera's frames 1.5 frames late, and none. Each is
triangulated on the written rig with the default settings, then
:func:`triangulation.rig_check.check_rig` runs with configs/default.yaml's
``calibrate_check`` settings on the joints the stage gives it (the body's by default).

Reported per case: seconds (best of ``repeats``), seconds per 1,000 frames x views, the
estimated correction's error against the truth (degrees, mm of the camera centre,
frames), what would be applied. Peer: aniposelib's ``CameraGroup.bundle_adjust_iter``
(anipose's calibration refinement: extrinsics only, every camera free, its own sampling
and outlier schedule) on the same confident observations of the rotated-and-moved case
(its plain ``bundle_adjust`` with a Huber loss stopped on its ``ftol`` with the cameras
unchanged); its result is brought into the
true world by the similarity that best maps the other cameras' centres (Umeyama), and
its errors are measured the same way.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

from pipeline.config import load_config
from stages.calibrate_check import checked_joints
from triangulation.cameras import Camera
from triangulation.rig_check import check_rig
from triangulation.triangulate import triangulate
from workflow.benchmarks.common import aniposelib_group, machine_info, quiet_logger
from workflow.synth.perturbation import RigPerturbation
from workflow.synth.rig import RigConfig
from workflow.synth.take_writer import SynthConfig, generate_take

CASES = {
    "rotated_1deg_moved_3cm": RigPerturbation(camera="cam02", rotation_deg=1.0, translation_m=0.03),
    "shifted_1.5_frames": RigPerturbation(time_shift_camera="cam03", time_shift_frames=1.5),
    "unperturbed": RigPerturbation(),
}


def rotation_angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Angle of ``R_a R_b^T`` in degrees (two ``(3, 3)`` rotations)."""
    cosine = (np.trace(R_a @ R_b.T) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def _errors(estimated: Camera | tuple, true: Camera) -> dict:
    R, center = (estimated.R, estimated.center) if isinstance(estimated, Camera) else estimated
    return {"rotation_error_deg": rotation_angle_deg(R, true.R), "center_error_mm": float(1000.0 * np.linalg.norm(center - true.center))}


def similarity(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama: ``scale, R (3, 3), t (3,)`` minimising ``|target - (scale R source + t)|``
    over points ``(N, 3)`` (N >= 3, not collinear)."""
    mean_s, mean_t = source.mean(axis=0), target.mean(axis=0)
    a, b = source - mean_s, target - mean_t
    U, S, Vt = np.linalg.svd(b.T @ a / len(source))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    scale = float(np.trace(np.diag(S) @ D) / (a**2).sum(axis=1).mean())
    return scale, R, mean_t - scale * R @ mean_s


def _peer(written: list[Camera], true: list[Camera], keypoints: np.ndarray, perturbed: int, settings) -> dict:
    """aniposelib's iterative bundle adjustment (what anipose's calibration runs; extrinsics
    only, its default sampling and outlier schedule) on the same confident observations
    (seen by ``min_views`` views), measured as ours."""
    confident = np.isfinite(keypoints).all(-1) & (keypoints[..., 2] >= settings.min_confidence)
    frames, joints = np.nonzero(confident.sum(axis=0) >= settings.min_views)
    pixels = np.where(confident[:, frames, joints, None], keypoints[:, frames, joints, :2], np.nan).astype(np.float64)
    group = aniposelib_group(written)
    with warnings.catch_warnings(), quiet_logger("numba"):
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        group.bundle_adjust_iter(pixels, only_extrinsics=True, verbose=False)
        seconds = time.perf_counter() - start
    adjusted = [camera.get_extrinsics_mat() for camera in group.cameras]
    rotations = [matrix[:3, :3] for matrix in adjusted]
    centers = np.array([-matrix[:3, :3].T @ matrix[:3, 3] for matrix in adjusted])
    others = [view for view in range(len(true)) if view != perturbed]
    scale, R_world, t_world = similarity(centers[others], np.array([true[view].center for view in others]))
    aligned = (rotations[perturbed] @ R_world.T, scale * R_world @ centers[perturbed] + t_world)
    return {"seconds": seconds, "samples": int(len(frames)), **_errors(aligned, true[perturbed])}


def _case(seed: int, frames: int, views: int, perturbation: RigPerturbation, config, repeats: int) -> tuple[dict, tuple | None]:
    """One synthetic take checked as the stage does: the case's numbers, and the peer's
    inputs when a camera's extrinsics are perturbed."""
    settings = config.calibrate_check
    take = generate_take(SynthConfig(seed=seed, num_frames=frames, rig=RigConfig(num_exo=views), perturbation=perturbation))
    written, true, keypoints = take.written_exo_cameras, take.exo_cameras, take.observations.keypoints
    points = triangulate(written, keypoints, **dataclasses.asdict(config.triangulation)).points
    used = checked_joints(settings)  # as the stage gives them
    keypoints, points = keypoints[:, :, used], points[:, used]
    best, check = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        check = check_rig(written, keypoints, points, take.config.fps, settings)
        best = min(best, time.perf_counter() - start)
    case = {
        "seconds": best,
        "seconds_per_1000_frame_views": best / (frames * views / 1000.0),
        "status": check.status,
        "would_apply": list(check.apply()),
        "samples": check.samples,
    }
    names = [camera.name for camera in written]
    peer_inputs = None
    if perturbation.camera is not None:
        view = names.index(perturbation.camera)
        estimated = check.cameras[view]
        case.update(_errors((estimated.R, -estimated.R.T @ estimated.t), true[view]))
        case["estimated_rotation_deg"], case["estimated_translation_mm"] = estimated.rotation_deg, estimated.translation_mm
        peer_inputs = (written, true, keypoints, view, settings)
    if perturbation.time_shift_camera is not None:
        view = names.index(perturbation.time_shift_camera)
        case["estimated_time_offset_frames"] = check.cameras[view].time_offset_frames
        case["time_offset_error_frames"] = abs(check.cameras[view].time_offset_frames - perturbation.time_shift_frames)
    case["largest_correction_elsewhere"] = {
        camera.name: {"rotation_deg": camera.rotation_deg, "translation_mm": camera.translation_mm, "time_offset_frames": camera.time_offset_frames}
        for camera in check.cameras
        if camera.name not in (perturbation.camera, perturbation.time_shift_camera)
    }
    return case, peer_inputs


def run(frames: int = 600, views: int = 4, repeats: int = 2, seed: int = 5, more_seeds: tuple[int, ...] = ()) -> dict:
    """Run the benchmark and return a JSON-ready dict; ``more_seeds``: the three cases again
    on these seeds (accuracy only, one call each)."""
    config = load_config()
    cases = {}
    peer, peer_error = None, None
    for name, perturbation in CASES.items():
        cases[name], peer_inputs = _case(seed, frames, views, perturbation, config, repeats)
        if peer_inputs is not None:
            try:
                peer = _peer(*peer_inputs)
            except ImportError as error:
                peer_error = f"aniposelib not available: {error} (install the bench extra and requirements-nodeps.txt)"
    seeds = {str(other): {name: _case(other, frames, views, perturbation, config, 1)[0] for name, perturbation in CASES.items()} for other in more_seeds}
    return {
        "benchmark": "calibrate",
        "machine": machine_info(),
        "data": {"synthetic_seed": seed, "frames": frames, "views": views, "camera_model": "fisheye", "repeats": repeats},
        "cases": cases,
        "more_seeds": seeds,
        "aniposelib_bundle_adjust_iter": peer,
        "speedup_vs_aniposelib": None if peer is None else peer["seconds"] / cases["rotated_1deg_moved_3cm"]["seconds"],
        "peer_error": peer_error,
    }


def format_table(report: dict) -> str:
    """A readable summary of :func:`run`'s report."""
    data = report["data"]
    lines = [
        f"calibrate: synthetic takes (seed {data['synthetic_seed']}), {data['frames']} frames x {data['views']} fisheye views",
        f"{'case':26s} {'s':>6s} {'s/1000 fxv':>10s} {'rot err deg':>11s} {'centre err mm':>13s} {'time err fr':>11s}  would apply",
    ]

    def cell(value, width, digits):
        return f" {value:{width}.{digits}f}" if value is not None else f" {'-':>{width}s}"

    for name, case in report["cases"].items():
        lines.append(
            f"{name:26s}{cell(case['seconds'], 6, 2)}{cell(case['seconds_per_1000_frame_views'], 10, 2)}"
            f"{cell(case.get('rotation_error_deg'), 11, 3)}{cell(case.get('center_error_mm'), 13, 2)}"
            f"{cell(case.get('time_offset_error_frames'), 11, 3)}  {', '.join(case['would_apply']) or 'nothing'}"
        )
    for other, cases in report["more_seeds"].items():
        moved, shifted, unperturbed = (cases[name] for name in CASES)
        lines.append(
            f"seed {other}: rotated {moved['rotation_error_deg']:.3f} deg, {moved['center_error_mm']:.2f} mm (applies {', '.join(moved['would_apply']) or 'nothing'}); "
            f"shifted {shifted['estimated_time_offset_frames']:.3f} frames (applies {', '.join(shifted['would_apply']) or 'nothing'}); "
            f"unperturbed applies {', '.join(unperturbed['would_apply']) or 'nothing'}"
        )
    peer = report["aniposelib_bundle_adjust_iter"]
    if peer is not None:
        lines.append(
            f"{'aniposelib bundle_adjust_iter':26s}{cell(peer['seconds'], 6, 2)}{'':11s}{cell(peer['rotation_error_deg'], 11, 3)}"
            f"{cell(peer['center_error_mm'], 13, 2)}{'':12s}  (rotated case, {peer['samples']} points given)"
        )
        lines.append(f"speed-up vs aniposelib bundle_adjust_iter: {report['speedup_vs_aniposelib']:.1f}x")
    if report["peer_error"]:
        lines.append(report["peer_error"])
    return "\n".join(lines)
