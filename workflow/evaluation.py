"""``evaluate``: compare a take's 3D output with ground truth (a synthetic take's ``gt/``).

Metrics per part (body, left_hand, right_hand), all in millimetres unless said:
MPJPE, PA-MPJPE (per-frame similarity alignment of the part), per-joint MPJPE,
completeness (share of true joints reconstructed), bone-length variation (mean over
bones of the coefficient of variation over time, %), bone-length error (median
length against the true length), jitter (mean acceleration, m/s^2) beside the truth's.

With the truth's exo visibility (``gt/visibility.npz`` of a rendered take), the
``hands_seen`` section gives each hand's MPJPE, PA-MPJPE and completeness over the frames
where at least two exo views see it (the frames a multi-view method can be asked for).

With a take output's ``project_ego/projections.npz`` and the truth's ego camera
(``gt/ego_camera.npz``, ``gt/ego_2d.npz``), the ``ego`` section adds: the error of the ego
camera centre (mm) and orientation (degrees) the take reader made (from the raw Aria
inputs: the interpolation error), and the 2D error of the labels in the ego view (px)
in the raw fisheye frame and the undistorted frame, per part, over joints visible in
both the truth and the labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fitting import metrics
from fitting.skeleton import BONES, JOINT_NAMES, PARTS
from pipeline.atomic import load_npz

# Stage outputs that hold 3D joints, best first.
PREDICTION_STAGES = ("refine", "triangulate")


def find_prediction(path: str | Path) -> Path:
    """The 3D joints file of a take output folder (latest stage first) or the npz itself."""
    path = Path(path)
    if path.is_file():
        return path
    for stage in PREDICTION_STAGES:
        candidate = path / stage / "joints_3d.npz"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{path}: no joints_3d.npz in {', '.join(PREDICTION_STAGES)} (run the pipeline first)")


def find_truth(path: str | Path) -> Path:
    """``gt/joints_3d.npz`` of a synthetic take folder, its gt folder, or the file itself."""
    path = Path(path)
    for candidate in (path, path / "joints_3d.npz", path / "gt" / "joints_3d.npz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{path}: no ground truth joints_3d.npz (expected gt/joints_3d.npz of a synthetic take)")


def _part_bones(part: slice) -> list[tuple[int, int]]:
    return [bone for bone in BONES if part.start <= bone[0] < part.stop and part.start <= bone[1] < part.stop]


def evaluate_arrays(predicted: np.ndarray, truth: np.ndarray, fps: float, true_bone_lengths: np.ndarray | None = None) -> dict:
    """Metrics of ``predicted`` against ``truth``, both ``(frames, 59, 3)`` metres."""
    if predicted.shape != truth.shape:
        raise ValueError(f"prediction {predicted.shape} and truth {truth.shape} differ in shape")
    errors = metrics.joint_errors(predicted, truth)
    report = {"frames": int(truth.shape[0]), "fps": float(fps), "parts": {}}
    for part, joints in PARTS.items():
        part_errors = errors[:, joints]
        aligned = metrics.procrustes_aligned(predicted[:, joints], truth[:, joints])
        pa_errors = metrics.joint_errors(aligned, truth[:, joints])
        bones = _part_bones(joints)
        local_bones = np.asarray(bones) - joints.start
        lengths = metrics.bone_length_series(predicted[:, joints], local_bones)
        entry = {
            "mpjpe_mm": _nanmean(part_errors),
            "median_error_mm": _nanmedian(part_errors),
            "pa_mpjpe_mm": _nanmean(pa_errors),
            "completeness": metrics.completeness(predicted[:, joints], truth[:, joints]),
            "bone_length_cv_percent": 100.0 * _nanmean(metrics.bone_length_variation(predicted[:, joints], local_bones)),
            "jitter_m_s2": metrics.jitter(predicted[:, joints], fps),
            "truth_jitter_m_s2": metrics.jitter(truth[:, joints], fps),
            "per_joint_mpjpe_mm": {JOINT_NAMES[j]: _nanmean(errors[:, j]) for j in range(joints.start, joints.stop)},
        }
        if true_bone_lengths is not None:
            index = [BONES.index(bone) for bone in bones]
            with np.errstate(all="ignore"):
                median = np.array([_nanmedian(lengths[:, k]) for k in range(len(bones))])
            entry["bone_length_error_mm"] = _nanmean(np.abs(median - true_bone_lengths[index] * 1000.0))
        report["parts"][part] = entry
    return report


def _ego_errors(projections: dict, truth_2d: dict, truth_camera: dict) -> dict:
    """The ``ego`` section of :func:`evaluate` (see the module docstring)."""
    from triangulation.visibility import VISIBLE

    frames = min(len(projections["ego_R"]), len(truth_camera["R"]))
    R, t = projections["ego_R"][:frames], projections["ego_t"][:frames]
    true_R, true_t = truth_camera["R"][:frames], truth_camera["t"][:frames]
    centres = -np.einsum("fji,fj->fi", R, t)
    true_centres = -np.einsum("fji,fj->fi", true_R, true_t)
    centre_error = np.linalg.norm(centres - true_centres, axis=1) * 1000.0
    cosine = (np.trace(np.swapaxes(R, 1, 2) @ true_R, axis1=1, axis2=2) - 1.0) / 2.0
    with np.errstate(invalid="ignore"):
        angle_error = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    report = {
        "frames_with_pose": int(np.isfinite(centre_error).sum()),
        "frames": frames,
        "camera_centre_error_mm": {"mean": _nanmean(centre_error), "max": float(np.nanmax(centre_error)) if np.isfinite(centre_error).any() else float("nan")},
        "camera_rotation_error_deg": {"mean": _nanmean(angle_error), "max": float(np.nanmax(angle_error)) if np.isfinite(angle_error).any() else float("nan")},
    }
    for frame_name, pixels_key, codes_key, truth_pixels, truth_visible in (
        ("raw_fisheye", "ego_pixels", "ego_visibility", "pixels", "in_image"),
        ("undistorted", "ego_undistorted_pixels", "ego_undistorted_visibility", "undistorted_pixels", "undistorted_in_image"),
    ):
        both = (projections[codes_key][:frames] == VISIBLE) & truth_2d[truth_visible][:frames]
        errors = np.linalg.norm(projections[pixels_key][:frames] - truth_2d[truth_pixels][:frames], axis=-1)
        report[f"{frame_name}_2d_error_px"] = {
            part: {
                "mean": _nanmean(errors[:, joints][both[:, joints]]),
                "median": _nanmedian(errors[:, joints][both[:, joints]]),
                "joints": int(both[:, joints].sum()),
            }
            for part, joints in PARTS.items()
        }
    return report


def evaluate_hands_2d(keypoints: np.ndarray, pixels: np.ndarray, hand_visible: np.ndarray, min_confidence: float) -> dict:
    """Detected 2D hands against the truth of a rendered take, per hand and both together.

    ``keypoints (views, frames, 59, 3)`` detections, ``pixels (views, frames, 59, 2)`` true
    projections, ``hand_visible (views, frames, 2)`` the truth's visible hands. Among the
    visible hand views: ``coverage`` (share with a detected hand), ``coverage_confident``
    (with confidence >= ``min_confidence``, what triangulation uses), the median and 90th
    percentile 2D error (px) over the joints of the hands found, and the share of found
    hands whose median joint error exceeds 10 px; ``found_not_visible``: hands reported
    where the truth sees none.
    """
    report = {}
    found_all, confident_all, errors_all = [], [], []
    for side, part in enumerate(("left_hand", "right_hand")):
        joints = PARTS[part]
        hands = np.asarray(keypoints[:, :, joints], dtype=np.float64)
        found = np.isfinite(hands[..., :2]).all(axis=(-1, -2))
        confident = found & (np.nan_to_num(hands[..., 0, 2]) >= min_confidence)
        errors = np.linalg.norm(hands[..., :2] - pixels[:, :, joints], axis=-1)  # (V, F, 21)
        visible = np.asarray(hand_visible[..., side], dtype=bool)
        hit = visible & found
        per_hand = np.median(errors[hit], axis=-1) if hit.any() else np.zeros(0)
        report[part] = {
            "visible_views": int(visible.sum()),
            "coverage": float(found[visible].mean()) if visible.any() else float("nan"),
            "coverage_confident": float(confident[visible].mean()) if visible.any() else float("nan"),
            "median_error_px": _nanmedian(errors[hit]),
            "p90_error_px": float(np.percentile(errors[hit], 90)) if hit.any() else float("nan"),
            "wrong_hands": float((per_hand > 10.0).mean()) if per_hand.size else float("nan"),
            "found_not_visible": int((found & ~visible).sum()),
        }
        found_all.append(found[visible])
        confident_all.append(confident[visible])
        errors_all.append(errors[hit].ravel())
    found_all, confident_all, errors_all = (np.concatenate(values) for values in (found_all, confident_all, errors_all))
    report["both"] = {
        "visible_views": int(found_all.size),
        "coverage": float(found_all.mean()) if found_all.size else float("nan"),
        "coverage_confident": float(confident_all.mean()) if confident_all.size else float("nan"),
        "median_error_px": _nanmedian(errors_all),
        "p90_error_px": float(np.percentile(errors_all, 90)) if errors_all.size else float("nan"),
    }
    return report


MIN_VIEWS_SEEN = 2  # a hand is asked for in the frames where at least this many exo views see it


def _hands_seen(predicted: np.ndarray, truth: np.ndarray, hand_visible: np.ndarray, fps: float) -> dict:
    """Per hand: MPJPE, PA-MPJPE, median error, completeness over the frames where at least
    :data:`MIN_VIEWS_SEEN` views see it (``hand_visible (views, frames, 2)``)."""
    report = {}
    for side, part in enumerate(("left_hand", "right_hand")):
        frames = hand_visible[:, : truth.shape[0], side].sum(axis=0) >= MIN_VIEWS_SEEN
        entry = {"frames": int(frames.sum()), "min_views": MIN_VIEWS_SEEN}
        if frames.any():
            metrics_of_part = evaluate_arrays(predicted[frames], truth[frames], fps)["parts"][part]
            entry.update({key: metrics_of_part[key] for key in ("mpjpe_mm", "median_error_mm", "pa_mpjpe_mm", "completeness")})
        report[part] = entry
    return report


def evaluate(prediction: str | Path, truth: str | Path) -> dict:
    """Metrics of a take output (or npz) against a synthetic take's ground truth."""
    prediction_path, truth_path = find_prediction(prediction), find_truth(truth)
    predicted = load_npz(prediction_path)
    true = load_npz(truth_path)
    for name, data, key in ((prediction_path, predicted, "points"), (truth_path, true, "joints_3d")):
        if key not in data:
            raise KeyError(f"{name}: no array {key!r} (has: {', '.join(data)})")
    report = evaluate_arrays(predicted["points"], true["joints_3d"], float(true.get("fps", 30.0)), true.get("bone_lengths"))
    report["prediction"] = str(prediction_path)
    report["truth"] = str(truth_path)
    visibility_path = truth_path.parent / "visibility.npz"
    if visibility_path.is_file():
        report["hands_seen"] = _hands_seen(predicted["points"], true["joints_3d"], load_npz(visibility_path)["hand_visible"], float(true.get("fps", 30.0)))
    projections = prediction_path.parent.parent / "project_ego" / "projections.npz"
    ego_files = [truth_path.parent / name for name in ("ego_2d.npz", "ego_camera.npz")]
    if projections.is_file() and all(path.is_file() for path in ego_files):
        arrays = load_npz(projections)
        if "ego_R" in arrays:
            report["ego"] = _ego_errors(arrays, load_npz(ego_files[0]), load_npz(ego_files[1]))
    return report


