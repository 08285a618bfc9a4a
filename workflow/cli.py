"""Argument parsing for ``run_pipeline.py``: one sub-command per module in
``workflow/commands/``, each exposing ``register(subparsers)`` that adds its parser
and sets ``func(args) -> int`` (the exit status)."""

from __future__ import annotations

import argparse
import importlib
import logging

# Modules under workflow/commands/, in the order --help lists them.
COMMAND_MODULES = ("demo", "run", "report", "synth", "evaluate", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_pipeline.py",
        description="Multi-view 3D body and hand pose ground truth for ego-exo takes.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"workflow.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    from pipeline.config import ConfigError

    log = logging.getLogger("run_pipeline")
    try:
        return int(args.func(args) or 0)
    except ConfigError as error:  # a bad setting: its message names the file and key
        log.error("configuration: %s", error)
        return 2
    except (OSError, ValueError) as error:  # a missing or bad input file: its message names it
        log.error("%s", error)
        log.debug("details", exc_info=True)
        return 1
