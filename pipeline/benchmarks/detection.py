"""``run_pipeline.py bench detect``: images/s of the embedded detector, and the stage's overhead.

On the same frames (the Pose2Sim capture in ../shared/validation when present, else a
rendered synthetic take):

- *stage*: the detect stage's own task code (:func:`stages.detect.tasks.run_task`):
  streaming decode of every view, ROI from the prior, crops, Pose, hand crops, Hands,
  hand assignment, the per-frame 3D prior, bookkeeping;
- *bare loop*: the same frames decoded in a plain loop, then the same models called in
  a plain loop on exactly the images the stage gave them (recorded), with fresh model
  objects.

``overhead = stage seconds / (decode seconds + model seconds) - 1``. Both run after a
warm-up, in this process.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pipeline.benchmarks.common import machine_info
from pipeline.config import load_config
from pipeline.formats.take_folder import read_take
from pipeline.formats.video import iter_frames
from stages.detect.tasks import plan_tasks, run_task

POSE2SIM = Path(__file__).resolve().parents[2].parent / "shared" / "validation" / "pose2sim_balancing"


def _take(frames: int, work: Path):
    if (POSE2SIM / "videos").is_dir():
        return read_take(POSE2SIM), "pose2sim_balancing (real, 4 views, 1088x1920)"
    from pipeline.synth.take_writer import SynthConfig, synthesize_take

    folder = work / "synth_take"
    synthesize_take(folder, SynthConfig(seed=1, num_frames=frames + 2), render=True)
    return read_take(folder), "synthetic rendered take (seed 1)"


def run(frames: int = 20) -> dict:
    from stages.detect.backend import make_detector
    from stages.detect.mediapipe_backend import _mediapipe

    settings = load_config(overrides=["detect.backend=mediapipe", f"detect.frames_per_task={frames + 2}"]).section("detect")
    with tempfile.TemporaryDirectory() as work:
        take, source = _take(frames, Path(work))
        frames = min(frames, take.num_frames - 2)
        detector = make_detector(settings)
        # Warm-up (model initialisation, first-call costs), not timed.
        [warm] = plan_tasks(take, settings, take.num_frames, (0, 2))
        run_task(detector, warm, settings)
        [task] = plan_tasks(take, settings, take.num_frames, (2, 2 + frames))
        detector.record = []
        start = time.perf_counter()
        keypoints, summary = run_task(detector, task, settings)
        stage = time.perf_counter() - start
        record, detector.record = detector.record, None
        detector.close()

        start = time.perf_counter()
        for path in task.videos:
            for _ in iter_frames(path, task.start, task.stop):
                pass
        decode = time.perf_counter() - start

        _, mp_pose, mp_hands = _mediapipe()
        pose = mp_pose.Pose(static_image_mode=True, model_complexity=1, smooth_landmarks=False,
                            min_detection_confidence=settings["min_person_confidence"])
        hands = mp_hands.Hands(static_image_mode=True, max_num_hands=2, model_complexity=settings["hand_model_complexity"],
                               min_detection_confidence=settings["min_hand_confidence"])
        models = {"pose": pose, "hands": hands}
        for kind, image in record[:2]:  # warm-up
            models[kind].process(image)
        start = time.perf_counter()
        for kind, image in record:
            models[kind].process(image)
        bare_models = time.perf_counter() - start
        pose.close()
        hands.close()
    images = frames * len(task.cameras)
    bare = decode + bare_models
    return {
        "data": source,
        "frames": frames,
        "views": len(task.cameras),
        "images": images,
        "model_calls": {kind: sum(1 for k, _ in record if k == kind) for kind in ("pose", "hands")},
        "stage_seconds": round(stage, 3),
        "stage_images_per_s": round(images / stage, 2),
        "bare_decode_seconds": round(decode, 3),
        "bare_model_seconds": round(bare_models, 3),
        "bare_images_per_s": round(images / bare, 2),
        "overhead": round(stage / bare - 1.0, 4),
        "body_found": float(summary["views"] and sum(v["body_found"] for v in summary["views"].values()) / images),
        "machine": machine_info(),
    }


def format_table(report: dict) -> str:
    lines = [
        f"detect (mediapipe, embedded default) on {report['data']}: {report['frames']} frames x {report['views']} views",
        f"  stage:      {report['stage_seconds']:8.2f} s   {report['stage_images_per_s']:6.2f} images/s",
        f"  bare loop:  {report['bare_decode_seconds'] + report['bare_model_seconds']:8.2f} s   "
        f"{report['bare_images_per_s']:6.2f} images/s (decode {report['bare_decode_seconds']:.2f} s + models "
        f"{report['bare_model_seconds']:.2f} s; calls {report['model_calls']})",
        f"  overhead of the stage over the bare loop: {100 * report['overhead']:.1f} %",
        f"  body found in {100 * report['body_found']:.0f} % of images; {report['machine']['cpu_count']} CPU(s)",
    ]
    return "\n".join(lines)