def format_report(report: dict) -> str:
    """A readable table of :func:`evaluate`'s report."""
    columns = [
        ("MPJPE", "mpjpe_mm", "{:8.1f}"),
        ("median", "median_error_mm", "{:8.1f}"),
        ("PA-MPJPE", "pa_mpjpe_mm", "{:9.1f}"),
        ("complete", "completeness", "{:9.3f}"),
        ("bone CV%", "bone_length_cv_percent", "{:9.2f}"),
        ("bone err", "bone_length_error_mm", "{:9.1f}"),
        ("jitter", "jitter_m_s2", "{:8.2f}"),
        ("true jit", "truth_jitter_m_s2", "{:9.2f}"),
    ]
    lines = [
        f"prediction: {report['prediction']}",
        f"truth:      {report['truth']}  ({report['frames']} frames; errors in mm, jitter in m/s^2)",
        f"{'part':11s}" + "".join(f"{title:>{len(fmt.format(0.0))}s}" for title, _, fmt in columns),
    ]
    for part, entry in report["parts"].items():
        cells = []
        for _, key, fmt in columns:
            value = entry.get(key)
            width = len(fmt.format(0.0))
            cells.append(fmt.format(value) if value is not None and np.isfinite(value) else f"{'-':>{width}s}")
        lines.append(f"{part:11s}" + "".join(cells))
    for part, entry in report.get("hands_seen", {}).items():
        if entry["frames"]:
            lines.append(
                f"{part} in the {entry['frames']} frames where >= {entry['min_views']} views see it: MPJPE "
                f"{entry['mpjpe_mm']:.1f}, PA-MPJPE {entry['pa_mpjpe_mm']:.1f} mm, completeness {entry['completeness']:.3f}"
            )
    ego = report.get("ego")
    if ego:
        lines.append(
            f"ego camera ({ego['frames_with_pose']}/{ego['frames']} frames with a pose): centre error mean "
            f"{ego['camera_centre_error_mm']['mean']:.4f} mm, max {ego['camera_centre_error_mm']['max']:.4f} mm; "
            f"rotation max {ego['camera_rotation_error_deg']['max']:.2e} deg"
        )
        for frame_name in ("raw_fisheye", "undistorted"):
            cells = ", ".join(f"{part} {entry['median']:.1f}" if entry["joints"] else f"{part} -" for part, entry in ego[f"{frame_name}_2d_error_px"].items())
            lines.append(f"ego-view 2D error of the labels, {frame_name.replace('_', ' ')} (median px): {cells}")
    worst = sorted(
        ((value, name) for entry in report["parts"].values() for name, value in entry["per_joint_mpjpe_mm"].items() if np.isfinite(value)),
        reverse=True,
    )[:5]
    if worst:
        lines.append("worst joints: " + ", ".join(f"{name} {value:.1f}" for value, name in worst))
    return "\n".join(lines)


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _nanmedian(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")
