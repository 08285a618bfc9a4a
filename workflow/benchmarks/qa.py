"""``run_pipeline.py bench qa``: the QA stage on rendered takes of growing length.

For each length (a tenth, a third and all of ``--frames``): a rendered synthetic take
(4 exo views 960x540 and the ego view 512x512) goes through the pipeline with its
simulated detections up to ``export``; then the ``qa`` stage runs alone in a fresh
process, twice: with overlay videos (5 views + mosaic) and without overlays or
thumbnails. Reported per length:

- the stage's seconds, with and without overlays;
- the overlay pass's own numbers: its seconds, frames per second (decode, draw and
  encode of 5 views and the mosaic), the process's resident memory when the pass
  starts and its peak during the pass (the kernel's high-water mark, reset at the start
  of the pass through ``/proc/self/clear_refs``), and their difference: what the pass
  adds, which must not grow with the take's length (one decoded frame per view at a
  time);
- the peak resident memory of the whole QA run with and without overlays (it holds the
  take's label arrays, ~10 KB per frame, so it grows slowly with the length).

Peaks are the child's own ``VmHWM``: ``getrusage``'s ``ru_maxrss`` of a child started by
fork and exec keeps the pages it shared with the parent before exec (here the parent
that rendered the take), which is what an earlier version reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workflow.benchmarks.common import machine_info, status_mb

_CHILD = """
import json, sys, time
import stages.qa.overlay as overlay
from workflow.benchmarks.common import status_mb as peak_mb
from workflow.benchmarks.qa import ResidentPeak
from workflow.runner import rerun_stage

overlay_pass = {}
render = overlay.render_overlays

def measured(*args, **kwargs):
    with ResidentPeak() as peak:
        start = time.perf_counter()
        result = render(*args, **kwargs)
        overlay_pass["seconds"] = time.perf_counter() - start
    overlay_pass.update(frames=result.frames, rss_at_start_mb=peak.start_mb, peak_rss_mb=peak.peak_mb, peak_before_mb=peak.previous_peak_mb)
    return result

overlay.render_overlays = measured
start = time.perf_counter()
report = rerun_stage(sys.argv[1], "qa", sys.argv[2:])
peaks = [peak_mb("VmHWM"), overlay_pass.get("peak_before_mb")]
print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": max(value for value in peaks if value is not None),
                  "overlay_pass": overlay_pass or None, "summary": report.summaries["qa"]}))
"""


class ResidentPeak:
    """The peak resident memory of this process inside a ``with`` block (MB): Linux's
    high-water mark ``VmHWM``, reset on entry by writing 5 to ``/proc/self/clear_refs``.
    ``start_mb``: resident memory on entry; ``previous_peak_mb``: the high-water mark
    before the reset; ``peak_mb`` None where the reset is refused."""

    def __enter__(self) -> ResidentPeak:
        self.previous_peak_mb = status_mb("VmHWM")
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.reset = True
        except OSError:
            self.reset = False
        self.start_mb = status_mb("VmRSS")
        self.peak_mb = None
        return self

    def __exit__(self, *exc) -> None:
        self.peak_mb = status_mb("VmHWM") if self.reset else None


def _qa_in_child(take_output: Path, overrides: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-c", _CHILD, str(take_output), *overrides], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _round(value, digits: int = 1):
    return None if value is None else round(value, digits)


def run(frames: int = 3000) -> dict:
    from pipeline.config import load_config
    from workflow.runner import run_take
    from workflow.synth.take_writer import SynthConfig, synthesize_take

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
            overlay = with_overlays["overlay_pass"]
            added = None if overlay["peak_rss_mb"] is None else overlay["peak_rss_mb"] - overlay["rss_at_start_mb"]
            rows.append(
                {
                    "frames": length,
                    "render_seconds": round(render_seconds, 1),
                    "qa_seconds": round(with_overlays["seconds"], 2),
                    "qa_seconds_without_overlays": round(without["seconds"], 2),
                    "overlay_seconds": round(overlay["seconds"], 2),
                    "overlay_frames_per_s": round(overlay["frames"] / max(overlay["seconds"], 1e-9), 1),
                    "overlay_rss_at_start_mb": _round(overlay["rss_at_start_mb"]),
                    "overlay_peak_rss_mb": _round(overlay["peak_rss_mb"]),
                    "overlay_added_mb": _round(added),
                    "peak_rss_mb": round(with_overlays["peak_rss_mb"], 1),
                    "peak_rss_mb_without_overlays": round(without["peak_rss_mb"], 1),
                    "views": 5,
                }
            )
    return {"machine": machine_info(), "rows": rows}


def format_table(report: dict) -> str:
    rows = report["rows"]
    lines = ["QA stage on rendered takes (4 exo 960x540 + ego 512x512; overlays of 5 views + mosaic)", ""]
    lines.append(
        f"{'frames':>7} {'qa s':>7} {'qa s (no overlays)':>19} {'overlay s':>10} {'overlay frames/s':>17} "
        f"{'overlay pass: RSS at start / peak / added MB':>45} {'QA peak MB':>11} {'QA peak MB (no overlays)':>25}"
    )
    for row in rows:
        overlay_memory = f"{_cell(row['overlay_rss_at_start_mb'])} / {_cell(row['overlay_peak_rss_mb'])} / {_cell(row['overlay_added_mb'])}"
        lines.append(
            f"{row['frames']:>7} {row['qa_seconds']:>7.1f} {row['qa_seconds_without_overlays']:>19.1f} {row['overlay_seconds']:>10.1f} "
            f"{row['overlay_frames_per_s']:>17.1f} {overlay_memory:>45} {row['peak_rss_mb']:>11.1f} {row['peak_rss_mb_without_overlays']:>25.1f}"
        )
    first, last = rows[0], rows[-1]
    lines.append("")
    if first["overlay_added_mb"] is not None:
        lines.append(
            f"overlay pass adds {first['overlay_added_mb']:.0f} MB at {first['frames']} frames, {last['overlay_added_mb']:.0f} MB at {last['frames']} "
            f"({last['frames'] / first['frames']:.0f}x the frames)"
        )
    lines.append(
        f"QA peak without overlays: {first['peak_rss_mb_without_overlays']:.0f} -> {last['peak_rss_mb_without_overlays']:.0f} MB; "
        f"with: {first['peak_rss_mb']:.0f} -> {last['peak_rss_mb']:.0f} MB"
    )
    return "\n".join(lines)


def _cell(value) -> str:
    return "-" if value is None else f"{value:.0f}"
