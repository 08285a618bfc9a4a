"""``run_pipeline.py bench pipeline``: the whole pipeline, stage by stage, at scale.

Every run is a fresh child process (``run_pipeline.py run``-equivalent: :func:`run_take`).
``peak_process_mb``: the child's own peak resident memory (``VmHWM``), and
``peak_by_stage_end_mb`` that peak as it stood at the end of each stage (the stage that
raised it is the one that sets the peak); ``peak_tree_mb``: the largest sum, sampled
every 0.2 s, of the proportional memory (``Pss``) of the child and everything it
starts (Ray's processes and actors, the 2D reading processes).

- ``rendered``: a rendered synthetic take (``frames`` frames, 4 exo views 960x540 and
  the ego view) end to end with the embedded detector (every default stage), three
  times: ``detect.executor: auto`` (what it chose here, and why), then Ray with 1 and
  with 2 actors (``cpus_per_model`` = this machine's CPUs / actors). Seconds per stage,
  each stage's share, detection images/s.
- ``precomputed``: synthetic takes of ``long_frames`` frames (default 2k, 6k, 20k; 4
  exo views, simulated OpenPose files with several people per file) through every
  default stage. Seconds per stage, 2D files read per second, refine's milliseconds
  per frame against the shortest take's, peak memory, all with refine in-process (how
  each take of a batch on Ray runs); the longest once more with the fit's windows as Ray
  tasks (what ``refine.executor: auto`` chooses for a long take with CPUs to share).
  The goals of issue 11 are checked in ``goals`` on the in-process runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pipeline.ray_support import local_cpus
from workflow.benchmarks.common import machine_info

_CHILD = """
import json, sys, time
from pipeline.config import load_config
from workflow.benchmarks.common import status_mb
from workflow.runner import run_take

def peak_mb():  # this process's own peak resident memory (VmHWM; ru_maxrss would include the parent's at fork)
    return status_mb("VmHWM")

class StagePeaks:  # the progress hooks of run_take: the peak reached by the end of each stage
    def __init__(self):
        self.stage, self.peaks = None, {}
    def start_stage(self, stage):
        if self.stage is not None:
            self.peaks[self.stage] = peak_mb()
        self.stage = stage
    def frames_done(self, frames):
        pass

config = load_config(overrides=sys.argv[3:])
peaks = StagePeaks()
start = time.perf_counter()
report = run_take(sys.argv[1], sys.argv[2], config, progress=peaks)
peaks.start_stage(None)
print(json.dumps({"seconds": time.perf_counter() - start, "stage_seconds": report.stage_seconds, "summaries": report.summaries,
                  "peak_process_mb": peak_mb(), "peak_by_stage_end_mb": peaks.peaks}))
