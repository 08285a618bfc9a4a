"""Stage ``qa``: what a reviewer looks at to judge a take's labels in seconds.

Reads ``detect/keypoints_2d.npz``, ``triangulate/joints_3d.npz``, ``refine/joints_3d.npz``,
``project_ego/projections.npz`` and the take's videos; config section ``qa``; writes:

- ``metrics.json``: the take's quality summary (:func:`fitting.quality.take_metrics`,
  plus the ego camera's pose coverage), which a batch ranks by ``quality_score``;
- ``flags.npz``: the flags per frame, part and reason with their evidence (value,
  threshold, camera; :func:`fitting.quality.quality_flags`), both written by
  :mod:`pipeline.formats.qa`; ``metrics.json`` lists every flagged frame per part and
  reason with its evidence and every flagged stretch with its culprit camera;
- ``report.html``: the take report (:mod:`stages.qa.report`);
- ``overlay_<camera>.mp4`` per view and ``overlay_mosaic.mp4`` (:mod:`stages.qa.overlay`);
- ``recording.rrd``: a 3D recording, when rerun-sdk is installed (:mod:`stages.qa.recording`).

When the optional ``fit_body_model`` stage ran, its per-joint error goes into the
metrics and the report, and its meshes into the recording. When ``calibrate_check`` ran,
its report (per camera: correction, uncertainty, reprojection before/after, applied or
would apply) goes into the metrics (``calibrate_check``) and the report; the 2D,
triangulation and rig are those it left (:func:`stages.rig.checked_rig`).

``run_pipeline.py report OUT/<take>`` runs this stage alone on the stored outputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fitting import skeleton
from fitting.quality import (
    PART_NAMES,
    LabelArrays,
    flag_stretches,
    quality_flags,
    stretch_culprits,
    stretch_summary,
    stretch_text,
    take_headline,
    take_metrics,
)
from pipeline.atomic import atomic_write_text
from pipeline.formats.arrays import load_arrays
from pipeline.formats.qa import write_flags, write_metrics
from pipeline.formats.rig_check import read_rig_check
from stages.base import StageContext, StageSpec
from stages.rig import CHECK_STAGE, CheckedRig, checked_rig
from triangulation.visibility import VISIBLE

if TYPE_CHECKING:
    from pipeline.config import QaConfig

logger = logging.getLogger(__name__)


def parse_frame_range(text: str | None, frames: int) -> tuple[int, int]:
    """``"start:stop"`` (either may be empty) or None -> ``(start, stop)`` within the take."""
    if not text:
        return 0, frames
    try:
        start_text, stop_text = str(text).split(":")
        start = int(start_text) if start_text.strip() else 0
        stop = int(stop_text) if stop_text.strip() else frames
    except ValueError:
        raise ValueError(f"qa.overlay_frames must be 'start:stop' (frames), got {text!r}") from None
    start, stop = max(0, start), min(frames, stop)
    if start >= stop:
        raise ValueError(f"qa.overlay_frames {text!r} selects no frame of the take's {frames}")
    return start, stop


def video_orientation(pixels: np.ndarray, image_size: tuple[int, int], orientation: str) -> np.ndarray:
    """Calibration-frame pixels ``(..., 2)`` in the ego video's orientation (``rotated_cw90``:
    the stored video is the sensor image turned 90 degrees clockwise, ``(x, y) -> (H - 1 - y, x)``)."""
    if orientation == "calibration":
        return pixels
    height = image_size[1]
    return np.stack([height - 1 - pixels[..., 1], pixels[..., 0]], axis=-1)


def raw_video_problem(camera) -> str | None:
    """Why the ego projections cannot be drawn on the ego video (None: they can).

    ``project_ego`` projects through the ego camera's own model. Only the raw Aria
    FISHEYE624 model with its image size puts the joints in the raw video's image; a
    released camera_pose.json gives the undistorted 512 x 512 pinhole, whose pixels
    would be drawn misplaced on the fisheye frames."""
    if camera.model.name != "fisheye624":
        return (
            f"ego camera '{camera.name}' has a {camera.model.name} model (a camera_pose.json's undistorted frame), "
            "not the raw Aria fisheye (fisheye624) of its video: its projections are not in the video's image"
        )
    if camera.image_size is None:
        return f"ego camera '{camera.name}' has no image size: its projections cannot be placed in the video's orientation"
    return None


# The report's 3D paths: a label and the joints whose mean it follows.
_TRAJECTORY_JOINTS = {"pelvis": ("left_hip", "right_hip"), "nose": ("nose",), "left wrist": ("left_wrist",), "right wrist": ("right_wrist",)}
_PROJECTIONS_USED = ("exo_pixels", "exo_visibility", "ego_pixels", "ego_visibility", "ego_R", "ego_t")


def _label_arrays(context: StageContext, rig: CheckedRig) -> tuple[LabelArrays, dict]:
    """The label arrays as stored (float32 stays float32: the take's arrays are what QA's
    memory grows with) and the projections QA uses; 2D and triangulation as the
    calibration check left them (``rig``)."""
    detections = load_arrays(rig.keypoints_2d, ("keypoints",))
    triangulated = load_arrays(rig.joints_3d, ("points",))
    refined = load_arrays(context.inputs["refine"].path("joints_3d"), ("points", "num_views", "inliers", "reprojection_error", "filled", "bone_lengths"))
    projections = load_arrays(context.inputs["project_ego"].path("projections"), ("exo_pixels", "exo_visibility"))
    projections = {name: projections[name] for name in _PROJECTIONS_USED if name in projections}
    arrays = LabelArrays(
        keypoints=detections["keypoints"],
        triangulated=triangulated["points"],
        points=refined["points"],
        projected=projections["exo_pixels"],
        num_views=refined["num_views"],
        inliers=refined["inliers"].astype(bool, copy=False),
        reprojection_error=refined["reprojection_error"],
        filled=refined["filled"].astype(bool, copy=False),
        bone_lengths=refined["bone_lengths"],
    )
    return arrays, projections


def _overlay_inputs(context: StageContext, arrays: LabelArrays, projections: dict, quality, stretches):
    from stages.qa.overlay import OverlayInputs

    take = context.take
    ego = take.ego_camera if "ego_pixels" in projections and raw_video_problem(take.ego_camera) is None else None
    ego_pixels = ego_visible = None
    if ego is not None:
        ego_pixels = video_orientation(projections["ego_pixels"], ego.image_size, take.ego_video_orientation)
        ego_visible = projections["ego_visibility"] == VISIBLE
    return OverlayInputs(
        exo_names=list(take.exo_names),
        exo_videos=[take.videos.get(name) for name in take.exo_names],
        exo_pixels=projections["exo_pixels"],
        exo_visible=projections["exo_visibility"] == VISIBLE,
        errors=np.where(np.isfinite(arrays.keypoints[..., 0]), arrays.reprojection_error, np.nan),
        keypoints=arrays.keypoints,
        ego_name=None if ego is None else ego.name,
        ego_video=None if ego is None else take.videos.get(ego.name),
        ego_pixels=ego_pixels,
        ego_visible=ego_visible,
        quality=quality,
        culprits=stretch_culprits(stretches, arrays.points.shape[0]),
    )


def _report_data(context: StageContext, take, arrays: LabelArrays, projections: dict, quality, metrics: dict, stretches, thumbnails, overlay_sets, settings):
    from stages.qa.report import ReportData

    bones = np.asarray(skeleton.BONES)
    trajectory = {label: arrays.points[:, [skeleton.JOINT_NAMES.index(name) for name in names]].mean(axis=1) for label, names in _TRAJECTORY_JOINTS.items()}
    ego_path = None
    if "ego_R" in projections:
        ego_path = -np.einsum("fji,fj->fi", projections["ego_R"], projections["ego_t"])
    return ReportData(
        take_name=take.name,
        fps=take.fps,
        metrics=metrics,
        camera_names=list(take.exo_names),
        quality=quality,
        points=arrays.points,
        present=np.isfinite(arrays.points).all(axis=-1),
        filled=arrays.filled,
        num_views=arrays.num_views,
        bone_lengths_before=skeleton.bone_lengths(arrays.triangulated, bones),
        bone_lengths_after=arrays.bone_lengths,
        trajectory=trajectory,
        cameras={camera.name: camera.center for camera in take.exo_cameras},
        ego_path=ego_path,
        stretches=stretches,
        thumbnails=thumbnails,
        overlay_sets=[(tuple(entry["frames"]), entry["files"]) for entry in overlay_sets],
        max_columns=settings.report_max_columns,
        max_rows=settings.report_max_rows,
        ramp_px=(settings.flags.reprojection_error_px, settings.error_bad_px),
    )


def _drawing_key(context: StageContext, settings: QaConfig) -> str:
    """What overlay videos show depends on: the input stages' results and the qa settings
    (but not which frames are drawn)."""
    drawn_with = {name: record.fingerprint for name, record in sorted(context.inputs.items())}
    drawn_with["qa"] = {key: value for key, value in dataclasses.asdict(settings).items() if key != "overlay_frames"}
    return hashlib.sha256(json.dumps(drawn_with, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def kept_overlay_sets(previous, drawing_key: str, frames_now: tuple[int, int], work: Path) -> list[dict]:
    """The overlay videos of the stage's previous output that show the same labels and
    settings over other frames, linked into ``work`` (a range drawn by ``report --frames``
    does not replace the whole take's overlays, nor other ranges)."""
    kept = []
    for entry in [] if previous is None else previous.manifest.get("summary", {}).get("overlay_sets", []):
        if entry.get("drawn_with") != drawing_key or tuple(entry["frames"]) == tuple(frames_now):
            continue
        sources = [previous.folder / name for name in entry["files"].values()]
        if all(path.is_file() for path in sources):
            for path in sources:
                _link_or_copy(path, work / path.name)
            kept.append(entry)
    return kept


def _overlays(context: StageContext, arrays: LabelArrays, projections: dict, quality, stretches, settings: QaConfig, wanted: list[tuple[int, int, int]]):
    """Draw the overlay videos of ``qa.overlay_frames`` (the whole take, or a range written
    under its own names beside the overlays kept from the last run) and the report's
    thumbnails: ``(overlay sets, thumbnails, stills for the recording, summary)``; a set is ``{frames: [start, stop],
    files: {view: file name}, drawn_with}``."""
    from stages.qa.overlay import render_overlays

    frames = arrays.points.shape[0]
    frame_range = parse_frame_range(settings.overlay_frames, frames)
    whole = frame_range == (0, frames)
    suffix = "" if whole else f"_frames{frame_range[0]}-{frame_range[1]}"
    key = _drawing_key(context, settings)
    overlays = render_overlays(
        _overlay_inputs(context, arrays, projections, quality, stretches),
        context.work if settings.overlay_videos else None,
        frame_range,
        context.take.fps,
        settings,
        wanted,
        suffix,
    )
    sets = []
    if overlays.files:
        sets.append(
            {
                "frames": list(frame_range),
                "files": {name[len("overlay_") : len(name) - len(suffix)]: path.name for name, path in overlays.files.items()},
                "drawn_with": key,
            }
        )
    if settings.overlay_videos and not whole:
        sets += kept_overlay_sets(context.previous, key, frame_range, context.work)
    summary = {
        "overlay_frames": overlays.frames,
        "overlay_sets": sets,
        "views_without_video": overlays.views_without_video,
        "video_decode_errors": overlays.decode_errors,
    }
    return sets, overlays.thumbnails, overlays.stills, summary


def _scene_points(context: StageContext, settings: QaConfig, summary: dict) -> np.ndarray | None:
    """The take's scene points for the recording (None: none, or a file that cannot be
    read: only the recording uses it, so QA warns, says so in ``summary`` and goes on)."""
    from pipeline.formats.aria import AriaFormatError, read_semidense_points

    path = context.take.scene_points
    if path is None:
        return None
    try:
        points = read_semidense_points(path, settings.scene_max_inv_dist_std, settings.scene_max_dist_std)
    except (AriaFormatError, OSError) as error:
        logger.warning("%s: qa: scene points left out of the recording: %s", context.take.name, error)
        summary["scene_points"] = f"left out: {error}"
        return None
    if len(points) > settings.recording_max_points:
        points = points[np.linspace(0, len(points) - 1, settings.recording_max_points).astype(int)]
    return points


def _body_meshes(record) -> list[tuple[int, Path]]:
    """``(frame, mesh file)`` of the body model stage's meshes (none when it wrote none)."""
    if record is None or "meshes" not in record.manifest.get("files", {}):
        return []
    index_path = record.path("meshes")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    return [(int(frame), index_path.parent.parent / name) for frame, name in zip(index["frames"], index["files"])]


def run_stage(context: StageContext) -> tuple[dict[str, str], dict]:
    rig = checked_rig(context)
    take = rig.take  # the exo rig as the calibration check left it
    settings = context.settings("qa")
    arrays, projections = _label_arrays(context, rig)
    quality = quality_flags(arrays, settings.flags)
    metrics = take_metrics(arrays, quality, list(take.exo_names), take.fps)
    check = context.inputs.get(CHECK_STAGE)
    if check is not None:
        metrics["calibrate_check"] = read_rig_check(check.path("report"))  # the check's report, as written
    # Exo videos whose size is not their calibration's, and what the take reader assumed.
    metrics["video_frames"] = {name: match.as_dict() for name, match in take.video_frames.items()}
    ego_summary = context.inputs["project_ego"].manifest.get("summary", {}).get("ego")
    if ego_summary:
        metrics["ego"] = {key: ego_summary[key] for key in ("camera", "pose_source", "frames_with_pose", "frames_without_pose")}
        problem = raw_video_problem(take.ego_camera)
        metrics["ego"]["video_overlay"] = "not drawn: " + problem if problem else "drawn on the raw video"
        if problem and (settings.overlay_videos or settings.report):
            logger.warning("%s: qa: the ego overlay is not drawn: %s", take.name, problem)
    body_model = context.inputs.get("fit_body_model")
    if body_model is not None:
        fit = body_model.manifest.get("summary", {})
        metrics["body_model"] = {key: fit.get(key) for key in ("model", "mean_error_mm", "median_error_mm", "joint_mean_error_mm")}
    stretches = flag_stretches(quality)
    metrics["stretches"] = [stretch_summary(stretch, list(take.exo_names)) for stretch in stretches]
    files = {"metrics": "metrics.json", "flags": "flags.npz"}
    write_metrics(context.work / "metrics.json", metrics)
    write_flags(context.work / "flags.npz", quality, take.exo_names)
    summary = {
        "quality_score": metrics["quality_score"],
        "flagged_frames": metrics["flagged_frames"],
        "flagged_frames_by_part": {part: metrics["parts"][part]["flagged_frames"] for part in PART_NAMES},
        "label_quality_percent_by_part": {part: metrics["parts"][part]["label_quality_percent"] for part in PART_NAMES},
        **take_headline(quality, stretches, list(take.exo_names)),
        "cameras_offset": metrics["cameras_offset"],
        "rig_check": {key: metrics["calibrate_check"][key] for key in ("status", "would_apply", "applied")} if "calibrate_check" in metrics else None,
        "ego_video_overlay": metrics.get("ego", {}).get("video_overlay"),
        "stretches": len(stretches),
    }
    wanted = [(stretch.worst_frame, stretch.part, stretch.view) for stretch in stretches[: settings.report_thumbnails]] if settings.report else []
    overlay_sets, thumbnails, stills = [], {}, {}
    if settings.overlay_videos or wanted:
        overlay_sets, thumbnails, stills, overlay_summary = _overlays(context, arrays, projections, quality, stretches, settings, wanted)
        summary.update(overlay_summary)
        files.update({Path(name).stem: name for entry in overlay_sets for name in entry["files"].values()})
    if settings.report:
        from stages.qa.report import render_report

        data = _report_data(context, take, arrays, projections, quality, metrics, stretches, thumbnails, overlay_sets, settings)
        atomic_write_text(context.work / "report.html", render_report(data))
        files["report"] = "report.html"
    if settings.recording:
        from stages.qa.recording import RecordingViews, joint_colours, rerun_available, write_recording

        if rerun_available():
            ego = take.ego_camera
            write_recording(
                context.work / "recording.rrd",
                take.name,
                arrays.points,
                joint_colours(np.isfinite(arrays.points).all(axis=-1), arrays.filled, quality.flags.any(axis=2)),
                list(take.exo_cameras),
                projections.get("ego_R"),
                projections.get("ego_t"),
                None if ego is None else ego.model,
                None if ego is None else ego.image_size,
                _scene_points(context, settings, summary),
                _body_meshes(body_model),
                [(stretch.start, stretch_text(stretch, list(take.exo_names))) for stretch in stretches],
                RecordingViews(list(take.exo_names), stills, arrays.keypoints, quality.view_error_px, quality.flags.any(axis=2)),
            )
            files["recording"] = "recording.rrd"
        else:
            summary["recording"] = "not written: rerun-sdk is not installed (pip install 'egoexo-pose-gt[qa3d]')"
    logger.info(
        "%s: qa: %.1f %% of labels without flag, %d flagged frame(s) in %d stretch(es); files: %s",
        take.name,
        metrics["quality_score"],
        metrics["flagged_frames"],
        len(stretches),
        ", ".join(sorted(files.values())),
    )
    return files, summary


STAGE = StageSpec(
    name="qa",
    inputs=("detect", "triangulate", "refine", "project_ego"),
    optional_inputs=("fit_body_model", "calibrate_check"),
    config_sections=("qa",),
    reads_take_files=True,
    writes=("metrics", "flags", "report?", "recording?", "overlay_*"),
    run=run_stage,
)
