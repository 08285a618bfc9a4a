"""``run_pipeline.py report OUT/<take> [--frames A:B]``: rebuild a take's QA from stored outputs.

Runs the ``qa`` stage alone (flags, metrics, report, overlays, recording) on the take's
finished stages, with the settings of its last run (``OUT/<take>/run.json``) and any
``--set`` on top; no other stage runs. ``--frames`` renders the overlays of only that
stretch (e.g. a flagged one of a long take) as ``overlay_<view>_frames<A>-<B>.mp4``,
beside the whole take's. Then ``OUT/batch_summary.json`` and ``OUT/batch_report.html``
are rebuilt with the take's new score.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from workflow.commands.run import add_config_arguments

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="rebuild a take's QA report, overlays and recording from its stored outputs")
    parser.add_argument("take_output", type=Path, metavar="OUT/TAKE", help="a take's output folder (OUT/<take name>)")
    parser.add_argument("--frames", metavar="START:STOP", type=_frame_range, help="overlay only these frames (stop excluded), e.g. 300:420")
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def _frame_range(text: str) -> str:
    """``--frames``: checked here, so a bad value names the option (START:STOP)."""
    from pipeline.config import frame_range_error

    problem = frame_range_error(text)
    if problem:
        raise argparse.ArgumentTypeError(problem.replace("'start:stop'", "START:STOP"))
    return text


def run(args) -> int:
    from workflow.batch_report import REPORT_FILE, write_batch_files
    from workflow.runner import rerun_stage

    overrides = list(args.overrides)
    if args.config is not None:
        logger.warning("--config is ignored by report: the take's stored settings are used (change them with --set)")
    if args.frames is not None:
        overrides.append(f"qa.overlay_frames='{args.frames}'")  # quoted: YAML reads 10:20 as a number
    report = rerun_stage(args.take_output, "qa", overrides)
    folder = Path(report.output) / "qa"
    summary = report.summaries["qa"]
    write_batch_files(Path(report.output).parent)  # the batch's ranking with the new score
    print(f"{report.take}: {summary['quality_score']:.1f} % of labels without flag, {summary['flagged_frames']} flagged frame(s)")
    for path in sorted(folder.iterdir()):
        if path.suffix in (".html", ".mp4", ".rrd", ".json"):
            print(f"  {path}")
    print(f"  batch: {Path(report.output).parent / REPORT_FILE}")
    return 0
