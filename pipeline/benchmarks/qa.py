"""``run_pipeline.py bench qa``: the QA stage on rendered takes of growing length.

For each length (a tenth, a third and all of ``--frames``): a rendered synthetic take
(4 exo views 960x540 and the ego view 512x512) goes through the pipeline with its
simulated detections up to ``export``; then the ``qa`` stage runs alone in a fresh
process, twice: with overlay videos (5 views + mosaic) and without them. Reported per
length: the stage's seconds, overlay frames per second (frames / the seconds the
overlays added), and the child process's peak resident memory, which must not grow with
the take's length (videos are streamed, one decoded frame per view at a time).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.benchmarks.common import machine_info

_CHILD = """
import json, resource, sys, time
from pipeline.runner import rerun_stage
start = time.perf_counter()
report = rerun_stage(sys.argv[1], "qa", sys.argv[2:])
print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "summary": report.summaries["qa"]}))
"""


def _qa_in_child(take_output: Path, overrides: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-c", _CHILD, str(take_output), *overrides], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(frames: int = 3000) -> dict:
    from pipeline.config import load_config
    from pipeline.runner import run_take
    from pipeline.synth.take_writer import SynthConfig, synthesize_take

    lengths = sorted({max(30, frames // 10), max(30, frames // 3), frames})
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for length in lengths:
            take_dir = Path(work) / f"take_{length}"
            start = time.perf_counter()
            synthesize_take(take_dir, SynthConfig(seed=21, num_frames=length), render=True)
            render_seconds = time.perf_counter() - start
            report = run_take(take_dir, Path(work) / "out", load_config(overrides=["detect.backend=precomputed"]), until="export")
            output = Path(report.output)
            with_overlays = _qa_in_child(output, [])
            without = _qa_in_child(output, ["qa.overlay_videos=false", "qa.report_thumbnails=0"])
            overlay_seconds = max(with_overlays["seconds"] - without["seconds"], 1e-9)
            rows.append(
                {
                    "frames": length,
                    "render_seconds": round(render_seconds, 1),
                    "qa_seconds": round(with_overlays["seconds"], 2),
                    "qa_seconds_without_overlays": round(without["seconds"], 2),
                    "overlay_frames_per_s": round(length / overlay_seconds, 1),
                    "peak_rss_mb": round(with_overlays["peak_rss_mb"], 1),
                    "peak_rss_mb_without_overlays": round(without["peak_rss_mb"], 1),
                    "views": 5,
                }
            )
    return {"machine": machine_info(), "rows": rows}


def format_table(report: dict) -> str:
    lines = ["QA stage on rendered takes (4 exo 960x540 + ego 512x512; overlays of 5 views + mosaic)", ""]
    lines.append(f"{'frames':>7} {'qa s':>8} {'qa s (no overlays)':>19} {'overlay frames/s':>17} {'peak MB':>9} {'peak MB (no overlays)':>22}")
    for row in report["rows"]:
        lines.append(
            f"{row['frames']:>7} {row['qa_seconds']:>8.1f} {row['qa_seconds_without_overlays']:>19.1f} {row['overlay_frames_per_s']:>17.1f} "
            f"{row['peak_rss_mb']:>9.1f} {row['peak_rss_mb_without_overlays']:>22.1f}"
        )
    first, last = report["rows"][0], report["rows"][-1]
    lines.append("")
    lines.append(
        f"peak memory from {first['frames']} to {last['frames']} frames: {first['peak_rss_mb']:.0f} -> {last['peak_rss_mb']:.0f} MB "
        f"({last['peak_rss_mb'] / first['peak_rss_mb']:.2f}x for {last['frames'] / first['frames']:.0f}x the frames)"
    )
    return "\n".join(lines)
