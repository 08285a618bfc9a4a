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


def register(subparsers) -> None:
    from workflow.synth.rig import RigConfig
    from workflow.synth.take_writer import SynthConfig

    defaults, rig = SynthConfig(), RigConfig()
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
    parser.set_defaults(func=run)


def run(args) -> int:
    from workflow.synth.rig import RigConfig
    from workflow.synth.take_writer import SynthConfig, synthesize_take

    rig = dataclasses.replace(RigConfig(), num_exo=args.exo_cameras, exo_image_size=(args.width, args.height))
    config = SynthConfig(seed=args.seed, num_frames=args.frames, fps=args.fps, rig=rig, camera_pose_json=args.camera_pose_json)
    synthesize_take(args.out_dir, config, render=args.render)
    return 0
