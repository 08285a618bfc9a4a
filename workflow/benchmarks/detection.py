"""``run_pipeline.py bench detect``: images/s of the embedded detector, the stage's overhead,
and how well it finds hands.

Speed, on the same frames (the Pose2Sim capture in ../shared/validation when present,
else a rendered synthetic take):

- *stage*: the detect stage's own task code (:func:`stages.detect.tasks.run_task`):
  streaming decode of every view, ROI from the prior, crops, Pose, hand crops, Hands,
  hand assignment, the per-frame 3D prior, bookkeeping;
- *bare loop*: the same frames decoded in a plain loop, then the same models called in
  a plain loop on exactly the images the stage gave them (recorded), with fresh model
  objects.

``overhead = stage seconds / (decode seconds + model seconds) - 1``. Both run after a
warm-up, in this process.

Hands (``hands``): the detect stage with its default settings on a rendered synthetic
take (seed 1, ``hand_frames`` frames, 4 exo views at 960 x 540) against the take's
truth: coverage among the hand views the truth sees (``gt/visibility.npz``), with any
confidence and with the confidence triangulation uses, and the 2D error of the hands
found (:func:`workflow.evaluation.evaluate_hands_2d`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pipeline.atomic import load_npz
from pipeline.config import load_config
from pipeline.formats.take_folder import read_take
from pipeline.formats.video import iter_frames
from stages.detect.stage import detect_take
from stages.detect.tasks import plan_tasks, run_task
from workflow.benchmarks.common import machine_info
from workflow.evaluation import evaluate_hands_2d

POSE2SIM = Path(__file__).resolve().parents[2].parent / "shared" / "validation" / "pose2sim_balancing"


def _take(frames: int, work: Path):
    if (POSE2SIM / "videos").is_dir():
        return read_take(POSE2SIM), "pose2sim_balancing (real, 4 views, 1080 or 1088 x 1920)"
    from workflow.synth.take_writer import SynthConfig, synthesize_take

    folder = work / "synth_take"
    synthesize_take(folder, SynthConfig(seed=1, num_frames=frames + 2), render=True)
    return read_take(folder), "synthetic rendered take (seed 1)"


HAND_TAKE_SEED = 1


def measure_hands(frames: int, work: Path) -> dict:
    """The ``hands`` section of the report (see the module docstring)."""
    from workflow.synth.take_writer import JOINTS_2D_NPZ, VISIBILITY_NPZ, SynthConfig, synthesize_take

    folder = work / "hand_take"
    synthesize_take(folder, SynthConfig(seed=HAND_TAKE_SEED, num_frames=frames), render=True)
    take = read_take(folder)
    config = load_config(overrides=["detect.backend=mediapipe"])
    start = time.perf_counter()
    keypoints, summary = detect_take(take, config.detect)
    seconds = time.perf_counter() - start
    truth = load_npz(folder / JOINTS_2D_NPZ)
    report = evaluate_hands_2d(keypoints, truth["pixels"], load_npz(folder / VISIBILITY_NPZ)["hand_visible"], config.triangulation.min_confidence)
    report.update(
        data=f"synthetic rendered take (seed {HAND_TAKE_SEED}, {frames} frames, {len(take.exo_names)} views, "
        f"{take.exo_cameras[0].image_size[0]}x{take.exo_cameras[0].image_size[1]})",
        confidence_threshold=config.triangulation.min_confidence,
        detect_seconds=round(seconds, 3),
        images_per_s=round(keypoints.shape[0] * keypoints.shape[1] / seconds, 2),
        hand_quality=summary.get("hand_quality"),
    )
    return report


def run(frames: int = 20, hand_frames: int = 60) -> dict:
    from stages.detect.backend import make_detector
    from stages.detect.mediapipe_backend import _mediapipe, hand_landmark_model

    settings = load_config(overrides=["detect.backend=mediapipe", f"detect.frames_per_task={frames + 2}"]).detect
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
        pose = mp_pose.Pose(static_image_mode=True, model_complexity=1, smooth_landmarks=False, min_detection_confidence=settings.min_person_confidence)
        hands = mp_hands.Hands(
            static_image_mode=True,
            max_num_hands=2,
            model_complexity=settings.hand_model_complexity,
            min_detection_confidence=settings.min_hand_confidence,
        )
        landmarks = hand_landmark_model(settings.hand_model_complexity)
        models = {"pose": pose, "hands": hands, "hand_landmarks": landmarks}

        def call(kind, image):
            models[kind].process({"image": image} if kind == "hand_landmarks" else image)

        for kind in models:  # warm-up
            for recorded, image in record:
                if recorded == kind:
                    call(kind, image)
                    break
        start = time.perf_counter()
        for kind, image in record:
            call(kind, image)
        bare_models = time.perf_counter() - start
        for model in models.values():
            model.close()
        hand_report = measure_hands(hand_frames, Path(work)) if hand_frames > 0 else None
    images = frames * len(task.cameras)
    bare = decode + bare_models
    return {
        "data": source,
        "frames": frames,
        "views": len(task.cameras),
        "images": images,
        "model_calls": {kind: sum(1 for k, _ in record if k == kind) for kind in ("pose", "hands", "hand_landmarks")},
        "stage_seconds": round(stage, 3),
        "stage_images_per_s": round(images / stage, 2),
        "bare_decode_seconds": round(decode, 3),
        "bare_model_seconds": round(bare_models, 3),
        "bare_images_per_s": round(images / bare, 2),
        "overhead": round(stage / bare - 1.0, 4),
        "body_found": float(summary["views"] and sum(v["body_found"] for v in summary["views"].values()) / images),
        "hands": hand_report,
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
    hands_report = report.get("hands")
    if hands_report:
        lines.append(f"hands on a {hands_report['data']} ({hands_report['images_per_s']:.2f} images/s):")
        for part in ("left_hand", "right_hand", "both"):
            entry = hands_report[part]
            lines.append(
                f"  {part:10s} {entry['visible_views']:4d} visible views: found {100 * entry['coverage']:5.1f} % "
                f"(confidence >= {hands_report['confidence_threshold']}: {100 * entry['coverage_confident']:5.1f} %), "
                f"2D error median {entry['median_error_px']:.2f} px, p90 {entry['p90_error_px']:.1f} px"
            )
    return "\n".join(lines)
