"""Triangulation benchmark: our plain and RANSAC paths beside aniposelib, same data, same process.

Data: a GoPro-like rig of fisheye cameras around a person-sized volume, 59 joints per
frame, detector-like observations (2 px noise, 10 % dropped, 15 % gross outliers of
40-300 px). Reported per method: throughput (frames/s of 59 joints, joints/s; from the
best wall time and, ``cpu_*``, the best process CPU time of the runs, steadier on a shared
machine) and the 3D error against the truth (mean and median, millimetres) on the points it returned.
aniposelib's RANSAC takes tens of milliseconds per point, so it runs on a subset of
the points (``peer_ransac_points``) and its rate is scaled from that subset.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass

import numpy as np

from fitting.skeleton import NUM_JOINTS
from triangulation.synthetic import observe, random_points, ring_of_cameras
from triangulation.triangulate import triangulate
from workflow.benchmarks.common import aniposelib_group, machine_info


@dataclass(frozen=True)
class MethodResult:
    points: int  # joints triangulated in the timed run
    seconds: float
    joints_per_s: float
    frames_per_s: float  # frames of 59 joints
    mean_error_mm: float
    median_error_mm: float
    missing_fraction: float  # points the method returned as NaN
    cpu_seconds: float | None = None  # process CPU time of the same best run (steadier on a shared machine)
    cpu_joints_per_s: float | None = None


def _result(points: np.ndarray, truth: np.ndarray, seconds: float, cpu_seconds: float | None = None) -> MethodResult:
    """Throughput and error of ``points (N, 3)`` computed in ``seconds`` (wall; ``cpu_seconds``
    of process CPU time) against ``truth (N, 3)``."""
    error = np.linalg.norm(points - truth, axis=-1) * 1000.0
    finite = np.isfinite(error)
    count = truth.shape[0]
    return MethodResult(
        points=count,
        seconds=seconds,
        joints_per_s=count / seconds,
        frames_per_s=count / seconds / NUM_JOINTS,
        mean_error_mm=float(np.mean(error[finite])) if finite.any() else float("nan"),
        median_error_mm=float(np.median(error[finite])) if finite.any() else float("nan"),
        missing_fraction=float(1.0 - finite.mean()),
        cpu_seconds=cpu_seconds,
        cpu_joints_per_s=None if cpu_seconds is None else count / cpu_seconds,
    )


def _measure(function, truth: np.ndarray, repeats: int) -> tuple[MethodResult, np.ndarray]:
    """Best wall time and best process CPU time of ``repeats`` runs of ``function() -> points
    (N, 3)``, and the points."""
    best, best_cpu, points = np.inf, np.inf, None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        points = function()
        best, best_cpu = min(best, time.perf_counter() - start), min(best_cpu, time.process_time() - start_cpu)
    return _result(points, truth, best, best_cpu), points


def run(frames: int = 400, views: int = 5, peer_ransac_points: int = 60, repeats: int = 3, seed: int = 0) -> dict:
    """Run the benchmark and return a JSON-ready dict."""
    cameras = ring_of_cameras(views, model="fisheye", seed=seed)
    truth = random_points(frames, NUM_JOINTS, seed=seed + 1)
    keypoints, _ = observe(cameras, truth, noise_px=2.0, drop_rate=0.1, outlier_rate=0.15, seed=seed + 2)
    flat_truth = truth.reshape(-1, 3)
    settings = dict(min_confidence=0.0, threshold_px=30.0, huber_px=5.0, min_ray_angle_deg=0.0)

    triangulate(cameras, keypoints[:, :2], **settings)  # warm-up (imports, caches)
    results, ours = {}, {}
    for name, ransac, refine_iterations in (("ours_plain", False, 0), ("ours_ransac", True, 1)):
        results[name], ours[name] = _measure(
            lambda ransac=ransac, refine_iterations=refine_iterations: triangulate(
                cameras, keypoints, ransac=ransac, refine_iterations=refine_iterations, **settings
            ).points.reshape(-1, 3),
            flat_truth,
            repeats,
        )
    peer_error = None
    try:
        group = aniposelib_group(cameras)
        pixels = keypoints[..., :2].reshape(views, -1, 2).astype(np.float64)
        group.triangulate(pixels[:, :10])  # warm-up: JIT compilation
        results["aniposelib_triangulate"], _ = _measure(lambda: group.triangulate(pixels), flat_truth, repeats)
        subset = min(peer_ransac_points, pixels.shape[1])
        results["aniposelib_triangulate_ransac"], _ = _measure(lambda: group.triangulate_ransac(pixels[:, :subset], min_cams=2)[0], flat_truth[:subset], 1)
        # Our RANSAC's error on the very points the peer's RANSAC had (its speed is the full run's).
        on_subset = _result(ours["ours_ransac"][:subset], flat_truth[:subset], results["ours_ransac"].seconds)
        results["ours_ransac_on_peer_ransac_points"] = dataclasses.replace(
            on_subset,
            joints_per_s=results["ours_ransac"].joints_per_s,
            frames_per_s=results["ours_ransac"].frames_per_s,
            cpu_seconds=results["ours_ransac"].cpu_seconds,
            cpu_joints_per_s=results["ours_ransac"].cpu_joints_per_s,
        )
    except ImportError as error:
        peer_error = f"aniposelib not available: {error} (install the bench extra and requirements-nodeps.txt)"

    def ratio(a: str, b: str, key: str = "joints_per_s") -> float | None:
        if a in results and b in results and getattr(results[a], key) and getattr(results[b], key):
            return getattr(results[a], key) / getattr(results[b], key)
        return None

    return {
        "benchmark": "triangulation",
        "machine": machine_info(),
        "data": {
            "frames": frames,
            "joints": NUM_JOINTS,
            "views": views,
            "camera_model": "fisheye",
            "noise_px": 2.0,
            "dropped": 0.1,
            "outliers": 0.15,
            "peer_ransac_points": min(peer_ransac_points, frames * NUM_JOINTS),
        },
        "methods": {name: asdict(result) for name, result in results.items()},
        "speedup": {
            "ours_plain_vs_aniposelib_triangulate": ratio("ours_plain", "aniposelib_triangulate"),
            "ours_ransac_vs_aniposelib_triangulate": ratio("ours_ransac", "aniposelib_triangulate"),
            "ours_ransac_vs_aniposelib_triangulate_ransac": ratio("ours_ransac", "aniposelib_triangulate_ransac"),
            "ours_plain_vs_aniposelib_triangulate_cpu": ratio("ours_plain", "aniposelib_triangulate", "cpu_joints_per_s"),
            "ours_ransac_vs_aniposelib_triangulate_cpu": ratio("ours_ransac", "aniposelib_triangulate", "cpu_joints_per_s"),
        },
        "peer_error": peer_error,
    }


def format_table(report: dict) -> str:
    """A readable summary of :func:`run`'s report."""
    lines = [
        f"triangulation: {report['data']['frames']} frames x {report['data']['joints']} joints x "
        f"{report['data']['views']} views (fisheye), 2 px noise, 10 % dropped, 15 % outliers",
        f"{'method':32s} {'frames/s':>10s} {'joints/s':>12s} {'mean mm':>9s} {'median mm':>10s} {'missing':>8s}",
    ]
    for name, result in report["methods"].items():
        lines.append(
            f"{name:32s} {result['frames_per_s']:10.1f} {result['joints_per_s']:12.0f} "
            f"{result['mean_error_mm']:9.2f} {result['median_error_mm']:10.2f} {result['missing_fraction']:8.3f}"
        )
    for name, value in report["speedup"].items():
        if value is not None:
            lines.append(f"speed-up {name}: {value:.1f}x")
    if report["peer_error"]:
        lines.append(report["peer_error"])
    return "\n".join(lines)
