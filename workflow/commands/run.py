"""``run_pipeline.py run TAKE [TAKE ...] --out OUT``: the pipeline on one or many takes."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_config_arguments(parser) -> None:
    """``--config FILE`` and ``--set section.key=value`` (shared by the commands that run stages)."""
    parser.add_argument("--config", type=Path, help="YAML preset merged over configs/default.yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting (repeatable), e.g. --set triangulation.threshold_px=25",
    )


def register(subparsers) -> None:
    from workflow.runner import STAGE_NAMES

    parser = subparsers.add_parser("run", help="run the pipeline on take folders (Ego-Exo4D layout or rig folder)")
    parser.add_argument("takes", nargs="+", type=Path, metavar="TAKE", help="take folders")
    parser.add_argument("--out", type=Path, required=True, help="output root: results go to OUT/<take name>/<stage>/")
    parser.add_argument("--from", dest="force_from", choices=STAGE_NAMES, help="recompute this stage and all after it")
    parser.add_argument("--until", choices=STAGE_NAMES, help="stop after this stage")
    parser.add_argument("--parallel-takes", type=int, metavar="N", help="takes at the same time on Ray (batch.parallel_takes)")
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help='Ray cluster to use ("auto" or host:port) for takes and detection (batch/detect.ray_address)',
    )
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def log_reports(reports) -> int:
    """Log one line per take; the exit status: 0 when every take succeeded, else 1."""
    for report in reports:
        if report.ok:
            logger.info(
                "%s: ok in %.1f s (ran %s; up to date %s) -> %s",
                report.take,
                report.seconds,
                ", ".join(report.ran) or "nothing",
                ", ".join(report.skipped) or "nothing",
                report.output,
            )
        else:
            logger.error("%s: FAILED: %s", report.take, report.error)
    failed = sum(not report.ok for report in reports)
    logger.info("%d take(s), %d failed", len(reports), failed)
    return 1 if failed else 0


def run(args) -> int:
    from pipeline.config import load_config
    from workflow.runner import run_batch

    overrides = list(args.overrides)
    if args.parallel_takes is not None:
        overrides.append(f"batch.parallel_takes={args.parallel_takes}")
    if args.ray_address is not None:
        overrides += [f"batch.ray_address={args.ray_address}", f"detect.ray_address={args.ray_address}"]
    config = load_config(args.config, overrides)
    return log_reports(run_batch(args.takes, args.out, config, args.force_from, args.until))
