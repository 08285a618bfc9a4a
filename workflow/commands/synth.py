"""``run_pipeline.py synth OUT_DIR --seed N ...``: write a synthetic take with ground truth.

OUT_DIR is the take folder (Ego-Exo4D layout, see :mod:`workflow.synth.take_writer`).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

_DEFAULTS_NOTE = "(default %(default)s)"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def register(subparsers) -> None:
    from workflow.synth.perturbation import RigPerturbation
    from workflow.synth.rig import RigConfig
    from workflow.synth.take_writer import SynthConfig

    defaults, rig, perturbation = SynthConfig(), RigConfig(), RigPerturbation()
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic take (Ego-Exo4D layout) with 3D/2D ground truth and simulated detections",
        description="Write a synthetic take into OUT_DIR: calibrations, simulated OpenPose detections, "
        "ground truth (gt/*.npz) and, unless --no-render, rendered videos.",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="the take folder to write")
    parser.add_argument("--seed", type=_non_negative_int, default=defaults.seed, help=f"random seed {_DEFAULTS_NOTE}")
    parser.add_argument("--frames", type=_positive_int, default=defaults.num_frames, help=f"frames {_DEFAULTS_NOTE}")
    parser.add_argument("--fps", type=_positive_float, default=defaults.fps, help=f"frames per second {_DEFAULTS_NOTE}")
    parser.add_argument("--exo-cameras", type=_positive_int, default=rig.num_exo, help=f"static exo cameras {_DEFAULTS_NOTE}")
    parser.add_argument(
        "--render",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="render frame_aligned_videos/<cam>.mp4 (default on; --no-render writes no video)",
    )
    parser.add_argument(
        "--camera-pose-json",
        action="store_true",
        help="also write camera_pose.json (the processed poses a released take has); by default the take has "
        "only the raw Aria inputs of a new take (trajectory, calibration, timesync)",
    )
    parser.add_argument("--width", type=_positive_int, default=rig.exo_image_size[0], help=f"exo image width, pixels {_DEFAULTS_NOTE}")
    parser.add_argument("--height", type=_positive_int, default=rig.exo_image_size[1], help=f"exo image height, pixels {_DEFAULTS_NOTE}")
    wrong = parser.add_argument_group(
        "rig perturbation",
        "make the take's rig wrong on purpose, with the truth in gt/rig_perturbation.json (videos and detections always come from the true rig)",
    )
    wrong.add_argument(
        "--perturb-camera",
        metavar="NAME",
        help="exo camera (cam01, cam02, ...) whose written calibration (gopro_calibs.csv, camera_pose.json) is wrong",
    )
    wrong.add_argument(
        "--perturb-rotation-deg",
        type=_non_negative_float,
        default=perturbation.rotation_deg,
        metavar="DEG",
        help=f"its written rotation is off by this many degrees, about a random axis through its centre {_DEFAULTS_NOTE}",
    )
    wrong.add_argument(
        "--perturb-translation-m",
        type=_non_negative_float,
        default=perturbation.translation_m,
        metavar="M",
        help=f"its written centre is off by this many metres, in a random direction {_DEFAULTS_NOTE}",
    )
    wrong.add_argument(
        "--time-shift-camera",
        metavar="NAME",
        help="exo camera whose frames show other times than the other cameras' (not in sync)",
    )
    wrong.add_argument(
        "--time-shift-frames",
        type=_finite_float,
        default=perturbation.time_shift_frames,
        metavar="FRAMES",
        help=f"frames (sub-frame allowed, any sign): that camera's frame f shows the scene at frame f + this {_DEFAULTS_NOTE}",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from workflow.synth.perturbation import RigPerturbation
    from workflow.synth.rig import RigConfig
    from workflow.synth.take_writer import SynthConfig, synthesize_take

    rig = dataclasses.replace(RigConfig(), num_exo=args.exo_cameras, exo_image_size=(args.width, args.height))
    perturbation = RigPerturbation(
        camera=args.perturb_camera,
        rotation_deg=args.perturb_rotation_deg,
        translation_m=args.perturb_translation_m,
        time_shift_camera=args.time_shift_camera,
        time_shift_frames=args.time_shift_frames,
    )
    config = SynthConfig(seed=args.seed, num_frames=args.frames, fps=args.fps, rig=rig, camera_pose_json=args.camera_pose_json, perturbation=perturbation)
    synthesize_take(args.out_dir, config, render=args.render)
    return 0
