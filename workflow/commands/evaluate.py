"""``run_pipeline.py evaluate PRED_TAKE_OUTPUT GT_DIR [--json]``: accuracy against ground truth."""

from __future__ import annotations

import json
import math
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="MPJPE, PA-MPJPE, completeness, bone lengths, jitter vs ground truth")
    parser.add_argument("prediction", type=Path, metavar="PRED_TAKE_OUTPUT", help="OUT/<take> folder or a joints_3d.npz")
    parser.add_argument("truth", type=Path, metavar="GT_DIR", help="synthetic take folder, its gt/ folder or gt joints_3d.npz")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(func=run)


def _json_ready(value):
    """NaN -> null, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run(args) -> int:
    from workflow.evaluation import evaluate, format_report

    report = evaluate(args.prediction, args.truth)
    print(json.dumps(_json_ready(report), indent=2) if args.json else format_report(report))
    return 0