"""

GOALS = {"peak_mb_20k": 1024.0, "refine_per_frame_ratio": 1.5, "files_per_s": 3000.0}


def _tree_pss_mb(root: int) -> float:
    """Proportional set size of ``root`` and all its descendants (Linux ``/proc``), MB:
    pages shared between them (forked readers, Ray's object store) count once."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                children.setdefault(int(stat.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
        except OSError:
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                total += next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


def _run_child(take: Path, out: Path, overrides: list[str]) -> dict:
    """One take through every stage in a fresh process; its report and peak memory."""
    process = subprocess.Popen([sys.executable, "-c", _CHILD, str(take), str(out), *overrides], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_pss_mb(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"the pipeline failed on {take}:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_tree_mb"] = round(peak[0], 1) if os.path.isdir("/proc") else None
    return result


def _row(name: str, frames: int, result: dict) -> dict:
    stages = result["stage_seconds"]
    total = sum(stages.values())
    return {
        "run": name,
        "frames": frames,
        "seconds": round(result["seconds"], 2),
        "stage_seconds": {stage: round(seconds, 2) for stage, seconds in stages.items()},
        "stage_share": {stage: round(seconds / total, 3) for stage, seconds in stages.items()},
        "peak_process_mb": round(result["peak_process_mb"], 1),
        "peak_by_stage_end_mb": {stage: round(mb, 1) for stage, mb in result["peak_by_stage_end_mb"].items()},
        "peak_tree_mb": result["peak_tree_mb"],
    }


def measure_rendered(frames: int, work: Path) -> list[dict]:
    from workflow.synth.take_writer import SynthConfig, synthesize_take

    take = work / "rendered_take"
    synthesize_take(take, SynthConfig(seed=41, num_frames=frames), render=True)
    cpus = local_cpus()
    runs = [("auto", ["detect.executor=auto"])] + [
        (f"ray, {actors} actor(s)", ["detect.executor=ray", f"detect.num_workers={actors}", f"detect.cpus_per_model={max(1, cpus // actors)}"])
        for actors in (1, 2)
    ]
    rows = []
    for index, (name, overrides) in enumerate(runs):
        result = _run_child(take, work / f"rendered_out_{index}", ["detect.backend=mediapipe", "detect.frames_per_task=20", *overrides])
        row = _row(name, frames, result)
        detect = result["summaries"]["detect"]
        row["detect"] = {key: detect.get(key) for key in ("executor", "workers", "executor_reason", "tasks")}
        row["detect"]["images_per_s"] = round(frames * detect["views"] / result["stage_seconds"]["detect"], 1)
        rows.append(row)
    return rows


def measure_precomputed(lengths: list[int], work: Path) -> list[dict]:
    from workflow.synth.take_writer import SynthConfig, synthesize_take

    rows = []
    for length in lengths:
        take = work / f"take_{length}"
        start = time.perf_counter()
        synthesize_take(take, SynthConfig(seed=42, num_frames=length), render=False)
        synth_seconds = time.perf_counter() - start
        runs = [("precomputed", ["refine.executor=inprocess"])]
        if length == max(lengths):  # the longest also with the fit's windows on Ray: its time and memory against none
            runs.append(("precomputed, refine on Ray", ["refine.executor=ray"]))
        for index, (name, overrides) in enumerate(runs):
            result = _run_child(take, work / f"out_{length}_{index}", ["detect.backend=precomputed", *overrides])
            row = _row(name, length, result)
            detect, refine = result["summaries"]["detect"], result["summaries"]["refine"]
            files = sum(detect.get("frame_counts", {}).values())
            row["synth_seconds"] = round(synth_seconds, 1)
            row["files"] = files
            row["files_per_s"] = round(files / result["stage_seconds"]["detect"], 1)
            row["refine_ms_per_frame"] = round(1000 * result["stage_seconds"]["refine"] / length, 2)
            row["refine_executor"] = refine.get("executor")
            rows.append(row)
            subprocess.run(["rm", "-rf", str(work / f"out_{length}_{index}")], check=False)
        subprocess.run(["rm", "-rf", str(take)], check=False)
    return rows


def run(frames: int = 120, long_frames: tuple[int, ...] = (2000, 6000, 20000)) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        rendered = measure_rendered(frames, work) if frames else []
        precomputed = measure_precomputed(sorted(long_frames), work) if long_frames else []
    report = {"machine": machine_info(), "cpus_available": local_cpus(), "rendered": rendered, "precomputed": precomputed}
    if precomputed:
        # The goals compare like with like: the shortest take and the longest both with
        # refine in-process (the way every take of a batch on Ray runs), the whole tree of
        # processes counted; the longest's run with the fit's windows on Ray is reported beside.
        in_process = [row for row in precomputed if row["refine_executor"] != "ray"]
        shortest, longest = in_process[0], in_process[-1]
        on_ray = [row for row in precomputed if row["frames"] == longest["frames"] and row["refine_executor"] == "ray"]
        report["goals"] = {
            "peak_mb_longest": {
                "frames": longest["frames"],
                "measured": max(longest["peak_process_mb"], longest["peak_tree_mb"] or 0.0),
                "goal_below": GOALS["peak_mb_20k"],
                "with_refine_windows_on_ray": max(on_ray[0]["peak_process_mb"], on_ray[0]["peak_tree_mb"] or 0.0) if on_ray else None,
            },
            "refine_per_frame_ratio": {
                "measured": round(longest["refine_ms_per_frame"] / shortest["refine_ms_per_frame"], 2),
                "goal_below": GOALS["refine_per_frame_ratio"],
                "long_frames": longest["frames"],
                "short_frames": shortest["frames"],
            },
            "files_per_s": {"measured": min(row["files_per_s"] for row in precomputed), "goal_above": GOALS["files_per_s"]},
        }
    return report


def format_table(report: dict) -> str:
    lines = [f"machine: {report['cpus_available']} CPU(s) for this process, Python {report['machine']['python']}", ""]
    stages = sorted({stage for row in report["rendered"] + report["precomputed"] for stage in row["stage_seconds"]}, key=_stage_order)
    header = f"{'run':<22} {'frames':>7} {'total s':>8} " + " ".join(f"{stage:>12}" for stage in stages) + f" {'peak MB process / all':>22}"
    for title, rows in (("rendered take, embedded detector", report["rendered"]), ("precomputed OpenPose takes", report["precomputed"])):
        if not rows:
            continue
        lines += [title + " (seconds per stage, share in brackets)", header]
        for row in rows:
            cells = " ".join(
                f"{row['stage_seconds'][stage]:>6.1f} ({100 * row['stage_share'][stage]:>2.0f}%)" if stage in row["stage_seconds"] else f"{'-':>12}"
                for stage in stages
            )
            lines.append(
                f"{row['run']:<22} {row['frames']:>7} {row['seconds']:>8.1f} {cells} {row['peak_process_mb']:>12.0f} / {row['peak_tree_mb'] or 0:>6.0f}"
            )
        lines.append("")
    for row in report["rendered"]:
        detect = row["detect"]
        lines.append(f"{row['run']}: {detect['executor']} x{detect['workers']} ({detect['executor_reason']}), {detect['images_per_s']} images/s")
    for row in report["precomputed"]:
        lines.append(
            f"{row['frames']} frames: {row['files']} files read at {row['files_per_s']:.0f} files/s; "
            f"refine {row['refine_ms_per_frame']} ms/frame ({row['refine_executor']})"
        )
        lines.append("  peak memory by the end of each stage (MB): " + ", ".join(f"{stage} {mb:.0f}" for stage, mb in row["peak_by_stage_end_mb"].items()))
    if "goals" in report:
        goals = report["goals"]
        lines += [
            "",
            f"goal: peak memory of the {goals['peak_mb_longest']['frames']}-frame take {goals['peak_mb_longest']['measured']} MB "
            f"(< {goals['peak_mb_longest']['goal_below']:.0f}; refine's windows on Ray: "
            f"{goals['peak_mb_longest']['with_refine_windows_on_ray']} MB, Ray's own processes included)",
            f"goal: refine per frame, long / short take {goals['refine_per_frame_ratio']['measured']}x (<= {goals['refine_per_frame_ratio']['goal_below']})",
            f"goal: 2D files read per second (slowest take) {goals['files_per_s']['measured']:.0f} (>= {goals['files_per_s']['goal_above']:.0f})",
        ]
    return "\n".join(lines)


def _stage_order(stage: str) -> int:
    from workflow.runner import STAGE_NAMES

    return STAGE_NAMES.index(stage) if stage in STAGE_NAMES else len(STAGE_NAMES)
