"""``run_pipeline.py demo``: the whole job on the embedded default, offline.

Generates the demo take (a synthetic Ego-Exo4D take with ground truth; settings in
the ``demo`` config section), runs the pipeline on it and evaluates the result
against the truth. Re-running reuses the take and every stage that is up to date.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from pipeline.commands.run import add_config_arguments, log_reports

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="generate the demo take, run the pipeline on it and evaluate it")
    parser.add_argument("--out", type=Path, help="output folder (default: the demo.output setting)")
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def _demo_take(folder: Path, settings: dict) -> Path:
    """The demo take folder, generated unless an identical one is already there."""
    from pipeline.atomic import atomic_write_text
    from pipeline.synth.rig import RigConfig
    from pipeline.synth.take_writer import SynthConfig, synthesize_take

    config = SynthConfig(
        seed=settings["seed"],
        num_frames=settings["frames"],
        rig=dataclasses.replace(RigConfig(), num_exo=settings["exo_cameras"]),
    )
    wanted = {"seed": settings["seed"], "num_frames": settings["frames"], "exo_cameras": settings["exo_cameras"]}
    marker = folder / "demo_settings.json"
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        logger.info("demo take %s is up to date", folder)
        return folder
    synthesize_take(folder, config, render=False)
    atomic_write_text(marker, json.dumps(wanted) + "\n")
    return folder


def run(args) -> int:
    from pipeline.config import load_config
    from pipeline.evaluation import evaluate, format_report
    from pipeline.runner import run_batch

    # The demo take has no videos (render=False): its 2D keypoints are the simulated
    # detections written with it, read by the precomputed backend.
    config = load_config(args.config, ["detect.backend=precomputed", *args.overrides])
    out = Path(args.out or config.demo.output)
    take = _demo_take(out / "take", config.section("demo"))
    reports = run_batch([take], out / "results", config)
    status = log_reports(reports)
    if status == 0:
        print(format_report(evaluate(reports[0].output, take)))
    return status
