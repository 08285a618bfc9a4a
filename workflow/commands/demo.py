"""``run_pipeline.py demo``: the whole job on the embedded default, offline.

Generates the demo take (a synthetic new Ego-Exo4D take: raw Aria inputs, ground truth
and rendered videos; settings in the ``demo`` config section), runs the pipeline on it
with the configured detector (MediaPipe by default: the real detector on the rendered
videos), evaluates the result against the truth (3D, ego camera, ego-view 2D) and
prints where the QA report, overlays and recording are. Re-running reuses the take and every
stage that is up to date. Without rendering (``--set demo.render=false``) the
detections simulated with the take are used (``detect.backend=precomputed``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from pipeline.config import DemoConfig
from workflow.commands.run import add_config_arguments, log_reports

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="generate the demo take, run the pipeline on it and evaluate it")
    parser.add_argument("--out", type=Path, help="output folder (default: the demo.output setting)")
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def _demo_take(folder: Path, settings: DemoConfig) -> Path:
    """The demo take folder, generated unless an identical one is already there."""
    from pipeline.atomic import atomic_write_text
    from workflow.synth.rig import RigConfig
    from workflow.synth.take_writer import GENERATOR_VERSION, SynthConfig, synthesize_take

    config = SynthConfig(
        seed=settings.seed,
        num_frames=settings.frames,
        rig=dataclasses.replace(RigConfig(), num_exo=settings.exo_cameras),
    )
    wanted = {key: getattr(settings, key) for key in ("seed", "frames", "exo_cameras", "render")}
    wanted["generator_version"] = GENERATOR_VERSION  # a new generator makes a new take
    marker = folder / "demo_settings.json"
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        logger.info("demo take %s is up to date", folder)
        return folder
    synthesize_take(folder, config, render=settings.render)
    atomic_write_text(marker, json.dumps(wanted) + "\n")
    return folder


def run(args) -> int:
    from pipeline.config import load_config
    from stages.detect.backend import backend_entry
    from workflow.evaluation import evaluate, format_report
    from workflow.runner import run_batch

    config = load_config(args.config, args.overrides)
    if not config.demo.render and backend_entry(config.detect).kind == "model":
        logger.info("demo.render is off: using the simulated detections (detect.backend=precomputed)")
        config = load_config(args.config, [*args.overrides, "detect.backend=precomputed"])
    out = Path(args.out or config.demo.output)
    take = _demo_take(out / "take", config.demo)
    reports = run_batch([take], out / "results", config)
    status = log_reports(reports)
    if status == 0:
        print(format_report(evaluate(reports[0].output, take)))
        qa = Path(reports[0].output) / "qa"
        overlays = sorted(path.name for path in qa.glob("overlay_*.mp4"))
        print(f"QA: {reports[0].summaries['qa']['quality_score']:.1f} % of frame and part labels without flag")
        print(f"  report:    {qa / 'report.html'}")
        print(f"  overlays:  {qa}/ ({', '.join(overlays) or 'none'})")
        if (qa / "recording.rrd").is_file():
            print(f"  recording: {qa / 'recording.rrd'} (rerun {qa / 'recording.rrd'})")
        print(f"  batch:     {out / 'results' / 'batch_report.html'}")
        check = reports[0].summaries.get("calibrate_check")
        if check:
            done = f"applied to {', '.join(check['applied'])}" if check["applied"] else f"would apply to {', '.join(check['would_apply']) or 'no camera'}"
            print(f"calibration check ({check['mode']} mode): {check['status']}, {done}: {Path(reports[0].output) / 'calibrate_check' / 'rig_check.json'}")
    return status
