"""``run_pipeline.py bench NAME [--json]``: benchmarks that print numbers and ratios
against a peer tool run on the same data in the same process."""

from __future__ import annotations

import json

BENCHMARKS = ("triangulation", "detect", "refine", "fit", "qa", "pipeline", "calibrate")


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks against peer tools (e.g. aniposelib)")
    parser.add_argument("name", choices=BENCHMARKS, help="what to measure")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        help="triangulation: frames of 59 joints to triangulate (default 400); detect: frames per view (default 20); "
        "refine: frames of the synthetic take (default 300); fit: frames of the synthetic take (default 150); "
        "qa: frames of the longest rendered take (default 3000); pipeline: frames of the rendered take (default 120; 0: skip it); "
        "calibrate: frames of each synthetic take (default 600)",
    )
    parser.add_argument(
        "--hand-frames",
        type=int,
        default=60,
        help="detect: frames of the rendered synthetic take the hands are measured on (default 60; 0: not measured)",
    )
    parser.add_argument(
        "--long-frames",
        type=int,
        nargs="*",
        default=[2000, 6000, 20000],
        help="pipeline: lengths of the precomputed takes (default 2000 6000 20000; none: skip them)",
    )
    parser.add_argument("--views", type=int, default=None, help="exo cameras (default 5; calibrate: 4)")
    parser.add_argument(
        "--peer-ransac-points",
        type=int,
        default=60,
        help="points given to aniposelib's slow RANSAC (its rate is measured on these; default 60)",
    )
    parser.add_argument("--peer-frames", type=int, default=20, help="refine: frames given to aniposelib's slow optim_points (default 20)")
    parser.add_argument("--peer-start", type=int, default=None, help="refine: first of the peer's frames (default: centred in the take)")
    parser.add_argument(
        "--backend",
        choices=("anny", "smplx", "mediapipe", "mmpose"),
        default=None,
        help="fit: the body model (anny, default; smplx: a SMPL-X file generated from the take's person); "
        "detect: mediapipe (default, the embedded detector) or mmpose (the optional extra: images/s by batch size)",
    )
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[1, 4, 8], help="detect --backend mmpose: detect.mmpose.batch_size values to time (default 1 4 8)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="detect --backend mmpose: settings (e.g. detect.mmpose.pose_config=..., detect.mmpose.device=cuda:0)",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="*", default=[], help="calibrate: more synthetic seeds to measure the three cases' accuracy on (default none)"
    )
    parser.add_argument("--all-cores", action="store_true", help="do not pin the process to one CPU core")
    parser.set_defaults(func=run)


def run(args) -> int:
    from workflow.benchmarks import calibrate, detection, fit, qa, refine, triangulation
    from workflow.benchmarks import pipeline as whole_pipeline
    from workflow.benchmarks.common import pin_to_one_core

    if args.name == "pipeline":  # the executors and processes as a user runs them: all cores
        report = whole_pipeline.run(frames=120 if args.frames is None else args.frames, long_frames=tuple(args.long_frames))
        print(json.dumps(report, indent=2) if args.json else whole_pipeline.format_table(report))
        return 0
    if args.name == "qa":  # streaming decode / encode: measured as a user runs it
        report = qa.run(frames=args.frames or 3000)
        print(json.dumps(report, indent=2) if args.json else qa.format_table(report))
        return 0
    if args.name == "detect" and args.backend == "mmpose":
        from workflow.benchmarks import detection_mmpose

        report = detection_mmpose.run(frames=args.frames or 10, batch_sizes=tuple(args.batch_sizes), overrides=args.overrides)
        print(json.dumps(report, indent=2) if args.json else detection_mmpose.format_table(report))
        return 0
    if args.name == "detect":  # MediaPipe uses both cores: measured as a user runs it
        report = detection.run(frames=args.frames or 20, hand_frames=args.hand_frames)
        print(json.dumps(report, indent=2) if args.json else detection.format_table(report))
        return 0
    cpu = None if args.all_cores else pin_to_one_core()
    views = args.views or (4 if args.name == "calibrate" else 5)
    if args.name == "calibrate":
        module = calibrate
        report = calibrate.run(frames=args.frames or 600, views=views, more_seeds=tuple(args.seeds))
    elif args.name == "fit":
        module = fit
        report = fit.run(frames=args.frames or 150, views=views, backend=args.backend or "anny")
    elif args.name == "refine":
        module = refine
        report = refine.run(frames=args.frames or 300, views=views, peer_frames=args.peer_frames, peer_start=args.peer_start)
    else:
        module = triangulation
        report = triangulation.run(frames=args.frames or 400, views=views, peer_ransac_points=args.peer_ransac_points)
    report["machine"]["pinned_cpu"] = cpu
    print(json.dumps(report, indent=2) if args.json else module.format_table(report))
    return 0
