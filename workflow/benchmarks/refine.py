"""Refine benchmark: our temporal refinement beside aniposelib's ``optim_points``, same input, same process.

Data: a synthetic take (GoPro-like fisheye exo cameras, a walking, bending person with
articulated hands, detector-like 2D observations: pixel noise, missed joints and hands,
gross outliers, left/right swaps), triangulated by our ``triangulate`` with the default
settings. Both methods start from that triangulation and the same 2D observations:

- ``ours``: the ``refine`` stage function with the default settings (outlier rejection,
  gap filling, smoothing, the bone-length-constrained spatio-temporal fit), on the whole
  take, and again on the peer's ``peer_frames`` frames alone (exactly the peer's input);
- ``aniposelib_optim_points``: ``CameraGroup.optim_points`` with all 59 bones as
  constraints, the 2D confidences as scores and its default weights, on ``peer_frames``
  consecutive frames, by default centred in the take (its finite-difference Jacobian makes
  it tens of milliseconds per frame of 59 joints, and its first call compiles with numba).

Reported per method: seconds per frame, wall and process CPU, the best of ``repeats`` calls
for ours and the peer alike (aniposelib: its calls after the first on the same data, and
its first call, which includes numba's compilation), and per part (body, left hand, right hand) on
the peer's frames: MPJPE against the truth (mm), bone-length variation (mean over bones
of the coefficient of variation over time, %) and completeness.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

from fitting import metrics, skeleton
from pipeline.config import load_config
from triangulation.triangulate import triangulate
from workflow.benchmarks.common import aniposelib_group, machine_info, quiet_logger
from workflow.synth.rig import RigConfig
from workflow.synth.take_writer import SynthConfig, generate_take


def _part_scores(points: np.ndarray, truth: np.ndarray) -> dict:
    scores = {}
    for part, joints in skeleton.PARTS.items():
        bones = np.array([(a, b) for a, b in skeleton.BONES if joints.start <= a < joints.stop]) - joints.start
        errors = metrics.joint_errors(points[:, joints], truth[:, joints])
        variation = metrics.bone_length_variation(points[:, joints], bones)
        scores[part] = {
            "mpjpe_mm": float(np.nanmean(errors)) if np.isfinite(errors).any() else None,
            "bone_length_cv_percent": float(100.0 * np.nanmean(variation)) if np.isfinite(variation).any() else None,
            "completeness": metrics.completeness(points[:, joints], truth[:, joints]),
        }
    return scores


def _timed(function, repeats: int):
    """``function()``'s result, its best wall time and its best process CPU time (s) over
    ``repeats`` calls. CPU time is the steadier of the two on a shared machine (a pinned
    process waiting for its core does not count); both are reported."""
    best, best_cpu, result = np.inf, np.inf, None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function()
        best, best_cpu = min(best, time.perf_counter() - start), min(best_cpu, time.process_time() - start_cpu)
    return result, best, best_cpu


def _peer_input(keypoints: np.ndarray, points: np.ndarray, min_confidence: float):
    """aniposelib's inputs: pixels ``(C, N, J, 2)`` (NaN: missing or not confident), scores
    ``(C, N, J)`` and start points ``(N, J, 3)`` (its own interpolation fills the gaps;
    joints never triangulated start at the mean of the others)."""
    confident = np.isfinite(keypoints).all(-1) & (keypoints[..., 2] >= min_confidence)
    pixels = np.where(confident[..., None], keypoints[..., :2], np.nan).astype(np.float64)
    scores = np.where(confident, keypoints[..., 2], 0.0).astype(np.float64)
    start = points.copy()
    never = ~np.isfinite(start).all(-1).any(axis=0)
    start[:, never] = np.nanmean(start.reshape(-1, 3), axis=0)
    return pixels, scores, start


def run(frames: int = 300, views: int = 5, peer_frames: int = 20, peer_start: int | None = None, repeats: int = 2, seed: int = 11) -> dict:
    """Run the benchmark and return a JSON-ready dict; the peer's frames start at
    ``peer_start`` (default: centred in the take, away from its ends)."""
    from fitting.refine import refine

    config = load_config()
    settings = config.refine
    synth = SynthConfig(seed=seed, num_frames=frames, rig=RigConfig(num_exo=views))
    take = generate_take(synth)
    cameras, keypoints, truth, fps = take.exo_cameras, take.observations.keypoints, take.motion.joints, synth.fps
    raw = triangulate(cameras, keypoints, **dataclasses.asdict(config.triangulation))
    peer_frames = min(peer_frames, frames)
    peer_start = (frames - peer_frames) // 2 if peer_start is None else min(max(peer_start, 0), frames - peer_frames)
    subset = slice(peer_start, peer_start + peer_frames)

    refine(cameras, keypoints[:, :20], raw.points[:20], raw.inliers[:, :20], fps, settings)  # warm-up (imports)
    full, full_seconds, full_cpu = _timed(lambda: refine(cameras, keypoints, raw.points, raw.inliers, fps, settings), repeats)
    alone, alone_seconds, alone_cpu = _timed(lambda: refine(cameras, keypoints[:, subset], raw.points[subset], raw.inliers[:, subset], fps, settings), repeats)
    methods = {
        "triangulation": {"seconds_per_frame": None, "frames": peer_frames, "parts": _part_scores(raw.points[subset], truth[subset])},
        "ours_whole_take": {
            "seconds_per_frame": full_seconds / frames,
            "cpu_seconds_per_frame": full_cpu / frames,
            "frames": frames,
            "parts": _part_scores(full.points[subset], truth[subset]),
            "parts_whole_take": _part_scores(full.points, truth),
        },
        "ours_peer_frames": {
            "seconds_per_frame": alone_seconds / peer_frames,
            "cpu_seconds_per_frame": alone_cpu / peer_frames,
            "frames": peer_frames,
            "parts": _part_scores(alone.points, truth[subset]),
        },
    }
    peer_error = None
    try:
        group = aniposelib_group(cameras)
        pixels, scores, start = _peer_input(keypoints[:, subset], raw.points[subset], settings.fit.min_confidence)
        bones = [list(bone) for bone in skeleton.BONES]
        with warnings.catch_warnings(), quiet_logger("numba"):
            warnings.simplefilter("ignore")  # numba's object-mode fallback warnings
            begin = time.perf_counter()
            group.optim_points(pixels, start, constraints=bones, scores=scores)  # first call: numba compiles
            first_seconds = time.perf_counter() - begin
            optimised, seconds, cpu = _timed(lambda: group.optim_points(pixels, start, constraints=bones, scores=scores), repeats)
        methods["aniposelib_optim_points"] = {
            "seconds_per_frame": seconds / peer_frames,
            "cpu_seconds_per_frame": cpu / peer_frames,
            "first_call_seconds_per_frame": first_seconds / peer_frames,
            "frames": peer_frames,
            "parts": _part_scores(optimised, truth[subset]),
        }
    except ImportError as error:
        peer_error = f"aniposelib not available: {error} (install the bench extra and requirements-nodeps.txt)"

    def speedup(ours: str, key: str = "seconds_per_frame", own_key: str = "seconds_per_frame") -> float | None:
        peer = methods.get("aniposelib_optim_points")
        return None if peer is None else peer[key] / methods[ours][own_key]

    return {
        "benchmark": "refine",
        "machine": machine_info(),
        "data": {
            "synthetic_seed": seed,
            "frames": frames,
            "peer_frames": peer_frames,
            "peer_start": peer_start,
            "joints": skeleton.NUM_JOINTS,
            "bones": len(skeleton.BONES),
            "views": views,
            "fps": fps,
            "camera_model": "fisheye",
        },
        "methods": methods,
        "speedup": {
            "ours_whole_take_vs_aniposelib": speedup("ours_whole_take"),
            "ours_peer_frames_vs_aniposelib": speedup("ours_peer_frames"),
            "ours_whole_take_vs_aniposelib_first_call": speedup("ours_whole_take", "first_call_seconds_per_frame"),
            "ours_whole_take_vs_aniposelib_cpu": speedup("ours_whole_take", "cpu_seconds_per_frame", "cpu_seconds_per_frame"),
            "ours_peer_frames_vs_aniposelib_cpu": speedup("ours_peer_frames", "cpu_seconds_per_frame", "cpu_seconds_per_frame"),
        },
        "peer_error": peer_error,
    }


def format_table(report: dict) -> str:
    """A readable summary of :func:`run`'s report."""
    data = report["data"]
    lines = [
        f"refine: synthetic take (seed {data['synthetic_seed']}), {data['frames']} frames x {data['joints']} joints "
        f"x {data['views']} fisheye views; errors on frames {data['peer_start']}-{data['peer_start'] + data['peer_frames'] - 1} (the peer's)",
        f"{'method':26s} {'ms/frame':>9s}" + "".join(f" {part + ' mm':>15s} {'CV %':>6s}" for part in skeleton.PARTS),
    ]
    for name, method in report["methods"].items():
        seconds = method["seconds_per_frame"]
        cells = f"{name:26s} {(f'{1000 * seconds:9.1f}' if seconds is not None else '        -')}"
        for part in skeleton.PARTS:
            entry = method["parts"][part]
            mpjpe, variation = entry["mpjpe_mm"], entry["bone_length_cv_percent"]
            cells += f" {mpjpe:15.1f}" if mpjpe is not None else f" {'-':>15s}"
            cells += f" {variation:6.2f}" if variation is not None else f" {'-':>6s}"
        lines.append(cells)
    for name, value in report["speedup"].items():
        if value is not None:
            lines.append(f"speed-up {name}: {value:.0f}x")
    if report["peer_error"]:
        lines.append(report["peer_error"])
    return "\n".join(lines)
