"""Scale and faults: the detection executor's choice, resume after SIGKILL, a Ray cluster
that loses a worker node mid-batch, the batch's progress display."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.formats.take_folder import take_name
from stages import refine as refine_stage
from stages.detect.tasks import choose_executor
from tests.paths import REPO_ROOT
from workflow import runner
from workflow.progress import BatchProgress
from workflow.synth.take_writer import SynthConfig, synthesize_take

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

REPO = REPO_ROOT


# --------------------------------------------------------------------------------------
# detect.executor: auto
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cpus, overrides, tasks, expected",
    [
        (2, [], 10, ("ray", 2, "2 CPU(s) hold 2 model instances")),  # this 2-core machine: two actors beat one model
        (1, [], 10, ("inprocess", 1, "one of the model instances (1 CPU(s)) keeps them busy")),
        (8, ["detect.cpus_per_model=2"], 10, ("ray", 4, "8 CPU(s) hold 4 model instances")),
        (8, ["detect.num_workers=2"], 10, ("ray", 2, "hold 8 model instances")),
        (8, [], 3, ("ray", 3, "hold 8")),  # never more actors than tasks
        (8, [], 1, ("inprocess", 1, "a single task")),
        (1, ["detect.executor=ray"], 10, ("ray", 1, "detect.executor is ray")),
        (8, ["detect.executor=inprocess"], 10, ("inprocess", 1, "detect.executor is inprocess")),
        (1, ["detect.backend=mmpose", "detect.mmpose.device=cuda:0"], 10, ("ray", 1, "GPU")),
    ],
)
def test_auto_executor_uses_ray_when_the_cpus_hold_several_models(monkeypatch, cpus, overrides, tasks, expected):
    monkeypatch.setattr("pipeline.ray_support.available_cpus", lambda address: cpus)
    settings = load_config(overrides=["detect.backend=mediapipe", *overrides]).detect
    choice = choose_executor(settings, tasks)
    executor, workers, reason = choice.kind, choice.workers, choice.reason
    assert (executor, workers) == expected[:2]
    assert expected[2] in reason


def test_a_take_inside_a_batch_task_detects_in_process(monkeypatch):
    monkeypatch.setattr("pipeline.ray_support.in_ray_task", lambda: True)
    monkeypatch.setattr("pipeline.ray_support.available_cpus", lambda address: 64)
    choice = choose_executor(load_config(overrides=["detect.backend=mediapipe"]).detect, 10)
    executor, workers, reason = choice.kind, choice.workers, choice.reason
    assert (executor, workers) == ("inprocess", 1) and "task of a batch" in reason


# --------------------------------------------------------------------------------------
# refine.executor: the fit's windows on Ray
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cpus, overrides, frames, expected",
    [
        (2, [], 6000, ("ray", "6000 frames, 2 CPU(s)")),
        (2, [], 2999, ("inprocess", "fewer than refine.ray_min_frames")),
        (1, [], 6000, ("inprocess", "keeps them busy")),
        (8, ["refine.fit.enabled=false"], 6000, ("inprocess", "fit.enabled is false")),
        (1, ["refine.executor=ray"], 100, ("ray", "refine.executor is ray")),
        (8, ["refine.executor=inprocess"], 6000, ("inprocess", "refine.executor is inprocess")),
    ],
)
def test_the_fit_goes_to_ray_for_long_takes_with_cpus_to_share(monkeypatch, cpus, overrides, frames, expected):
    monkeypatch.setattr("pipeline.ray_support.available_cpus", lambda address: cpus)
    choice = refine_stage.choose_executor(load_config(overrides=overrides).refine, frames, None)
    executor, reason = choice.kind, choice.reason
    assert executor == expected[0] and expected[1] in reason


def test_a_take_inside_a_batch_task_fits_in_process(monkeypatch):
    monkeypatch.setattr("pipeline.ray_support.in_ray_task", lambda: True)
    monkeypatch.setattr("pipeline.ray_support.available_cpus", lambda address: 64)
    choice = refine_stage.choose_executor(load_config().refine, 20000, None)
    executor, reason = choice.kind, choice.reason
    assert executor == "inprocess" and "task of a batch" in reason


def test_auto_fits_in_process_when_ray_does_not_start(monkeypatch, tmp_path):
    def no_ray(*args):
        raise ConnectionError("no cluster at that address")

    monkeypatch.setattr("pipeline.ray_support.available_cpus", lambda address: 8)
    monkeypatch.setattr("pipeline.ray_support.ensure_ray", no_ray)
    take = tmp_path / "take"
    synthesize_take(take, SynthConfig(seed=43, num_frames=60), render=False)
    config = load_config(overrides=["detect.backend=precomputed", "refine.ray_min_frames=10"])
    report = runner.run_take(take, tmp_path / "out", config, until="refine")
    assert report.ok, report.error
    summary = report.summaries["refine"]
    assert summary["executor"] == "inprocess" and "Ray did not start (ConnectionError: no cluster" in summary["executor_reason"]


def test_the_fit_on_ray_gives_the_same_points_and_changing_the_executor_reruns_nothing(tmp_path):
    ray = pytest.importorskip("ray")
    take = tmp_path / "take"
    synthesize_take(take, SynthConfig(seed=41, num_frames=400), render=False)
    small_windows = ["detect.backend=precomputed", "refine.fit.chunk_frames=100", "refine.fit.overlap_frames=20", "qa.overlay_videos=false"]
    here = runner.run_take(take, tmp_path / "here", load_config(overrides=[*small_windows, "refine.executor=inprocess"]), until="refine")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = runner.run_take(take, tmp_path / "ray", load_config(overrides=[*small_windows, "refine.executor=ray"]), until="refine")
    finally:
        ray.shutdown()
    assert here.ok and on_ray.ok, (here.error, on_ray.error)
    summaries = {
        name: json.loads((Path(report.output) / "refine" / "manifest.json").read_text())["summary"] for name, report in (("here", here), ("ray", on_ray))
    }
    assert (summaries["here"]["executor"], summaries["ray"]["executor"]) == ("inprocess", "ray")
    same = (Path(report.output) / "refine" / "joints_3d.npz" for report in (here, on_ray))
    assert next(same).read_bytes() == next(same).read_bytes()  # bit for bit
    again = runner.run_take(
        take,
        tmp_path / "ray",
        load_config(overrides=[*small_windows, "refine.executor=inprocess", "detect.executor=ray", "detect.read_workers=3"]),
        until="refine",
    )
    assert again.ok and "refine" in again.skipped and "detect" in again.skipped and not again.ran


# --------------------------------------------------------------------------------------
# Resume after SIGKILL during detection
# --------------------------------------------------------------------------------------

TASK_FRAMES, TAKE_FRAMES = 2, 10


@pytest.fixture(scope="module")
def rendered_take(render_take):
    return render_take(seed=4, frames=TAKE_FRAMES)


def test_auto_detects_in_process_when_ray_does_not_start(rendered_take, monkeypatch):
    from pipeline.formats.take_folder import read_take
    from stages.detect.stage import detect_take

    def no_ray(*args):
        raise ConnectionError("no cluster at that address")

    monkeypatch.setattr("pipeline.ray_support.available_cpus", lambda address: 8)
    monkeypatch.setattr("pipeline.ray_support.ensure_ray", no_ray)
    config = load_config(overrides=["detect.backend=mediapipe", f"detect.frames_per_task={TASK_FRAMES}"])
    keypoints, summary = detect_take(read_take(rendered_take, config.take), config.detect, (0, 2 * TASK_FRAMES))
    assert (summary["executor"], summary["workers"], summary["tasks"]) == ("inprocess", 1, 2)
    assert "Ray did not start (ConnectionError: no cluster" in summary["executor_reason"]
    assert keypoints.shape[1] == 2 * TASK_FRAMES and np.isfinite(keypoints[..., 0]).any()


def _detect_command(take: Path, out: Path) -> list[str]:
    settings = ["detect.backend=mediapipe", f"detect.frames_per_task={TASK_FRAMES}", "detect.executor=inprocess"]
    return [sys.executable, str(REPO / "run_pipeline.py"), "run", str(take), "--out", str(out), "--until", "detect"] + [
        argument for setting in settings for argument in ("--set", setting)
    ]


def test_detection_killed_with_sigkill_resumes_from_its_finished_chunks(rendered_take, tmp_path):
    name = take_name(rendered_take)
    tasks = TAKE_FRAMES // TASK_FRAMES
    subprocess.run(_detect_command(rendered_take, tmp_path / "whole"), check=True, capture_output=True, cwd=REPO)

    killed = tmp_path / "killed"
    chunks = killed / name / ".cache"
    with open(tmp_path / "killed.log", "w") as log:
        process = subprocess.Popen(_detect_command(rendered_take, killed), stdout=log, stderr=log, cwd=REPO)
        deadline = time.monotonic() + 600
        while len(list(chunks.glob("detect-*/chunk_*.npz"))) < 2:
            assert process.poll() is None, "detection ended before it could be killed: " + (tmp_path / "killed.log").read_text()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    kept = sorted(path.name for path in chunks.glob("detect-*/chunk_*.npz"))
    assert 2 <= len(kept) < tasks
    assert not (killed / name / "detect").exists()  # nothing committed by the killed run

    resumed = subprocess.run(_detect_command(rendered_take, killed), check=True, capture_output=True, text=True, cwd=REPO)
    assert f"{tasks - len(kept)} task(s) to run, {len(kept)} finished before" in resumed.stderr
    summary = json.loads((killed / name / "detect" / "manifest.json").read_text())["summary"]
    assert (summary["tasks"], summary["tasks_resumed"]) == (tasks, len(kept))
    whole_file = (tmp_path / "whole" / name / "detect" / "keypoints_2d.npz").read_bytes()
    assert (killed / name / "detect" / "keypoints_2d.npz").read_bytes() == whole_file
    assert not (killed / name / ".cache").exists()  # partial results go once the stage is committed


# --------------------------------------------------------------------------------------
# A batch on a two-node Ray cluster that loses its worker node
# --------------------------------------------------------------------------------------


@pytest.fixture
def two_node_cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster, worker
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_a_batch_survives_losing_a_worker_node(two_node_cluster, tmp_path):
    cluster, worker = two_node_cluster
    takes = []
    for seed in (31, 32, 33, 34):
        takes.append(tmp_path / "takes" / f"take_{seed}")
        synthesize_take(takes[-1], SynthConfig(seed=seed, num_frames=120), render=False)
    out = tmp_path / "out"
    config = load_config(overrides=["detect.backend=precomputed", "batch.parallel_takes=2", f"batch.ray_address={cluster.address}", "batch.ray_retries=2"])
    result: dict = {}
    batch = threading.Thread(target=lambda: result.update(reports=runner.run_batch(takes, out, config)))
    batch.start()

    def on_worker() -> list[str]:  # takes started on the worker node
        return [path.parent.name for path in out.glob("*/run.json") if json.loads(path.read_text()).get("ray_node") == worker.node_id]

    deadline = time.monotonic() + 600
    while not on_worker():
        assert batch.is_alive(), "the batch ended before a take ran on the worker node"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lost = on_worker()
    cluster.remove_node(worker, allow_graceful=False)
    batch.join(timeout=900)
    assert not batch.is_alive()

    reports = result["reports"]
    assert [report.ok for report in reports] == [True] * 4, [report.error for report in reports]
    rerun = [report for report in reports if report.take in lost]
    assert rerun and all(report.ray_node == cluster.head_node.node_id for report in rerun)  # the head ran them again
    for report in reports:  # every take complete: its exported annotations and QA are there
        assert (Path(report.output) / "export" / "body_annotation.json").is_file()
        assert (Path(report.output) / "qa" / "metrics.json").is_file()
    batch_summary = json.loads((out / "batch_summary.json").read_text())
    assert (batch_summary["takes"], batch_summary["failed"]) == (4, 0)


# --------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------


def test_batch_progress_shows_takes_stage_rate_and_eta():
    stream = io.StringIO()  # not a terminal: plain log lines
    progress = BatchProgress(3, stream=stream, interval=0.0)
    progress.start_take("take_a")
    progress.start_stage("detect")
    progress.frames_done(10)
    line = progress.line()
    assert line.startswith("takes 0/3 | take_a: detect | ") and "frames/s" in line and "ETA" not in line
    progress.finish_take(ok=True)
    progress.start_take("take_b")
    progress.finish_take(ok=False)
    line = progress.line()
    assert line.startswith("takes 2/3 (1 failed)") and "ETA" in line


def test_a_terminal_gets_one_line_redrawn_in_place():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = BatchProgress(1, stream=stream)
    progress.start_take("take_a")
    progress.start_stage("triangulate")
    progress.finish_take(ok=True)
    text = stream.getvalue()
    assert text.count("\r\033[K") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "takes 1/1" in text.splitlines()[-1]


def test_gpu_model_actors_are_bounded_by_the_gpus():
    """Actors beyond the GPUs would wait forever for one: one actor per GPU, and a GPU
    model on a cluster without one is refused."""
    from stages.detect.backend import ModelResources
    from stages.detect.tasks import actors_that_fit

    assert actors_that_fit(16, 2, ModelResources(1, 1)) == (1, 2)
    assert actors_that_fit(16, 0, ModelResources(1)) == (1, 16)
    assert actors_that_fit(2, 0, ModelResources(4)) == (2, 1)  # never more CPUs than there are
    with pytest.raises(RuntimeError, match="GPU"):
        actors_that_fit(16, 0, ModelResources(1, 1))
