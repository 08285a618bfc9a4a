"""``run_pipeline.py bench detect --backend mmpose``: images/s of the mmpose backend by batch size.

Every view of a frame goes through :func:`stages.detect.backend.detect_views` (what the
detect loop calls): the person detector on the frame's images, then the whole-body
model on the chosen boxes, as batches of ``detect.mmpose.batch_size``. Measured on the same
frames (the Pose2Sim capture in ../shared/validation when present, else a rendered
synthetic take) for each batch size asked, on ``detect.mmpose.device`` (``auto``: a GPU where
torch sees one). Without model files in the settings the configs that ship inside mmpose
and mmdet are built with random weights: the numbers are speed only, not accuracy.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from pipeline.config import load_config
from pipeline.formats.video import iter_frames
from workflow.benchmarks.common import machine_info
from workflow.benchmarks.detection import _take

# Shipped inside the packages (mmpose/.mim, mmdet/.mim): RTMPose-m whole-body and RTMDet-tiny.
POSE_CONFIG = ".mim/configs/wholebody_2d_keypoint/rtmpose/coco-wholebody/rtmpose-m_8xb64-270e_coco-wholebody-256x192.py"
DET_CONFIG = ".mim/configs/rtmdet/rtmdet_tiny_8xb32-300e_coco.py"


def _settings(batch_size: int, overrides: list[str]) -> dict:
    import mmdet
    import mmpose

    settings = load_config(overrides=["detect.backend=mmpose", "detect.mmpose.device=auto", *overrides]).detect
    options = dataclasses.replace(settings.mmpose, batch_size=batch_size)
    if not options.pose_config:
        options = dataclasses.replace(options, pose_config=str(Path(mmpose.__file__).parent / POSE_CONFIG), pose_checkpoint=None)
        if not options.det_config:
            options = dataclasses.replace(options, det_config=str(Path(mmdet.__file__).parent / DET_CONFIG), det_checkpoint=None, min_box_score=0.0)
    return dataclasses.replace(settings, mmpose=options)


def run(frames: int = 10, batch_sizes: tuple[int, ...] = (1, 4, 8), overrides: list[str] | None = None) -> dict:
    from stages.detect.backend import detect_views, make_detector

    with tempfile.TemporaryDirectory() as work:
        take, source = _take(frames, Path(work))
        frames = min(frames, take.num_frames)
        streams = [iter_frames(take.videos[name], 0, frames) for name in take.exo_names]
        images = [[next(stream)[1] for stream in streams] for _ in range(frames)]
    rows = []
    for batch_size in batch_sizes:
        settings = _settings(batch_size, list(overrides or []))
        detector = make_detector(settings)
        boxes = [[(0.0, 0.0, image.shape[1] - 1.0, image.shape[0] - 1.0) for image in views] for views in images]
        detect_views(detector, images[0], boxes[0])  # warm-up: first-call costs, not timed
        start = time.perf_counter()
        for views, rois in zip(images, boxes):
            detect_views(detector, views, rois)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "batch_size": batch_size,
                "device": detector.device,
                "seconds": round(seconds, 3),
                "images_per_s": round(frames * len(take.exo_names) / seconds, 2),
            }
        )
        detector.close()
    return {
        "data": source,
        "frames": frames,
        "views": len(take.exo_names),
        "weights": "given" if settings.mmpose.pose_checkpoint else "random (speed only)",
        "pose_config": Path(settings.mmpose.pose_config).name,
        "det_config": Path(settings.mmpose.det_config).name if settings.mmpose.det_config else None,
        "batches": rows,
        "machine": machine_info(),
    }


def format_table(report: dict) -> str:
    lines = [
        f"detect (mmpose: {report['pose_config']}, person boxes {report['det_config']}, weights {report['weights']}) "
        f"on {report['data']}: {report['frames']} frames x {report['views']} views"
    ]
    first = report["batches"][0]["images_per_s"]
    for row in report["batches"]:
        lines.append(
            f"  batch {row['batch_size']:3d} on {row['device']:7s} {row['seconds']:8.2f} s   {row['images_per_s']:7.2f} images/s "
            f"({row['images_per_s'] / first:.2f}x batch {report['batches'][0]['batch_size']})"
        )
    return "\n".join(lines)
